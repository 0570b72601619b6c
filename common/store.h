/* store: where the Nix store is and what its paths look like.
 *
 * Like Nix's local store, the store has a logical directory (the
 * `/nix/store` that paths are written with and that containers see) and a
 * real location where the bytes live (the same directory unless the store
 * is kept elsewhere, e.g. under a test's temporary folder). */
#ifndef BUNDLEFS_STORE_H
#define BUNDLEFS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#define STORE_HASH_LEN	  32
#define STORE_NAME_MAX	  211
#define STORE_DEFAULT_DIR "/nix/store"
#define STORE_DEFAULT_DB  "/nix/var/nix/db/db.sqlite"

struct store {
	char *dir;	  /* logical store directory, no trailing slash */
	char *real;	  /* where its entries physically are */
	char *db;	  /* Nix's SQLite database, or NULL to never use one */
	bool db_set;	  /* db decided (given, or derived by store_finish) */
	bool db_explicit; /* given on the command line: it must exist */
};

/* Fills in defaults (honouring NIX_STORE_DIR and NIX_STATE_DIR as Nix
 * does). */
void store_init(struct store *st);
void store_free(struct store *st);

/* Command line options shared by every binary: --store-dir, --real-store
 * and --db. Returns 1 when `opt` (e.g. "--store-dir") was one of them and
 * was applied, 0 when it is not a store option, -1 on a bad value with a
 * message in err. */
int store_option(struct store *st, const char *opt, const char *val, char **err);
/* The same for argv[*i] ("--opt=VAL" or "--opt VAL"): advances *i past
 * what it used. Returns 1, 0 when argv[*i] is not a store option, or -1. */
int store_parse_arg(struct store *st, int argc, char **argv, int *i, char **err);
/* Validates and finishes the settings (normalises paths, derives the
 * default database location). Returns 0 or -1 with a message in err. */
int store_finish(struct store *st, char **err);
/* The usage text for the store options. */
extern const char store_options_help[];

/* Is c a character of Nix's base-32 alphabet (0-9, a-z without e o t u)? */
bool store_is_base32(unsigned char c);
/* Is c allowed in a store path name? */
bool store_is_name_char(unsigned char c);
/* Is `base` (n bytes) a valid store entry name "<hash>-<name>"? */
bool store_valid_base(const char *base, size_t n);
/* If `path` is exactly "<dir>/<hash>-<name>", returns a pointer to its
 * base name, else NULL. */
const char *store_path_base(const struct store *st, const char *path);

/* Finds every store path that `s` mentions ("<dir>/<hash>-<name>"), the
 * way string context makes Nix record them, and calls fn with its base
 * name (n bytes). */
void store_find_refs(const struct store *st, const char *s,
		     void (*fn)(void *ctx, const char *base, size_t n), void *ctx);

#endif
