/* gcroots: Nix GC roots for the closures being served. */
#include "gcroots.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

char *gcroots_default(const struct store *st)
{
	if (!st->db)
		return NULL;
	/* .../var/nix/db/db.sqlite -> .../var/nix/gcroots */
	char *d = xstrdup(st->db);
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(d, '/');
		if (!slash || slash == d) {
			free(d);
			return NULL;
		}
		*slash = 0;
	}
	char *g = xasprintf("%s/gcroots", d);
	free(d);
	struct stat sb;
	if (stat(g, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		free(g);
		return NULL;
	}
	return g;
}

static void remove_dir(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				unlinkat(dirfd(d), de->d_name, 0);
		if (d)
			closedir(d);
		else
			close(fd);
	}
	unlinkat(parent, name, AT_REMOVEDIR);
}

/* Is `name` one gcroots_open makes: PID, or PID.N? */
static bool roots_dir_name(const char *name)
{
	char *end;
	long v = strtol(name, &end, 10);
	if (v <= 0 || end == name)
		return false;
	if (*end == '.') {
		const char *n = end + 1;
		v = strtol(n, &end, 10);
		if (v <= 0 || end == n)
			return false;
	}
	return !*end;
}

/* Roots left by a daemon that died: every daemon holds an exclusive
 * flock on its own directory for as long as it runs (a lock the kernel
 * drops when it dies, however it dies), so a directory whose lock can be
 * taken is stale. Called with the lock on `topfd` held, so that no daemon
 * is between creating its directory and locking it. */
static void remove_stale(int topfd)
{
	int fd = openat(topfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!roots_dir_name(de->d_name))
			continue;
		int dfd =
		    openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			continue;
		if (flock(dfd, LOCK_EX | LOCK_NB) == 0)
			remove_dir(dirfd(d), de->d_name);
		close(dfd);
	}
	closedir(d);
}

void gcroots_init(struct gcroots *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	g->fd = -1;
}

errint_t gcroots_open(struct gcroots *g, const char *dir)
{
	char *top = xasprintf("%s/bundlefs", dir);
	if (mkdir(top, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		free(top);
		return -e;
	}
	int topfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (topfd < 0) {
		int e = errno;
		free(top);
		return -e;
	}
	flock(topfd, LOCK_EX);
	remove_stale(topfd);
	/* Named by the pid, unless a live daemon has that name: one with
	 * the same pid in another PID namespace, or the successor of a
	 * daemon whose pid this one has now (stale ones are gone, and none
	 * is ever removed but by its owner or as stale). */
	char *mine = xasprintf("%s/%d", top, (int)getpid());
	errint_t e = 0;
	for (unsigned n = 1; mkdir(mine, 0755) < 0; n++) {
		if (errno != EEXIST || n > 1000) {
			e = -errno;
			break;
		}
		free(mine);
		mine = xasprintf("%s/%d.%u", top, (int)getpid(), n);
	}
	free(top);
	if (e == 0 && (g->fd = open(mine, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		e = -errno;
	else if (e == 0 && flock(g->fd, LOCK_EX | LOCK_NB) < 0)
		e = -errno;
	close(topfd); /* and with it the lock on the top directory */
	if (e < 0) {
		if (g->fd >= 0) {
			close(g->fd);
			rmdir(mine);
		}
		g->fd = -1;
		free(mine);
		return e;
	}
	g->dir = mine;
	return 0;
}

/* How many bundles root a store path. Entries stay once made: there are
 * as many as store paths ever served. */
struct rootcount {
	unsigned n;
};

static struct rootcount *count_of(struct gcroots *g, const char *base)
{
	size_t len = strlen(base);
	struct rootcount *c = strmap_get(&g->counts, base, len);
	if (!c) {
		c = arena_alloc(&g->names, sizeof(*c));
		strmap_put(&g->counts, arena_strndup(&g->names, base, len), len, c);
	}
	return c;
}

void gcroots_adopt(struct gcroots *g, int fd, const char *dir)
{
	g->fd = fd;
	g->dir = xstrdup(dir);
}

void gcroots_release(struct gcroots *g)
{
	free(g->dir);
	g->dir = NULL;
	g->fd = -1;
}

errint_t gcroots_add(struct gcroots *g, const struct store *st, const char *const *bases, size_t n)
{
	errint_t rc = 0;
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < n && g->fd >= 0; i++) {
		if (count_of(g, bases[i])->n++)
			continue;
		char *target = xasprintf("%s/%s", st->dir, bases[i]);
		if (symlinkat(target, g->fd, bases[i]) < 0 && errno != EEXIST)
			rc = -errno;
		free(target);
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}

void gcroots_remove(struct gcroots *g, const struct store *st, const char *const *bases, size_t n)
{
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < n && g->fd >= 0; i++) {
		struct rootcount *c = count_of(g, bases[i]);
		if (c->n && --c->n == 0)
			unlinkat(g->fd, bases[i], 0);
	}
	pthread_mutex_unlock(&g->lock);
}

void gcroots_close(struct gcroots *g)
{
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
	if (g->dir)
		remove_dir(AT_FDCWD, g->dir);
	free(g->dir);
	g->dir = NULL;
	strmap_free(&g->counts);
	arena_free(&g->names);
	pthread_mutex_destroy(&g->lock);
}
