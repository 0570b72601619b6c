/* fsguard: opens the files a spec names (the spec itself, closure files,
 * mount sources) without ever entering a bundlefs mount, and names the
 * links and files such a path's walk depends on (for --watch).
 *
 * A daemon that reads a file on its own mount waits for itself: the
 * request it sends can only be answered by the threads that are waiting.
 * So every path a spec names is resolved here one component at a time,
 * each component's device looked at without asking its filesystem
 * (statx with AT_STATX_DONT_SYNC, which FUSE answers from its cache), and
 * the walk stops before it enters any mount whose type is fuse.bundlefs.
 * Symlinks are followed as the kernel would (up to 40 of them), each
 * target walked the same way. */
#ifndef BUNDLEFS_FSGUARD_H
#define BUNDLEFS_FSGUARD_H

#include <stdbool.h>
#include <sys/stat.h>

/* Opens `path` with `flags` (O_RDONLY, O_PATH...). Returns the fd, or -1
 * with errno set: EXDEV when the path leads into a bundlefs mount, with
 * that mount's path in *mnt (malloc'ed). */
int fsguard_open(const char *path, int flags, char **mnt);

/* Walks `path` the same way and names every place whose change would
 * change what it leads to: each symlink on the way, the last component,
 * and the first missing one (where it would appear). fn gets the
 * directory holding it (an O_PATH fd, for the call only), its name there,
 * and whether it is a symlink; in walk order. Returns 0 when the walk
 * reached the end, else -errno (-ENOENT, -ELOOP, -EXDEV...) after telling
 * what it saw. */
int fsguard_links(const char *path, void (*fn)(void *ctx, int dirfd, const char *name, bool link),
		  void *ctx);

#endif
