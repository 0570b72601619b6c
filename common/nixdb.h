/* nixdb: reads the reference graph from Nix's own SQLite database,
 * read-only: bundlefs never takes a write lock on it. */
#ifndef BUNDLEFS_NIXDB_H
#define BUNDLEFS_NIXDB_H

struct nixdb;

/* Opens `path` read-only. Returns NULL with a message in *err. */
struct nixdb *nixdb_open(const char *path, char **err);
/* Calls fn for every reference of store path `path` (full paths).
 * Returns 0, 1 when `path` is not a valid path, or -1 with *err set. */
int nixdb_refs(struct nixdb *db, const char *path, void (*fn)(void *ctx, const char *ref),
	       void *ctx, char **err);
void nixdb_close(struct nixdb *db);

#endif
