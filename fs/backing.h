/* backing: confined access to the real store.
 *
 * Every path is resolved below the store directory without following any
 * symlink and without leaving it: openat2 with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS where the kernel has it, else one O_NOFOLLOW component
 * at a time. Only directories, regular files and symlinks are served;
 * files are opened through an O_PATH descriptor that has been checked, so a
 * FIFO or device planted in the store is never opened. */
#ifndef BUNDLEFS_BACKING_H
#define BUNDLEFS_BACKING_H

#include "nodes.h"

#include <stdbool.h>
#include <sys/stat.h>

/* Opens the real store directory; returns 0 or -errno. */
int backing_init(const char *real_store);
void backing_fini(void);

/* Is this a type bundlefs serves? */
static inline bool backing_servable(mode_t m)
{
	return S_ISDIR(m) || S_ISREG(m) || S_ISLNK(m);
}

/* Opens `rel` (relative to the store) as O_PATH without following the
 * final symlink, and fstat's it. Returns the fd or -errno. */
int backing_open_path(const char *rel, struct stat *st);

/* Opens the regular file or directory `rel` for reading and checks that it
 * is still the inode (dev, ino) that was looked up. Returns fd or -errno
 * (-ESTALE when it was replaced). */
int backing_open_checked(const char *rel, uint64_t dev, uint64_t ino, bool dir);

/* Reads the target of symlink `rel` (checked like above) into buf.
 * Returns its length or -errno. */
ssize_t backing_readlink(const char *rel, uint64_t dev, uint64_t ino, char *buf, size_t size);

/* Fills a node's attributes from a backing stat. */
void backing_attr(const struct stat *st, struct nattr *a);

#endif
