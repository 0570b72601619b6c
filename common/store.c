/* store: store settings and the syntax of store paths. */
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool store_is_base32(unsigned char c)
{
	return (c >= '0' && c <= '9') ||
	       (c >= 'a' && c <= 'z' && c != 'e' && c != 'o' && c != 't' && c != 'u');
}

bool store_is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("+-._?=", c) != NULL;
}

bool store_valid_base(const char *base, size_t n)
{
	if (n < STORE_HASH_LEN + 2 || n > STORE_HASH_LEN + 1 + STORE_NAME_MAX)
		return false;
	for (size_t i = 0; i < STORE_HASH_LEN; i++)
		if (!store_is_base32((unsigned char)base[i]))
			return false;
	if (base[STORE_HASH_LEN] != '-' || base[STORE_HASH_LEN + 1] == '.')
		return false;
	for (size_t i = STORE_HASH_LEN + 1; i < n; i++)
		if (!base[i] || !store_is_name_char((unsigned char)base[i]))
			return false;
	return true;
}

bool store_in_dir(const struct store *st, const char *path)
{
	size_t dl = strlen(st->dir);
	return !strncmp(path, st->dir, dl) && (path[dl] == '/' || !path[dl]);
}

const char *store_path_base(const struct store *st, const char *path)
{
	size_t dl = strlen(st->dir);
	if (strncmp(path, st->dir, dl) != 0 || path[dl] != '/')
		return NULL;
	const char *base = path + dl + 1;
	return store_valid_base(base, strlen(base)) ? base : NULL;
}

void store_find_refs(const struct store *st, const char *s,
		     void (*fn)(void *ctx, const char *base, size_t n), void *ctx)
{
	size_t dl = strlen(st->dir);
	const char *p = s;
	while ((p = strstr(p, st->dir)) != NULL) {
		const char *b = p + dl;
		p = b;
		if (*b != '/')
			continue;
		b++;
		size_t i = 0;
		while (i < STORE_HASH_LEN && store_is_base32((unsigned char)b[i]))
			i++;
		if (i < STORE_HASH_LEN || b[i] != '-')
			continue;
		size_t n = STORE_HASH_LEN + 1;
		while (store_is_name_char((unsigned char)b[n]))
			n++;
		if (n > STORE_HASH_LEN + 1 + STORE_NAME_MAX)
			n = STORE_HASH_LEN + 1 + STORE_NAME_MAX;
		if (store_valid_base(b, n))
			fn(ctx, b, n);
		p = b + n;
	}
}

static char *normalize_dir(const char *path)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	return xstrndup(path, n);
}

void store_init(struct store *st)
{
	memset(st, 0, sizeof(*st));
	st->fd = -1;
	const char *dir = getenv("NIX_STORE_DIR");
	st->dir = normalize_dir(dir && *dir ? dir : STORE_DEFAULT_DIR);
}

void store_free(struct store *st)
{
	free(st->dir);
	free(st->real);
	free(st->db);
	if (st->fd >= 0)
		close(st->fd);
	memset(st, 0, sizeof(*st));
	st->fd = -1;
}

int store_open(struct store *st)
{
	if (st->fd >= 0)
		return 0;
	st->fd = open(st->real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	st->fd_errno = st->fd < 0 ? errno : 0;
	return -st->fd_errno;
}

static bool clean_absolute(const char *p)
{
	if (p[0] != '/')
		return false;
	for (const char *c = p; *c; c++) {
		if (c[0] == '/' && (c[1] == '/' || (c[1] == '.' && (c[2] == '/' || !c[2])) ||
				    (c[1] == '.' && c[2] == '.' && (c[3] == '/' || !c[3]))))
			return false;
	}
	return true;
}

int store_option(struct store *st, const char *opt, const char *val, char **err)
{
	char **slot;
	if (!strcmp(opt, "--store-dir"))
		slot = &st->dir;
	else if (!strcmp(opt, "--real-store"))
		slot = &st->real;
	else if (!strcmp(opt, "--db"))
		slot = &st->db;
	else
		return 0;
	if (!val || !*val) {
		*err = xasprintf("%s needs a value", opt);
		return -1;
	}
	free(*slot);
	if (slot == &st->db) {
		st->db_set = true;
		st->db_explicit = strcmp(val, "none") != 0;
		*slot = strcmp(val, "none") ? xstrdup(val) : NULL;
		return 1;
	}
	*slot = normalize_dir(val);
	if (!clean_absolute(*slot) || !strcmp(*slot, "/")) {
		*err =
		    xasprintf("%s %s: must be a normalized absolute path other than /", opt, val);
		return -1;
	}
	return 1;
}

int store_finish(struct store *st, char **err)
{
	if (!clean_absolute(st->dir) || !strcmp(st->dir, "/")) {
		*err = xasprintf("store directory %s: must be a normalized absolute path other "
				 "than /",
				 st->dir);
		return -1;
	}
	if (!st->real)
		st->real = xstrdup(st->dir);
	if (!st->db_set) {
		/* Nix keeps its state next to the store: /nix/var/nix beside
		 * /nix/store, and likewise for a store kept under another
		 * root. */
		const char *state = getenv("NIX_STATE_DIR");
		if (state && *state && !strcmp(st->real, st->dir)) {
			st->db = xasprintf("%s/db/db.sqlite", state);
		} else {
			const char *slash = strrchr(st->real, '/');
			size_t pl = (size_t)(slash - st->real);
			st->db = xasprintf("%.*s/var/nix/db/db.sqlite", (int)pl, st->real);
		}
		st->db_set = true;
	}
	return 0;
}
