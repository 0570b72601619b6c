/* image: a closure's metadata written as an EROFS image (libcomposefs). */
#include "image.h"

#include <xxhash.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifdef BUNDLEFS_HAVE_COMPOSEFS
#include <libcomposefs/lcfs-writer.h>
#endif

#ifdef BUNDLEFS_COMPOSEFS_LAZY_CRYPTO
#include "netlib.h"

/* libcomposefs's calls to libcrypto (fs-verity digests, which no image
 * here asks for), sent here by the linker (--wrap, CMakeLists.txt): to
 * the libcrypto loaded when first used. Without it the first one fails
 * (no context), and so does the digest. */
static const struct netlib_crypto *crypto(void)
{
	char *err = NULL;
	const struct netlib_crypto *c = netlib_crypto(&err);
	free(err);
	return c;
}

EVP_MD_CTX *__wrap_EVP_MD_CTX_new(void)
{
	const struct netlib_crypto *c = crypto();
	return c ? c->MD_CTX_new() : NULL;
}

void __wrap_EVP_MD_CTX_free(EVP_MD_CTX *ctx)
{
	if (ctx)
		crypto()->MD_CTX_free(ctx);
}

/* (These come only with a context, so with libcrypto.) */
const EVP_MD *__wrap_EVP_sha256(void)
{
	return crypto()->sha256();
}

int __wrap_EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *md, ENGINE *e)
{
	return crypto()->DigestInit_ex(ctx, md, e);
}

int __wrap_EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *p, size_t n)
{
	return crypto()->DigestUpdate(ctx, p, n);
}

int __wrap_EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *n)
{
	return crypto()->DigestFinal_ex(ctx, md, n);
}
#endif

/* What an image holds and how: a change to either is another key. */
#define IMAGE_FORMAT "bundlefs-image 1"

/* Deeper directories than this are not served (no store has them). */
#define MAX_DEPTH 256

bool image_built_in(void)
{
#ifdef BUNDLEFS_HAVE_COMPOSEFS
	return true;
#else
	return false;
#endif
}

void image_key(const struct store *st, const struct closure *c, char key[IMAGE_KEY_LEN])
{
	XXH3_state_t *h = XXH3_createState();
	XXH3_128bits_reset(h);
	XXH3_128bits_update(h, IMAGE_FORMAT, sizeof(IMAGE_FORMAT));
	XXH3_128bits_update(h, st->dir, strlen(st->dir) + 1);
	XXH3_128bits_update(h, st->real, strlen(st->real) + 1);
	for (size_t i = 0; i < c->n; i++) {
		const struct stat *s = &c->st[i];
		uint64_t id[4] = {(uint64_t)s->st_ino, (uint64_t)s->st_ctim.tv_sec,
				  (uint64_t)s->st_ctim.tv_nsec, (uint64_t)s->st_dev};
		XXH3_128bits_update(h, c->base[i], strlen(c->base[i]) + 1);
		XXH3_128bits_update(h, id, sizeof(id));
	}
	XXH128_hash_t v = XXH3_128bits_digest(h);
	XXH3_freeState(h);
	snprintf(key, IMAGE_KEY_LEN, "%016llx%016llx", (unsigned long long)v.high64,
		 (unsigned long long)v.low64);
}

/* An image carries the hash of its bytes (XXH3-64) in an xattr, so that
 * one damaged in the cache (cut short, changed) is made again rather than
 * mounted: the kernel mounts an image whose superblock is whole however
 * much of the rest is missing, and its files would then fail to read. */
#define SEAL_XATTR "user.bundlefs.xxh3"

/* Is the image at `path` whole, as its seal says? */
static bool intact(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	char want[17] = "", buf[1 << 16];
	ssize_t n = fgetxattr(fd, SEAL_XATTR, want, 16);
	bool ok;
	if (n < 0 && errno == ENOTSUP) {
		ok = true; /* (unsealed: nothing to check it against) */
	} else if (n != 16) {
		ok = false;
	} else {
		XXH3_state_t *h = XXH3_createState();
		XXH3_64bits_reset(h);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			XXH3_64bits_update(h, buf, (size_t)n);
		char got[17];
		snprintf(got, sizeof(got), "%016llx", (unsigned long long)XXH3_64bits_digest(h));
		XXH3_freeState(h);
		ok = n == 0 && !strcmp(got, want);
	}
	close(fd);
	return ok;
}

#ifdef BUNDLEFS_HAVE_COMPOSEFS

static void seal(int fd, uint64_t hash)
{
	char hex[17];
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	/* (A filesystem without user xattrs keeps images unsealed.) */
	fsetxattr(fd, SEAL_XATTR, hex, 16, 0);
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

struct walk {
	struct buf rel; /* the entry's path below the store: its redirect */
	size_t entries;
	char *msg;
};

__attribute__((format(printf, 3, 4))) static errint_t fail(struct walk *w, errint_t e,
							   const char *fmt, ...)
{
	if (!w->msg) {
		va_list ap;
		va_start(ap, fmt);
		if (vasprintf(&w->msg, fmt, ap) < 0)
			w->msg = NULL;
		va_end(ap);
	}
	return e;
}

static struct lcfs_node_s *dir_node(struct lcfs_node_s *parent, const char *name)
{
	struct lcfs_node_s *n = lcfs_node_new();
	if (!n)
		abort(); /* (as xmalloc does) */
	lcfs_node_set_mode(n, S_IFDIR | 0755);
	if (parent && lcfs_node_add_child(parent, n, name) < 0) {
		lcfs_node_unref(n);
		return NULL;
	}
	return n;
}

/* Adds entry `name` of directory `at` below `parent` (and, for a
 * directory, all it holds); w->rel is its path below the store. Entries
 * the FUSE tree does not serve are left out. Returns 0 or -errno. */
static errint_t add(struct walk *w, struct lcfs_node_s *parent, int at, const char *name,
		    unsigned depth)
{
	struct stat st;
	char target[PATH_MAX];
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(w, -errno, "%s: %s", w->rel.data, strerror(errno));
	if (!store_servable(st.st_mode) || (S_ISDIR(st.st_mode) && depth >= MAX_DEPTH))
		return 0;
	struct lcfs_node_s *n = lcfs_node_new();
	if (!n)
		abort();
	errint_t e = 0;
	lcfs_node_set_mode(n, store_served_mode(st.st_mode));
	lcfs_node_set_uid(n, st.st_uid);
	lcfs_node_set_gid(n, st.st_gid);
	lcfs_node_set_mtime(n, &st.st_mtim);
	if (S_ISREG(st.st_mode)) {
		lcfs_node_set_size(n, (uint64_t)st.st_size);
		/* (The writer stores "/" and the payload as the redirect.) */
		if (st.st_size > 0 && lcfs_node_set_payload(n, w->rel.data) < 0)
			e = -errno;
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t len = readlinkat(at, name, target, sizeof(target) - 1);
		if (len < 0)
			e = -errno;
		else if ((target[len] = 0, lcfs_node_set_symlink_payload(n, target) < 0))
			e = -errno;
	}
	if (e == 0 && lcfs_node_add_child(parent, n, name) < 0)
		e = -errno;
	if (e < 0) {
		lcfs_node_unref(n);
		return fail(w, e, "%s: %s", w->rel.data, strerror(-e));
	}
	w->entries++;
	if (!S_ISDIR(st.st_mode))
		return 0;
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		e = -errno;
		if (fd >= 0)
			close(fd);
		return fail(w, e, "%s: %s", w->rel.data, strerror(-e));
	}
	size_t len = w->rel.len;
	struct dirent *de;
	while (e == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		buf_addc(&w->rel, '/');
		buf_adds(&w->rel, de->d_name);
		e = add(w, n, dirfd(d), de->d_name, depth + 1);
		w->rel.len = len;
		w->rel.data[len] = 0;
	}
	if (e == 0 && errno)
		e = fail(w, -errno, "%s: %s", w->rel.data, strerror(errno));
	closedir(d);
	return e;
}

/* Where the writer's bytes go: the file, and their hash. */
struct sink {
	int fd;
	XXH3_state_t *h;
};

static ssize_t write_cb(void *file, void *buf, size_t count)
{
	struct sink *k = file;
	XXH3_64bits_update(k->h, buf, count);
	return write_full(k->fd, buf, count) < 0 ? -1 : (ssize_t)count;
}

/* Walks the closure and writes its image to `fd`. */
static errint_t build(const struct store *st, const struct closure *c, int fd,
		      struct image_stats *stats, char **msg)
{
	double t0 = now_ms();
	struct walk w = {0};
	struct lcfs_node_s *root = dir_node(NULL, NULL), *under = root;
	errint_t e = 0;
	/* The store directory's components: "nix", "store". */
	char *dir = xstrdup(st->dir), *save = NULL;
	for (char *p = strtok_r(dir, "/", &save); p && under; p = strtok_r(NULL, "/", &save))
		under = dir_node(under, p);
	free(dir);
	if (!under)
		e = fail(&w, -EINVAL, "%s: not a store directory an image can hold", st->dir);
	for (size_t i = 0; e == 0 && i < c->n; i++) {
		buf_reset(&w.rel);
		buf_adds(&w.rel, c->base[i]);
		e = closure_absent(c, i)
			? fail(&w, -EAGAIN, "%s/%s: not in the store yet", st->dir, c->base[i])
			: add(&w, under, st->fd, c->base[i], 0);
	}
	double t1 = now_ms();
	if (e == 0) {
		struct sink k = {fd, XXH3_createState()};
		XXH3_64bits_reset(k.h);
		struct lcfs_write_options_s o = {.format = LCFS_FORMAT_EROFS,
						 .version = LCFS_DEFAULT_VERSION_MIN,
						 .max_version = LCFS_DEFAULT_VERSION_MAX,
						 .file = &k,
						 .file_write_cb = write_cb};
		if (lcfs_write_to(root, &o) < 0)
			e = fail(&w, errno ? -errno : -EIO, "writing the image: %s",
				 strerror(errno ? errno : EIO));
		else
			seal(fd, XXH3_64bits_digest(k.h));
		XXH3_freeState(k.h);
	}
	lcfs_node_unref(root);
	stats->entries = w.entries;
	stats->walk_ms = t1 - t0;
	stats->write_ms = now_ms() - t1;
	buf_free(&w.rel);
	*msg = w.msg;
	return e;
}

#else

static errint_t build(const struct store *st, const struct closure *c, int fd,
		      struct image_stats *stats, char **msg)
{
	*msg = xstrdup("this bundlefs was built without libcomposefs");
	return -ENOTSUP;
}

#endif

errint_t image_ensure(const struct store *st, const struct closure *c, const char *dir, char **path,
		      struct image_stats *stats, char **msg)
{
	*path = *msg = NULL;
	*stats = (struct image_stats){0};
	if (!image_built_in()) {
		*msg = xstrdup("this bundlefs was built without libcomposefs");
		return -ENOTSUP;
	}
	char key[IMAGE_KEY_LEN];
	image_key(st, c, key);
	char *final = xasprintf("%s/%s.erofs", dir, key);
	struct stat s;
	if (stat(final, &s) == 0 && S_ISREG(s.st_mode)) {
		if (intact(final)) {
			stats->bytes = (uint64_t)s.st_size;
			*path = final;
			return 0;
		}
		stats->damaged = true;
		unlink(final);
	}
	char *top = xstrdup(dir);
	errint_t e = mkdir_p(top, 0755);
	free(top);
	char *tmp = xasprintf("%s/.%s.%d", dir, key, (int)getpid());
	int fd = -1;
	if (e < 0) {
		*msg = xasprintf("%s: %s", dir, strerror(-e));
	} else if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		e = -errno;
		*msg = xasprintf("%s: %s", tmp, strerror(-e));
	} else {
		e = build(st, c, fd, stats, msg);
		if (e == 0 && (fstat(fd, &s) < 0 || fsync(fd) < 0))
			e = -errno;
		if (close(fd) < 0 && e == 0)
			e = -errno;
		if (e == 0 && rename(tmp, final) < 0)
			e = -errno;
		if (e < 0 && !*msg)
			*msg = xasprintf("%s: %s", final, strerror(-e));
		if (e < 0)
			unlink(tmp);
	}
	free(tmp);
	if (e < 0) {
		free(final);
		return e;
	}
	stats->bytes = (uint64_t)s.st_size;
	stats->built = true;
	*path = final;
	return 0;
}
