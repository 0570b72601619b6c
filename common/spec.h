/* spec: the bundles a user asks for, read from spec.conf or its JSON form.
 * See docs/spec.md for the format. Parsing touches nothing but the spec
 * file itself: closures are resolved later (closure.h), lazily. */
#ifndef BUNDLEFS_SPEC_H
#define BUNDLEFS_SPEC_H

#include "store.h"
#include "util.h"

struct json;

#include <stdbool.h>
#include <stdint.h>

#define SPEC_MAX_SIZE	  (16u << 20)
#define SPEC_MAX_LINE	  (64u << 10)
#define SPEC_MAX_DEPTH	  16
#define SPEC_NAME_MAX	  255
#define SPEC_DEFAULT_OS	  "linux"
#define SPEC_DEFAULT_ARCH "x86_64"
/* A name the mount uses itself (the directory of bundle versions). */
#define SPEC_RESERVED_NAME ".bundlefs"

struct spec_mount {
	const char *dest, *type, *source;
	const char *const *options; /* NULL-terminated, or NULL for none (null) */
	unsigned line;
};

enum spec_data { SPEC_DATA_DEFAULT, SPEC_DATA_FUSE, SPEC_DATA_NATIVE, SPEC_DATA_BIND };
/* A boolean key that may be absent (its default then decides). */
enum spec_opt { SPEC_ABSENT, SPEC_NO, SPEC_YES };

/* More of config.json (absent: NULL, SPEC_ABSENT; see docs/spec.md). The
 * JSON values are as written, checked; `caps` is the set `capabilities`
 * gives (bit n: capability n). All zero: none of them. */
struct spec_extra {
	const struct json *capabilities, *rlimits, *annotations, *sysctl;
	uint64_t caps;
	enum spec_opt no_new_privileges, rootless;
	const char *const *masked_paths, *const *readonly_paths; /* may be empty */
	/* A merge patch applied to config.json last, and where it is. */
	const struct json *oci;
	unsigned oci_line, oci_col;
};

/* The names `data` takes, by value ("" for the default). */
extern const char *const spec_data_names[];

struct bundle {
	const char *name;
	unsigned line;
	const char *const *args; /* NULL-terminated, at least one */
	size_t nargs;
	unsigned args_line;
	bool readonly;
	const char *os, *arch;
	const struct spec_mount *mounts;
	size_t nmounts;
	const char *closure; /* closure file, or NULL */
	unsigned closure_line;
	const char *const *paths; /* extra roots (full store paths), NULL-terminated */
	size_t npaths;
	unsigned paths_line;
	/* compat = buildcontainer: config.json byte for byte as buildContainer
	 * writes it ("options": null and all); else valid OCI. */
	bool buildcontainer;
	/* The optional process settings; absent (NULL, false) changes
	 * nothing in config.json. */
	const char *const *env; /* KEY=VALUE, NULL-terminated */
	size_t nenv;
	const char *cwd, *hostname;
	const char *user; /* "UID:GID[,GID...]", as written */
	uint32_t uid, gid;
	const uint32_t *gids; /* additional groups */
	size_t ngids;
	bool terminal;
	/* How the closure reaches the container (`data`): the mount's
	 * default (--data), through the FUSE mount, on a kernel-native root
	 * (an overlay of a metadata image over the store), or bound by the
	 * runtime itself, each store path (config.json lists them; the rootfs
	 * has their mount points). */
	enum spec_data data;
	/* The rest of config.json's settings, or NULL when the bundle has
	 * none of their keys (most have none: a spec holds thousands of
	 * bundles, and this keeps each small). */
	struct spec_extra *extra;
};
/* A bundle's extra settings, or all zero when it has none. */
const struct spec_extra *spec_extra(const struct bundle *b);

struct spec {
	const char *file;
	struct bundle *bundles; /* sorted by name */
	size_t n;
	/* The bytes it was read from (spec_load; spec_parse leaves it NULL):
	 * read again, they give the same bundles at the same lines. */
	char *text;
	size_t len;
	/* What its bundles ask for, all together: whether one is not
	 * readonly, and the data each names (1 << enum spec_data). */
	bool any_writable;
	bool json; /* written in the JSON syntax (keys are named as there) */
	unsigned data_used;
	struct arena arena;
};

/* Reads and parses `file`. Returns 0, or -1 after adding every problem
 * found to `d` (each "FILE:LINE: message"); on failure `sp` holds nothing. */
int spec_load(struct spec *sp, const char *file, const struct store *st, struct diags *d);
/* The same for text already in memory (`file` names it in messages). */
int spec_parse(struct spec *sp, const char *file, const char *text, size_t len,
	       const struct store *st, struct diags *d);
void spec_free(struct spec *sp);
const struct bundle *spec_find(const struct spec *sp, const char *name);
/* What `b` asks for that its spec allows but will not happen, each as
 * "FILE:LINE: warning: bundle \"NAME\": KEY: message", added to `d`. */
void spec_bundle_warnings(const struct spec *sp, const struct bundle *b, struct diags *d);
/* The bundle in the JSON syntax: `{"NAME": {...}}`, which spec_parse
 * reads back into an equal bundle (spec_bundle_equal). Returns a
 * malloc'ed string. */
char *spec_bundle_json(const struct bundle *b);

/* Do a and b ask for the same bundle (name, args, settings, mounts,
 * closure source and paths), wherever in their specs they are written? */
bool spec_bundle_equal(const struct bundle *a, const struct bundle *b);
/* Is `name` acceptable as a bundle (directory) name? */
bool spec_valid_name(const char *name, size_t n);

#endif
