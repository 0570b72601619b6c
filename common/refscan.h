/* refscan: finds the references of a store path without Nix's database,
 * the way Nix does after a build: by searching the path's file names,
 * symlink targets and file contents for the 32-character hash parts of
 * other store entries. */
#ifndef BUNDLEFS_REFSCAN_H
#define BUNDLEFS_REFSCAN_H

#include "strmap.h"
#include "util.h"

/* Files are read in pieces of this size; a hash may be split between
 * two of them. */
#define REFSCAN_CHUNK (1 << 16)

/* Fills `hashes` with hash part -> base name for every entry of the store
 * directory open at `storefd` (names allocated in `a`). Returns 0 or -1
 * with errno set. */
int refscan_candidates(int storefd, struct strmap *hashes, struct arena *a);

/* Scans store entry `base` and calls fn with the base name of every other
 * candidate it mentions (possibly several times). Returns 0, or -1 with a
 * message in *err. Never follows symlinks; reads only regular files. */
int refscan_path(int storefd, const char *base, const struct strmap *hashes,
		 void (*fn)(void *ctx, const char *base), void *ctx, char **err);

#endif
