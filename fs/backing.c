/* backing: openat2-confined, symlink-free access to the real store. */
#include "backing.h"
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

static int storefd = -1;
static bool no_openat2;
static bool noatime = true;

int backing_init(const char *real_store)
{
	storefd = open(real_store, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (storefd < 0)
		return -errno;
	return 0;
}

void backing_fini(void)
{
	if (storefd >= 0)
		close(storefd);
	storefd = -1;
}

/* The fallback walk: every component but the last must be a real
 * directory (O_DIRECTORY|O_NOFOLLOW fails on a symlink), and "." and ".."
 * are refused. */
static int walk(int dfd, const char *rel, int flags)
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

static int beneath(int dfd, const char *rel, int flags)
{
	if (!no_openat2) {
		struct open_how how = {
		    .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS)
			return -errno;
		no_openat2 = true;
	}
	return walk(dfd, rel, flags);
}

/* Paths deeper than PATH_MAX are resolved a piece at a time, each piece
 * beneath the directory the previous one reached. */
static int confined_open(const char *rel, int flags)
{
	if (strlen(rel) < PATH_MAX)
		return beneath(storefd, rel, flags);
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
		int fd = beneath(dfd, piece, O_PATH | O_DIRECTORY);
		free(piece);
		if (dfd != storefd)
			close(dfd);
		if (fd < 0)
			return fd;
		dfd = fd;
		p = cut + 1;
	}
	int fd = beneath(dfd, p, flags);
	if (dfd != storefd)
		close(dfd);
	return fd;
}

int backing_open_path(const char *rel, struct stat *st)
{
	int fd = confined_open(rel, O_PATH);
	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int backing_open_checked(const char *rel, uint64_t dev, uint64_t ino, bool dir)
{
	struct stat st;
	int pfd = backing_open_path(rel, &st);
	if (pfd < 0)
		return pfd;
	if (st.st_dev != dev || st.st_ino != ino ||
	    (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
		close(pfd);
		return -ESTALE;
	}
	/* Reopen the very inode that was checked, through its O_PATH
	 * descriptor: no second path walk, so nothing can be swapped in. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | (dir ? O_DIRECTORY : 0);
	int fd = -1;
	if (noatime) {
		fd = open(proc, flags | O_NOATIME);
		if (fd < 0 && errno == EPERM)
			noatime = false;
	}
	if (fd < 0 && !noatime)
		fd = open(proc, flags);
	int e = errno;
	close(pfd);
	return fd < 0 ? -e : fd;
}

ssize_t backing_readlink(const char *rel, uint64_t dev, uint64_t ino, char *buf, size_t size)
{
	struct stat st;
	int pfd = backing_open_path(rel, &st);
	if (pfd < 0)
		return pfd;
	if (st.st_dev != dev || st.st_ino != ino || !S_ISLNK(st.st_mode)) {
		close(pfd);
		return -ESTALE;
	}
	ssize_t n = readlinkat(pfd, "", buf, size);
	int e = errno;
	close(pfd);
	return n < 0 ? -e : n;
}

void backing_attr(const struct stat *st, struct nattr *a)
{
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	/* The Nix store never has setuid or setgid files; one planted there
	 * is served without those bits. */
	a->mode = S_ISDIR(st->st_mode) ? st->st_mode : st->st_mode & ~(mode_t)(S_ISUID | S_ISGID);
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->blksize = (uint32_t)st->st_blksize;
	a->atime = st->st_atim.tv_sec;
	a->atime_ns = (uint32_t)st->st_atim.tv_nsec;
	a->mtime = st->st_mtim.tv_sec;
	a->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
	a->ctime = st->st_ctim.tv_sec;
	a->ctime_ns = (uint32_t)st->st_ctim.tv_nsec;
}
