/* image: metadata images of closures, for kernel-native roots (overlay.h).
 *
 * An image is an EROFS filesystem written with libcomposefs that holds a
 * closure's tree below the store directory (nix/store/<path>/...) and
 * nothing of its bytes: directories, symlinks with their targets, and
 * regular files with their modes, owners, times and sizes, each of size
 * > 0 carrying overlayfs' metacopy and redirect xattrs that point at the
 * file by its path below the store ("/<store path>/<relative path>"). An
 * overlay of the image over the store, as a data-only lower layer, is the
 * closure, served by the kernel alone: metadata from the image, bytes
 * from the store's own files (and their page cache).
 *
 * The image shows what the FUSE tree shows, no more: only directories,
 * regular files and symlinks (anything else is left out), setuid and
 * setgid bits dropped (store_served_mode), no hard link between two
 * entries (the store's are optimise's, and a redirect names one path, so
 * that a file is served from its own store path: merging links would serve
 * one store path's file from another, which may be collected first). The
 * walk opens nothing through a symlink and never leaves a store path.
 *
 * Images are cached in the state directory, under a key of the closure:
 * every store path's name and the identity of its top entry (inode and
 * change time: a path deleted and made again is another), so that bundles
 * sharing a closure share one image and a restart reuses it. An image is
 * written to a temporary name and renamed into place, sealed with the hash
 * of its bytes (an xattr); a cached one whose bytes do not match is made
 * again. */
#ifndef BUNDLEFS_IMAGE_H
#define BUNDLEFS_IMAGE_H

#include "closure.h"
#include "store.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Does this build write images (it has libcomposefs)? */
bool image_built_in(void);

/* The key of closure `c`'s image: 32 hex digits and a NUL. */
#define IMAGE_KEY_LEN 33
void image_key(const struct store *st, const struct closure *c, char key[IMAGE_KEY_LEN]);

struct image_stats {
	size_t entries;	 /* in the image */
	uint64_t bytes;	 /* its size */
	double walk_ms;	 /* reading the closure's tree */
	double write_ms; /* writing the image */
	bool built;	 /* false: found in the cache */
	bool damaged;	 /* the cached one was not whole (its seal): made again */
};

/* The image of closure `c` (all of whose paths are in the store) in
 * directory `dir` (made if missing) as KEY.erofs: found there, or built.
 * Returns 0 with its path in *path (malloc'ed); -ENOTSUP when this build
 * has no libcomposefs; -errno with *msg (malloc'ed) saying what failed. */
errint_t image_ensure(const struct store *st, const struct closure *c, const char *dir, char **path,
		      struct image_stats *stats, char **msg);

#endif
