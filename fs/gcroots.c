/* gcroots: Nix GC roots for the closures being served. */
#include "gcroots.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *mine; /* <gcroots>/bundlefs/<pid> */
static int minefd = -1;

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

/* Roots left by a daemon that was killed: its pid no longer runs
 * bundlefs. */
static void remove_stale(const char *top)
{
	int fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid())
			continue;
		char comm[64] = "";
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		FILE *f = fopen(path, "r");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		if (strncmp(comm, "bundlefs", 8) != 0)
			remove_dir(dirfd(d), de->d_name);
	}
	closedir(d);
}

int gcroots_init(const char *dir)
{
	char *top = xasprintf("%s/bundlefs", dir);
	if (mkdir(top, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		free(top);
		return -e;
	}
	remove_stale(top);
	mine = xasprintf("%s/%d", top, (int)getpid());
	free(top);
	remove_dir(AT_FDCWD, mine);
	if (mkdir(mine, 0755) < 0 ||
	    (minefd = open(mine, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		int e = errno;
		free(mine);
		mine = NULL;
		return -e;
	}
	return 0;
}

int gcroots_add(const struct store *st, const char *const *bases, size_t n)
{
	int rc = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n && minefd >= 0; i++) {
		char *target = xasprintf("%s/%s", st->dir, bases[i]);
		if (symlinkat(target, minefd, bases[i]) < 0 && errno != EEXIST)
			rc = -errno;
		free(target);
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void gcroots_fini(void)
{
	if (!mine)
		return;
	if (minefd >= 0)
		close(minefd);
	minefd = -1;
	remove_dir(AT_FDCWD, mine);
	free(mine);
	mine = NULL;
}
