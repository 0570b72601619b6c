/* nixdb: ValidPaths and Refs, queried through a read-only connection. */
#include "nixdb.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long one query waits for a writer's lock before it reports the
 * database busy; the caller retries later rather than block a request. */
#define BUSY_TIMEOUT_MS 2000

struct nixdb {
	sqlite3 *db;
	sqlite3_stmt *id;
	char *path;
	bool snapshot;
};

static bool is_busy(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

/* Opens with `mode` ("ro" or "ro&immutable=1") and prepares the first
 * statement, which is where a missing index shows. Returns the SQLite
 * result code. */
static int try_open(struct nixdb *n, const char *mode)
{
	char *uri = sqlite3_mprintf("file:%q?mode=%s", n->path, mode);
	int rc = sqlite3_open_v2(uri, &n->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	sqlite3_free(uri);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(n->db, BUSY_TIMEOUT_MS);
		rc = sqlite3_prepare_v2(n->db, "SELECT id FROM ValidPaths WHERE path = ?", -1,
					&n->id, NULL);
	}
	if (rc == SQLITE_OK) {
		/* Reading the schema takes the locks a reader needs. */
		rc = sqlite3_step(n->id);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_reset(n->id);
	}
	return rc;
}

static void drop(struct nixdb *n)
{
	sqlite3_finalize(n->id);
	sqlite3_close(n->db);
	n->id = NULL;
	n->db = NULL;
}

/* Is the write-ahead log absent or empty, so that the database file holds
 * every commit? */
static bool log_empty(const char *path)
{
	char *wal = xasprintf("%s-wal", path);
	struct stat st;
	bool empty = stat(wal, &st) < 0 || st.st_size == 0;
	free(wal);
	return empty;
}

struct nixdb *nixdb_open(const char *path, char **err, bool *busy)
{
	struct nixdb *n = xcalloc(1, sizeof(*n));
	n->path = xstrdup(path);
	*busy = false;
	int rc = try_open(n, "ro");
	if ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN) {
		/* No shared-memory index we may create (see nixdb.h), or no
		 * database we may read at all. */
		drop(n);
		if (faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) < 0) {
			*err = xasprintf("Nix database %s: %s (uid %d)", path, strerror(errno),
					 (int)geteuid());
			nixdb_close(n);
			return NULL;
		}
		if (log_empty(path)) {
			n->snapshot = true;
			rc = try_open(n, "ro&immutable=1");
		} else {
			*err =
			    xasprintf("Nix database %s: its write-ahead log is in use but its "
				      "index (%s-shm) is missing and cannot be created by uid %d; "
				      "retrying later",
				      path, path, (int)geteuid());
			*busy = true;
			nixdb_close(n);
			return NULL;
		}
	}
	if (rc != SQLITE_OK) {
		*busy = is_busy(rc);
		*err = xasprintf("Nix database %s: %s", path,
				 n->db ? sqlite3_errmsg(n->db) : sqlite3_errstr(rc));
		nixdb_close(n);
		return NULL;
	}
	return n;
}

bool nixdb_is_snapshot(const struct nixdb *n)
{
	return n->snapshot;
}

static int failed(struct nixdb *n, int rc, char **err)
{
	*err = xasprintf("Nix database %s: %s", n->path, sqlite3_errmsg(n->db));
	return is_busy(rc) ? -2 : -1;
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
	return failed(n, rc, err);
}

/* Prepares `head` "(?,?,...)" `tail` with the k paths bound to its
 * parameters. Returns SQLite's code (the statement in *st either way). */
static int prepare_in(struct nixdb *n, const char *head, const char *tail, const char *const *paths,
		      size_t k, sqlite3_stmt **st)
{
	struct buf q = {0};
	buf_adds(&q, head);
	buf_addc(&q, '(');
	for (size_t i = 0; i < k; i++)
		buf_adds(&q, i ? ",?" : "?");
	buf_addc(&q, ')');
	buf_adds(&q, tail);
	*st = NULL;
	int rc = sqlite3_prepare_v2(n->db, q.data, -1, st, NULL);
	buf_free(&q);
	for (size_t i = 0; rc == SQLITE_OK && i < k; i++)
		sqlite3_bind_text(*st, (int)i + 1, paths[i], -1, SQLITE_STATIC);
	return rc;
}

int nixdb_valid_each(struct nixdb *n, const char *const *paths, size_t count,
		     void (*fn)(void *ctx, const char *path), void *ctx, char **err)
{
	/* (In chunks well below SQLite's limit of parameters.) */
	enum { CHUNK = 500 };
	for (size_t at = 0; at < count; at += CHUNK) {
		size_t k = count - at < CHUNK ? count - at : CHUNK;
		sqlite3_stmt *st;
		int rc = prepare_in(n, "SELECT path FROM ValidPaths WHERE path IN ", "", paths + at,
				    k, &st);
		if (rc == SQLITE_OK) {
			while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
				const char *p = (const char *)sqlite3_column_text(st, 0);
				if (p)
					fn(ctx, p);
			}
		}
		if (rc != SQLITE_DONE) {
			int r = failed(n, rc, err);
			sqlite3_finalize(st);
			return r;
		}
		sqlite3_finalize(st);
	}
	return 0;
}

int nixdb_closure(struct nixdb *n, const char *const *paths, size_t count,
		  void (*fn)(void *ctx, const char *path), void *ctx, char **err)
{
	/* One statement: the roots as parameters, a recursive walk of Refs
	 * (a spec names a handful of roots, far below SQLite's limit of
	 * parameters). */
	sqlite3_stmt *st;
	int rc = prepare_in(n, "WITH RECURSIVE c(id) AS (SELECT id FROM ValidPaths WHERE path IN ",
			    " UNION SELECT r.reference FROM Refs r JOIN c ON r.referrer = c.id) "
			    "SELECT v.path FROM c JOIN ValidPaths v ON v.id = c.id",
			    paths, count, &st);
	if (rc != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 0);
		if (p)
			fn(ctx, p);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return 0;
fail:;
	int r = failed(n, rc, err);
	sqlite3_finalize(st);
	return r;
}

int nixdb_nar_size(struct nixdb *n, const char *const *paths, size_t count, uint64_t *sum,
		   size_t *known, char **err)
{
	/* (In chunks well below SQLite's limit of parameters.) */
	enum { CHUNK = 500 };
	*sum = 0;
	*known = 0;
	for (size_t at = 0; at < count; at += CHUNK) {
		size_t k = count - at < CHUNK ? count - at : CHUNK;
		sqlite3_stmt *st;
		int rc =
		    prepare_in(n,
			       "SELECT coalesce(sum(narSize), 0), count(narSize) FROM ValidPaths "
			       "WHERE path IN ",
			       "", paths + at, k, &st);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			int r = failed(n, rc, err);
			sqlite3_finalize(st);
			return r;
		}
		*sum += (uint64_t)sqlite3_column_int64(st, 0);
		*known += (size_t)sqlite3_column_int64(st, 1);
		sqlite3_finalize(st);
	}
	return 0;
}

void nixdb_close(struct nixdb *n)
{
	if (!n)
		return;
	drop(n);
	free(n->path);
	free(n);
}
