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
#include <sys/stat.h>

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
	int fd;		  /* the real store directory (O_PATH), once opened */
	int fd_errno;	  /* why it could not be opened, or 0 */
};

/* Fills in defaults (honouring NIX_STORE_DIR and NIX_STATE_DIR as Nix
 * does). */
void store_init(struct store *st);
void store_free(struct store *st);

/* Sets one store setting by its option name: "--store-dir", "--real-store"
 * or "--db". Returns 1 when it was applied, 0 when `opt` is not a store
 * setting, -1 on a bad value with a message in err. */
int store_option(struct store *st, const char *opt, const char *val, char **err);
/* Validates and finishes the settings (normalises paths, derives the
 * default database location). Returns 0 or -1 with a message in err. */
int store_finish(struct store *st, char **err);
/* Opens the real store directory once, for everything that reads the
 * store (st->fd). Returns 0 or -errno (also kept in st->fd_errno). */
int store_open(struct store *st);

/* The file types a store path may hold and bundlefs serves: directories,
 * regular files and symlinks. FIFOs, sockets and devices planted in a
 * store are never listed, opened or copied. */
static inline bool store_servable(mode_t m)
{
	return S_ISDIR(m) || S_ISREG(m) || S_ISLNK(m);
}

/* The mode a store entry is served (and copied) with: setuid and setgid
 * dropped from files, since a Nix store never has them. */
static inline mode_t store_served_mode(mode_t m)
{
	return S_ISDIR(m) ? m : m & ~(mode_t)(S_ISUID | S_ISGID);
}

/* Is c a character of Nix's base-32 alphabet (0-9, a-z without e o t u)? */
bool store_is_base32(unsigned char c);
/* Is c allowed in a store path name? */
bool store_is_name_char(unsigned char c);
/* Is `base` (n bytes) a valid store entry name "<hash>-<name>"? */
bool store_valid_base(const char *base, size_t n);
/* Is `path` (normalized) the store directory or inside it? */
bool store_in_dir(const struct store *st, const char *path);
/* If `path` is exactly "<dir>/<hash>-<name>", returns a pointer to its
 * base name, else NULL. */
const char *store_path_base(const struct store *st, const char *path);

/* Finds every store path that `s` mentions ("<dir>/<hash>-<name>"), the
 * way string context makes Nix record them, and calls fn with its base
 * name (n bytes). */
void store_find_refs(const struct store *st, const char *s,
		     void (*fn)(void *ctx, const char *base, size_t n), void *ctx);

#endif
