/* ctlsock: the control socket's place, and who is at either end. */
#include "ctlsock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ROOT_DIR "/run/bundlefs/@control"

/* The directories in which `uid`'s mounts have their sockets, in the
 * order a daemon tries them (one exists only with a login session). */
static int candidates(uid_t uid, char dirs[2][64])
{
	if (uid == 0) {
		snprintf(dirs[0], sizeof(dirs[0]), "%s", ROOT_DIR);
		return 1;
	}
	snprintf(dirs[0], sizeof(dirs[0]), "/run/user/%u/bundlefs", (unsigned)uid);
	snprintf(dirs[1], sizeof(dirs[1]), "/tmp/bundlefs-%u", (unsigned)uid);
	return 2;
}

static socklen_t address(struct sockaddr_un *sun, const char *dir, const char *name)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return 0;
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
}

/* ---- the daemon's side ---------------------------------------------------------- */

/* A directory no other user can add entries to, or rename ours in: its
 * owner is root or `uid`, and it is not writable by others unless sticky
 * (/tmp). */
static bool safe_parent(const struct stat *st, uid_t uid)
{
	return S_ISDIR(st->st_mode) && (st->st_uid == 0 || st->st_uid == uid) &&
	       (!(st->st_mode & 022) || (st->st_mode & S_ISVTX));
}

/* Opens `dir`, made if missing (`mode`), and checks that it is this
 * user's own and that no one else can add to it: a directory someone
 * else made first (in /tmp) is refused, never used. -ENOENT when its
 * parent is not there. */
static int open_dir(uid_t uid, const char *dir, mode_t mode, char **why)
{
	char parent[128];
	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = 0;
	struct stat st;
	/* (root's: /run/bundlefs, which writable roots also use) */
	if (uid == 0 && mkdir(parent, 0755) == 0)
		chmod(parent, 0755);
	if (lstat(parent, &st) < 0) {
		int e = errno;
		*why = xasprintf("%s: %s", parent, strerror(e));
		return -e;
	}
	if (!safe_parent(&st, uid)) {
		*why =
		    xasprintf("%s: owned by uid %u, mode %04o: others could replace what is in it",
			      parent, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	bool made = mkdir(dir, mode) == 0;
	if (!made && errno != EEXIST) {
		int e = errno;
		*why = xasprintf("%s: %s", dir, strerror(e));
		return -e;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		*why = xasprintf("%s: %s", dir, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (st.st_uid != uid || (st.st_mode & 022)) {
		*why = xasprintf("%s: owned by uid %u, mode %04o: not this user's own directory",
				 dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	if (made)
		fchmod(fd, mode); /* (whatever the umask) */
	return fd;
}

/* Removes what earlier mounts of device `dev` ("MAJOR:MINOR") left: any
 * socket of theirs, and the temporary link of a daemon that died while it
 * made one. Their mounts are over, since this one has the device; what
 * still holds them (stopped, exiting) serves nothing anyone asks for. */
static void sweep(int dirfd, const char *dev, const char *mine)
{
	int fd = dup(dirfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	size_t n = strlen(dev);
	struct dirent *de;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, dev, n) && de->d_name[n] == '.' &&
		    strcmp(de->d_name, mine))
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
}

/* Takes the directory's lock, waiting at most 2 s: its holder does a
 * few renames, but may be stopped (SIGSTOP, a debugger) in between, and no
 * daemon may wait on another for good to serve or to exit. Returns
 * whether it is held. */
static bool lock_dir(int dirfd)
{
	for (int i = 0; i < 200; i++) {
		if (flock(dirfd, LOCK_EX | LOCK_NB) == 0)
			return true;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return false;
		struct timespec ms10 = {0, 10 * 1000 * 1000};
		nanosleep(&ms10, NULL);
	}
	return false;
}

int ctlsock_listen(unsigned major, unsigned minor, char **why)
{
	*why = NULL;
	uid_t uid = geteuid();
	char dirs[2][64];
	int n = candidates(uid, dirs), dirfd = -ENOENT, i;
	for (i = 0; i < n; i++) {
		free(*why);
		*why = NULL;
		dirfd = open_dir(uid, dirs[i], uid == 0 ? 0755 : 0700, why);
		if (dirfd != -ENOENT)
			break;
	}
	if (dirfd < 0)
		return dirfd;
	const char *dir = dirs[i];
	char dev[32], name[96], tmp[128];
	struct timespec t;
	clock_gettime(CLOCK_BOOTTIME, &t);
	snprintf(dev, sizeof(dev), "%u:%u", major, minor);
	snprintf(name, sizeof(name), "%s.%d.%llx", dev, (int)getpid(),
		 (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec);
	snprintf(tmp, sizeof(tmp), "%s.link", name);
	struct sockaddr_un sun;
	socklen_t len = address(&sun, dir, name);
	int fd = -1;
	errint_t e;
	const char *what = "bind";
	if (!len) {
		e = -ENAMETOOLONG;
		goto fail;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, len) < 0)
		goto fail_errno;
	/* Anyone may connect (the directory decides who can reach it); the
	 * daemon checks who asks for what (SO_PEERCRED). */
	what = "listen";
	if (fchmodat(dirfd, name, 0666, 0) < 0 || listen(fd, 64) < 0)
		goto fail_errno;
	/* The device's name, pointed at this socket in one step. The lock
	 * orders it with the removal of an earlier mount's name, which checks
	 * where the name points first. */
	what = "the device's name";
	/* (Without the lock, after 2 s, the name is still pointed here; what
	 * earlier mounts left stays for the next mount of the device.) */
	bool locked = lock_dir(dirfd);
	if (locked)
		sweep(dirfd, dev, name);
	e = symlinkat(name, dirfd, tmp) < 0 || renameat(dirfd, tmp, dirfd, dev) < 0 ? -errno : 0;
	if (locked)
		flock(dirfd, LOCK_UN);
	if (e < 0)
		goto fail;
	close(dirfd);
	return fd;
fail_errno:
	e = -errno;
fail:
	*why = xasprintf("%s/%s: %s: %s", dir, name, what, strerror(-e));
	if (fd >= 0) {
		unlinkat(dirfd, tmp, 0);
		unlinkat(dirfd, name, 0);
		close(fd);
	}
	close(dirfd);
	return e;
}

void ctlsock_remove(int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	memset(&sun, 0, sizeof(sun));
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&sun, &len) < 0 || !sun.sun_path[0])
		return;
	char path[sizeof(sun.sun_path) + 1];
	memcpy(path, sun.sun_path, sizeof(sun.sun_path));
	path[sizeof(sun.sun_path)] = 0;
	char *slash = strrchr(path, '/'), *dot;
	if (!slash || !(dot = strchr(slash + 1, '.')))
		return;
	*slash = 0;
	const char *name = slash + 1;
	char dev[64];
	snprintf(dev, sizeof(dev), "%.*s", (int)(dot - name), name);
	int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return;
	/* (Without the lock the device's name is left: it may be pointed at
	 * a new mount's socket meanwhile. The next mount of the device
	 * sweeps it.) */
	bool locked = lock_dir(dirfd);
	char target[128];
	ssize_t n = locked ? readlinkat(dirfd, dev, target, sizeof(target) - 1) : -1;
	if (n > 0) {
		target[n] = 0;
		if (!strcmp(target, name))
			unlinkat(dirfd, dev, 0);
	}
	unlinkat(dirfd, name, 0);
	if (locked)
		flock(dirfd, LOCK_UN);
	close(dirfd);
}

/* ---- a client's side ------------------------------------------------------------- */

int ctlsock_connect(const struct mountent *m, int timeout_ms, char **why)
{
	*why = NULL;
	if (m->owner == (uid_t)-1) {
		*why = xasprintf("mountinfo does not say which user owns the mount");
		return -ENOENT;
	}
	char dirs[2][64], dev[32];
	int n = candidates(m->owner, dirs);
	snprintf(dev, sizeof(dev), "%u:%u", m->major, m->minor);
	/* (A user's daemon took the first directory there was when it
	 * started: each is tried. What went wrong is said of the first that
	 * has the name, else of the first.) */
	errint_t err = 0;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
	for (int i = 0; i < n; i++) {
		struct sockaddr_un sun;
		socklen_t len = address(&sun, dirs[i], dev);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			int e = errno;
			free(*why);
			*why = xasprintf("socket: %s", strerror(e));
			return -e;
		}
		/* (A Unix socket's connect waits as long as a send may when the
		 * listener's queue is full.) */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
			int e = errno == EAGAIN ? ETIMEDOUT : errno;
			close(fd);
			if (e == ETIMEDOUT) {
				free(*why);
				*why = xasprintf(
				    "its daemon does not answer (%s: nothing accepted the "
				    "connection within %d s)",
				    sun.sun_path, (timeout_ms + 999) / 1000);
				return -e;
			}
			bool missing = e == ENOENT || e == ENOTDIR;
			if (!err || (!missing && (err == -ENOENT || err == -ENOTDIR))) {
				free(*why);
				*why =
				    xasprintf("its daemon does not answer (%s: %s)", sun.sun_path,
					      missing ? "no control socket" : strerror(e));
				err = -e;
			}
			continue;
		}
		free(*why);
		*why = NULL;
		/* (The credentials of the process that listens: a successor
		 * serves the socket its first daemon made, as the same user.) */
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			int e = errno;
			close(fd);
			*why = xasprintf("%s: %s", sun.sun_path, strerror(e));
			return -e;
		}
		if (cred.uid != m->owner) {
			close(fd);
			*why = xasprintf("refusing the control socket %s: it is served by uid %u "
					 "(pid %d), not by the mount's owner (uid %u)",
					 sun.sun_path, (unsigned)cred.uid, (int)cred.pid,
					 (unsigned)m->owner);
			return -EPERM;
		}
		return fd;
	}
	return err;
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

errint_t ctlsock_read_answer(int fd, int timeout_ms, struct buf *out)
{
	int64_t deadline = now_ms() + timeout_ms;
	char chunk[4096];
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (n > 0)
			buf_add(out, chunk, (size_t)n);
	}
}
