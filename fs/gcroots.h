/* gcroots: while a bundle is served, its closure is registered as Nix
 * garbage-collector roots, so that `nix-store --gc` cannot delete what a
 * container may still read. The roots are the bundle's roots (the store
 * paths its args and `paths` name): Nix keeps their whole closures. Each
 * daemon keeps its roots in <gcroots>/bundlefs/<pid>/ (one symlink per
 * store path; <pid>.<n>/ when a live daemon has that name already: the
 * same pid in another PID namespace, or the successor of a daemon that had
 * this pid) and removes them when it exits. It holds an flock on that
 * directory while it runs; a directory nobody holds locked belongs to a
 * daemon that died, and the next daemon to start removes it. No other
 * directory is ever removed. */
#ifndef BUNDLEFS_GCROOTS_H
#define BUNDLEFS_GCROOTS_H

#include "store.h"
#include "strmap.h"
#include "util.h"

#include <pthread.h>

struct gcroots {
	pthread_mutex_t lock; /* a leaf: held around the counts and one symlinkat */
	char *dir;	      /* <gcroots>/bundlefs/<pid>, or NULL: no roots kept */
	int fd;		      /* dir, open */
	struct strmap counts; /* base name -> how many bundles root it */
	struct arena names;
};

/* The default roots directory for a store: <state>/gcroots beside the
 * database, when it exists; else NULL. */
char *gcroots_default(const struct store *st);

void gcroots_init(struct gcroots *g);
/* Creates this daemon's directory below `top`. Returns 0 or -errno. */
errint_t gcroots_open(struct gcroots *g, const char *top);
/* Takes over the directory a predecessor made (`fd`, open and locked, at
 * `dir`): its roots stay as they are. */
void gcroots_adopt(struct gcroots *g, int fd, const char *dir);
/* Forgets the directory without removing it: it is handed over. */
void gcroots_release(struct gcroots *g);

/* Registers store paths (base names) for one more bundle; nothing when no
 * directory is open. Returns 0 or -errno. */
errint_t gcroots_add(struct gcroots *g, const struct store *st, const char *const *bases, size_t n);
/* The bundle that registered them is gone: a root no other bundle needs
 * is removed. */
void gcroots_remove(struct gcroots *g, const struct store *st, const char *const *bases, size_t n);
/* Removes this daemon's roots. */
void gcroots_close(struct gcroots *g);

#endif
