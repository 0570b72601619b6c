/* bundle: per-bundle lazy state: config.json, closure and rootfs layout. */
#include "bundle.h"
#include "log.h"
#include "ocicfg.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum bundle_state { BS_UNRESOLVED, BS_READY, BS_FAILED };

struct bstate {
	pthread_mutex_t lock;
	const struct bundle *spec;
	const struct bundles *set;
	enum bundle_state state;
	struct closure closure;
	struct layout layout;
	char *config;
	size_t config_len;
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
			closure_free(&b->closure);
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

errint_t bundle_ready(struct bstate *b)
{
	const struct bundle_env *env = &b->set->env;
	pthread_mutex_lock(&b->lock);
	if (b->state == BS_UNRESOLVED) {
		struct diags d = {0};
		if (closure_resolve(env->resolver, b->set->spec, b->spec, &b->closure, &d) < 0) {
			/* One line per problem, each naming the bundle and the
			 * path; the bundle stays failed: the store is not
			 * expected to change under a mount. */
			for (size_t k = 0; k < d.n; k++)
				log_msg("%s", d.msg[k]);
			b->state = BS_FAILED;
		} else {
			layout_build(&b->layout, b->spec, env->st);
			b->state = BS_READY;
			errint_t e =
			    gcroots_add(env->gcroots, env->st, b->closure.roots, b->closure.nroots);
			if (e < 0)
				log_msg("bundle \"%s\": registering GC roots in %s: %s",
					b->spec->name, env->gcroots->dir, strerror(-e));
		}
		diag_clear(&d);
	}
	errint_t rc = b->state == BS_FAILED ? -EIO : 0;
	pthread_mutex_unlock(&b->lock);
	return rc;
}

const struct closure *bundle_closure(const struct bstate *b)
{
	return &b->closure;
}

const struct layout_dir *bundle_rootfs(const struct bstate *b)
{
	return b->layout.root;
}
