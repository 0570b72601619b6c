/* nixdb: ValidPaths and Refs, queried through a read-only connection. */
#include "nixdb.h"
#include "util.h"

#include <sqlite3.h>
#include <stdlib.h>

struct nixdb {
	sqlite3 *db;
	sqlite3_stmt *id, *refs;
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
	rc = sqlite3_prepare_v2(n->db,
				"SELECT v.path FROM Refs r JOIN ValidPaths v ON r.reference = v.id "
				"WHERE r.referrer = ?",
				-1, &n->refs, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	return n;
fail:
	*err = xasprintf("Nix database %s: %s", path,
			 n->db ? sqlite3_errmsg(n->db) : sqlite3_errstr(rc));
	nixdb_close(n);
	return NULL;
}

int nixdb_refs(struct nixdb *n, const char *path, void (*fn)(void *ctx, const char *ref), void *ctx,
	       char **err)
{
	int rc, ret = 0;
	sqlite3_int64 id;
	sqlite3_reset(n->id);
	sqlite3_bind_text(n->id, 1, path, -1, SQLITE_STATIC);
	rc = sqlite3_step(n->id);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(n->id);
		return 1;
	}
	if (rc != SQLITE_ROW)
		goto fail;
	id = sqlite3_column_int64(n->id, 0);
	sqlite3_reset(n->id);

	sqlite3_reset(n->refs);
	sqlite3_bind_int64(n->refs, 1, id);
	while ((rc = sqlite3_step(n->refs)) == SQLITE_ROW) {
		const char *ref = (const char *)sqlite3_column_text(n->refs, 0);
		if (ref)
			fn(ctx, ref);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(n->refs);
	return ret;
fail:
	*err = xasprintf("Nix database %s: %s", n->path, sqlite3_errmsg(n->db));
	sqlite3_reset(n->id);
	sqlite3_reset(n->refs);
	return -1;
}

void nixdb_close(struct nixdb *n)
{
	if (!n)
		return;
	sqlite3_finalize(n->id);
	sqlite3_finalize(n->refs);
	sqlite3_close(n->db);
	free(n->path);
	free(n);
}
