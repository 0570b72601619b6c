/* fsguard: a path walk that refuses to enter bundlefs mounts. */
#include "fsguard.h"
#include "mounts.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_SYMLINKS 40

struct guard {
	struct guarded {
		dev_t dev;
		char *point;
	} * v; /* the bundlefs mounts */
	size_t n, cap;
};

static bool add_mount(void *ctx, const struct mountent *m)
{
	struct guard *g = ctx;
	if (mounts_is_bundlefs(m)) {
		GROW(g->v, g->n, g->cap);
		g->v[g->n++] = (struct guarded){makedev(m->major, m->minor), xstrdup(m->point)};
	}
	return true;
}

/* Reads the bundlefs mounts from /proc/self/mountinfo. */
static void guard_load(struct guard *g)
{
	mounts_each(add_mount, g);
}

static void guard_free(struct guard *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->v[i].point);
	free(g->v);
}

/* Is `fd` on a bundlefs mount? Asks the filesystem nothing. */
static const char *guarded(const struct guard *g, int fd)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_TYPE,
		  &sx) < 0)
		return NULL;
	dev_t dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].dev == dev)
			return g->v[i].point;
	return NULL;
}

/* Who wants to hear of the places a walk depends on (fsguard_links). */
struct visit {
	void (*fn)(void *ctx, int dirfd, const char *name, bool link);
	void *ctx;
};

static void tell(const struct visit *v, int dirfd, const char *name, bool link)
{
	if (v)
		v->fn(v->ctx, dirfd, name, link);
}

/* Walks `path` from `dfd` (owned), following symlinks; `last` says that
 * the end of `path` is the end of the whole walk. Returns an O_PATH fd of
 * the last component, or -1 with errno. */
static int walk(const struct guard *g, int dfd, const char *path, int *links, char **mnt,
		const struct visit *v, bool last)
{
	char *copy = xstrdup(path), *save = NULL;
	const char *mp;
	int e = 0;
	if ((mp = guarded(g, dfd))) {
		e = EXDEV;
		goto out;
	}
	char *next = strtok_r(copy, "/", &save);
	for (char *c = next; c; c = next) {
		next = strtok_r(NULL, "/", &save);
		if (!strcmp(c, "."))
			continue;
		bool final = last && !next;
		int fd = openat(dfd, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			e = errno;
			if (e == ENOENT)
				tell(v, dfd, c, false); /* where it would appear */
			goto out;
		}
		if ((mp = guarded(g, fd))) {
			close(fd);
			e = EXDEV;
			goto out;
		}
		struct stat st;
		bool link = fstat(fd, &st) == 0 && S_ISLNK(st.st_mode);
		if (link || final)
			tell(v, dfd, c, link);
		if (link) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
			close(fd);
			if (n < 0 || ++*links > MAX_SYMLINKS) {
				e = n < 0 ? errno : ELOOP;
				goto out;
			}
			target[n] = 0;
			int base = target[0] == '/' ? open("/", O_PATH | O_CLOEXEC)
						    : openat(dfd, ".", O_PATH | O_CLOEXEC);
			fd = base < 0 ? -1 : walk(g, base, target, links, mnt, v, final);
			if (fd < 0) {
				e = errno;
				goto out_quiet;
			}
		}
		close(dfd);
		dfd = fd;
	}
	free(copy);
	return dfd;
out:
	if (e == EXDEV && !*mnt)
		*mnt = xstrdup(mp);
out_quiet:
	close(dfd);
	free(copy);
	errno = e;
	return -1;
}

/* The walk from where `path` starts; returns as walk does. */
static int walk_path(const char *path, char **mnt, const struct visit *v)
{
	struct guard g = {0};
	guard_load(&g);
	int links = 0;
	int base = path[0] == '/' ? open("/", O_PATH | O_CLOEXEC) : open(".", O_PATH | O_CLOEXEC);
	int fd = base < 0 ? -1 : walk(&g, base, path, &links, mnt, v, true);
	int e = errno;
	guard_free(&g);
	errno = e;
	return fd;
}

int fsguard_open(const char *path, int flags, char **mnt)
{
	int fd = walk_path(path, mnt, NULL);
	if (fd < 0 || (flags & O_PATH))
		return fd;
	/* Reopen what was walked; it is not on a bundlefs mount. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int rfd = open(proc, flags | O_CLOEXEC);
	int e = errno;
	close(fd);
	errno = e;
	return rfd;
}

int fsguard_links(const char *path, void (*fn)(void *ctx, int dirfd, const char *name, bool link),
		  void *ctx)
{
	char *mnt = NULL;
	struct visit v = {fn, ctx};
	int fd = walk_path(path, &mnt, &v);
	free(mnt);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}
