/* nixdb: ValidPaths and Refs, queried through a read-only connection. */
#include "nixdb.h"
#include "util.h"

#include <sqlite3.h>
#include <stdlib.h>

struct nixdb {
	sqlite3 *db;
	sqlite3_stmt *id;
	char *path;
};

struct nixdb *nixdb_open(const char *path, char **err)
{
	struct nixdb *n = xcalloc(1, sizeof(*n));
	n->path = xstrdup(path);
	/* mode=ro: a read-only connection; Nix's database is in WAL mode, so
	 * readers never block its writers and always see committed state. */
	char *uri = sqlite3_mprintf("file:%q?mode=ro", path);
	int rc = sqlite3_open_v2(uri, &n->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	sqlite3_free(uri);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(n->db, 10000);
	rc =
	    sqlite3_prepare_v2(n->db, "SELECT id FROM ValidPaths WHERE path = ?", -1, &n->id, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	return n;
fail:
	*err = xasprintf("Nix database %s: %s", path,
			 n->db ? sqlite3_errmsg(n->db) : sqlite3_errstr(rc));
	nixdb_close(n);
	return NULL;
}

int nixdb_valid(struct nixdb *n, const char *path, char **err)
{
	sqlite3_reset(n->id);
	sqlite3_bind_text(n->id, 1, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(n->id);
	sqlite3_reset(n->id);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	*err = xasprintf("Nix database %s: %s", n->path, sqlite3_errmsg(n->db));
	return -1;
}

int nixdb_closure(struct nixdb *n, const char *const *paths, size_t count,
		  void (*fn)(void *ctx, const char *path), void *ctx, char **err)
{
	/* One statement: the roots as parameters, a recursive walk of Refs
	 * (a spec names a handful of roots, far below SQLite's limit of
	 * parameters). */
	struct buf q = {0};
	buf_adds(&q, "WITH RECURSIVE c(id) AS (SELECT id FROM ValidPaths WHERE path IN (");
	for (size_t i = 0; i < count; i++)
		buf_adds(&q, i ? ",?" : "?");
	buf_adds(&q, ") UNION SELECT r.reference FROM Refs r JOIN c ON r.referrer = c.id) "
		     "SELECT v.path FROM c JOIN ValidPaths v ON v.id = c.id");
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(n->db, q.data, -1, &st, NULL);
	buf_free(&q);
	if (rc != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < count; i++)
		sqlite3_bind_text(st, (int)i + 1, paths[i], -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 0);
		if (p)
			fn(ctx, p);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return 0;
fail:
	*err = xasprintf("Nix database %s: %s", n->path, sqlite3_errmsg(n->db));
	sqlite3_finalize(st);
	return -1;
}

void nixdb_close(struct nixdb *n)
{
	if (!n)
		return;
	sqlite3_finalize(n->id);
	sqlite3_close(n->db);
	free(n->path);
	free(n);
}
