/* nixdb: reads the reference graph from Nix's own SQLite database,
 * read-only: bundlefs never takes a write lock on it. */
#ifndef BUNDLEFS_NIXDB_H
#define BUNDLEFS_NIXDB_H

#include <stddef.h>

struct nixdb;

/* Opens `path` read-only. Returns NULL with a message in *err. */
struct nixdb *nixdb_open(const char *path, char **err);
/* Is `path` a valid path? Returns 1, 0, or -1 with *err set. */
int nixdb_valid(struct nixdb *db, const char *path, char **err);
/* Calls fn for every path in the closure of the given valid paths (full
 * paths), in one recursive query. Returns 0 or -1 with *err set. */
int nixdb_closure(struct nixdb *db, const char *const *paths, size_t n,
		  void (*fn)(void *ctx, const char *path), void *ctx, char **err);
void nixdb_close(struct nixdb *db);

#endif
