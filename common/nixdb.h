/* nixdb: reads the reference graph from Nix's own SQLite database,
 * read-only: bundlefs never takes a write lock on it.
 *
 * Nix's database is in WAL mode. A read-only connection needs the
 * write-ahead log's shared-memory index (db.sqlite-shm); while any other
 * connection is open it exists, and a reader maps it. When none is open
 * SQLite has removed it, and a reader that may not create files beside
 * the database (any user but root) cannot open it at all. Then, and only
 * when the write-ahead log is absent or empty (so every commit is in the
 * database file itself), the database is opened immutable: a snapshot of
 * that moment, to be closed after one use so that later commits are seen
 * by the next. A non-empty log without a readable index (a writer that
 * died) cannot be read safely that way, and is reported. */
#ifndef BUNDLEFS_NIXDB_H
#define BUNDLEFS_NIXDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nixdb;

/* Opens `path` read-only. Returns NULL with a message in *err, and *busy
 * set when the failure may go away by itself (a lock, a log in use). */
struct nixdb *nixdb_open(const char *path, char **err, bool *busy);
/* Was it opened as a snapshot (see above), to be closed after one use? */
bool nixdb_is_snapshot(const struct nixdb *db);
/* Is `path` a valid path? Returns 1, 0, or a negative value with *err set:
 * -2 when the database was busy (locked by a writer), else -1. */
int nixdb_valid(struct nixdb *db, const char *path, char **err);
/* Calls fn for each of the given paths (full paths) that is valid, in
 * chunks of a few hundred per query. Returns 0, or -2 (busy) or -1 with
 * *err set. */
int nixdb_valid_each(struct nixdb *db, const char *const *paths, size_t n,
		     void (*fn)(void *ctx, const char *path), void *ctx, char **err);
/* Calls fn for every path in the closure of the given valid paths (full
 * paths), in one recursive query. Returns 0, or -2 (busy) or -1 with *err
 * set. */
int nixdb_closure(struct nixdb *db, const char *const *paths, size_t n,
		  void (*fn)(void *ctx, const char *path), void *ctx, char **err);
/* Adds up the NAR sizes Nix recorded for the given paths (full paths):
 * their sum in *sum, and in *known how many of them are valid with a size.
 * Returns 0, or -2 (busy) or -1 with *err set. */
int nixdb_nar_size(struct nixdb *db, const char *const *paths, size_t n, uint64_t *sum,
		   size_t *known, char **err);
void nixdb_close(struct nixdb *db);

#endif
