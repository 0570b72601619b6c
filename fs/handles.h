/* handles: what a FUSE file handle (fi->fh) stands for, and where
 * requests that come without one get theirs.
 *
 * An OPEN or OPENDIR that the daemon answers (on a mount forced rw, where
 * opens must be seen to refuse writes) creates a struct handle, and fi->fh
 * names it (see struct handles); RELEASE frees it. On the default read-only mount
 * the kernel opens without asking (see hcache.h) and requests arrive with
 * fi->fh == 0: they borrow a handle from a bounded cache instead. Either
 * way a handler gets a `struct hold`, uses hold.h, and gives it back. */
#ifndef BUNDLEFS_HANDLES_H
#define BUNDLEFS_HANDLES_H

#include "hcache.h"
#include "tree.h"

#include <pthread.h>
#include <stdint.h>

struct bfs;

struct handle {
	struct content file;  /* files */
	struct dirstream dir; /* directories */
	pthread_mutex_t lock; /* directories: one reader of the stream at a time;
				 taken before the node table's lock */
	bool is_dir;
};

/* The handles of one mount. */
struct handles {
	struct hcache *files; /* file contents, for reads without a handle */
	struct hcache *dirs;  /* directory streams, likewise */
	/* Opened handles, by slot: the kernel's file handle is this
	 * daemon's epoch (high 32 bits) and the slot + 1, so that a handle a
	 * predecessor opened (a takeover) is known for what it is, and its
	 * requests are served as those without a handle are. Those the kernel
	 * never released (a lazy unmount) are freed at exit. */
	pthread_mutex_t lock; /* a leaf: guards the slots */
	struct handle **slots;
	uint32_t nslots, cap, *free, nfree;
	uint32_t epoch;
};

/* Sets up the caches, holding at most `files` and `dirs` handles. */
void handles_init(struct bfs *fs, unsigned files, unsigned dirs);
void handles_fini(struct bfs *fs);
/* Closes every cached handle not in use (the process is short of
 * descriptors). */
void handles_trim(struct bfs *fs);

/* A borrowed handle: an opened one (fi->fh) or one from a cache. */
struct hold {
	struct handle *h;
	struct hcache_ref ref; /* ref.cache is NULL for an opened handle */
};

/* The handle of file (or directory) `n` for a request with file handle
 * `fh`. Returns 0 or -errno. Give it back with handles_put. */
errint_t handles_file(struct bfs *fs, struct node *n, uint64_t fh, struct hold *out);
void handles_put(struct hold *hold);

/* Reads directory `n` from offset `off` (see tree_readdir) through its
 * handle `fh`, or one borrowed from the cache. */
errint_t handles_readdir(struct bfs *fs, struct node *n, uint64_t fh, off_t off, tree_emit_fn *emit,
			 void *ctx);

/* OPEN and OPENDIR: a new handle for `n`, its name in *fh. RELEASE and
 * RELEASEDIR free it. Return 0 or -errno. */
errint_t handles_open(struct bfs *fs, struct node *n, bool dir, uint64_t *fh);
void handles_release(struct bfs *fs, uint64_t fh);

#endif
