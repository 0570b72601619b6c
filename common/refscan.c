/* refscan: Nix-style reference scanning of store paths. */
#include "refscan.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCAN_MAX_DEPTH 1024

int refscan_candidates(int storefd, struct strmap *hashes, struct arena *a)
{
	int fd = openat(storefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -1;
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(dir))) {
		size_t n = strlen(de->d_name);
		/* Nix keeps "<path>.lock" files beside paths being built; they
		 * are not store paths. */
		if (!store_valid_base(de->d_name, n) ||
		    (n > 5 && !strcmp(de->d_name + n - 5, ".lock")))
			continue;
		char *base = arena_strndup(a, de->d_name, n);
		strmap_put(hashes, base, STORE_HASH_LEN, base);
	}
	int e = errno;
	closedir(dir);
	errno = e;
	return e ? -1 : 0;
}

struct scan {
	char *buf; /* REFSCAN_CHUNK bytes */
	const struct strmap *hashes;
	void (*fn)(void *ctx, const char *base);
	void *ctx;
	const char *self;
	char carry[STORE_HASH_LEN];
	size_t ncarry;
};

/* The search Nix uses: test a 32-byte window from its end, and on a byte
 * outside the base-32 alphabet jump past it. */
static void scan_bytes(struct scan *s, const char *p, size_t n)
{
	size_t i = 0;
	while (i + STORE_HASH_LEN <= n) {
		size_t j = STORE_HASH_LEN;
		while (j > 0 && store_is_base32((unsigned char)p[i + j - 1]))
			j--;
		if (j) {
			i += j;
			continue;
		}
		const char *base = strmap_get(s->hashes, p + i, STORE_HASH_LEN);
		if (base && base != s->self)
			s->fn(s->ctx, base);
		i++;
	}
}

/* Scans one stream (a name, a target, a file) that may arrive in chunks:
 * the last bytes of a chunk are kept to find hashes split across two. */
static void scan_chunk(struct scan *s, const char *p, size_t n)
{
	enum { KEEP = STORE_HASH_LEN - 1 };
	if (s->ncarry) {
		/* Windows that start in the carried bytes end within the first
		 * KEEP bytes of this chunk. */
		char tmp[2 * KEEP];
		size_t take = n < KEEP ? n : KEEP;
		memcpy(tmp, s->carry, s->ncarry);
		memcpy(tmp + s->ncarry, p, take);
		scan_bytes(s, tmp, s->ncarry + take);
	}
	scan_bytes(s, p, n);
	if (n >= KEEP) {
		memcpy(s->carry, p + n - KEEP, KEEP);
		s->ncarry = KEEP;
	} else {
		size_t drop = s->ncarry + n > KEEP ? s->ncarry + n - KEEP : 0;
		memmove(s->carry, s->carry + drop, s->ncarry - drop);
		memcpy(s->carry + s->ncarry - drop, p, n);
		s->ncarry = s->ncarry - drop + n;
	}
}

static void scan_whole(struct scan *s, const char *p, size_t n)
{
	s->ncarry = 0;
	scan_bytes(s, p, n);
}

static int scan_file(struct scan *s, int dirfd, const char *name, const char *what, char **err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err = xasprintf("%s: %s", what, fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char *bufp = s->buf;
	s->ncarry = 0;
	for (;;) {
		ssize_t r = read(fd, bufp, REFSCAN_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err = xasprintf("%s: %s", what, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		scan_chunk(s, bufp, (size_t)r);
	}
	close(fd);
	return 0;
}

static int scan_link(struct scan *s, int dirfd, const char *name, const char *what, char **err)
{
	char target[4097];
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n < 0) {
		*err = xasprintf("%s: %s", what, strerror(errno));
		return -1;
	}
	scan_whole(s, target, (size_t)n);
	return 0;
}

static int scan_dir(struct scan *s, int fd, struct buf *path, unsigned depth, char **err)
{
	if (depth > SCAN_MAX_DEPTH) {
		*err = xasprintf("%s: deeper than %d levels", path->data, SCAN_MAX_DEPTH);
		close(fd);
		return -1;
	}
	DIR *dir = fdopendir(fd);
	if (!dir) {
		*err = xasprintf("%s: %s", path->data, strerror(errno));
		close(fd);
		return -1;
	}
	int r = 0;
	struct dirent *de;
	size_t plen = path->len;
	while (r == 0 && (errno = 0, de = readdir(dir))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		path->len = plen;
		buf_addc(path, '/');
		buf_adds(path, name);
		struct stat st;
		if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			*err = xasprintf("%s: %s", path->data, strerror(errno));
			r = -1;
			break;
		}
		if (!store_servable(st.st_mode))
			continue; /* not part of what is served: no references */
		scan_whole(s, name, strlen(name));
		if (S_ISREG(st.st_mode)) {
			r = scan_file(s, dirfd(dir), name, path->data, err);
		} else if (S_ISLNK(st.st_mode)) {
			r = scan_link(s, dirfd(dir), name, path->data, err);
		} else {
			int sub = openat(dirfd(dir), name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				*err = xasprintf("%s: %s", path->data, strerror(errno));
				r = -1;
			} else {
				r = scan_dir(s, sub, path, depth + 1, err);
			}
		}
	}
	if (r == 0 && errno) {
		*err = xasprintf("%s: %s", path->data, strerror(errno));
		r = -1;
	}
	path->len = plen;
	path->data[plen] = 0;
	closedir(dir);
	return r;
}

int refscan_path(int storefd, const char *base, const struct strmap *hashes,
		 void (*fn)(void *ctx, const char *base), void *ctx, char **err)
{
	struct scan s = {.hashes = hashes, .fn = fn, .ctx = ctx};
	s.self = strmap_get(hashes, base, STORE_HASH_LEN);
	struct stat st;
	if (fstatat(storefd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		*err = xasprintf("%s: %s", base, strerror(errno));
		return -1;
	}
	if (!store_servable(st.st_mode)) {
		*err = xasprintf("%s: not a directory, regular file or symlink", base);
		return -1;
	}
	if (S_ISLNK(st.st_mode))
		return scan_link(&s, storefd, base, base, err);
	s.buf = xmalloc(REFSCAN_CHUNK);
	int r;
	if (S_ISREG(st.st_mode)) {
		r = scan_file(&s, storefd, base, base, err);
	} else {
		int fd = openat(storefd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			*err = xasprintf("%s: %s", base, strerror(errno));
			r = -1;
		} else {
			struct buf path = {0};
			buf_adds(&path, base);
			r = scan_dir(&s, fd, &path, 0, err);
			buf_free(&path);
		}
	}
	free(s.buf);
	return r;
}
