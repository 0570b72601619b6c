/* backing: openat2-confined, symlink-free access to the real store. */
#include "backing.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void backing_init(struct backing *b, int storefd, bool force_walk, void (*reclaim)(void *ctx),
		  void *ctx)
{
	b->storefd = storefd;
	b->walk = force_walk;
	b->reclaim = reclaim;
	b->reclaim_ctx = ctx;
	atomic_init(&b->no_openat2, false);
	atomic_init(&b->no_noatime, false);
}

/* The fallback walk: every component but the last must be a real
 * directory (O_DIRECTORY|O_NOFOLLOW fails on a symlink), and "." and ".."
 * are refused. */
static errint_t walk(int dfd, const char *rel, int flags)
{
	char *buf = xstrdup(rel), *p = buf;
	int fd, base = dfd, rc;
	for (;;) {
		char *slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = 0;
		if (!strcmp(p, "..") || !strcmp(p, ".") || !*p) {
			rc = -ENOENT;
			goto out;
		}
		fd = openat(dfd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (dfd != base)
			close(dfd);
		dfd = base;
		if (fd < 0) {
			rc = e == ENOTDIR ? -ELOOP : -e;
			goto out;
		}
		dfd = fd;
		p = slash + 1;
	}
	if (!strcmp(p, "..") || !strcmp(p, ".")) {
		rc = -ENOENT;
		goto out;
	}
	fd = openat(dfd, p, flags | O_NOFOLLOW | O_CLOEXEC);
	rc = fd < 0 ? -errno : fd;
out:
	if (dfd != base)
		close(dfd);
	free(buf);
	return rc;
}

static errint_t beneath(struct backing *b, int dfd, const char *rel, int flags)
{
	if (!b->walk && !atomic_load_explicit(&b->no_openat2, memory_order_relaxed)) {
		struct open_how how = {
		    .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS)
			return -errno;
		atomic_store_explicit(&b->no_openat2, true, memory_order_relaxed);
	}
	return walk(dfd, rel, flags);
}

/* Paths deeper than PATH_MAX are resolved a piece at a time, each piece
 * beneath the directory the previous one reached. */
static errint_t confined_open(struct backing *b, const char *rel, int flags)
{
	int storefd = b->storefd;
	if (strlen(rel) < PATH_MAX)
		return beneath(b, storefd, rel, flags);
	int dfd = storefd;
	const char *p = rel;
	while (strlen(p) >= PATH_MAX) {
		const char *cut = p + PATH_MAX - 1;
		while (cut > p && *cut != '/')
			cut--;
		if (cut == p) {
			if (dfd != storefd)
				close(dfd);
			return -ENAMETOOLONG;
		}
		char *piece = xstrndup(p, (size_t)(cut - p));
		int fd = beneath(b, dfd, piece, O_PATH | O_DIRECTORY);
		free(piece);
		if (dfd != storefd)
			close(dfd);
		if (fd < 0)
			return fd;
		dfd = fd;
		p = cut + 1;
	}
	int fd = beneath(b, dfd, p, flags);
	if (dfd != storefd)
		close(dfd);
	return fd;
}

/* Out of descriptors: have some closed, and say whether to try again. */
static bool reclaimed(struct backing *b, errint_t e, int *attempts)
{
	if ((e != -EMFILE && e != -ENFILE) || !b->reclaim || (*attempts)++)
		return false;
	b->reclaim(b->reclaim_ctx);
	return true;
}

static errint_t open_path(struct backing *b, const char *rel, struct stat *st)
{
	int fd = confined_open(b, rel, O_PATH);
	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

errint_t backing_open_path(struct backing *b, const char *rel, struct stat *st)
{
	int attempts = 0, fd;
	while ((fd = open_path(b, rel, st)) < 0 && reclaimed(b, fd, &attempts))
		;
	return fd;
}

/* Is `st` the entry `id` (see backing.h)? */
static bool same_entry(const struct stat *st, const struct backing_id *id)
{
	if ((st->st_mode & S_IFMT) != (id->mode & S_IFMT))
		return false;
	if (st->st_dev == id->dev && st->st_ino == id->ino)
		return true;
	return !S_ISDIR(st->st_mode) && store_served_mode(st->st_mode) == id->mode &&
	       (uint64_t)st->st_size == id->size && st->st_mtim.tv_sec == id->mtime &&
	       (uint32_t)st->st_mtim.tv_nsec == id->mtime_ns;
}

/* An O_PATH descriptor of `rel`, if it is still the entry `id`. */
static errint_t open_same(struct backing *b, const char *rel, const struct backing_id *id)
{
	struct stat st;
	int pfd = backing_open_path(b, rel, &st);
	if (pfd < 0)
		return pfd;
	if (!same_entry(&st, id)) {
		close(pfd);
		return -ESTALE;
	}
	return pfd;
}

static errint_t open_checked(struct backing *b, const char *rel, const struct backing_id *id)
{
	cleanup_fd int pfd = open_same(b, rel, id);
	if (pfd < 0)
		return pfd;
	/* Reopen the very inode that was checked, through its O_PATH
	 * descriptor: no second path walk, so nothing can be swapped in. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | (S_ISDIR(id->mode) ? O_DIRECTORY : 0);
	if (!atomic_load_explicit(&b->no_noatime, memory_order_relaxed)) {
		int fd = open(proc, flags | O_NOATIME);
		if (fd >= 0 || errno != EPERM)
			return fd < 0 ? -errno : fd;
		atomic_store_explicit(&b->no_noatime, true, memory_order_relaxed);
	}
	int fd = open(proc, flags);
	return fd < 0 ? -errno : fd;
}

errint_t backing_open_checked(struct backing *b, const char *rel, const struct backing_id *id)
{
	int attempts = 0, fd;
	while ((fd = open_checked(b, rel, id)) < 0 && reclaimed(b, fd, &attempts))
		;
	return fd;
}

ssize_t backing_readlink(struct backing *b, const char *rel, const struct backing_id *id, char *buf,
			 size_t size)
{
	cleanup_fd int pfd = open_same(b, rel, id);
	if (pfd < 0)
		return pfd;
	ssize_t n = readlinkat(pfd, "", buf, size);
	return n < 0 ? -errno : n;
}
