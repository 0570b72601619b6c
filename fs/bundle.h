/* bundle: the bundles a mount serves, and what each has computed so far.
 *
 * Everything is lazy: a bundle's config.json is rendered on first use,
 * its closure resolved and its rootfs layout built on first use of its
 * rootfs, and neither changes afterwards. Each bundle's state has its own
 * lock, held while it computes; see bfs.h for the lock order.
 *
 * A set of bundles is what one reading of the spec asks for. A reload
 * builds a new set from the new spec, taking over the state of every
 * bundle the new spec asks for unchanged (nothing is recomputed). Bundle
 * states are reference counted: by the sets that hold them and by the
 * nodes made from them, so a bundle removed or changed by a reload lives
 * on for the containers that still use it, and is freed (its GC roots
 * removed) when the last of them lets go. */
#ifndef BUNDLEFS_BUNDLE_H
#define BUNDLEFS_BUNDLE_H

#include "closure.h"
#include "gcroots.h"
#include "layout.h"
#include "spec.h"
#include "store.h"
#include "util.h"

#include <stdint.h>
#include <sys/uio.h>

struct bundle_registry;

/* What resolving bundles needs, shared by all of them; it outlives every
 * set and bundle. */
struct bundle_env {
	struct store *st;
	struct resolver *resolver;
	struct gcroots *gcroots;
	struct bundle_registry *registry; /* every bundle that lives, by serial */
	uint32_t uid, gid;		  /* the mount's owner: config.json's rootless default */
};

struct bundle_registry *bundle_registry_new(void);
void bundle_registry_free(struct bundle_registry *r);

struct bstate;	/* one bundle */
struct bundles; /* a set, from one spec */

/* The bundles of `sp`, which the set takes over (it is freed with the last
 * bundle that uses it). A bundle that `prev` (or NULL) holds unchanged
 * (spec_bundle_equal) is taken over from it, state and all. */
struct bundles *bundles_new(struct spec *sp, const struct bundle_env *env,
			    const struct bundles *prev);
void bundles_put(struct bundles *set);
size_t bundles_count(const struct bundles *set);
/* The i-th bundle, in name order. (The states of the first set a daemon
 * reads are set up when first asked for, here or by name or serial.) */
struct bstate *bundles_at(const struct bundles *set, size_t i);
/* The bundle named `name`, or NULL. */
struct bstate *bundles_find(const struct bundles *set, const char *name);
/* The i-th bundle's spec and serial, without setting up its state (see
 * bundles_at). */
const struct bundle *bundles_spec_at(const struct bundles *set, size_t i);
uint64_t bundles_serial_at(const struct bundles *set, size_t i);
/* Is a bundle of the set not readonly, or is its data one of `data` (1 <<
 * enum spec_data)? For a set read from a spec, the spec says, without a
 * look at each bundle. */
bool bundles_any(const struct bundles *set, unsigned data);
/* The i-th bundle's state, as bundle_state says it, without setting up
 * one never used. */
const char *bundles_state_at(const struct bundles *set, size_t i);
/* A successor's bundles (state.h). bundles_document writes every live
 * version (its spec, its serial) and which ones the current set holds, in
 * pieces (bundle.c says how): iov[0], then the bytes of the specs it
 * names, which it holds until bundles_doc_free. bundles_restore makes
 * them again, with the same serials: the current set in *current, and
 * every version held in *hold until the caller has restored the nodes
 * that use them (bundles_hold_free). */
struct bundle_hold;
struct specref;
struct bundles_doc {
	struct iovec *iov;
	size_t n;
	struct specref **held;
	size_t nheld;
};
void bundles_document(const struct bundle_env *env, const struct bundles *current,
		      uint64_t generation, double loaded, struct bundles_doc *doc);
void bundles_doc_free(struct bundles_doc *doc);
errint_t bundles_restore(const char *text, size_t len, const struct bundle_env *env,
			 struct bundles **current, uint64_t *generation, double *loaded,
			 struct bundle_hold **hold);
void bundles_hold_free(struct bundle_hold *h);
/* The serials of the held versions that `current` does not hold (retired
 * ones, which running containers may still use), in *serials (malloc'ed). */
size_t bundles_hold_retired(const struct bundle_hold *h, const struct bundles *current,
			    uint64_t **serials);
/* Was the bundle resolved (its GC roots registered)? */
bool bundle_is_ready(struct bstate *b);
/* Might a use of its rootfs resolve it now (not resolved yet, or being
 * resolved, or due for another try)? Never waits for its lock. */
bool bundle_may_resolve(struct bstate *b);

struct bstate *bundle_get(struct bstate *b);
void bundle_put(struct bstate *b);

/* A bundle's serial number: unique for the life of the daemon, its
 * version's name in the mount (MOUNTPOINT/.bundlefs/SERIAL). */
uint64_t bundle_serial(const struct bstate *b);
/* The live bundle with that serial, with a reference taken, or NULL. */
struct bstate *bundles_by_serial(const struct bundle_env *env, uint64_t serial);

const char *bundle_name(const struct bstate *b);
/* config.json, rendered once. Fails (-EIO) only for a data = bind
 * bundle whose closure cannot be resolved: its config lists the closure. */
errint_t bundle_config(struct bstate *b, const char **data, size_t *len);
/* Resolves the closure and builds the layout once. Returns 0, or -EIO
 * when the closure cannot be resolved (the problems are logged once). */
errint_t bundle_ready(struct bstate *b);
/* After bundle_ready: the closure, and the rootfs skeleton's root. */
const struct closure *bundle_closure(const struct bstate *b);
const struct layout_dir *bundle_rootfs(const struct bstate *b);

/* Counts one request for this bundle, which served `bytes` of data. */
void bundle_account(struct bstate *b, uint64_t bytes);

/* What a problem that `bundlectl status` shows is about: a closed set,
 * part of the status document (bundlectl(1), STATUS DOCUMENT). Each is
 * given where the problem is found. */
enum problem_kind {
	PROBLEM_SPEC,	       /* the spec, as the last reload read it */
	PROBLEM_RESOLVE,       /* a bundle's closure or rootfs layout */
	PROBLEM_SUBSTITUTE,    /* the binary caches a closure comes from */
	PROBLEM_WRITABLE_ROOT, /* a writable root that could not be mounted */
};
/* Its name in the status document ("spec", "resolve", ...). */
const char *problem_kind_name(enum problem_kind k);

struct problem {
	enum problem_kind kind;
	char *message; /* FILE:LINE: what is wrong */
};

/* What `bundlectl status` shows of a bundle. */
struct bundle_info {
	const char *state; /* "unresolved", "resolving", "ready", "retrying", "failed" */
	bool resolved;	   /* the closure is known: paths and bytes say it */
	size_t paths;	   /* store paths in the closure */
	uint64_t bytes;	   /* their size */
	uint64_t requests, served;
	struct problem *problems; /* why it failed (malloc'ed), or NULL */
	size_t nproblems;
};
void bundle_info(struct bstate *b, struct bundle_info *out);
void bundle_info_free(struct bundle_info *info);
/* Its state alone, as bundle_info says it, cheaply. */
const char *bundle_state(struct bstate *b);

/* The bundle as its spec says it. */
const struct bundle *bundle_spec(const struct bstate *b);

/* The version's root as the kernel mounts it (overlay.h): not mounted yet,
 * mounted, failed (a writable root: then its rootfs answers EIO and
 * `problem` is what bundle_info reports), or left to the FUSE tree (a
 * read-only version whose kernel-native root cannot be, for the reason
 * `problem` says, which is no problem of the bundle). */
enum bundle_overlay { BO_NONE, BO_MOUNTED, BO_FAILED, BO_FUSE };
enum bundle_overlay bundle_overlay(struct bstate *b);
void bundle_set_overlay(struct bstate *b, enum bundle_overlay o, const char *problem);
/* Its mounted root is kernel-native (the closure's image over the store),
 * not an overlay over the FUSE rootfs; and why it is not, once decided
 * (malloc'ed into *why, or NULL). */
void bundle_set_native(struct bstate *b, bool native, const char *why);
bool bundle_native(struct bstate *b, char **why);

#endif
