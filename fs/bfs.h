/* bfs: the state of one bundlefs mount, shared by the FUSE handlers
 * (ll.c), the bundle states (bundle.c) and main. */
#ifndef BUNDLEFS_BFS_H
#define BUNDLEFS_BFS_H

#include "closure.h"
#include "layout.h"
#include "nodes.h"
#include "spec.h"
#include "store.h"

#include <pthread.h>
#include <stdbool.h>

enum bundle_state { BS_UNRESOLVED, BS_READY, BS_FAILED };

/* What a bundle has computed so far. Everything is lazy: the config is
 * rendered on first access to config.json, the closure resolved on first
 * access to rootfs, and neither ever changes afterwards. */
struct bstate {
	pthread_mutex_t lock;
	enum bundle_state state;
	struct closure closure;
	struct layout layout;
	char *config;
	size_t config_len;
	char *gcroot; /* the GC root directory registered for the closure */
};

struct bfs {
	struct store st;
	struct spec spec;
	struct resolver *resolver;
	struct bstate *bundles; /* parallel to spec.bundles */
	struct nodes nodes;
	struct timespec started;
	uid_t uid; /* owner of the synthesized entries */
	gid_t gid;
	const char *gcroots; /* directory for GC roots, or NULL */
	const char *mountpoint;
	bool foreground;
	bool zero_open; /* answer OPEN and OPENDIR with ENOSYS: the mount is read-only */
	/* handles for requests that come without one (see hcache.h) */
	struct hcache *files; /* backing files open for reading */
	struct hcache *paths; /* O_PATH descriptors of directories, for lookups */
	struct hcache *dirs;  /* directory listings */
};

/* Logs one line: to stderr in the foreground, else to syslog. */
void bfs_log(struct bfs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* bundle.c */
void bundles_init(struct bfs *fs);
void bundles_fini(struct bfs *fs);
/* Renders config.json once. Never fails. */
void bundle_config(struct bfs *fs, size_t i, const char **data, size_t *len);
/* Resolves the closure and builds the layout once. Returns 0, or -EIO when
 * the closure cannot be resolved (logged once). */
int bundle_ready(struct bfs *fs, size_t i);

extern const struct fuse_lowlevel_ops bfs_ops;
void ll_caches_init(struct bfs *fs);
void ll_caches_free(struct bfs *fs);

#endif
