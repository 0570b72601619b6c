/* bfs: the state of one bundlefs mount, shared by the FUSE handlers
 * (ll.c), the tree (tree.c), the handles (handles.c) and main.
 *
 * Lock order. Locks are taken in this order and never the other way:
 *
 *   bstate.lock (bundle.c: one bundle computing its config or closure)
 *     -> resolver lock (closure.c: one resolution at a time)
 *     -> gcroots.lock (gcroots.c: registering roots)
 *
 * The node table's lock (nodes.c), the handle caches' locks (hcache.c) and
 * the list of opened handles (handles.c) are leaves: nothing else is
 * locked and no I/O is done while one is held. A FUSE handler holds no
 * lock when it calls into the tree. */
#ifndef BUNDLEFS_BFS_H
#define BUNDLEFS_BFS_H

#include "backing.h"
#include "bundle.h"
#include "devio.h"
#include "gcroots.h"
#include "handles.h"
#include "nodes.h"
#include "spec.h"
#include "store.h"

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

struct bfs {
	struct store st;
	struct spec spec;
	struct resolver *resolver;
	struct bundles *bundles;
	struct gcroots gcroots;
	struct backing backing;
	struct nodes nodes;
	struct handles handles;
	struct hcache *dirpaths; /* tree.c: descriptors of backing directories */
	struct devio devio;	 /* the FUSE device's I/O hooks */
	struct timespec started;
	uid_t uid; /* owner of the synthesized entries */
	gid_t gid;
	bool zero_open; /* answer OPEN and OPENDIR with ENOSYS: the mount is read-only */
};

/* The FUSE operations (ll.c). */
extern const struct fuse_lowlevel_ops bfs_ops;

#endif
