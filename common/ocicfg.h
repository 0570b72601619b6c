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
#include <stdint.h>

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

/* How to render: what the caller knows beyond the bundle. */
struct ociopts {
	const struct ocibinds *binds; /* data = bind's closure, or NULL */
	bool pretty;		      /* indented, for people */
	/* The mount's owner (the daemon's user; bundlectl's caller): a
	 * bundle that does not say `rootless` is rootless when this is not
	 * root, and its user namespace maps root to it. */
	uint32_t uid, gid;
};

/* Renders config.json. Compact output is laid out as Nix's
 * builtins.toJSON lays out buildContainer's attribute set (no whitespace,
 * object keys sorted); with compat = buildcontainer and none of bundlefs's
 * own settings, it is byte for byte that. Then come the bundle's settings,
 * rootless' changes (as runc spec --rootless makes them), and last its
 * `oci` merge patch. Returns a malloc'ed NUL-terminated string of *len
 * bytes. */
char *ocicfg_render(const struct bundle *b, const struct ociopts *o, size_t *len);

/* Does the bundle get rootless' changes, rendered for owner `uid`? */
bool ocicfg_rootless(const struct bundle *b, uint32_t uid);

/* RFC 7396: `target` (cJSON, consumed) patched with `patch` (null
 * deletes a member, objects merge recursively, anything else replaces).
 * Returns the result. */
struct cJSON;
struct json;
struct cJSON *ocicfg_merge_patch(struct cJSON *target, const struct json *patch);

/* The names Linux gives its capabilities (by number, CAP_CHOWN to
 * CAP_CHECKPOINT_RESTORE) and resource limits (sorted), and the
 * capabilities a process keeps by default, as `runc spec` writes them
 * (CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE): nix/keys.json's
 * "names", which nix/bundlefs.nix checks by too. */
#define OCICFG_NCAPS	41
#define OCICFG_NRLIMITS 16
extern const char *const ocicfg_cap_names[OCICFG_NCAPS];
extern const char *const ocicfg_rlimit_names[OCICFG_NRLIMITS];
uint64_t ocicfg_default_caps(void);
/* runc spec's linux.maskedPaths and linux.readonlyPaths, NULL-terminated:
 * the defaults with compat = oci. */
extern const char *const ocicfg_default_masked[];
extern const char *const ocicfg_default_readonly[];

#endif
