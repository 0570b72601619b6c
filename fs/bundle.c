/* bundle: per-bundle lazy state: config.json, closure and rootfs layout. */
#include "bundle.h"
#include "log.h"
#include "ocicfg.h"
#include "strmap.h"

#include <errno.h>
#include <pthread.h>
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

struct bstate {
	pthread_mutex_t lock;
	const struct bundle *spec;
	const struct bundles *set;
	enum bundle_state state;
	const struct closure *closure; /* shared (closure.h) */
	struct layout layout;
	char *config;
	size_t config_len;
	uint64_t retry_at; /* CLOCK_MONOTONIC, ms */
	unsigned backoff_ms;
	uint64_t logged; /* hash of the problems last logged, so they are logged once */
};

struct bundles {
	const struct spec *spec;
	struct bundle_env env;
	struct bstate *v; /* parallel to spec->bundles, sorted by name */
	size_t n;
};

struct bundles *bundles_new(const struct spec *sp, const struct bundle_env *env)
{
	struct bundles *set = xcalloc(1, sizeof(*set));
	set->spec = sp;
	set->env = *env;
	set->n = sp->n;
	set->v = xcalloc(sp->n, sizeof(*set->v));
	for (size_t i = 0; i < sp->n; i++) {
		pthread_mutex_init(&set->v[i].lock, NULL);
		set->v[i].spec = &sp->bundles[i];
		set->v[i].set = set;
	}
	return set;
}

void bundles_free(struct bundles *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		struct bstate *b = &set->v[i];
		if (b->state == BS_READY) {
			closure_release(set->env.resolver, b->closure);
			layout_free(&b->layout);
		}
		free(b->config);
		pthread_mutex_destroy(&b->lock);
	}
	free(set->v);
	free(set);
}

size_t bundles_count(const struct bundles *set)
{
	return set->n;
}

struct bstate *bundles_at(const struct bundles *set, size_t i)
{
	return &set->v[i];
}

struct bstate *bundles_find(const struct bundles *set, const char *name)
{
	const struct bundle *b = spec_find(set->spec, name);
	return b ? &set->v[b - set->spec->bundles] : NULL;
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

/* Logs the problems of a failed resolution, one line each, unless they
 * are those logged last time. */
static void log_problems(struct bstate *b, const struct diags *d)
{
	struct buf all = {0};
	for (size_t k = 0; k < d->n; k++)
		buf_adds(&all, d->msg[k]);
	uint64_t h = strmap_hash(all.data ? all.data : "", all.len);
	buf_free(&all);
	if (h == b->logged)
		return;
	b->logged = h;
	for (size_t k = 0; k < d->n; k++)
		log_msg("%s", d->msg[k]);
}

errint_t bundle_ready(struct bstate *b)
{
	const struct bundle_env *env = &b->set->env;
	pthread_mutex_lock(&b->lock);
	if (b->state == BS_UNRESOLVED || (b->state == BS_RETRY && now_ms() >= b->retry_at)) {
		struct diags d = {0};
		int rc = closure_resolve(env->resolver, b->set->spec, b->spec, &b->closure, &d);
		if (rc == 0) {
			if (b->state == BS_RETRY)
				log_msg("bundle \"%s\": resolved", b->spec->name);
			layout_build(&b->layout, b->spec, env->st);
			b->state = BS_READY;
			b->backoff_ms = 0;
			b->logged = 0;
			errint_t e = gcroots_add(env->gcroots, env->st, b->closure->roots,
						 b->closure->nroots);
			if (e < 0)
				log_msg("bundle \"%s\": registering GC roots in %s: %s",
					b->spec->name, env->gcroots->dir, strerror(-e));
		} else {
			log_problems(b, &d);
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
