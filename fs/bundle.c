/* bundle: sets of bundles and per-bundle lazy state: config.json, closure
 * and rootfs layout. */
#include "bundle.h"
#include "log.h"
#include "ocicfg.h"
#include "strmap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

/* A spec, freed when the last set or bundle made from it goes. */
struct specref {
	struct spec sp;
	atomic_uint refs;
};

/* Every live bundle by serial; the registry holds no reference. */
struct bundle_registry {
	pthread_mutex_t lock;
	struct strmap by_serial; /* 8-byte serial -> bstate */
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
	uint64_t logged; /* hash of the problems last logged, so they are logged once */
	char *problems;	 /* the problems of the last failure */
	atomic_uint_fast64_t requests, served;
};

struct bundles {
	struct specref *specref;
	struct bstate **v; /* parallel to the spec's bundles, sorted by name */
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

static struct bstate *bstate_new(struct specref *r, const struct bundle *spec,
				 const struct bundle_env *env)
{
	struct bstate *b = xcalloc(1, sizeof(*b));
	atomic_init(&b->refs, 1);
	pthread_mutex_init(&b->lock, NULL);
	b->spec = spec;
	b->specref = specref_get(r);
	b->env = env;
	struct bundle_registry *reg = env->registry;
	pthread_mutex_lock(&reg->lock);
	b->serial = ++reg->next;
	strmap_put(&reg->by_serial, (const char *)&b->serial, sizeof(b->serial), b);
	pthread_mutex_unlock(&reg->lock);
	return b;
}

struct bstate *bundle_get(struct bstate *b)
{
	atomic_fetch_add(&b->refs, 1);
	return b;
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
	/* One whose last reference is being dropped is gone already. */
	unsigned refs = b ? atomic_load(&b->refs) : 0;
	while (refs && !atomic_compare_exchange_weak(&b->refs, &refs, refs + 1))
		;
	pthread_mutex_unlock(&reg->lock);
	return refs ? b : NULL;
}

void bundle_put(struct bstate *b)
{
	if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	struct bundle_registry *reg = b->env->registry;
	pthread_mutex_lock(&reg->lock);
	strmap_del(&reg->by_serial, (const char *)&b->serial, sizeof(b->serial));
	pthread_mutex_unlock(&reg->lock);
	if (b->state == BS_READY) {
		gcroots_remove(b->env->gcroots, b->env->st, b->closure->roots, b->closure->nroots);
		closure_release(b->env->resolver, b->closure);
		layout_free(&b->layout);
	}
	free(b->config);
	free(b->problems);
	pthread_mutex_destroy(&b->lock);
	specref_put(b->specref);
	free(b);
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
	set->v = xcalloc(s->n, sizeof(*set->v));
	for (size_t i = 0; i < s->n; i++) {
		struct bstate *old = prev ? bundles_find(prev, s->bundles[i].name) : NULL;
		set->v[i] = old && spec_bundle_equal(old->spec, &s->bundles[i])
				? bundle_get(old)
				: bstate_new(set->specref, &s->bundles[i], env);
	}
	return set;
}

void bundles_put(struct bundles *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		bundle_put(set->v[i]);
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
	return set->v[i];
}

struct bstate *bundles_find(const struct bundles *set, const char *name)
{
	const struct spec *s = &set->specref->sp;
	const struct bundle *b = spec_find(s, name);
	return b ? set->v[b - s->bundles] : NULL;
}

const struct spec *bundles_spec(const struct bundles *set)
{
	return &set->specref->sp;
}

const char *bundle_name(const struct bstate *b)
{
	return b->spec->name;
}

void bundle_config(struct bstate *b, const char **data, size_t *len)
{
	pthread_mutex_lock(&b->lock);
	if (!b->config)
		b->config = ocicfg_render(b->spec, false, &b->config_len);
	*data = b->config;
	*len = b->config_len;
	pthread_mutex_unlock(&b->lock);
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Keeps the problems of a failed resolution, and logs them, one line
 * each, unless they are those logged last time. */
static void note_problems(struct bstate *b, const struct diags *d)
{
	struct buf all = {0};
	for (size_t k = 0; k < d->n; k++) {
		buf_adds(&all, d->msg[k]);
		buf_addc(&all, '\n');
	}
	uint64_t h = strmap_hash(all.data ? all.data : "", all.len);
	free(b->problems);
	b->problems = all.data;
	if (h == b->logged)
		return;
	b->logged = h;
	for (size_t k = 0; k < d->n; k++)
		log_msg("%s", d->msg[k]);
}

errint_t bundle_ready(struct bstate *b)
{
	const struct bundle_env *env = b->env;
	pthread_mutex_lock(&b->lock);
	if (b->state == BS_UNRESOLVED || (b->state == BS_RETRY && now_ms() >= b->retry_at)) {
		struct diags d = {0};
		int rc = closure_resolve(env->resolver, &b->specref->sp, b->spec, &b->closure, &d);
		if (rc == 0) {
			/* Rooted before it is served. */
			errint_t e = gcroots_add(env->gcroots, env->st, b->closure->roots,
						 b->closure->nroots);
			if (e < 0)
				log_msg("bundle \"%s\": registering GC roots in %s: %s",
					b->spec->name, env->gcroots->dir, strerror(-e));
			if (b->state == BS_RETRY)
				log_msg("bundle \"%s\": resolved", b->spec->name);
			layout_build(&b->layout, b->spec, env->st);
			b->state = BS_READY;
			b->backoff_ms = 0;
			b->logged = 0;
			free(b->problems);
			b->problems = NULL;
		} else {
			note_problems(b, &d);
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

void bundle_info(struct bstate *b, struct bundle_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&b->lock);
	out->state = state_names[b->state];
	if (b->state == BS_READY) {
		out->paths = b->closure->n;
		out->bytes = closure_bytes(b->env->resolver, b->closure);
	}
	if (b->problems)
		out->problems = xstrdup(b->problems);
	pthread_mutex_unlock(&b->lock);
	out->requests = atomic_load_explicit(&b->requests, memory_order_relaxed);
	out->served = atomic_load_explicit(&b->served, memory_order_relaxed);
}
