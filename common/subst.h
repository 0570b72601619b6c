/* subst: the binary caches (substituters) a missing store path can come
 * from, and what they say about store paths.
 *
 * The caches and the keys their narinfo must be signed with are Nix's own
 * settings (`substituters`, `trusted-public-keys`, `require-sigs` and the
 * CA certificates of HTTPS, `ssl-cert-file` or NIX_SSL_CERT_FILE, as
 * `nix show-config` reports them, so nix.conf and NIX_CONFIG both apply),
 * plus any the caller adds. A narinfo counts only when one of its
 * signatures verifies against a trusted key (unless signatures are not
 * required): a cache that is not trusted cannot make a closure list a path
 * outside it. Fetching realises nothing; Nix does that (realise.h in the
 * daemon).
 *
 * Caches are read in the order given, `file://` ones directly and HTTP(S)
 * ones through libcurl, every narinfo of one call in parallel. libcurl
 * and libcrypto are loaded when first needed (netlib.h): one that cannot
 * be fails the fetches or signature checks that need it, nothing else.
 * What was found (or found missing) is remembered for the life of the
 * object. Safe to use from several threads. */
#ifndef BUNDLEFS_SUBST_H
#define BUNDLEFS_SUBST_H

#include "narinfo.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct subst;

struct subst *subst_new(void);
void subst_free(struct subst *s);

/* Adds a cache ("file:///dir", "http://host/...", "https://...").
 * Returns 0, or -1 with a message in *err (malloc'ed). */
int subst_add_url(struct subst *s, const char *url, char **err);
/* Adds a trusted key "<name>:<base64 of 32 bytes>". Returns 0 or -1. */
int subst_add_key(struct subst *s, const char *key, char **err);
void subst_require_sigs(struct subst *s, bool on);
/* Reads Nix's settings by running `nix show-config` (`nix`, or the
 * program `nix` names), adding its caches and keys after those given.
 * Returns 0, or -1 with a message in *err. */
int subst_load_nix_config(struct subst *s, const char *nix, char **err);
/* Settings given as `nix show-config` prints them ("key = value" lines).
 * Caches of a kind not read here (s3://, ssh://...) are skipped. */
int subst_load_config_text(struct subst *s, const char *text, char **err);

size_t subst_count(const struct subst *s);
const char *subst_url(const struct subst *s, size_t i);
/* The caches, space-separated, as Nix's `substituters` takes them
 * (malloc'ed). */
char *subst_urls(const struct subst *s);

/* Looks up the `n` store paths `bases` in the caches, in parallel. For
 * each, out[i] is its narinfo (owned by s) or NULL; then why[i] says why
 * (malloc'ed: no cache has it, a cache failed, no valid signature). */
void subst_lookup(struct subst *s, const struct store *st, const char *const *bases, size_t n,
		  const struct narinfo **out, char **why);

/* The NAR size of store path `base` from the narinfo a lookup found
 * (fetching nothing): true, or false when none was found. */
bool subst_nar_size(struct subst *s, const char *base, uint64_t *size);

/* Does a signature of `ni` verify against a trusted key? */
bool subst_verify(const struct subst *s, const struct narinfo *ni, const struct store *st);

/* Makes fetches in progress, and any later one, fail at once (the
 * daemon is stopping). */
void subst_cancel(struct subst *s);

/* What was fetched so far: narinfo files and their bytes. */
void subst_stats(struct subst *s, uint64_t *fetched, uint64_t *bytes);

#endif
