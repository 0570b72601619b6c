/* bundle: the bundles a mount serves, and what each has computed so far.
 *
 * Everything is lazy: a bundle's config.json is rendered on first use,
 * its closure resolved and its rootfs layout built on first use of its
 * rootfs, and neither changes afterwards. Each bundle's state has its own
 * lock, held while it computes; see bfs.h for the lock order. */
#ifndef BUNDLEFS_BUNDLE_H
#define BUNDLEFS_BUNDLE_H

#include "closure.h"
#include "gcroots.h"
#include "layout.h"
#include "spec.h"
#include "store.h"
#include "util.h"

/* What resolving bundles needs, shared by all of them. */
struct bundle_env {
	struct store *st;
	struct resolver *resolver;
	struct gcroots *gcroots;
};

struct bstate;	/* one bundle */
struct bundles; /* the set a mount serves */

/* The bundles of `sp` (which must outlive the set). */
struct bundles *bundles_new(const struct spec *sp, const struct bundle_env *env);
void bundles_free(struct bundles *set);
size_t bundles_count(const struct bundles *set);
/* The i-th bundle, in name order. */
struct bstate *bundles_at(const struct bundles *set, size_t i);
/* The bundle named `name`, or NULL. */
struct bstate *bundles_find(const struct bundles *set, const char *name);

const char *bundle_name(const struct bstate *b);
/* config.json, rendered once. Never fails. */
void bundle_config(struct bstate *b, const char **data, size_t *len);
/* Resolves the closure and builds the layout once. Returns 0, or -EIO
 * when the closure cannot be resolved (logged once, one line per
 * problem). */
errint_t bundle_ready(struct bstate *b);
/* After bundle_ready: the closure, and the rootfs skeleton's root. */
const struct closure *bundle_closure(const struct bstate *b);
const struct layout_dir *bundle_rootfs(const struct bstate *b);

#endif
