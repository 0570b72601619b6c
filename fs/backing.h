/* backing: confined access to the real store.
 *
 * Every path is resolved below the store directory without following any
 * symlink and without leaving it: openat2 with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS where the kernel has it, else one O_NOFOLLOW
 * component at a time (the fallback can be forced, so that it is tested
 * where openat2 exists). Entries are opened through an O_PATH descriptor
 * that has been checked to be the inode that was looked up, so a FIFO or
 * device planted or swapped into the store is never opened.
 *
 * A leaf: it knows paths, descriptors and struct stat, nothing of FUSE or
 * of nodes. Every function returns a descriptor or length, or -errno. */
#ifndef BUNDLEFS_BACKING_H
#define BUNDLEFS_BACKING_H

#include "util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct backing {
	int storefd;		/* the real store directory (not owned) */
	bool walk;		/* always resolve one component at a time */
	atomic_bool no_openat2; /* the kernel lacks openat2 */
	atomic_bool no_noatime; /* O_NOATIME is not allowed to us */
	/* Called when the process is out of descriptors (EMFILE, ENFILE),
	 * to close what it can; the open is then tried once more. */
	void (*reclaim)(void *ctx);
	void *reclaim_ctx;
};

void backing_init(struct backing *b, int storefd, bool force_walk, void (*reclaim)(void *ctx),
		  void *ctx);

/* Opens `rel` (relative to the store) as O_PATH without following the
 * final symlink, and fstat's it. Returns the fd or -errno. */
errint_t backing_open_path(struct backing *b, const char *rel, struct stat *st);

/* What was looked up at a path: the entry must still be this one. */
struct backing_id {
	uint64_t dev, ino;
	uint64_t size;
	uint32_t mode; /* type and permissions, as served (store_served_mode) */
	int64_t mtime;
	uint32_t mtime_ns;
};

/* Opens `rel` for reading, checking first that it is still the entry `id`
 * (a regular file or a directory). Returns the fd, or -errno (-ESTALE when
 * it is not).
 *
 * A file or symlink replaced by another inode of the same type, mode, size
 * and modification time is taken for the same entry: store paths never
 * change, and `nix-store --optimise` replaces a file by an identical hard
 * link, a new inode with the same content. Anything else, and any other
 * type (a FIFO or device, a directory swapped for a symlink), is not. */
errint_t backing_open_checked(struct backing *b, const char *rel, const struct backing_id *id);

/* Reads the target of symlink `rel` (checked like above) into buf.
 * Returns its length or -errno. */
ssize_t backing_readlink(struct backing *b, const char *rel, const struct backing_id *id, char *buf,
			 size_t size);

#endif
