/* bundle: sets of bundles and per-bundle lazy state: config.json, closure
 * and rootfs layout. */
#include "bundle.h"
#include "json.h"
#include "log.h"
#include "ocicfg.h"
#include "strmap.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>

/* Resolution that failed for a reason that may pass (a busy database, a
 * store path not there yet) is tried again on a later access, at most
 * once per backoff period, which doubles from the first to the last. */
#define RETRY_FIRST_MS 100
#define RETRY_LAST_MS  10000

enum bundle_state {
	BS_UNRESOLVED,
	BS_READY,
	BS_RETRY, /* failed for now: tried again after retry_at */
	BS_FAILED /* failed until the spec or the store is fixed */
};

static const char *const state_names[] = {"unresolved", "ready", "retrying", "failed"};

static const char *const kind_names[] = {
    [PROBLEM_SPEC] = "spec",
    [PROBLEM_RESOLVE] = "resolve",
    [PROBLEM_SUBSTITUTE] = "substitute",
    [PROBLEM_WRITABLE_ROOT] = "writable-root",
};

const char *problem_kind_name(enum problem_kind k)
{
	return kind_names[k];
}

static void problems_free(struct problem *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].message);
	free(v);
}

/* A spec, freed when the last set or bundle made from it goes. */
struct specref {
	struct spec sp;
	atomic_uint refs;
};

/* Every live bundle by serial; the registry holds no reference. Its lock
 * is a leaf. */
struct bundle_registry {
	pthread_mutex_t lock;
	struct strmap by_serial; /* 8-byte serial -> bstate, but those in slabs */
	struct bstate_slab *slabs;
	uint64_t next;
};

struct bstate {
	atomic_uint refs;
	uint64_t serial;
	pthread_mutex_t lock;
	const struct bundle *spec; /* in specref */
	struct specref *specref;
	const struct bundle_env *env;
	enum bundle_state state;
	const struct closure *closure; /* shared (closure.h) */
	struct layout layout;
	char *config;
	size_t config_len;
	uint64_t retry_at; /* CLOCK_MONOTONIC, ms */
	unsigned backoff_ms;
	uint64_t logged;	  /* hash of the problems last logged, so they are logged once */
	atomic_bool resolving;	  /* read without the lock, which resolving holds */
	struct problem *problems; /* those of the last failure */
	size_t nproblems;
	atomic_uint_fast64_t requests, served;
	/* Its root in the runtime directory (overlay.h), guarded by
	 * root_lock (a leaf: never held while resolving, which holds lock). */
	pthread_mutex_t root_lock;
	enum bundle_overlay overlay;
	char *overlay_problem;
	bool native;		  /* its root is kernel-native */
	char *not_native;	  /* why not, once decided */
	struct bstate_slab *slab; /* the block it is in, or NULL */
};

/* The bundles of the first set a daemon reads, in one block: each one's
 * state is set up when first used (bundles_at, bundles_find, by serial),
 * so that a spec of thousands costs nothing per bundle until then. Entry
 * i is the spec's bundle i, serial first + i; the set holds a reference
 * to each, and one never set up goes with the set. The block goes with
 * its last bundle. (Only that first set: the unchanged bundles a reload
 * keeps would pin blocks of bundles long gone.) */
enum { SLAB_UNMADE, SLAB_MADE, SLAB_GONE };
struct bstate_slab {
	struct bstate_slab *next; /* in the registry */
	uint64_t first;
	size_t n, live;		 /* live: entries not gone (registry lock) */
	struct specref *specref; /* held while the block lives */
	const struct bundle_env *env;
	size_t size;		     /* of the mapping */
	_Atomic unsigned char *made; /* SLAB_*, per entry: set under the registry lock */
	struct bstate v[];
};

struct bundles {
	struct specref *specref;  /* the spec it was read from, or NULL (restored) */
	struct bstate **v;	  /* sorted by name; NULL with a slab */
	struct bstate_slab *slab; /* its bundles, the spec's in order, or NULL */
	size_t n;
};

static struct specref *specref_get(struct specref *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

static void specref_put(struct specref *r)
{
	if (atomic_fetch_sub(&r->refs, 1) == 1) {
		spec_free(&r->sp);
		free(r);
	}
}

struct bundle_registry *bundle_registry_new(void)
{
	struct bundle_registry *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void bundle_registry_free(struct bundle_registry *r)
{
	if (!r)
		return;
	strmap_free(&r->by_serial);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Sets up a zeroed bundle state, holding one reference. */
static void bstate_init(struct bstate *b, struct specref *r, const struct bundle *spec,
			const struct bundle_env *env)
{
	atomic_init(&b->refs, 1);
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->root_lock, NULL);
	b->spec = spec;
	b->specref = specref_get(r);
	b->env = env;
}

/* A new bundle state; `serial` 0 takes the next one. */
static struct bstate *bstate_new(struct specref *r, const struct bundle *spec,
				 const struct bundle_env *env, uint64_t serial)
{
	struct bstate *b = xcalloc(1, sizeof(*b));
	bstate_init(b, r, spec, env);
	struct bundle_registry *reg = env->registry;
	pthread_mutex_lock(&reg->lock);
	b->serial = serial ? serial : ++reg->next;
	if (b->serial > reg->next)
		reg->next = b->serial;
	strmap_put(&reg->by_serial, (const char *)&b->serial, sizeof(b->serial), b);
	pthread_mutex_unlock(&reg->lock);
	return b;
}

struct bstate *bundle_get(struct bstate *b)
{
	atomic_fetch_add(&b->refs, 1);
	return b;
}

/* A block for the n bundles of `r`, with the next n serials. */
static struct bstate_slab *slab_new(struct specref *r, const struct bundle_env *env)
{
	size_t n = r->sp.n;
	size_t size = sizeof(struct bstate_slab) + n * sizeof(struct bstate) + n;
	/* Mapped: pages are zero, and only those of bundles used are touched. */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fputs("bundlefs: out of memory\n", stderr);
		abort();
	}
	struct bstate_slab *sl = p;
	sl->n = sl->live = n;
	sl->specref = specref_get(r);
	sl->env = env;
	sl->size = size;
	sl->made = (_Atomic unsigned char *)&sl->v[n];
	struct bundle_registry *reg = env->registry;
	pthread_mutex_lock(&reg->lock);
	sl->first = reg->next + 1;
	reg->next += n;
	sl->next = reg->slabs;
	reg->slabs = sl;
	pthread_mutex_unlock(&reg->lock);
	return sl;
}

/* Entry i, set up unless it is; NULL when it is gone. Called with the
 * registry locked. */
static struct bstate *slab_make_locked(struct bstate_slab *sl, size_t i)
{
	struct bstate *b = &sl->v[i];
	unsigned char m = atomic_load_explicit(&sl->made[i], memory_order_relaxed);
	if (m == SLAB_GONE)
		return NULL;
	if (m == SLAB_UNMADE) {
		bstate_init(b, sl->specref, &sl->specref->sp.bundles[i], sl->env);
		b->serial = sl->first + i;
		b->slab = sl;
		atomic_store_explicit(&sl->made[i], SLAB_MADE, memory_order_release);
	}
	return b;
}

/* Entry i of a set's block (so never gone), set up. */
static struct bstate *slab_make(struct bstate_slab *sl, size_t i)
{
	if (atomic_load_explicit(&sl->made[i], memory_order_acquire) == SLAB_MADE)
		return &sl->v[i];
	struct bundle_registry *reg = sl->env->registry;
	pthread_mutex_lock(&reg->lock);
	struct bstate *b = slab_make_locked(sl, i);
	pthread_mutex_unlock(&reg->lock);
	return b;
}

/* One entry of the block is gone: the last takes the block with it. */
static void slab_release(struct bstate_slab *sl)
{
	struct bundle_registry *reg = sl->env->registry;
	pthread_mutex_lock(&reg->lock);
	bool last = --sl->live == 0;
	if (last) {
		struct bstate_slab **pp = &reg->slabs;
		while (*pp != sl)
			pp = &(*pp)->next;
		*pp = sl->next;
	}
	pthread_mutex_unlock(&reg->lock);
	if (last) {
		specref_put(sl->specref);
		munmap(sl, sl->size);
	}
}

/* The set's reference to entry i goes. */
static void slab_drop(struct bstate_slab *sl, size_t i)
{
	struct bundle_registry *reg = sl->env->registry;
	pthread_mutex_lock(&reg->lock);
	bool unmade = atomic_load_explicit(&sl->made[i], memory_order_relaxed) == SLAB_UNMADE;
	if (unmade)
		atomic_store_explicit(&sl->made[i], SLAB_GONE, memory_order_relaxed);
	pthread_mutex_unlock(&reg->lock);
	if (unmade)
		slab_release(sl);
	else
		bundle_put(&sl->v[i]);
}

uint64_t bundle_serial(const struct bstate *b)
{
	return b->serial;
}

struct bstate *bundles_by_serial(const struct bundle_env *env, uint64_t serial)
{
	struct bundle_registry *reg = env->registry;
	pthread_mutex_lock(&reg->lock);
	struct bstate *b = strmap_get(&reg->by_serial, (const char *)&serial, sizeof(serial));
	for (struct bstate_slab *sl = reg->slabs; !b && sl; sl = sl->next)
		if (serial - sl->first < sl->n)
			b = slab_make_locked(sl, serial - sl->first);
	/* One whose last reference is being dropped is gone already. */
	unsigned refs = b ? atomic_load(&b->refs) : 0;
	while (refs && !atomic_compare_exchange_weak(&b->refs, &refs, refs + 1))
		;
	pthread_mutex_unlock(&reg->lock);
	return refs ? b : NULL;
}

/* The store paths a bundle registers as GC roots: its roots, whose
 * closures Nix then keeps; every path when some were absent (a root not
 * here yet protects nothing, and what is realised of its closure must
 * stay). A root for a path not here yet waits for it: Nix's collector
 * skips it. */
static size_t rooted(const struct closure *c, const char *const **v)
{
	*v = c->nabsent ? c->base : c->roots;
	return c->nabsent ? c->n : c->nroots;
}

void bundle_put(struct bstate *b)
{
	if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	struct bundle_registry *reg = b->env->registry;
	struct bstate_slab *sl = b->slab;
	pthread_mutex_lock(&reg->lock);
	if (sl)
		atomic_store_explicit(&sl->made[b - sl->v], SLAB_GONE, memory_order_relaxed);
	else
		strmap_del(&reg->by_serial, (const char *)&b->serial, sizeof(b->serial));
	pthread_mutex_unlock(&reg->lock);
	if (b->state == BS_READY) {
		const char *const *v;
		size_t n = rooted(b->closure, &v);
		gcroots_remove(b->env->gcroots, b->env->st, v, n);
		closure_release(b->env->resolver, b->closure);
		layout_free(&b->layout);
	}
	free(b->config);
	problems_free(b->problems, b->nproblems);
	free(b->overlay_problem);
	free(b->not_native);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->root_lock);
	specref_put(b->specref);
	if (sl)
		slab_release(sl);
	else
		free(b);
}

static int cmp_name(const void *key, const void *elem)
{
	return strcmp(key, (*(struct bstate *const *)elem)->spec->name);
}

static int cmp_spec_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct bundle *)elem)->name);
}

/* Where `name` is in the set, or SIZE_MAX. A set read from a spec has the
 * spec's bundles in its order: found there, nothing is set up. */
static size_t find_index(const struct bundles *set, const char *name)
{
	if (set->specref) {
		const struct spec *s = &set->specref->sp;
		const struct bundle *b =
		    bsearch(name, s->bundles, s->n, sizeof(*s->bundles), cmp_spec_name);
		return b ? (size_t)(b - s->bundles) : SIZE_MAX;
	}
	struct bstate **b = bsearch(name, set->v, set->n, sizeof(*set->v), cmp_name);
	return b ? (size_t)(b - set->v) : SIZE_MAX;
}

struct bundles *bundles_new(struct spec *sp, const struct bundle_env *env,
			    const struct bundles *prev)
{
	struct bundles *set = xcalloc(1, sizeof(*set));
	set->specref = xcalloc(1, sizeof(*set->specref));
	set->specref->sp = *sp;
	atomic_init(&set->specref->refs, 1);
	memset(sp, 0, sizeof(*sp));
	const struct spec *s = &set->specref->sp;
	set->n = s->n;
	if (!prev && s->n) {
		set->slab = slab_new(set->specref, env);
		return set;
	}
	set->v = xcalloc(s->n, sizeof(*set->v));
	/* Room in the registry for every bundle, were all of them new. */
	pthread_mutex_lock(&env->registry->lock);
	strmap_reserve(&env->registry->by_serial, s->n);
	pthread_mutex_unlock(&env->registry->lock);
	for (size_t i = 0; i < s->n; i++) {
		size_t k = prev ? find_index(prev, s->bundles[i].name) : SIZE_MAX;
		set->v[i] =
		    k != SIZE_MAX && spec_bundle_equal(bundles_spec_at(prev, k), &s->bundles[i])
			? bundle_get(bundles_at(prev, k))
			: bstate_new(set->specref, &s->bundles[i], env, 0);
	}
	return set;
}

void bundles_put(struct bundles *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		if (set->slab)
			slab_drop(set->slab, i);
		else
			bundle_put(set->v[i]);
	}
	if (set->specref)
		specref_put(set->specref);
	free(set->v);
	free(set);
}

size_t bundles_count(const struct bundles *set)
{
	return set->n;
}

struct bstate *bundles_at(const struct bundles *set, size_t i)
{
	return set->slab ? slab_make(set->slab, i) : set->v[i];
}

const struct bundle *bundles_spec_at(const struct bundles *set, size_t i)
{
	return set->slab ? &set->specref->sp.bundles[i] : set->v[i]->spec;
}

bool bundles_any(const struct bundles *set, unsigned data)
{
	/* (Bundles a set took over from another are equal to its spec's.) */
	if (set->specref)
		return set->specref->sp.any_writable || (set->specref->sp.data_used & data);
	for (size_t i = 0; i < set->n; i++)
		if (!set->v[i]->spec->readonly || (data & 1u << set->v[i]->spec->data))
			return true;
	return false;
}

uint64_t bundles_serial_at(const struct bundles *set, size_t i)
{
	return set->slab ? set->slab->first + i : set->v[i]->serial;
}

const char *bundles_state_at(const struct bundles *set, size_t i)
{
	if (set->slab &&
	    atomic_load_explicit(&set->slab->made[i], memory_order_acquire) == SLAB_UNMADE)
		return state_names[BS_UNRESOLVED];
	return bundle_state(bundles_at(set, i));
}

struct bstate *bundles_find(const struct bundles *set, const char *name)
{
	size_t i = find_index(set, name);
	return i == SIZE_MAX ? NULL : bundles_at(set, i);
}

const char *bundle_name(const struct bstate *b)
{
	return b->spec->name;
}

errint_t bundle_config(struct bstate *b, const char **data, size_t *len)
{
	/* data = bind: config.json lists the closure. */
	if (b->spec->data == SPEC_DATA_BIND) {
		errint_t e = bundle_ready(b);
		if (e < 0)
			return e;
	}
	pthread_mutex_lock(&b->lock);
	if (!b->config) {
		struct ocibinds binds = {b->env->st->dir, b->env->st->real, b->closure};
		struct ociopts o = {.binds = b->spec->data == SPEC_DATA_BIND ? &binds : NULL,
				    .uid = b->env->uid,
				    .gid = b->env->gid};
		b->config = ocicfg_render(b->spec, &o, &b->config_len);
	}
	*data = b->config;
	*len = b->config_len;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Keeps the problems of a failed resolution, and logs them, one line
 * each (at `prio`: a warning when it will be tried again), unless they
 * are those logged last time. */
static void note_problems(struct bstate *b, const struct diags *d, int prio)
{
	struct buf all = {0};
	problems_free(b->problems, b->nproblems);
	b->problems = xcalloc(d->n + 1, sizeof(*b->problems));
	b->nproblems = d->n;
	for (size_t k = 0; k < d->n; k++) {
		buf_adds(&all, d->msg[k]);
		buf_addc(&all, '\n');
		b->problems[k].kind =
		    d->about[k] == DIAG_CACHE ? PROBLEM_SUBSTITUTE : PROBLEM_RESOLVE;
		b->problems[k].message = xstrdup(d->msg[k]);
	}
	uint64_t h = strmap_hash(all.data ? all.data : "", all.len);
	buf_free(&all);
	if (h == b->logged)
		return;
	b->logged = h;
	for (size_t k = 0; k < d->n; k++)
		log_at(prio, "%s", d->msg[k]);
}

/* "bundle "NAME": resolved in 12 ms: 67 store paths (3 not here yet), NAR
 * size 194.1 MiB". Called with the bundle's lock held. */
static void log_resolved(struct bstate *b, uint64_t ms)
{
	const struct closure *c = b->closure;
	char absent[48] = "", size[48] = "";
	if (c->nabsent)
		snprintf(absent, sizeof(absent), " (%zu not here yet)", c->nabsent);
	uint64_t bytes;
	if (closure_nar_size(b->env->resolver, c, &bytes)) {
		static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
		double v = (double)bytes;
		size_t u = 0;
		while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
			v /= 1024;
			u++;
		}
		snprintf(size, sizeof(size), u ? ", NAR size %.1f %s" : ", NAR size %.0f %s", v,
			 units[u]);
	}
	log_info("bundle \"%s\": resolved in %llu ms: %zu store paths%s%s", b->spec->name,
		 (unsigned long long)ms, c->n, absent, size);
}

errint_t bundle_ready(struct bstate *b)
{
	const struct bundle_env *env = b->env;
	pthread_mutex_lock(&b->lock);
	if (b->state == BS_UNRESOLVED || (b->state == BS_RETRY && now_ms() >= b->retry_at)) {
		struct diags d = {0};
		uint64_t t0 = now_ms();
		log_debug("bundle \"%s\": resolving its closure", b->spec->name);
		atomic_store(&b->resolving, true);
		int rc = closure_resolve(env->resolver, &b->specref->sp, b->spec, &b->closure, &d);
		if (rc == 0) {
			/* Mount points are decided now, by their sources. */
			rc = layout_build(&b->layout, b->spec, b->specref->sp.file, env->st,
					  b->closure, &d);
			if (rc < 0)
				closure_release(env->resolver, b->closure);
		}
		atomic_store(&b->resolving, false);
		if (rc == 0) {
			/* Rooted before it is served. */
			const char *const *v;
			size_t n = rooted(b->closure, &v);
			errint_t e = gcroots_add(env->gcroots, env->st, v, n);
			if (e < 0)
				log_warning("bundle \"%s\": registering GC roots in %s: %s",
					    b->spec->name, env->gcroots->dir, strerror(-e));
			else if (env->gcroots->dir)
				log_debug("bundle \"%s\": %zu GC roots in %s", b->spec->name, n,
					  env->gcroots->dir);
			log_resolved(b, now_ms() - t0);
			b->state = BS_READY;
			b->backoff_ms = 0;
			b->logged = 0;
			problems_free(b->problems, b->nproblems);
			b->problems = NULL;
			b->nproblems = 0;
		} else {
			note_problems(b, &d, rc == -EAGAIN ? LOG_WARNING : LOG_ERR);
			b->state = rc == -EAGAIN ? BS_RETRY : BS_FAILED;
			b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : RETRY_FIRST_MS;
			if (b->backoff_ms > RETRY_LAST_MS)
				b->backoff_ms = RETRY_LAST_MS;
			b->retry_at = now_ms() + b->backoff_ms;
		}
		diag_clear(&d);
	}
	errint_t rc = b->state == BS_READY ? 0 : -EIO;
	pthread_mutex_unlock(&b->lock);
	return rc;
}

bool bundle_is_ready(struct bstate *b)
{
	pthread_mutex_lock(&b->lock);
	bool ready = b->state == BS_READY;
	pthread_mutex_unlock(&b->lock);
	return ready;
}

bool bundle_may_resolve(struct bstate *b)
{
	if (atomic_load(&b->resolving) || pthread_mutex_trylock(&b->lock) != 0)
		return true; /* (being resolved: its lock is held meanwhile) */
	bool may = b->state == BS_UNRESOLVED || (b->state == BS_RETRY && now_ms() >= b->retry_at);
	pthread_mutex_unlock(&b->lock);
	return may;
}

const struct closure *bundle_closure(const struct bstate *b)
{
	return b->closure;
}

const struct layout_dir *bundle_rootfs(const struct bstate *b)
{
	return b->layout.root;
}

void bundle_account(struct bstate *b, uint64_t bytes)
{
	atomic_fetch_add_explicit(&b->requests, 1, memory_order_relaxed);
	if (bytes)
		atomic_fetch_add_explicit(&b->served, bytes, memory_order_relaxed);
}

/* Takes the bundle's lock, unless it is being resolved (which may take a
 * while, the lock held): then returns false. */
static bool lock_unless_resolving(struct bstate *b)
{
	while (pthread_mutex_trylock(&b->lock) != 0) {
		if (atomic_load(&b->resolving))
			return false;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return true;
}

/* Called with the lock held. */
static const char *state_name(const struct bstate *b)
{
	return bundle_overlay((struct bstate *)b) == BO_FAILED ? "failed" : state_names[b->state];
}

const char *bundle_state(struct bstate *b)
{
	if (!lock_unless_resolving(b))
		return "resolving";
	const char *s = state_name(b);
	pthread_mutex_unlock(&b->lock);
	return s;
}

void bundle_info(struct bstate *b, struct bundle_info *out)
{
	memset(out, 0, sizeof(*out));
	out->requests = atomic_load_explicit(&b->requests, memory_order_relaxed);
	out->served = atomic_load_explicit(&b->served, memory_order_relaxed);
	if (!lock_unless_resolving(b)) {
		out->state = "resolving";
		return;
	}
	out->state = state_name(b);
	if (b->state == BS_READY) {
		out->resolved = true;
		out->paths = b->closure->n;
		out->bytes = closure_bytes(b->env->resolver, b->closure);
	}
	/* A writable root that failed hides the closure's problems (there
	 * are none: it is mounted once the closure is resolved). */
	pthread_mutex_lock(&b->root_lock);
	bool failed = b->overlay == BO_FAILED;
	if (failed) {
		out->problems = xcalloc(1, sizeof(*out->problems));
		out->problems[0] =
		    (struct problem){PROBLEM_WRITABLE_ROOT, xstrdup(b->overlay_problem)};
		out->nproblems = 1;
	}
	pthread_mutex_unlock(&b->root_lock);
	if (!failed && b->nproblems) {
		out->problems = xcalloc(b->nproblems, sizeof(*out->problems));
		for (size_t i = 0; i < b->nproblems; i++)
			out->problems[i] =
			    (struct problem){b->problems[i].kind, xstrdup(b->problems[i].message)};
		out->nproblems = b->nproblems;
	}
	pthread_mutex_unlock(&b->lock);
}

void bundle_info_free(struct bundle_info *info)
{
	problems_free(info->problems, info->nproblems);
	info->problems = NULL;
	info->nproblems = 0;
}

const struct bundle *bundle_spec(const struct bstate *b)
{
	return b->spec;
}

enum bundle_overlay bundle_overlay(struct bstate *b)
{
	pthread_mutex_lock(&b->root_lock);
	enum bundle_overlay o = b->overlay;
	pthread_mutex_unlock(&b->root_lock);
	return o;
}

void bundle_set_overlay(struct bstate *b, enum bundle_overlay o, const char *problem)
{
	pthread_mutex_lock(&b->root_lock);
	b->overlay = o;
	free(b->overlay_problem);
	b->overlay_problem = problem && o == BO_FAILED ? xstrdup(problem) : NULL;
	if (o == BO_FUSE) {
		free(b->not_native);
		b->not_native = problem ? xstrdup(problem) : NULL;
	}
	pthread_mutex_unlock(&b->root_lock);
}

void bundle_set_native(struct bstate *b, bool native, const char *why)
{
	pthread_mutex_lock(&b->root_lock);
	b->native = native;
	free(b->not_native);
	b->not_native = why ? xstrdup(why) : NULL;
	pthread_mutex_unlock(&b->root_lock);
}

bool bundle_native(struct bstate *b, char **why)
{
	pthread_mutex_lock(&b->root_lock);
	bool native = b->native;
	if (why)
		*why = b->not_native ? xstrdup(b->not_native) : NULL;
	pthread_mutex_unlock(&b->root_lock);
	return native;
}

/* ---- what a successor restores (state.h) ----------------------------------- */

/* The document is one line of JSON, then the bytes of each spec it names:
 *
 *   {"generation":G,"loaded":T,"next_serial":N,
 *    "specs":[{"file":F,"length":L},...],
 *    "runs":[[SPEC,FIRST,COUNT,SERIAL],...],
 *    "versions":[{"serial":S,"file":F,"lines":[...],"bundle":{...}},...],
 *    "current":[[SERIAL,COUNT],...]}
 *
 * A run is COUNT live versions: the bundles FIRST... of spec SPEC (in its
 * order, by name), with the serials SERIAL.... A successor parses each
 * spec again from its own bytes, which give the same bundles at the same
 * lines. A spec goes in whole when at least half of its bundles live (at
 * start there is one: the document is a line and the spec's bytes, which
 * costs what copying them does); the live versions of others go one by
 * one as JSON (`versions`), so that versions a reload kept do not keep
 * whole specs in the document. The current set is its serials, in name
 * order, as runs of consecutive ones. */

static void put_u64(struct buf *b, uint64_t v)
{
	char t[20];
	size_t i = sizeof(t);
	do
		t[--i] = (char)('0' + v % 10);
	while (v /= 10);
	buf_add(b, t + i, sizeof(t) - i);
}

/* A spec that live versions come from. */
struct doc_spec {
	struct specref *ref;
	size_t live;
	bool whole;	/* in the document, its bytes */
	size_t whole_i; /* then its index in `specs` */
};

/* A live version not in a slab. */
struct doc_version {
	uint64_t serial;
	size_t spec;  /* in doc.specs */
	size_t index; /* its bundle in that spec */
	const struct bundle *b;
};

struct doc {
	struct doc_spec *specs;
	size_t nspecs, cap;
	struct strmap by_ref; /* the specref (pointer) -> index + 1 in specs */
	struct buf runs, versions;
	/* the run being written */
	size_t run_spec, run_index, run_count;
	uint64_t run_serial;
};

/* The spec *ref is at in doc.specs (`ref` stays put while the registry is
 * locked). */
static size_t doc_spec(struct doc *d, struct specref *const *ref)
{
	void *at = strmap_get(&d->by_ref, (const char *)ref, sizeof(*ref));
	if (at)
		return (size_t)(uintptr_t)at - 1;
	GROW(d->specs, d->nspecs, d->cap);
	d->specs[d->nspecs] = (struct doc_spec){.ref = *ref};
	strmap_put(&d->by_ref, (const char *)ref, sizeof(*ref), (void *)(uintptr_t)(d->nspecs + 1));
	return d->nspecs++;
}

static void run_end(struct doc *d)
{
	if (!d->run_count)
		return;
	buf_adds(&d->runs, d->runs.len ? ",[" : "[");
	put_u64(&d->runs, d->specs[d->run_spec].whole_i);
	buf_addc(&d->runs, ',');
	put_u64(&d->runs, d->run_index);
	buf_addc(&d->runs, ',');
	put_u64(&d->runs, d->run_count);
	buf_addc(&d->runs, ',');
	put_u64(&d->runs, d->run_serial);
	buf_addc(&d->runs, ']');
	d->run_count = 0;
}

/* One live version of a spec: into a run, or as JSON. */
static void doc_add(struct doc *d, size_t spec, size_t index, uint64_t serial,
		    const struct bundle *b)
{
	const struct doc_spec *ds = &d->specs[spec];
	if (!ds->whole) {
		struct buf *o = &d->versions;
		buf_adds(o, o->len ? ",{\"serial\":" : "{\"serial\":");
		put_u64(o, serial);
		buf_adds(o, ",\"file\":");
		json_put_string(o, ds->ref->sp.file);
		buf_addf(o, ",\"lines\":[%u,%u,%u,%u],\"bundle\":", b->line, b->args_line,
			 b->closure_line, b->paths_line);
		char *text = spec_bundle_json(b);
		buf_adds(o, text);
		free(text);
		buf_addc(o, '}');
		return;
	}
	if (d->run_count && spec == d->run_spec && index == d->run_index + d->run_count &&
	    serial == d->run_serial + d->run_count) {
		d->run_count++;
		return;
	}
	run_end(d);
	d->run_spec = spec;
	d->run_index = index;
	d->run_serial = serial;
	d->run_count = 1;
}

static int cmp_doc_version(const void *a, const void *b)
{
	uint64_t x = ((const struct doc_version *)a)->serial;
	uint64_t y = ((const struct doc_version *)b)->serial;
	return (x > y) - (x < y);
}

/* The current set's serials, as runs. */
static void put_current(struct buf *o, const struct bundles *set)
{
	size_t count = 0;
	uint64_t first = 0;
	bool any = false;
	for (size_t i = 0; i <= set->n; i++) {
		uint64_t serial = 0;
		if (i < set->n)
			serial = bundles_serial_at(set, i);
		if (i < set->n && count && serial == first + count) {
			count++;
			continue;
		}
		if (count) {
			buf_adds(o, any ? ",[" : "[");
			put_u64(o, first);
			buf_addc(o, ',');
			put_u64(o, count);
			buf_addc(o, ']');
			any = true;
		}
		first = serial;
		count = 1;
	}
}

void bundles_document(const struct bundle_env *env, const struct bundles *current,
		      uint64_t generation, double loaded, struct bundles_doc *out)
{
	struct doc d = {0};
	struct bundle_registry *reg = env->registry;
	pthread_mutex_lock(&reg->lock);
	/* Every version that lives: the current ones and those that
	 * containers still use. First how many of each spec. */
	for (struct bstate_slab *sl = reg->slabs; sl; sl = sl->next) {
		size_t live = 0;
		for (size_t i = 0; i < sl->n; i++)
			live +=
			    atomic_load_explicit(&sl->made[i], memory_order_relaxed) != SLAB_GONE;
		if (live) {
			size_t spec = doc_spec(&d, &sl->specref);
			d.specs[spec].live += live;
		}
	}
	struct doc_version *v = xreallocarray(NULL, reg->by_serial.n + 1, sizeof(*v));
	size_t nv = 0;
	bool sorted = true;
	for (size_t i = 0; i < reg->by_serial.cap; i++) {
		struct bstate *b = reg->by_serial.slots[i].key ? reg->by_serial.slots[i].val : NULL;
		if (!b)
			continue;
		size_t spec = doc_spec(&d, &b->specref);
		d.specs[spec].live++;
		v[nv] = (struct doc_version){b->serial, spec,
					     (size_t)(b->spec - b->specref->sp.bundles), b->spec};
		sorted = sorted && (!nv || v[nv - 1].serial < v[nv].serial);
		nv++;
	}
	size_t nwhole = 0;
	for (size_t i = 0; i < d.nspecs; i++) {
		struct doc_spec *ds = &d.specs[i];
		const struct spec *sp = &ds->ref->sp;
		ds->whole = sp->text && ds->live * 2 >= sp->n;
		if (ds->whole) {
			ds->whole_i = nwhole++;
			specref_get(ds->ref); /* its bytes are written after the lock */
		}
	}
	/* Then each, in the order of serials. */
	for (struct bstate_slab *sl = reg->slabs; sl; sl = sl->next) {
		size_t spec = SIZE_MAX;
		for (size_t i = 0; i < sl->n; i++) {
			if (atomic_load_explicit(&sl->made[i], memory_order_relaxed) == SLAB_GONE)
				continue;
			if (spec == SIZE_MAX)
				spec = doc_spec(&d, &sl->specref);
			doc_add(&d, spec, i, sl->first + i, &sl->specref->sp.bundles[i]);
		}
	}
	if (!sorted)
		qsort(v, nv, sizeof(*v), cmp_doc_version);
	for (size_t i = 0; i < nv; i++)
		doc_add(&d, v[i].spec, v[i].index, v[i].serial, v[i].b);
	run_end(&d);
	uint64_t next = reg->next;
	pthread_mutex_unlock(&reg->lock);
	free(v);
	strmap_free(&d.by_ref);

	struct buf o = {0};
	buf_adds(&o, "{\"generation\":");
	put_u64(&o, generation);
	buf_addf(&o, ",\"loaded\":%.9f,\"next_serial\":", loaded);
	put_u64(&o, next);
	buf_adds(&o, ",\"specs\":[");
	out->iov = xcalloc(nwhole + 1, sizeof(*out->iov));
	out->held = xcalloc(nwhole + 1, sizeof(*out->held));
	out->n = nwhole + 1;
	for (size_t i = 0; i < d.nspecs; i++) {
		const struct doc_spec *ds = &d.specs[i];
		if (!ds->whole)
			continue;
		buf_adds(&o, ds->whole_i ? ",{\"file\":" : "{\"file\":");
		json_put_string(&o, ds->ref->sp.file);
		buf_adds(&o, ",\"length\":");
		put_u64(&o, ds->ref->sp.len);
		buf_addc(&o, '}');
		out->iov[1 + ds->whole_i] = (struct iovec){ds->ref->sp.text, ds->ref->sp.len};
		out->held[ds->whole_i] = ds->ref;
	}
	buf_adds(&o, "],\"runs\":[");
	buf_adds(&o, d.runs.data ? d.runs.data : "");
	buf_adds(&o, "],\"versions\":[");
	buf_adds(&o, d.versions.data ? d.versions.data : "");
	buf_adds(&o, "],\"current\":[");
	put_current(&o, current);
	buf_adds(&o, "]}\n");
	out->iov[0] = (struct iovec){o.data, o.len};
	out->nheld = nwhole;
	buf_free(&d.runs);
	buf_free(&d.versions);
	free(d.specs);
}

void bundles_doc_free(struct bundles_doc *doc)
{
	if (doc->iov)
		free(doc->iov[0].iov_base);
	for (size_t i = 0; i < doc->nheld; i++)
		specref_put(doc->held[i]);
	free(doc->iov);
	free(doc->held);
	memset(doc, 0, sizeof(*doc));
}

static int cmp_bstate(const void *a, const void *b)
{
	return strcmp((*(struct bstate *const *)a)->spec->name,
		      (*(struct bstate *const *)b)->spec->name);
}

struct bundle_hold {
	struct bstate **v;
	size_t n;
};

void bundles_hold_free(struct bundle_hold *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		bundle_put(h->v[i]);
	free(h->v);
	free(h);
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return (x > y) - (x < y);
}

size_t bundles_hold_retired(const struct bundle_hold *h, const struct bundles *current,
			    uint64_t **serials)
{
	/* (A restored set has no slab.) */
	struct bstate **cur = xreallocarray(NULL, current->n + 1, sizeof(*cur));
	for (size_t k = 0; k < current->n; k++)
		cur[k] = bundles_at(current, k);
	qsort(cur, current->n, sizeof(*cur), cmp_ptr);
	uint64_t *out = xcalloc(h->n + 1, sizeof(*out));
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		if (!bsearch(&h->v[i], cur, current->n, sizeof(*cur), cmp_ptr))
			out[n++] = h->v[i]->serial;
	free(cur);
	*serials = out;
	return n;
}

/* A number the document holds: a whole one, 0 to 2^53. */
static bool get_u64(const cJSON *j, uint64_t *out)
{
	if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0 && j->valuedouble <= 9007199254740992.0))
		return false;
	*out = (uint64_t)j->valuedouble;
	return (double)*out == j->valuedouble;
}

/* The specs, parsed again from their bytes after the document's line,
 * into refs[*n...]. Returns 0 or -EPROTO. */
static errint_t restore_specs(const cJSON *specs, const char *at, const char *end,
			      const struct bundle_env *env, struct specref **refs, size_t *n)
{
	const cJSON *sj;
	cJSON_ArrayForEach(sj, specs)
	{
		const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(sj, "file"));
		uint64_t len;
		if (!file || !get_u64(cJSON_GetObjectItem(sj, "length"), &len) ||
		    len > (uint64_t)(end - at))
			return -EPROTO;
		struct specref *ref = xcalloc(1, sizeof(*ref));
		atomic_init(&ref->refs, 1);
		char *text = xstrndup(at, (size_t)len);
		struct diags d = {0};
		int r = spec_parse(&ref->sp, file, text, (size_t)len, env->st, &d);
		diag_clear(&d);
		if (r < 0) {
			free(text);
			free(ref);
			return -EPROTO;
		}
		ref->sp.text = text;
		ref->sp.len = (size_t)len;
		refs[(*n)++] = ref;
		at += len;
	}
	return 0;
}

/* One version written as JSON (its own spec, its lines patched). */
static struct bstate *restore_version(const cJSON *v, const struct bundle_env *env)
{
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "bundle");
	const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(v, "file"));
	uint64_t serial;
	if (!b || !get_u64(cJSON_GetObjectItem(v, "serial"), &serial) || !serial)
		return NULL;
	char *json = cJSON_PrintUnformatted(b);
	struct specref *ref = xcalloc(1, sizeof(*ref));
	atomic_init(&ref->refs, 1);
	struct diags d = {0};
	int r =
	    json ? spec_parse(&ref->sp, file ? file : "spec", json, strlen(json), env->st, &d) : -1;
	free(json);
	diag_clear(&d);
	if (r < 0 || ref->sp.n != 1) {
		if (r == 0)
			spec_free(&ref->sp);
		free(ref);
		return NULL;
	}
	/* Messages keep naming the lines of the spec it was read from. */
	struct bundle *bd = &ref->sp.bundles[0];
	const cJSON *l = cJSON_GetObjectItem(v, "lines");
	unsigned *lines[] = {&bd->line, &bd->args_line, &bd->closure_line, &bd->paths_line};
	for (int i = 0; i < 4 && cJSON_GetArraySize(l) == 4; i++)
		*lines[i] = (unsigned)cJSON_GetNumberValue(cJSON_GetArrayItem(l, i));
	struct bstate *made = bstate_new(ref, bd, env, serial);
	specref_put(ref); /* the bundle holds it */
	return made;
}

errint_t bundles_restore(const char *text, size_t len, const struct bundle_env *env,
			 struct bundles **current, uint64_t *generation, double *loaded,
			 struct bundle_hold **hold)
{
	const char *nl = memchr(text, '\n', len);
	cJSON *root = nl ? cJSON_ParseWithLength(text, (size_t)(nl - text)) : NULL;
	const cJSON *specs = cJSON_GetObjectItemCaseSensitive(root, "specs");
	const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
	const cJSON *versions = cJSON_GetObjectItemCaseSensitive(root, "versions");
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(root, "current");
	uint64_t gen, next;
	if (!cJSON_IsArray(specs) || !cJSON_IsArray(runs) || !cJSON_IsArray(versions) ||
	    !cJSON_IsArray(cur) || !get_u64(cJSON_GetObjectItem(root, "generation"), &gen) ||
	    !get_u64(cJSON_GetObjectItem(root, "next_serial"), &next)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	*generation = gen;
	*loaded = cJSON_GetNumberValue(cJSON_GetObjectItem(root, "loaded"));
	struct specref **refs = xcalloc((size_t)cJSON_GetArraySize(specs) + 1, sizeof(*refs));
	size_t nrefs = 0;
	errint_t rc = restore_specs(specs, nl + 1, text + len, env, refs, &nrefs);
	/* How many versions, each run checked against its spec. */
	size_t total = (size_t)cJSON_GetArraySize(versions);
	const cJSON *r;
	cJSON_ArrayForEach(r, runs)
	{
		uint64_t x[4];
		for (int i = 0; i < 4 && !rc; i++)
			if (cJSON_GetArraySize(r) != 4 || !get_u64(cJSON_GetArrayItem(r, i), &x[i]))
				rc = -EPROTO;
		if (rc || x[0] >= nrefs || x[1] > refs[x[0]]->sp.n ||
		    x[2] > refs[x[0]]->sp.n - x[1] || !x[3]) {
			rc = -EPROTO;
			break;
		}
		total += (size_t)x[2];
	}
	/* Every version first, with its serial. */
	struct bstate **made = xcalloc(total + 1, sizeof(*made));
	size_t nmade = 0;
	if (!rc) {
		pthread_mutex_lock(&env->registry->lock);
		strmap_reserve(&env->registry->by_serial, total);
		pthread_mutex_unlock(&env->registry->lock);
		cJSON_ArrayForEach(r, runs)
		{
			uint64_t x[4];
			for (int i = 0; i < 4; i++)
				get_u64(cJSON_GetArrayItem(r, i), &x[i]);
			struct specref *ref = refs[x[0]];
			for (uint64_t i = 0; i < x[2]; i++)
				made[nmade++] =
				    bstate_new(ref, &ref->sp.bundles[x[1] + i], env, x[3] + i);
		}
	}
	const cJSON *v;
	cJSON_ArrayForEach(v, versions)
	{
		struct bstate *b = rc ? NULL : restore_version(v, env);
		if (!b) {
			rc = -EPROTO;
			break;
		}
		made[nmade++] = b;
	}
	for (size_t i = 0; i < nrefs; i++)
		specref_put(refs[i]); /* the bundles hold theirs */
	free(refs);
	/* The current set: references to the restored versions. */
	struct bundles *set = xcalloc(1, sizeof(*set));
	set->v = xcalloc(nmade + 1, sizeof(*set->v));
	const cJSON *c;
	cJSON_ArrayForEach(c, cur)
	{
		uint64_t x[2];
		if (rc || cJSON_GetArraySize(c) != 2 || !get_u64(cJSON_GetArrayItem(c, 0), &x[0]) ||
		    !get_u64(cJSON_GetArrayItem(c, 1), &x[1]) || x[1] > nmade - set->n) {
			rc = -EPROTO;
			break;
		}
		for (uint64_t i = 0; i < x[1] && !rc; i++) {
			struct bstate *b = bundles_by_serial(env, x[0] + i);
			if (!b)
				rc = -EPROTO;
			else
				set->v[set->n++] = b;
		}
	}
	bool sorted = true;
	for (size_t i = 1; i < set->n && sorted; i++)
		sorted = cmp_bstate(&set->v[i - 1], &set->v[i]) < 0;
	if (!sorted)
		qsort(set->v, set->n, sizeof(*set->v), cmp_bstate);
	pthread_mutex_lock(&env->registry->lock);
	if (next > env->registry->next)
		env->registry->next = next;
	pthread_mutex_unlock(&env->registry->lock);
	/* Every version is held until the nodes are restored (then the set
	 * and the nodes hold what lives on). */
	struct bundle_hold *h = xcalloc(1, sizeof(*h));
	h->v = made;
	h->n = nmade;
	cJSON_Delete(root);
	if (rc) {
		bundles_put(set);
		bundles_hold_free(h);
		return rc;
	}
	*current = set;
	*hold = h;
	return 0;
}
