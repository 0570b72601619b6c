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
};

void backing_init(struct backing *b, int storefd, bool force_walk);

/* Opens `rel` (relative to the store) as O_PATH without following the
 * final symlink, and fstat's it. Returns the fd or -errno. */
errint_t backing_open_path(struct backing *b, const char *rel, struct stat *st);

/* Opens `rel` for reading, checking first that it is still the inode
 * (dev, ino) that was looked up and of type `type` (S_IFREG or S_IFDIR).
 * Returns the fd, or -errno (-ESTALE when it was replaced). */
errint_t backing_open_checked(struct backing *b, const char *rel, uint64_t dev, uint64_t ino,
			      mode_t type);

/* Reads the target of symlink `rel` (checked like above) into buf.
 * Returns its length or -errno. */
ssize_t backing_readlink(struct backing *b, const char *rel, uint64_t dev, uint64_t ino, char *buf,
			 size_t size);

#endif
