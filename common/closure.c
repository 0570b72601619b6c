/* closure: resolves a bundle's roots to the full set of store paths it
 * needs, from a closure file, Nix's database or a reference scan. */
#include "closure.h"
#include "fsguard.h"
#include "nixdb.h"
#include "refscan.h"
#include "strmap.h"
#include "subst.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLOSURE_FILE_MAX (64u << 20)

struct refs {
	const char **v;
	size_t n;
};

/* A resolved closure shared by every bundle with the same source and
 * roots (thousands of bundles often run a handful of programs). */
struct shared {
	struct closure c; /* first: a const struct closure * is a struct shared * */
	char *key;
	size_t keylen;
	unsigned refs;
	_Atomic uint64_t bytes; /* closure_bytes, plus one; 0 until walked */
	_Atomic uint64_t nar;	/* closure_nar_size, plus one; 0 until known */
};

/* The resolver lock guards the database connection, the scanner's caches
 * and the map of shared closures. It is never held while a spec-named
 * file is read, or across anything else that could reach a bundlefs
 * mount. */
struct resolver {
	pthread_mutex_t lock;
	const struct store *st;
	int storefd;		/* st->fd, or -1 */
	struct nixdb *db;	/* kept open unless it is a snapshot */
	struct strmap closures; /* key -> struct shared */
	/* scanner state, built on first use */
	bool scan_ready;
	struct strmap hashes;  /* hash part -> base */
	struct strmap scanned; /* base -> struct refs */
	struct arena scan_arena;
	/* substitution (see closure.h) */
	struct subst *subst;
	bool subst_nix_config;	    /* Nix's settings still to be read */
	pthread_mutex_t subst_lock; /* a leaf: guards reading them once */
};

struct resolver *resolver_new(struct store *st)
{
	struct resolver *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->subst_lock, NULL);
	r->st = st;
	store_open(st);
	r->storefd = st->fd;
	return r;
}

void resolver_set_subst(struct resolver *r, struct subst *s, bool nix_config)
{
	r->subst = s;
	r->subst_nix_config = nix_config;
}

int resolver_valid(struct resolver *r, const char *base)
{
	char *path = xasprintf("%s/%s", r->st->dir, base), *err = NULL;
	int rc = -1;
	pthread_mutex_lock(&r->lock);
	if (!r->db && r->st->db) {
		bool busy;
		r->db = nixdb_open(r->st->db, &err, &busy);
		free(err);
		err = NULL;
	}
	if (r->db) {
		rc = nixdb_valid(r->db, path, &err);
		if (nixdb_is_snapshot(r->db)) {
			nixdb_close(r->db);
			r->db = NULL;
		}
	}
	pthread_mutex_unlock(&r->lock);
	free(err);
	free(path);
	return rc < 0 ? -1 : rc;
}

bool closure_nar_size(struct resolver *r, const struct closure *c, uint64_t *bytes)
{
	/* (A closure shared by many bundles is asked once: a path's NAR size
	 * never changes.) */
	struct shared *sh = (struct shared *)c;
	uint64_t known_size = atomic_load(&sh->nar);
	if (known_size) {
		*bytes = known_size - 1;
		return true;
	}
	*bytes = 0;
	const char **paths = xreallocarray(NULL, c->n ? c->n : 1, sizeof(*paths));
	size_t n = 0;
	bool known = true;
	for (size_t i = 0; i < c->n && known; i++) {
		uint64_t size;
		if (!closure_absent(c, i))
			paths[n++] = xasprintf("%s/%s", r->st->dir, c->base[i]);
		else if (r->subst && subst_nar_size(r->subst, c->base[i], &size))
			*bytes += size;
		else
			known = false;
	}
	/* (Only from a database resolution already opened: a closure from a
	 * closure file must not make the daemon open Nix's database, which
	 * makes SQLite write its -shm beside it, just for a log line.) */
	pthread_mutex_lock(&r->lock);
	if (known && n) {
		uint64_t sum = 0;
		size_t found = 0;
		char *err = NULL;
		known =
		    r->db &&
		    nixdb_nar_size(r->db, (const char *const *)paths, n, &sum, &found, &err) == 0 &&
		    found == n;
		free(err);
		*bytes += sum;
		if (r->db && nixdb_is_snapshot(r->db)) {
			nixdb_close(r->db);
			r->db = NULL;
		}
	}
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n; i++)
		free((char *)paths[i]);
	free(paths);
	if (known)
		atomic_store(&sh->nar, *bytes + 1);
	return known;
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	nixdb_close(r->db);
	strmap_free(&r->closures);
	strmap_free(&r->hashes);
	strmap_free(&r->scanned);
	arena_free(&r->scan_arena);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->subst_lock);
	free(r);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A growing set of base names, remembering insertion order for BFS. */
struct set {
	struct strmap map;
	const char **v;
	size_t n, cap;
	struct arena *a;
};

static bool set_add(struct set *s, const char *base, size_t len)
{
	if (strmap_get(&s->map, base, len))
		return false;
	char *copy = arena_strndup(s->a, base, len);
	strmap_put(&s->map, copy, len, copy);
	GROW(s->v, s->n, s->cap);
	s->v[s->n++] = copy;
	return true;
}

static void set_free(struct set *s)
{
	strmap_free(&s->map);
	free(s->v);
}

static void add_root(void *ctx, const char *base, size_t n)
{
	set_add(ctx, base, n);
}

size_t closure_roots(const struct store *st, const struct bundle *b, struct arena *a,
		     const char ***roots)
{
	struct set s = {.a = a};
	for (size_t i = 0; i < b->nargs; i++)
		store_find_refs(st, b->args[i], add_root, &s);
	for (size_t i = 0; i < b->npaths; i++) {
		const char *base = store_path_base(st, b->paths[i]);
		if (base)
			set_add(&s, base, strlen(base));
	}
	if (s.n > 1)
		qsort(s.v, s.n, sizeof(*s.v), cmp_str);
	const char **out = arena_alloc(a, (s.n + 1) * sizeof(*out));
	if (s.n)
		memcpy(out, s.v, s.n * sizeof(*out));
	size_t n = s.n;
	set_free(&s);
	*roots = out;
	return n;
}

/* Where a root came from, for messages. */
static unsigned root_line(const struct store *st, const struct bundle *b, const char *base)
{
	for (size_t i = 0; i < b->npaths; i++) {
		const char *pb = store_path_base(st, b->paths[i]);
		if (pb && !strcmp(pb, base))
			return b->paths_line;
	}
	return b->args_line ? b->args_line : b->line;
}

/* The key a problem with store path `base` is about: the root of `paths`
 * or of `args` that names it, or (with `listed`, a path of the closure)
 * the closure file listing it. */
static const char *root_key(const struct store *st, const struct bundle *b, const char *base,
			    bool listed)
{
	if (listed && b->closure)
		return "closure";
	return root_line(st, b, base) == b->paths_line && b->npaths ? "paths" : "args";
}

static unsigned path_line(const struct store *st, const struct bundle *b, const char *base)
{
	return b->closure ? b->closure_line : root_line(st, b, base);
}

struct ctx {
	struct resolver *r;
	const struct spec *sp;
	const struct bundle *b;
	struct diags *d;
	struct set set;
	bool bad;
	bool permanent;	      /* some problem will not go away by itself */
	bool substitute;      /* a root is not valid: follow the caches */
	const char **invalid; /* those roots */
	size_t ninvalid, invalidcap;
	/* Paths the caches were followed from: not valid when asked, whatever
	 * was on disk (base -> base, the set's own strings). */
	struct strmap not_valid;
};

__attribute__((format(printf, 3, 4))) static void add(struct ctx *c, enum diag_about about,
						      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd_about(c->d, about, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 5, 0))) static void vfail(struct ctx *c, bool permanent,
							enum diag_about about, unsigned line,
							const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	add(c, about, "%s:%u: bundle \"%s\": %s", c->sp->file, line, c->b->name, msg);
	c->bad = true;
	c->permanent |= permanent;
}

/* A problem that stays until someone fixes it. */
__attribute__((format(printf, 3, 4))) static void fail(struct ctx *c, unsigned line,
						       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(c, true, DIAG_GENERAL, line, fmt, ap);
	va_end(ap);
}

/* A problem that may go away by itself: a busy database, a store path or
 * file that is not there yet. */
__attribute__((format(printf, 3, 4))) static void fail_for_now(struct ctx *c, unsigned line,
							       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(c, false, DIAG_GENERAL, line, fmt, ap);
	va_end(ap);
}

/* A problem with the binary caches (reading which ones, or none has a
 * path): they may answer later. */
__attribute__((format(printf, 3, 4))) static void cache_fail(struct ctx *c, unsigned line,
							     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(c, false, DIAG_CACHE, line, fmt, ap);
	va_end(ap);
}

/* ---- source 1: a closure file ------------------------------------------- */

static int from_file(struct ctx *c, const char **roots, size_t nroots)
{
	const struct store *st = c->r->st;
	const struct bundle *b = c->b;
	char *text, *mnt = NULL;
	size_t len;
	int fd = fsguard_open(b->closure, O_RDONLY | O_NONBLOCK | O_NOCTTY, &mnt);
	if (fd < 0 && errno == EXDEV) {
		fail(c, b->closure_line,
		     "closure file %s is on the bundlefs mount %s: a spec may not name files "
		     "that bundlefs serves",
		     b->closure, mnt);
		free(mnt);
		return -1;
	}
	/* Its lines are quoted in messages (which `bundlectl status` shows
	 * whoever asks) only when anyone may read them anyway. */
	struct stat fst;
	bool quote = fd >= 0 && fstat(fd, &fst) == 0 && (fst.st_mode & S_IROTH);
	if (fd < 0 || read_fd(fd, CLOSURE_FILE_MAX, &text, &len) < 0) {
		if (errno == ENOENT)
			fail_for_now(c, b->closure_line, "closure file %s: %s", b->closure,
				     strerror(errno));
		else
			fail(c, b->closure_line, "closure file %s: %s", b->closure,
			     errno == EFBIG ? "larger than 64 MiB" : read_error(errno));
		return -1;
	}
	unsigned line = 0;
	for (char *s = text, *e; s < text + len; s = e + 1) {
		line++;
		e = memchr(s, '\n', (size_t)(text + len - s));
		if (!e)
			e = text + len;
		*e = 0;
		if (!*s)
			continue;
		const char *base = store_path_base(st, s);
		if (!base && !quote) {
			diag_add(c->d,
				 "%s:%u: not a store path (closure file of bundle \"%s\", %s:%u; "
				 "the line is not shown: the file is not readable by all)",
				 b->closure, line, b->name, c->sp->file, b->closure_line);
			c->bad = true;
			continue;
		}
		if (!base) {
			diag_add(c->d,
				 "%s:%u: \"%.300s\" is not a store path (closure file of bundle "
				 "\"%s\", %s:%u)",
				 b->closure, line, s, b->name, c->sp->file, b->closure_line);
			c->bad = true;
			continue;
		}
		set_add(&c->set, base, strlen(base));
	}
	free(text);
	for (size_t i = 0; i < nroots; i++)
		if (!strmap_get(&c->set.map, roots[i], strlen(roots[i])))
			fail(c, root_line(st, b, roots[i]),
			     "%s: %s/%s is not in the closure file %s",
			     root_key(st, b, roots[i], false), st->dir, roots[i], b->closure);
	return c->bad ? -1 : 0;
}

/* ---- source 2: Nix's database ------------------------------------------- */

static void db_path(void *ctx, const char *path)
{
	struct ctx *c = ctx;
	const char *base = store_path_base(c->r->st, path);
	if (!base) {
		if (!c->bad)
			fail(c, c->b->args_line,
			     "the Nix database lists %.300s outside the store directory %s", path,
			     c->r->st->dir);
		return;
	}
	set_add(&c->set, base, strlen(base));
}

/* A root that is not valid, and no cache to get it from. */
static void invalid_root(struct ctx *c, const char *base)
{
	const struct store *st = c->r->st;
	unsigned line = root_line(st, c->b, base);
	struct stat sb;
	const char *key = root_key(st, c->b, base, false);
	if (fstatat(c->r->storefd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		fail_for_now(c, line, "%s: %s/%s: missing from the store", key, st->dir, base);
	else
		fail_for_now(c, line, "%s: %s/%s is not a valid path in the Nix database %s", key,
			     st->dir, base, st->db);
}

static int from_db(struct ctx *c, const char **roots, size_t nroots)
{
	const struct store *st = c->r->st;
	char **paths = xreallocarray(NULL, nroots ? nroots : 1, sizeof(*paths));
	char *err = NULL;
	for (size_t i = 0; i < nroots; i++) {
		paths[i] = xasprintf("%s/%s", st->dir, roots[i]);
		int rc = nixdb_valid(c->r->db, paths[i], &err);
		if (rc == 0 && c->r->subst && !strcmp(st->real, st->dir)) {
			c->substitute = true; /* (from_subst, after the lock) */
			GROW(c->invalid, c->ninvalid, c->invalidcap);
			c->invalid[c->ninvalid++] = roots[i];
		} else if (rc == 0)
			invalid_root(c, roots[i]);
		else if (rc == -2)
			fail_for_now(c, c->b->line, "%s", err);
		else if (rc < 0)
			fail(c, c->b->line, "%s", err);
		free(err);
		err = NULL;
	}
	int rc;
	if (!c->bad && !c->substitute && nroots &&
	    (rc = nixdb_closure(c->r->db, (const char *const *)paths, nroots, db_path, c, &err)) <
		0) {
		if (rc == -2)
			fail_for_now(c, c->b->line, "%s", err);
		else
			fail(c, c->b->line, "%s", err);
	}
	for (size_t i = 0; i < nroots; i++)
		free(paths[i]);
	free(paths);
	free(err);
	return c->bad ? -1 : 0;
}

/* ---- source 3: scanning --------------------------------------------------- */

/* The references of one store path, deduplicated. The scanner reports
 * names of the store listing, which outlive this: they serve as keys. */
struct found {
	struct strmap seen;
	const char **v;
	size_t n, cap;
};

static void scan_ref(void *ctx, const char *base)
{
	struct found *f = ctx;
	if (strmap_get(&f->seen, base, STORE_HASH_LEN))
		return;
	strmap_put(&f->seen, base, STORE_HASH_LEN, (void *)base);
	GROW(f->v, f->n, f->cap);
	f->v[f->n++] = base;
}

static const struct refs *scan_refs(struct ctx *c, const char *base, char **err)
{
	struct resolver *r = c->r;
	struct refs *refs = strmap_get(&r->scanned, base, strlen(base));
	if (refs)
		return refs;
	struct found f = {0};
	int rc = refscan_path(r->storefd, base, &r->hashes, scan_ref, &f, err);
	if (rc == 0) {
		refs = arena_alloc(&r->scan_arena, sizeof(*refs));
		refs->n = f.n;
		refs->v = arena_alloc(&r->scan_arena, f.n * sizeof(*refs->v));
		if (f.n)
			memcpy(refs->v, f.v, f.n * sizeof(*refs->v));
		char *key = arena_strdup(&r->scan_arena, base);
		strmap_put(&r->scanned, key, strlen(key), refs);
	}
	strmap_free(&f.seen);
	free(f.v);
	return refs;
}

static int from_scan(struct ctx *c, const char **roots, size_t nroots)
{
	struct resolver *r = c->r;
	/* The candidates are the store's entries; a root the listing has not
	 * seen was added since, and the store is listed again. */
	bool stale = !r->scan_ready;
	for (size_t i = 0; i < nroots && !stale; i++)
		stale = !strmap_get(&r->hashes, roots[i], STORE_HASH_LEN);
	if (stale && refscan_candidates(r->storefd, &r->hashes, &r->scan_arena) < 0) {
		fail(c, c->b->line, "listing the store %s: %s", r->st->real, strerror(errno));
		return -1;
	}
	r->scan_ready = true;
	for (size_t i = 0; i < nroots; i++) {
		struct stat sb;
		if (fstatat(r->storefd, roots[i], &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			fail_for_now(c, root_line(r->st, c->b, roots[i]), "%s: %s/%s: %s",
				     root_key(r->st, c->b, roots[i], false), r->st->dir, roots[i],
				     strerror(errno));
			continue;
		}
		set_add(&c->set, roots[i], strlen(roots[i]));
	}
	for (size_t i = 0; i < c->set.n && !c->bad; i++) {
		char *err = NULL;
		const struct refs *refs = scan_refs(c, c->set.v[i], &err);
		if (!refs) {
			fail_for_now(c, c->b->args_line, "scanning %s/%s", r->st->dir, err);
			free(err);
			break;
		}
		for (size_t j = 0; j < refs->n; j++)
			set_add(&c->set, refs->v[j], strlen(refs->v[j]));
	}
	return c->bad ? -1 : 0;
}

/* ------------------------------------------------------------------------- */

/* The database connection, opened on first use and kept; a snapshot
 * (nixdb.h) is opened for one resolution and closed after it. Returns
 * false when there is no database to use (scan instead); with c->bad set
 * when it could not be opened. Called with the resolver lock held. */
static bool use_db(struct ctx *c)
{
	struct resolver *r = c->r;
	const struct store *st = r->st;
	if (!st->db)
		return false;
	if (r->db)
		return true;
	if (access(st->db, F_OK) < 0 && !st->db_explicit)
		return false; /* no database here: fall back to scanning */
	char *err = NULL, *mnt = NULL;
	bool busy;
	int fd = fsguard_open(st->db, O_PATH, &mnt);
	if (fd < 0 && errno == EXDEV) {
		fail(c, c->b->line, "Nix database %s is on the bundlefs mount %s", st->db, mnt);
		free(mnt);
		return true;
	}
	if (fd >= 0)
		close(fd);
	r->db = nixdb_open(st->db, &err, &busy);
	if (!r->db) {
		if (busy)
			fail_for_now(c, c->b->line, "%s", err);
		else
			fail(c, c->b->line, "%s", err);
		free(err);
	}
	return true;
}

/* ---- source 4: the substituters' narinfo ---------------------------------- */

/* The caches to ask, with Nix's settings read the first time; NULL (with
 * a problem added) when there are none. Called without the resolver
 * lock. */
static struct subst *caches(struct ctx *c)
{
	struct resolver *r = c->r;
	pthread_mutex_lock(&r->subst_lock);
	char *err = NULL;
	if (r->subst_nix_config) {
		if (subst_load_nix_config(r->subst, "nix", &err) == 0)
			r->subst_nix_config = false;
	}
	pthread_mutex_unlock(&r->subst_lock);
	if (err) {
		cache_fail(c, c->b->line, "reading Nix's substituters: %s", err);
		free(err);
		return NULL;
	}
	return subst_count(r->subst) ? r->subst : NULL;
}

/* Follows the closure from the roots: through the database from paths
 * valid here (their closures are valid too: Nix's invariant), through
 * narinfo from the others, one level at a time, each level's narinfo
 * fetched in parallel. */
static int from_subst(struct ctx *c, const char **roots, size_t nroots)
{
	struct resolver *r = c->r;
	const struct store *st = r->st;
	struct subst *s = caches(c);
	if (!s) {
		/* No cache anywhere: as without substitution. */
		for (size_t i = 0; i < c->ninvalid; i++)
			invalid_root(c, c->invalid[i]);
		return -1;
	}
	struct set local = {.a = c->set.a};
	size_t n = 0, levelcap = nroots ? nroots : 1;
	const char **level = xreallocarray(NULL, levelcap, sizeof(*level));
	for (size_t i = 0; i < nroots; i++)
		if (set_add(&c->set, roots[i], strlen(roots[i])))
			level[n++] = c->set.v[c->set.n - 1];
	while (n && !c->bad) {
		const char **absent = xreallocarray(NULL, n, sizeof(*absent));
		size_t nabsent = 0;
		pthread_mutex_lock(&r->lock);
		if (use_db(c) && !c->bad) {
			for (size_t i = 0; i < n && !c->bad; i++) {
				char *err = NULL, *path = xasprintf("%s/%s", st->dir, level[i]);
				int rc = nixdb_valid(r->db, path, &err);
				size_t len = strlen(level[i]);
				if (rc == 1) {
					set_add(&local, level[i], len);
				} else if (rc == 0) {
					absent[nabsent++] = level[i];
					strmap_put(&c->not_valid, level[i], len, (void *)level[i]);
				} else {
					fail_for_now(c, c->b->line, "%s", err);
				}
				free(err);
				free(path);
			}
			if (r->db && nixdb_is_snapshot(r->db)) {
				nixdb_close(r->db);
				r->db = NULL;
			}
		}
		pthread_mutex_unlock(&r->lock);
		const struct narinfo **ni = xreallocarray(NULL, n, sizeof(*ni));
		char **why = xreallocarray(NULL, n, sizeof(*why));
		if (!c->bad && nabsent)
			subst_lookup(s, st, absent, nabsent, ni, why);
		size_t next = 0;
		for (size_t i = 0; i < nabsent && !c->bad; i++) {
			if (!ni[i]) {
				cache_fail(c, root_line(st, c->b, absent[i]),
					   "%s: %s/%s: missing from the store, and no substituter "
					   "has it (%s)",
					   root_key(st, c->b, absent[i], false), st->dir, absent[i],
					   why[i]);
				continue;
			}
			for (size_t j = 0; j < ni[i]->nrefs; j++) {
				const char *ref = ni[i]->refs[j];
				if (set_add(&c->set, ref, strlen(ref))) {
					/* (this level is in `absent` and `local`
					 * now: the array holds the next one) */
					GROW(level, next, levelcap);
					level[next++] = c->set.v[c->set.n - 1];
				}
			}
		}
		for (size_t i = 0; i < nabsent && why; i++)
			free(why[i]);
		free(why);
		free(ni);
		free(absent);
		n = next;
	}
	free(level);
	/* The closures of the valid paths, from the database at once. */
	if (!c->bad && local.n) {
		char **paths = xreallocarray(NULL, local.n, sizeof(*paths));
		for (size_t i = 0; i < local.n; i++)
			paths[i] = xasprintf("%s/%s", st->dir, local.v[i]);
		char *err = NULL;
		pthread_mutex_lock(&r->lock);
		int rc = use_db(c) && !c->bad ? nixdb_closure(r->db, (const char *const *)paths,
							      local.n, db_path, c, &err)
					      : 0;
		if (r->db && nixdb_is_snapshot(r->db)) {
			nixdb_close(r->db);
			r->db = NULL;
		}
		pthread_mutex_unlock(&r->lock);
		if (rc < 0)
			fail_for_now(c, c->b->line, "%s", err);
		free(err);
		for (size_t i = 0; i < local.n; i++)
			free(paths[i]);
		free(paths);
	}
	set_free(&local);
	return c->bad ? -1 : 0;
}

/* ------------------------------------------------------------------------- */

struct valid_set {
	struct ctx *c;
	struct strmap *valid;
};

static void add_valid(void *ctx, const char *path)
{
	struct valid_set *v = ctx;
	const char *base = store_path_base(v->c->r->st, path);
	size_t len = base ? strlen(base) : 0;
	/* (keyed by the set's own copy: the map keeps no copy of its keys) */
	const char *known = base ? strmap_get(&v->c->set.map, base, len) : NULL;
	if (known)
		strmap_put(v->valid, known, len, (void *)known);
}

/* Nix holds `<path>.lock` while it writes a store path (a substitution, a
 * build), and a substitution that failed leaves it: a closure file's path
 * on disk with one beside it may be half written. */
static bool locked(struct resolver *r, const char *base)
{
	char lock[PATH_MAX];
	struct stat sb;
	return (size_t)snprintf(lock, sizeof(lock), "%s.lock", base) < sizeof(lock) &&
	       fstatat(r->storefd, lock, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Which of `n` paths (base names of the set) are valid in Nix's database,
 * into `valid`; none when it cannot be read. */
static void valid_in_db(struct ctx *c, const char *const *bases, size_t n, struct strmap *valid)
{
	struct resolver *r = c->r;
	const struct store *st = r->st;
	if (!st->db || !n)
		return;
	char **paths = xreallocarray(NULL, n, sizeof(*paths));
	for (size_t i = 0; i < n; i++)
		paths[i] = xasprintf("%s/%s", st->dir, bases[i]);
	char *err = NULL;
	pthread_mutex_lock(&r->lock);
	if (!r->db) {
		/* (Never one on a bundlefs mount: see use_db.) */
		char *mnt = NULL;
		int fd = fsguard_open(st->db, O_PATH, &mnt);
		free(mnt);
		if (fd >= 0) {
			close(fd);
			bool busy;
			r->db = nixdb_open(st->db, &err, &busy);
		}
	}
	if (r->db) {
		struct valid_set v = {c, valid};
		free(err);
		err = NULL;
		nixdb_valid_each(r->db, (const char *const *)paths, n, add_valid, &v, &err);
		if (nixdb_is_snapshot(r->db)) {
			nixdb_close(r->db);
			r->db = NULL;
		}
	}
	pthread_mutex_unlock(&r->lock);
	free(err);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Lists the closure's store entries with their attributes. Entries not in
 * the store may be absent (st_mode 0) when a cache has them.
 *
 * With substitution, so may entries on disk that are not valid: a path
 * being substituted (the bundle's command, which its first use started
 * realising; a path another bundle's prefetch realises) or what a
 * substitution Nix refused left. Served as found, a half-written path
 * would answer ENOENT for names not written yet, which the kernel keeps,
 * and a file would keep the size it had; absent, it is realised before it
 * is served. The caches' source knows which paths were not valid; of a
 * closure file's (which needs no database), those with a lock beside them
 * are asked of the database. */
static void describe(struct ctx *c, struct closure *out)
{
	struct resolver *r = c->r;
	const struct store *st = r->st;
	bool subst = r->subst && !strcmp(st->real, st->dir);
	/* A closure file's paths on disk that Nix may be writing, and which
	 * of them are valid. */
	struct strmap suspect = {0}, valid = {0};
	if (subst && c->b->closure) {
		const char **v = NULL;
		size_t n = 0, vcap = 0;
		for (size_t i = 0; i < c->set.n; i++) {
			const char *base = c->set.v[i];
			struct stat sb;
			if (locked(r, base) &&
			    fstatat(r->storefd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
				GROW(v, n, vcap);
				v[n++] = base;
				strmap_put(&suspect, base, strlen(base), (void *)base);
			}
		}
		valid_in_db(c, v, n, &valid);
		free(v);
	}
	if (c->set.n > 1)
		qsort(c->set.v, c->set.n, sizeof(*c->set.v), cmp_str);
	out->n = c->set.n;
	out->base = arena_alloc(&out->arena, (out->n + 1) * sizeof(*out->base));
	out->st = arena_alloc(&out->arena, (out->n + 1) * sizeof(*out->st));
	memset(out->st, 0, (out->n + 1) * sizeof(*out->st));
	const char **missing = NULL;
	bool *on_disk = NULL; /* of each missing path: there, but not valid */
	size_t nmissing = 0, cap = 0, ondisk_cap = 0;
	for (size_t i = 0; i < out->n; i++) {
		const char *base = c->set.v[i];
		size_t len = strlen(base);
		struct stat sb;
		out->base[i] = base;
		bool there = fstatat(r->storefd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0;
		if (there && subst &&
		    (strmap_get(&c->not_valid, base, len) ||
		     (strmap_get(&suspect, base, len) && !strmap_get(&valid, base, len)))) {
			GROW(missing, nmissing, cap);
			GROW(on_disk, nmissing, ondisk_cap);
			on_disk[nmissing] = true;
			missing[nmissing++] = base;
			continue;
		}
		if (!there) {
			unsigned line = path_line(st, c->b, base);
			const char *key = root_key(st, c->b, base, true);
			if (errno == ENOENT && subst) {
				GROW(missing, nmissing, cap);
				GROW(on_disk, nmissing, ondisk_cap);
				on_disk[nmissing] = false;
				missing[nmissing++] = base;
			} else if (errno == ENOENT) {
				fail_for_now(c, line, "%s: %s/%s: missing from the store", key,
					     st->dir, base);
			} else {
				fail(c, line, "%s: %s/%s: %s", key, st->dir, base, strerror(errno));
			}
			continue;
		}
		if (!store_servable(sb.st_mode)) {
			fail(c, c->b->line, "%s/%s: not a directory, regular file or symlink",
			     st->dir, base);
			continue;
		}
		out->st[i] = sb;
		out->ndirs += S_ISDIR(sb.st_mode);
	}
	/* Absent paths are listed when a cache has them (already known when
	 * the closure came from the caches: they remember). */
	struct subst *s = nmissing && !c->bad ? caches(c) : NULL;
	for (size_t i = 0; i < nmissing && !s && !c->bad; i++)
		fail_for_now(c, path_line(st, c->b, missing[i]), "%s: %s/%s: %s",
			     root_key(st, c->b, missing[i], true), st->dir, missing[i],
			     on_disk[i] ? "not valid in the Nix database"
					: "missing from the store");
	if (s) {
		const struct narinfo **ni = xreallocarray(NULL, nmissing, sizeof(*ni));
		char **why = xreallocarray(NULL, nmissing, sizeof(*why));
		subst_lookup(s, st, missing, nmissing, ni, why);
		for (size_t i = 0; i < nmissing; i++) {
			if (ni[i])
				out->nabsent++;
			else
				cache_fail(c, path_line(st, c->b, missing[i]),
					   "%s: %s/%s: %s, and no substituter has it (%s)",
					   root_key(st, c->b, missing[i], true), st->dir,
					   missing[i],
					   on_disk[i] ? "not valid in the Nix database"
						      : "missing from the store",
					   why[i]);
			free(why[i]);
		}
		free(why);
		free(ni);
	}
	free(missing);
	free(on_disk);
	strmap_free(&suspect);
	strmap_free(&valid);
}

/* Resolves into `out`; the resolver lock is taken only around what it
 * guards. */
static void resolve(struct ctx *c, struct closure *out)
{
	struct resolver *r = c->r;
	const struct store *st = r->st;
	if (r->storefd < 0) {
		fail(c, c->b->line, "store %s: %s", st->real, strerror(st->fd_errno));
		return;
	}
	if (c->b->closure) {
		out->source = "closure file";
		if (from_file(c, out->roots, out->nroots) == 0)
			describe(c, out);
		return;
	}
	pthread_mutex_lock(&r->lock);
	if (use_db(c)) {
		out->source = "Nix database";
		if (!c->bad)
			from_db(c, out->roots, out->nroots);
		if (r->db && nixdb_is_snapshot(r->db)) {
			nixdb_close(r->db);
			r->db = NULL;
		}
	} else {
		out->source = "reference scan";
		from_scan(c, out->roots, out->nroots);
	}
	pthread_mutex_unlock(&r->lock);
	if (c->substitute && !c->bad) {
		out->source = "substituters";
		from_subst(c, out->roots, out->nroots);
	}
	if (!c->bad)
		describe(c, out);
}

/* What makes two bundles' closures the same: where they come from and
 * their roots. */
static char *share_key(const struct bundle *b, const char *const *roots, size_t n, size_t *len)
{
	struct buf k = {0};
	buf_adds(&k, b->closure ? b->closure : "");
	for (size_t i = 0; i < n; i++) {
		buf_addc(&k, '\n');
		buf_adds(&k, roots[i]);
	}
	*len = k.len;
	return k.data;
}

int closure_resolve(struct resolver *r, const struct spec *sp, const struct bundle *b,
		    const struct closure **out, struct diags *d)
{
	struct shared *sh = xcalloc(1, sizeof(*sh));
	struct closure *c = &sh->c;
	c->nroots = closure_roots(r->st, b, &c->arena, &c->roots);
	sh->key = share_key(b, c->roots, c->nroots, &sh->keylen);

	pthread_mutex_lock(&r->lock);
	struct shared *have = strmap_get(&r->closures, sh->key, sh->keylen);
	if (have)
		have->refs++;
	pthread_mutex_unlock(&r->lock);
	if (have) {
		arena_free(&c->arena);
		free(sh->key);
		free(sh);
		*out = &have->c;
		return 0;
	}

	struct ctx x = {.r = r, .sp = sp, .b = b, .d = d};
	x.set.a = &c->arena;
	resolve(&x, c);
	set_free(&x.set);
	strmap_free(&x.not_valid);
	free(x.invalid);
	if (x.bad) {
		arena_free(&c->arena);
		free(sh->key);
		free(sh);
		return x.permanent ? -EINVAL : -EAGAIN;
	}
	pthread_mutex_lock(&r->lock);
	have = strmap_put(&r->closures, sh->key, sh->keylen, sh);
	have->refs++;
	pthread_mutex_unlock(&r->lock);
	if (have != sh) { /* resolved meanwhile by another bundle */
		arena_free(&c->arena);
		free(sh->key);
		free(sh);
	}
	*out = &have->c;
	return 0;
}

void closure_release(struct resolver *r, const struct closure *c)
{
	if (!c)
		return;
	struct shared *sh = (struct shared *)c;
	pthread_mutex_lock(&r->lock);
	bool last = --sh->refs == 0;
	if (last)
		strmap_del(&r->closures, sh->key, sh->keylen);
	pthread_mutex_unlock(&r->lock);
	if (last) {
		arena_free(&sh->c.arena);
		free(sh->key);
		free(sh);
	}
}

static uint64_t tree_bytes(int dfd, const char *name, unsigned depth)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ? (uint64_t)st.st_size : 0;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 || depth > 4096 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			total += tree_bytes(dirfd(d), de->d_name, depth + 1);
	closedir(d);
	return total;
}

uint64_t closure_bytes(struct resolver *r, const struct closure *c)
{
	struct shared *sh = (struct shared *)c;
	uint64_t b = atomic_load(&sh->bytes);
	if (b)
		return b - 1;
	bool all = true; /* here: absent paths may have come since */
	for (size_t i = 0; i < c->n; i++) {
		struct stat st;
		if (closure_absent(c, i) &&
		    fstatat(r->storefd, c->base[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			all = false;
		else
			b += tree_bytes(r->storefd, c->base[i], 0);
	}
	if (all)
		atomic_store(&sh->bytes, b + 1);
	return b;
}

ssize_t closure_find(const struct closure *c, const char *base)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(c->base[mid], base);
		if (r == 0)
			return (ssize_t)mid;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}
