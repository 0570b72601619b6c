/* ocicfg: the OCI runtime config.json of a bundle, as nixpkgs'
 * ociTools.buildContainer writes it, plus the user's mounts, which
 * buildContainer accepts but drops, and the bundle's optional process
 * settings (env, cwd, hostname, user, terminal). By default it is valid
 * against the runtime-spec schema; compat = buildcontainer gives
 * buildContainer's exact bytes (its mounts alone). */
#ifndef BUNDLEFS_OCICFG_H
#define BUNDLEFS_OCICFG_H

#include "spec.h"

#include <stdbool.h>
#include <stddef.h>

struct ocimount {
	const char *dest, *type, *source;
	const char *const *options; /* NULL: none ("options": null in
				       compat = buildcontainer, else omitted) */
	char *owned;		    /* a bind of a store path: dest and source live here */
};

/* config.json's mounts: the system mounts merged with the bundle's own (a
 * user mount replaces a system mount at the same destination), sorted by
 * destination bytewise; with compat = buildcontainer, the system mounts
 * alone, as buildContainer drops its `mounts` argument. Returns a
 * malloc'ed array of *n entries that points into `b`. */
struct closure;
/* data = bind: the closure, its store paths bound one by one, read-only,
 * from `real` (where the store's entries are) to `dir` (as containers see
 * the store). NULL for a bundle served through FUSE. */
struct ocibinds {
	const char *dir, *real;
	const struct closure *closure;
};
/* (With binds, those mounts come too, after the others.) Free the array
 * with ocicfg_mounts_free. */
struct ocimount *ocicfg_mounts(const struct bundle *b, const struct ocibinds *binds, size_t *n);
void ocicfg_mounts_free(struct ocimount *m, size_t n);

/* Renders config.json. Compact output is laid out as Nix's
 * builtins.toJSON lays out buildContainer's attribute set (no whitespace,
 * object keys sorted); with compat = buildcontainer and no optional
 * settings, it is byte for byte that. `pretty` indents it for people. Returns
 * a malloc'ed NUL-terminated string of *len bytes. */
char *ocicfg_render(const struct bundle *b, const struct ocibinds *binds, bool pretty, size_t *len);

#endif
