/* bundle: per-bundle lazy state: config.json, closure and rootfs layout. */
#include "bfs.h"
#include "gcroots.h"
#include "ocicfg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bundles_init(struct bfs *fs)
{
	fs->bundles = xcalloc(fs->spec.n ? fs->spec.n : 1, sizeof(*fs->bundles));
	for (size_t i = 0; i < fs->spec.n; i++)
		pthread_mutex_init(&fs->bundles[i].lock, NULL);
}

void bundles_fini(struct bfs *fs)
{
	for (size_t i = 0; i < fs->spec.n; i++) {
		struct bstate *b = &fs->bundles[i];
		if (b->state == BS_READY) {
			closure_free(&b->closure);
			layout_free(&b->layout);
		}
		free(b->config);
		free(b->gcroot);
		pthread_mutex_destroy(&b->lock);
	}
	free(fs->bundles);
	fs->bundles = NULL;
}

void bundle_config(struct bfs *fs, size_t i, const char **data, size_t *len)
{
	struct bstate *b = &fs->bundles[i];
	pthread_mutex_lock(&b->lock);
	if (!b->config)
		b->config = ocicfg_render(&fs->spec.bundles[i], false, &b->config_len);
	*data = b->config;
	*len = b->config_len;
	pthread_mutex_unlock(&b->lock);
}

int bundle_ready(struct bfs *fs, size_t i)
{
	struct bstate *b = &fs->bundles[i];
	const struct bundle *spec = &fs->spec.bundles[i];
	int rc = 0;
	pthread_mutex_lock(&b->lock);
	if (b->state == BS_UNRESOLVED) {
		struct diags d = {0};
		if (closure_resolve(fs->resolver, &fs->spec, spec, &b->closure, &d) < 0) {
			/* One line per problem, each naming the bundle and the
			 * path; the bundle stays failed: the store is not
			 * expected to change under a mount. */
			for (size_t k = 0; k < d.n; k++)
				bfs_log(fs, "%s", d.msg[k]);
			b->state = BS_FAILED;
		} else {
			layout_build(&b->layout, spec, &fs->st);
			b->state = BS_READY;
			int e = gcroots_add(&fs->st, b->closure.roots, b->closure.nroots);
			if (e < 0)
				bfs_log(fs, "bundle \"%s\": registering GC roots in %s: %s",
					spec->name, fs->gcroots, strerror(-e));
		}
		diag_clear(&d);
	}
	if (b->state == BS_FAILED)
		rc = -EIO;
	pthread_mutex_unlock(&b->lock);
	return rc;
}
