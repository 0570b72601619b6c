/* specwatch: inotify on the directories that hold the spec and every
 * symlink on the way to it, set again after each change.
 *
 * inotify watches a directory, not a path, and only the entries named in
 * it: a `result` link that nix-build repoints leads to a spec file in
 * another store path, which no watch set before sees. So every place the
 * walk depends on (fsguard_links) is watched in its directory, by name,
 * and after each change the walk is done again and the watches follow.
 * Directories in the store are not watched: nothing there ever changes
 * (the links into it live elsewhere). */
#include "specwatch.h"
#include "fsguard.h"
#include "log.h"
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* Entries made, written or renamed in; and the directory itself going,
 * after which the walk leads elsewhere. */
#define WATCH_MASK                                                                                 \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* A name in a watched directory that the walk depends on. */
struct place {
	int wd;
	char *name;
};

/* One walk, and with it (armed) an inotify instance watching its places. */
struct watches {
	int fd; /* inotify, or -1 */
	struct place *v;
	size_t n, cap;
	struct buf walk; /* each place as "DIR DEV:INO NAME", to see if the walk moved */
	errint_t err;	 /* the first place that could not be watched */
};

struct walking {
	const struct bfs *fs;
	struct watches *w;
};

static void on_place(void *ctx, int dirfd, const char *name, bool link)
{
	struct walking *a = ctx;
	struct watches *w = a->w;
	char proc[64], dir[PATH_MAX];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
	ssize_t n = readlink(proc, dir, sizeof(dir) - 1);
	struct stat st;
	if (n < 0 || fstat(dirfd, &st) < 0) {
		if (!w->err)
			w->err = -errno;
		return;
	}
	dir[n] = 0;
	buf_addf(&w->walk, "%s %llu:%llu %s%s\n", dir, (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, name, link ? " ->" : "");
	if (w->fd < 0 || mounts_path_under(dir, a->fs->st.dir) ||
	    mounts_path_under(dir, a->fs->st.real))
		return;
	int wd = inotify_add_watch(w->fd, proc, WATCH_MASK);
	if (wd < 0) {
		if (!w->err)
			w->err = -errno;
		return;
	}
	GROW(w->v, w->n, w->cap);
	w->v[w->n++] = (struct place){wd, xstrdup(name)};
}

static void watches_free(struct watches *w)
{
	if (w->fd >= 0)
		close(w->fd);
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].name);
	free(w->v);
	buf_free(&w->walk);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

/* Walks the spec path; with `arm`, into a new inotify instance that
 * watches every place of the walk. Returns 0 or -errno (when armed: the
 * first place that could not be watched; the others are). */
static errint_t walk(const struct bfs *fs, struct watches *w, bool arm)
{
	memset(w, 0, sizeof(*w));
	w->fd = arm ? inotify_init1(IN_CLOEXEC) : -1;
	if (arm && w->fd < 0)
		return -errno;
	struct walking a = {fs, w};
	int r = fsguard_links(fs->spec_path, on_place, &a);
	buf_addf(&w->walk, "= %d\n", r); /* where it stopped */
	return arm ? w->err : 0;
}

struct specwatch {
	struct bfs *fs;
	struct watches cur; /* read by the thread, which alone sets it again */
};

/* Sets the watches on where the path leads now. A change between the
 * walk and its watches would be missed, so the path is walked again once
 * they are set, and until the two agree (a few times: a path that keeps
 * changing keeps the last watches) all is done again. */
static void rearm(struct specwatch *sw)
{
	for (int i = 0; i < 5; i++) {
		struct watches next, check;
		errint_t e = walk(sw->fs, &next, true);
		if (next.fd < 0) {
			log_warning("cannot watch %s again (%s): reload with SIGHUP",
				    sw->fs->spec_path, strerror(-e));
			return;
		}
		if (e < 0)
			log_warning("cannot watch all the way to %s (%s)", sw->fs->spec_path,
				    strerror(-e));
		walk(sw->fs, &check, false);
		bool same = !strcmp(next.walk.data, check.walk.data);
		watches_free(&check);
		watches_free(&sw->cur);
		sw->cur = next;
		if (same)
			return;
	}
}

/* Does the batch of events touch a place of the walk? */
static bool relevant(const struct watches *w, const char *buf, size_t n)
{
	for (const char *p = buf; p < buf + n;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;
		p += sizeof(*ev) + ev->len;
		if (ev->mask &
		    (IN_Q_OVERFLOW | IN_IGNORED | IN_UNMOUNT | IN_DELETE_SELF | IN_MOVE_SELF))
			return true;
		for (size_t i = 0; ev->len && i < w->n; i++)
			if (w->v[i].wd == ev->wd && !strcmp(w->v[i].name, ev->name))
				return true;
	}
	return false;
}

static void *watch_thread(void *arg)
{
	struct specwatch *sw = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		/* (Until the daemon leaves: a reload reads what it frees.) */
		int ev = bfs_wait(sw->fs, sw->cur.fd, POLLIN, -1);
		if (ev < 0)
			break;
		if (!(ev & POLLIN))
			continue;
		ssize_t n = read(sw->cur.fd, buf, sizeof(buf));
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		if (!relevant(&sw->cur, buf, (size_t)n))
			continue;
		/* Let a burst of changes settle, then read the result once. */
		struct pollfd pfd = {.fd = sw->cur.fd, .events = POLLIN};
		while (poll(&pfd, 1, 100) > 0 && read(sw->cur.fd, buf, sizeof(buf)) > 0)
			;
		rearm(sw);
		reload_run(sw->fs, NULL);
	}
	watches_free(&sw->cur);
	free(sw);
	return NULL;
}

errint_t specwatch_start(struct bfs *fs, pthread_t *thread)
{
	struct specwatch *sw = xcalloc(1, sizeof(*sw));
	sw->fs = fs;
	errint_t e = walk(fs, &sw->cur, true);
	if (e == 0 && (e = -pthread_create(thread, NULL, watch_thread, sw)) == 0)
		return 0;
	watches_free(&sw->cur);
	free(sw);
	return e;
}

struct since {
	const struct timespec *t;
	bool changed;
};

static void on_since(void *ctx, int dirfd, const char *name, bool link)
{
	(void)link;
	struct since *s = ctx;
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (st.st_mtim.tv_sec > s->t->tv_sec ||
	     (st.st_mtim.tv_sec == s->t->tv_sec && st.st_mtim.tv_nsec >= s->t->tv_nsec)))
		s->changed = true;
}

bool specwatch_changed_since(const struct bfs *fs, const struct timespec *t)
{
	struct since s = {t, false};
	fsguard_links(fs->spec_path, on_since, &s);
	return s.changed;
}
