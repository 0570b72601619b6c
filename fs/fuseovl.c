/* fuseovl: writable roots made by fuse-overlayfs, for a daemon that is
 * not root. */
#include "fuseovl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long fuse-overlayfs may take to answer its mount's first request. */
#define READY_MS 30000

extern char **environ;

/* `name`'s path in PATH (malloc'ed), or NULL. */
static char *in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		if (n) {
			char *f = xasprintf("%.*s/%s", (int)n, p, name);
			if (access(f, X_OK) == 0)
				return f;
			free(f);
		}
		p += n + (p[n] == ':');
	}
	return NULL;
}

const char *fuseovl_missing(void)
{
	char *f = in_path("fuse-overlayfs"), *m = in_path("fusermount3");
	const char *why =
	    !f	 ? "fuse-overlayfs is not installed (not in PATH): a daemon that is not root "
		   "makes writable roots with it (Debian: apt-get install fuse-overlayfs)"
	    : !m ? "fusermount3 is not installed (not in PATH): a daemon that is not root mounts "
		   "with it (Debian: apt-get install fuse3)"
		 : NULL;
	free(f);
	free(m);
	return why;
}

/* In a child, before exec: fds[i] becomes descriptor i (-1: /dev/null),
 * every other one is closed, and signals are as a new program expects
 * them (the daemon blocks some and ignores SIGPIPE). Only
 * async-signal-safe calls: the daemon has threads. */
static void child_setup(const int *fds, int n)
{
	int high[8];
	for (int i = 0; i < n; i++)
		high[i] = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD, 64) : open("/dev/null", O_RDWR);
	for (int i = 0; i < n; i++)
		if (high[i] < 0 || dup2(high[i], i) < 0)
			_exit(127);
	close_range((unsigned)n, ~0U, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
}

static errint_t wait_child(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Sends (or receives) one descriptor, with one byte: 0, or an errno that
 * says why there is none. */
static errint_t send_fd(int sock, int fd, unsigned char err)
{
	struct iovec iov = {&err, 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Returns the descriptor, or -errno (-EIO when the peer sent nothing). */
static int recv_fd(int sock)
{
	unsigned char err = 0;
	struct iovec iov = {&err, 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno;
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return n > 0 && err ? -(int)err : -EIO;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* A detached copy of the directory `lower`, or -errno. The copy is made
 * in a user and mount namespace of a child's own, where the child may
 * clone mounts (its copies of this namespace's); the detached copy
 * outlives that namespace. */
static int clone_lower(const char *lower)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(sv[0]);
		close(sv[1]);
		return e;
	}
	if (pid == 0) {
		child_setup((int[]){sv[1]}, 1);
		int fd = -1;
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0)
			fd = open_tree(AT_FDCWD, lower, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		send_fd(0, fd, fd < 0 ? (unsigned char)errno : 0);
		_exit(0);
	}
	close(sv[1]);
	int fd = recv_fd(sv[0]);
	close(sv[0]);
	int status;
	wait_child(pid, &status);
	return fd;
}

/* Whatever `memfd` holds (a child's stderr), trimmed, or NULL. */
static char *said(int memfd)
{
	char *data = NULL;
	size_t len = 0;
	if (memfd < 0 || lseek(memfd, 0, SEEK_SET) < 0 || read_fd(memfd, 4096, &data, &len) < 0 ||
	    !data)
		return NULL;
	while (len && (data[len - 1] == '\n' || data[len - 1] == ' '))
		len--;
	data[len] = 0;
	for (char *p = data; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (!len) {
		free(data);
		return NULL;
	}
	return data;
}

/* fusermount3 mounts a FUSE filesystem on `target` with `opts` and gives
 * its descriptor back (libfuse's protocol: _FUSE_COMMFD names a socket it
 * sends the descriptor over). Returns the descriptor or -errno, with
 * *detail set from what fusermount3 said. */
static int fusermount(const char *target, const char *opts, char **detail)
{
	cleanup_free char *prog = in_path("fusermount3");
	if (!prog)
		return -ENOENT;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	int err = memfd_create("fusermount3", MFD_CLOEXEC);
	char *argv[] = {"fusermount3", "-o", (char *)opts, "--", (char *)target, NULL};
	char *envp[] = {"_FUSE_COMMFD=3", NULL};
	pid_t pid = fork();
	if (pid == 0) {
		child_setup((int[]){-1, -1, err, sv[1]}, 4);
		execve(prog, argv, envp);
		_exit(127);
	}
	close(sv[1]);
	int fd = pid < 0 ? -errno : recv_fd(sv[0]);
	close(sv[0]);
	int status = 0;
	if (pid > 0)
		wait_child(pid, &status);
	if (fd < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		*detail = said(err);
		if (fd >= 0)
			close(fd);
		fd = fd < 0 && fd != -EIO ? fd : -EPERM;
	}
	if (err >= 0)
		close(err);
	return fd;
}

errint_t fuseovl_detach(const char *target)
{
	cleanup_free char *prog = in_path("fusermount3");
	if (!prog)
		return -ENOENT;
	char *argv[] = {"fusermount3", "-u", "-z", "--", (char *)target, NULL};
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_setup((int[]){-1, -1, -1}, 3);
		execve(prog, argv, environ);
		_exit(127);
	}
	int status;
	errint_t e = wait_child(pid, &status);
	if (e < 0)
		return e;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

/* fuse-overlayfs's -o list reads a backslash as escaping the next byte
 * (a comma in a path); so does fusermount3's. */
static void add_opt_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			buf_addc(b, '\\');
		buf_addc(b, *s);
	}
}

/* Waits until the root on `target` answers (fuse-overlayfs has served
 * INIT and a first GETATTR), or fuse-overlayfs (`fo`) has exited, or
 * READY_MS have passed (then it is killed, which ends its connection and
 * the wait). The stat is a child's: a FUSE request can keep its caller
 * waiting past any signal. Returns 0 or -errno. */
static errint_t wait_ready(const char *target, const struct fuseovl_root *fo)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_setup(NULL, 0);
		struct stat st;
		_exit(stat(target, &st) < 0 ? errno : 0);
	}
	errint_t e = 0;
	int pfd = pidfd_open(pid, 0);
	if (pfd >= 0) {
		struct pollfd p[2] = {{.fd = pfd, .events = POLLIN},
				      {.fd = fo->pidfd, .events = POLLIN}};
		int n;
		while ((n = poll(p, fo->pidfd >= 0 ? 2 : 1, READY_MS)) < 0 && errno == EINTR)
			;
		if (n == 0) {
			kill(fo->pid, SIGKILL);
			e = -ETIMEDOUT;
		}
		close(pfd);
	}
	int status;
	errint_t w = wait_child(pid, &status);
	if (e < 0 || w < 0)
		return e < 0 ? e : w;
	return !WIFEXITED(status) ? -EIO : -WEXITSTATUS(status);
}

errint_t fuseovl_mount(const char *lower, const char *upper, const char *work, const char *target,
		       struct fuseovl_root *r, const char **what, char **detail)
{
	*r = (struct fuseovl_root){.pid = -1, .pidfd = -1};
	*detail = NULL;
	cleanup_free char *prog = in_path("fuse-overlayfs");
	if (!prog) {
		*what = "finding fuse-overlayfs";
		*detail = xstrdup(fuseovl_missing());
		return -ENOENT;
	}
	*what = "copying its lower layer";
	int lowerfd = clone_lower(lower);
	if (lowerfd == -ENOENT || lowerfd == -EIO || lowerfd == -ENOTCONN)
		return lowerfd; /* (the rootfs itself answers so) */
	r->pinned = lowerfd < 0;

	/* The mount, its source the upper directory. */
	struct buf opts = {0};
	buf_adds(&opts, "nosuid,nodev,noatime,default_permissions,subtype=fuse-overlayfs,fsname=");
	add_opt_escaped(&opts, upper);
	buf_addc(&opts, 0);
	*what = "mounting it with fusermount3";
	int fusefd = fusermount(target, opts.data, detail);
	buf_free(&opts);
	if (fusefd < 0) {
		if (lowerfd >= 0)
			close(lowerfd);
		return fusefd;
	}

	struct buf o = {0};
	buf_adds(&o, "lowerdir=");
	if (lowerfd >= 0) {
		buf_adds(&o, "/proc/self/fd/3");
	} else {
		/* (':' separates lower layers) */
		for (const char *s = lower; *s; s++) {
			if (*s == ',' || *s == '\\' || *s == ':')
				buf_addc(&o, '\\');
			buf_addc(&o, *s);
		}
	}
	buf_adds(&o, ",upperdir=");
	add_opt_escaped(&o, upper);
	buf_adds(&o, ",workdir=");
	add_opt_escaped(&o, work);
	buf_addc(&o, 0);
	char *argv[] = {"fuse-overlayfs", "-f", "-o", o.data, "/dev/fd/4", NULL};
	int err = memfd_create("fuse-overlayfs", MFD_CLOEXEC);
	*what = "starting fuse-overlayfs";
	pid_t pid = fork();
	if (pid == 0) {
		/* Its own session: a terminal's ^C to the daemon's group must
		 * not take containers' roots with it. */
		setsid();
		child_setup((int[]){-1, -1, err, lowerfd, fusefd}, 5);
		execve(prog, argv, environ);
		_exit(127);
	}
	errint_t e = pid < 0 ? -errno : 0;
	buf_free(&o);
	/* fuse-overlayfs holds the only descriptor of its connection now: if
	 * it dies, the connection ends, and whatever waits on it is told. */
	close(fusefd);
	if (lowerfd >= 0)
		close(lowerfd);
	if (e == 0) {
		r->pid = pid;
		r->pidfd = pidfd_open(pid, 0);
		*what = "waiting for fuse-overlayfs";
		e = wait_ready(target, r);
	}
	if (e < 0) {
		if (r->pid > 0) {
			kill(r->pid, SIGKILL);
			fuseovl_reap(r, -1);
		}
		fuseovl_detach(target);
		if (!*detail)
			*detail = said(err);
	}
	if (err >= 0)
		close(err);
	return e;
}

bool fuseovl_reap(struct fuseovl_root *r, int ms)
{
	if (r->pid <= 0)
		return true;
	if (ms != 0 && r->pidfd >= 0) {
		struct pollfd p = {.fd = r->pidfd, .events = POLLIN};
		while (poll(&p, 1, ms) < 0 && errno == EINTR)
			;
	}
	int status;
	pid_t got;
	while ((got = waitpid(r->pid, &status, ms < 0 && r->pidfd < 0 ? 0 : WNOHANG)) < 0 &&
	       errno == EINTR)
		;
	if (got == 0)
		return false;
	r->pid = -1;
	if (r->pidfd >= 0)
		close(r->pidfd);
	r->pidfd = -1;
	return true;
}
