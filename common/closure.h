/* closure: the store paths a bundle's rootfs holds.
 *
 * The roots are every store path the bundle's args mention (as Nix's
 * string context would record them for `writeClosure args`) plus its
 * `paths`. The closure of the roots comes from, in this order: the
 * bundle's closure file; Nix's SQLite database (ValidPaths and Refs);
 * or scanning store paths for the hash parts of other store entries, the
 * way Nix discovers references after a build.
 *
 * With substituters (subst.h), a closure may hold store paths the machine
 * does not have yet: when a root is not valid in the database, the
 * closure is followed through the caches' narinfo (References) from the
 * paths that are not valid, and through the database from those that
 * are; a closure file may list absent paths that a cache has. Such paths
 * are listed with st_mode 0 ("absent"), to be realised on first use; so
 * is a path on disk that is not valid (being substituted, or left by a
 * substitution Nix refused), which may be half written. */
#ifndef BUNDLEFS_CLOSURE_H
#define BUNDLEFS_CLOSURE_H

#include "spec.h"
#include "store.h"
#include "util.h"

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct closure {
	const char **base; /* sorted entry names "<hash>-<name>" */
	struct stat *st;   /* lstat of each (a directory, regular file or symlink) */
	size_t n;
	size_t ndirs;	    /* how many of them are directories */
	size_t nabsent;	    /* how many were not in the store (st_mode 0) */
	const char **roots; /* the roots it was resolved from, sorted */
	size_t nroots;
	const char *source; /* which source answered: for messages */
	struct arena arena;
};

struct resolver;

/* A resolver holds what resolutions share: the store directory, the
 * database connection and the scanner's caches. It is safe to use from
 * several threads (calls are serialized). It reads the store through
 * st->fd, opening it if needed. */
struct resolver *resolver_new(struct store *st);
void resolver_free(struct resolver *r);
/* Lets closures hold absent paths that these caches have (the resolver
 * does not own s). With `nix_config`, Nix's own settings are added to s
 * the first time a path is missing (`nix show-config`). Only for a store
 * whose bytes are where Nix puts them (st->real is st->dir). */
struct subst;
void resolver_set_subst(struct resolver *r, struct subst *s, bool nix_config);
/* Is store path `base` valid in Nix's database (1), or not (0)? -1 when
 * that cannot be known (no database, or it failed). A path on disk need
 * not be valid: Nix writes a substituted path before checking it. */
int resolver_valid(struct resolver *r, const char *base);

/* Resolves bundle `b` of spec `sp` into *c, a closure shared with every
 * bundle of the same source and roots; give it back with closure_release.
 * Returns 0, or after adding every problem to `d` (each prefixed by the
 * spec or closure file line that caused it) -EAGAIN when each of them may
 * go away by itself (a busy database, a store path or file not there yet:
 * worth retrying later) or -EINVAL. Failures are not remembered. */
int closure_resolve(struct resolver *r, const struct spec *sp, const struct bundle *b,
		    const struct closure **c, struct diags *d);
void closure_release(struct resolver *r, const struct closure *c);
/* The size of the closure's files (regular files and symlinks), walked
 * once and remembered (once every path is here; absent ones count 0). */
uint64_t closure_bytes(struct resolver *r, const struct closure *c);
/* The closure's NAR size, as Nix counts it (`nix path-info -S`): from
 * Nix's database for the paths here, from the caches' narinfo for those
 * that were not. Cheap (one query): for a log line. False when it cannot
 * be known: a path with no recorded size, or no database open (a closure
 * from a closure file does not open one for this). */
bool closure_nar_size(struct resolver *r, const struct closure *c, uint64_t *bytes);
/* Is entry i of the closure a path that was absent when it was resolved? */
static inline bool closure_absent(const struct closure *c, size_t i)
{
	return c->st[i].st_mode == 0;
}
/* Index of entry `base` in the closure, or -1. */
ssize_t closure_find(const struct closure *c, const char *base);

/* The roots of a bundle, sorted and unique (base names, in `a`). */
size_t closure_roots(const struct store *st, const struct bundle *b, struct arena *a,
		     const char ***roots);

#endif
