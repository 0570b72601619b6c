/* supervisor: a process that keeps the connection across daemons. */
#include "supervisor.h"
#include "ctlsock.h"
#include "log.h"
#include "mounts.h"
#include "options.h"
#include "service.h"
#include "state.h"
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How many successors in a row may fail to start before the mount is
 * given up (and detached, as a dead daemon's is). */
#define MAX_FAILED_STARTS 3
/* How many successors in a row may crash (a signal that is a fault, not
 * a kill) within CRASH_SECONDS of serving before the mount is given up:
 * a request that kills every daemon it reaches is sent again to each. */
#define MAX_CRASHES   3
#define CRASH_SECONDS 10
/* Successors that leave soon after they start are started again after a
 * pause that doubles each time, from BACKOFF_FIRST_MS to BACKOFF_LAST_MS,
 * and is forgotten once one serves BACKOFF_RESET_SECONDS. */
#define BACKOFF_FIRST_MS      100
#define BACKOFF_LAST_MS	      5000
#define BACKOFF_RESET_SECONDS 10

/* Puts `fds` at the SUPER_FD_* numbers (kept across exec) and closes
 * every other descriptor above stderr. */
static errint_t place_fds(const struct super_fds *fds)
{
	/* Everything moved above the fixed numbers first, so that placing one
	 * does not overwrite another (as low as may be: the limit on
	 * descriptors may be low). */
	int tmp[SUPER_NFDS];
	for (int i = 0; i < SUPER_NFDS; i++) {
		tmp[i] =
		    fds->fd[i] < 0 ? -1 : fcntl(fds->fd[i], F_DUPFD, SUPER_FD_FUSE + SUPER_NFDS);
		if (fds->fd[i] >= 0 && tmp[i] < 0)
			return -errno;
	}
	for (int i = 0; i < SUPER_NFDS; i++) {
		if (tmp[i] < 0) {
			close(SUPER_FD_FUSE + i);
		} else if (dup2(tmp[i], SUPER_FD_FUSE + i) < 0) {
			return -errno;
		}
	}
	close_range(SUPER_FD_FUSE + SUPER_NFDS, ~0U, 0);
	return 0;
}

static void fixed_fds(struct super_fds *fds)
{
	for (int i = 0; i < SUPER_NFDS; i++) {
		int fd = SUPER_FD_FUSE + i;
		fds->fd[i] = fcntl(fd, F_GETFD) < 0 ? -1 : fd;
	}
}

errint_t supervisor_exec(const struct super_fds *fds, const char *role)
{
	errint_t e = place_fds(fds);
	if (e < 0)
		return e;
	/* (The mount point, for ps.) */
	char mnt[4096];
	state_peek_mountpoint(SUPER_FD_STATE, mnt, sizeof(mnt));
	char *argv[] = {"bundlefs", (char *)role, mnt, NULL};
	fexecve(SUPER_FD_EXE, argv, environ);
	return -errno;
}

/* Waits for the daemon at the other end of `link` to say "ok" (a
 * successor serving). Returns 0, or -1 if it went away or said nothing in
 * time. */
static int wait_ok(int link, int seconds)
{
	struct pollfd p = {.fd = link, .events = POLLIN};
	if (poll(&p, 1, seconds * 1000) <= 0)
		return -1;
	char msg[16];
	ssize_t n = recv(link, msg, sizeof(msg), 0);
	return n == 2 && !memcmp(msg, "ok", 2) ? 0 : -1;
}

/* The daemon may send the descriptor of its binary (after a live upgrade,
 * a new one): successors are started from it. */
static void take_exe(struct super_fds *fds, int link)
{
	char buf[8];
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	if (recvmsg(link, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
		return;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		int fd;
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		close(fds->fd[SUPER_IX(SUPER_FD_EXE)]);
		fds->fd[SUPER_IX(SUPER_FD_EXE)] = fd;
	}
}

static void say_pid(int link)
{
	char msg[32];
	int n = snprintf(msg, sizeof(msg), "pid %d", (int)getpid());
	send(link, msg, (size_t)n, MSG_NOSIGNAL);
}

int supervisor_said_pid(int link)
{
	char msg[32];
	ssize_t n = recv(link, msg, sizeof(msg) - 1, MSG_DONTWAIT);
	int pid;
	if (n <= 0)
		return 0;
	msg[n] = 0;
	return sscanf(msg, "pid %d", &pid) == 1 ? pid : 0;
}

/* Forks a child linked to this process by a socket pair. Returns its pid
 * (with *link our end) in the parent, 0 (with *link its end) in the
 * child, or -errno. */
static pid_t fork_linked(int *link)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	close(sv[pid == 0 ? 0 : 1]);
	*link = sv[pid == 0 ? 1 : 0];
	return pid;
}

/* Starts a successor; returns its link end (and *pid), or -1. */
static int start_successor(const struct super_fds *fds, pid_t *child)
{
	int link;
	pid_t pid = fork_linked(&link);
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* Out of the supervisor's process group: a kill of the
		 * successor's group (a service manager's, a shell's) must not
		 * take the supervisor, which would start the next one. */
		setsid();
		struct super_fds mine = *fds;
		mine.fd[SUPER_IX(SUPER_FD_LINK)] = link;
		supervisor_exec(&mine, "--successor");
		_exit(127);
	}
	say_pid(link);
	if (wait_ok(link, 30) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(link);
		return -1;
	}
	*child = pid;
	return link;
}

/* Whether the FUSE connection `fuse` still stands: the kernel reports an
 * error on its descriptor once it is aborted, which it is when the mount's
 * last reference goes (or by hand, in fusectl). */
static bool connected(int fuse)
{
	struct pollfd p = {.fd = fuse, .events = 0};
	return poll(&p, 1, 0) >= 0 && !(p.revents & (POLLERR | POLLNVAL));
}

/* Waits `ms`; false when the connection ends meanwhile. */
static bool pause_ms(int fuse, unsigned ms)
{
	struct timespec end, now;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	for (;;) {
		if (!connected(fuse))
			return false;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left =
		    (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
		if (left <= 0)
			return true;
		/* (POLLERR is reported whatever is asked: polling is waiting
		 * for the end of the connection.) */
		struct pollfd p = {.fd = fuse, .events = 0};
		poll(&p, 1, left > 100 ? 100 : (int)left);
	}
}

/* How successor `pid`, whose link just closed, ended. */
enum ending {
	ENDED_UNKNOWN, /* not a child of ours (the first daemon) */
	ENDED_KILLED,  /* by a signal sent to it (SIGKILL, SIGTERM...) */
	ENDED_FAULT,   /* by a fault (SIGSEGV, SIGABRT...) */
	ENDED_ITSELF,  /* it exited, whatever its status */
};

static enum ending ended(pid_t pid)
{
	int status;
	if (pid <= 0 || waitpid(pid, &status, 0) != pid)
		return ENDED_UNKNOWN;
	if (!WIFSIGNALED(status))
		return ENDED_ITSELF;
	switch (WTERMSIG(status)) {
	case SIGSEGV:
	case SIGBUS:
	case SIGABRT:
	case SIGILL:
	case SIGFPE:
	case SIGSYS:
	case SIGTRAP:
		return ENDED_FAULT;
	default:
		return ENDED_KILLED;
	}
}

/* Logs where the daemon logs once in the background (its --log FILE, or
 * syslog). */
static void start_logging(const struct state *st, const char *mnt)
{
	char **argv;
	const char *cwd;
	int argc = state_args(st, &argv, &cwd);
	struct options o = {.reparse = true};
	struct store s;
	store_init(&s);
	if ((mounts_path_under(cwd, mnt) || chdir(cwd) == 0) &&
	    options_parse(argc, argv, &o, &s) < 0) {
		log_configure(false, o.verbose);
		if (o.log)
			log_to_file(o.log);
		else if (log_syslog_available())
			log_to_syslog();
	}
	if (chdir("/") < 0) {
		/* nothing relies on it */
	}
	options_free(&o);
	store_free(&s);
	free(argv);
}

/* SIGUSR1 (logrotate, also when sent to every process of the service):
 * the log file is opened again, between two polls. */
static volatile sig_atomic_t reopen;

static void want_reopen(int sig)
{
	(void)sig;
	reopen = 1;
}

/* The mount is over, or given up: no daemon will serve its control
 * socket again (one that left cleanly removed it already). */
static _Noreturn void leave(const struct super_fds *fds, int status)
{
	ctlsock_remove(fds->fd[SUPER_IX(SUPER_FD_CONTROL)]);
	_exit(status);
}

static _Noreturn void supervise(struct super_fds fds)
{
	prctl(PR_SET_NAME, "bundlefs-super");
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = want_reopen}; /* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	service_drop_stdio();

	struct state *st;
	uint32_t format;
	int sfd = dup(fds.fd[SUPER_IX(SUPER_FD_STATE)]);
	if (sfd < 0 || state_open(sfd, &st, &format) < 0)
		_exit(1);
	struct mountid id;
	struct mount_paths paths;
	state_mount(st, &id, &paths);
	const char *mnt = paths.mountpoint;
	start_logging(st, mnt);
	log_debug("supervisor of %s started", mnt);
	int link = fds.fd[SUPER_IX(SUPER_FD_LINK)];
	say_pid(link);
	int failed = 0, crashes = 0;
	unsigned backoff_ms = 0;
	pid_t child = 0; /* the serving daemon, when it is a successor */
	struct timespec served = {0};
	for (;;) {
		struct pollfd p = {.fd = link, .events = POLLIN};
		if (poll(&p, 1, -1) < 0) {
			if (reopen) {
				reopen = 0;
				errint_t e = log_reopen();
				if (e < 0)
					log_err(
					    "supervisor: SIGUSR1: cannot open the log file again "
					    "(%s)",
					    strerror(-e));
			}
			continue;
		}
		if (p.revents & POLLIN) {
			char peek;
			if (recv(link, &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
				/* A live upgrade: the serving daemon is not this
				 * process's child any more. */
				take_exe(&fds, link);
				child = 0;
				while (waitpid(-1, NULL, WNOHANG) > 0)
					;
				continue;
			}
		}
		/* The daemon is gone. Gone with its mount (an unmount), or
		 * with its connection (the mount went and its last user with
		 * it, or the connection was aborted): done. (The connection
		 * decides where the mount table cannot: a mount made since may
		 * have the same id and device numbers.) */
		struct mountent m;
		if (!connected(fds.fd[SUPER_IX(SUPER_FD_FUSE)]) || mounts_find(&id, &m) == 0)
			leave(&fds, 0);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* One that ends soon after it served, of itself (a clean exit
		 * is no proof of health) or of a fault, makes the next wait
		 * longer; one that served a while starts the count again. One
		 * killed from outside (the OOM killer, an operator) is
		 * replaced at once: the mount's readers wait meanwhile. */
		enum ending how = ended(child);
		bool soon = now.tv_sec - served.tv_sec < BACKOFF_RESET_SECONDS;
		bool own = how == ENDED_ITSELF || how == ENDED_FAULT;
		if (own)
			backoff_ms = !soon ? 0 : backoff_ms ? backoff_ms * 2 : BACKOFF_FIRST_MS;
		else if (!soon)
			backoff_ms = 0;
		if (backoff_ms > BACKOFF_LAST_MS)
			backoff_ms = BACKOFF_LAST_MS;
		if (how == ENDED_FAULT && now.tv_sec - served.tv_sec < CRASH_SECONDS) {
			if (++crashes >= MAX_CRASHES) {
				log_err("%s: %d successors in a row crashed soon after they "
					"started serving: unmounting",
					mnt, crashes);
				unmount_detach(mnt, &id);
				leave(&fds, 1);
			}
		} else {
			crashes = 0;
		}
		/* Successors that left after a live upgrade. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (backoff_ms && own) {
			log_warning(
			    "the daemon serving %s is gone, again; starting another in %u ms", mnt,
			    backoff_ms);
			if (!pause_ms(fds.fd[SUPER_IX(SUPER_FD_FUSE)], backoff_ms) ||
			    mounts_find(&id, &m) == 0)
				leave(&fds, 0);
		} else {
			log_warning("the daemon serving %s is gone; starting another", mnt);
		}
		close(link);
		child = 0;
		link = start_successor(&fds, &child);
		if (link >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &served);
			failed = 0;
			continue;
		}
		if (++failed >= MAX_FAILED_STARTS) {
			log_err("%s: %d successors in a row did not start: unmounting", mnt,
				failed);
			unmount_detach(mnt, &id);
			leave(&fds, 1);
		}
		sleep(1);
		/* try again: a link whose peer is gone */
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
			close(sv[1]);
			link = sv[0];
		}
	}
}

_Noreturn void supervisor_main(void)
{
	struct super_fds fds;
	fixed_fds(&fds);
	supervise(fds);
}

/* Names the forked supervisor in ps as an exec'd one would be named,
 * `bundlefs --supervisor MOUNTPOINT`, over the daemon's own arguments
 * (the only room there is). Left as they are where that does not fit. */
static void name_supervisor(char **argv, const char *mnt)
{
	if (!argv || !argv[0])
		return;
	char *start = argv[0], *end = argv[0];
	for (char **a = argv; *a; a++)
		if (*a == end || *a == end + 1)
			end = *a + strlen(*a);
	char title[4096];
	int n = snprintf(title, sizeof(title), "bundlefs%c--supervisor%c%s", 0, 0, mnt);
	if (n < 0 || (size_t)n >= sizeof(title) || n > end - start)
		return;
	memcpy(start, title, (size_t)n + 1);
	memset(start + n + 1, 0, (size_t)(end - start - n));
	/* (The rest of the old area is not shown, where the kernel lets the
	 * process say so: root.) */
	prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)(start + n + 1), 0, 0);
}

int supervisor_fork(char **argv, const char *mnt, int *link)
{
	int l;
	pid_t pid = fork_linked(&l);
	if (pid != 0) {
		if (pid > 0)
			*link = l;
		return pid;
	}
	/* Out of the daemon's process group (a kill of the group must not
	 * reach it), holding nothing of the daemon's: not the command's
	 * ready pipe, not its terminal. */
	setsid();
	close_range(3, (unsigned)l - 1, 0);
	close_range((unsigned)l + 1, ~0U, 0);
	log_forget();
	service_drop_stdio();
	prctl(PR_SET_NAME, "bundlefs-super");
	name_supervisor(argv, mnt);
	/* The descriptors, once the mount is there (or nothing: the daemon
	 * failed before, or has no failover). */
	char msg[32] = "";
	int got[SUPER_NFDS];
	char ctl[CMSG_SPACE(sizeof(got))];
	struct iovec iov = {msg, sizeof(msg) - 1};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	ssize_t r;
	while ((r = recvmsg(l, &m, 0)) < 0 && errno == EINTR)
		;
	unsigned mask;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (r <= 0 || sscanf(msg, "fds %u", &mask) != 1 || !c || c->cmsg_type != SCM_RIGHTS)
		_exit(0);
	size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	memcpy(got, CMSG_DATA(c), n * sizeof(int));
	struct super_fds fds;
	size_t k = 0;
	for (int i = 0; i < SUPER_NFDS; i++)
		fds.fd[i] = (mask & (1u << i)) && k < n ? got[k++] : -1;
	fds.fd[SUPER_IX(SUPER_FD_LINK)] = l;
	if (place_fds(&fds) < 0)
		_exit(1);
	fixed_fds(&fds);
	supervise(fds);
}

errint_t supervisor_hand(int link, const struct super_fds *fds)
{
	int out[SUPER_NFDS];
	unsigned mask = 0;
	int n = 0;
	for (int i = 0; i < SUPER_NFDS; i++)
		if (fds->fd[i] >= 0 && i != SUPER_IX(SUPER_FD_LINK)) {
			out[n++] = fds->fd[i];
			mask |= 1u << i;
		}
	char msg[32];
	int len = snprintf(msg, sizeof(msg), "fds %u", mask);
	char ctl[CMSG_SPACE(sizeof(out))];
	memset(ctl, 0, sizeof(ctl));
	struct iovec iov = {msg, (size_t)len};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = ctl,
			   .msg_controllen = CMSG_SPACE((size_t)n * sizeof(int))};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
	memcpy(CMSG_DATA(c), out, (size_t)n * sizeof(int));
	return sendmsg(link, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int supervisor_start(const struct super_fds *fds, int *link)
{
	int l;
	pid_t pid = fork_linked(&l);
	if (pid < 0)
		return pid;
	if (pid == 0) {
		/* Out of the daemon's process group at once (a kill of the
		 * group must not reach it); exec'd, so that it holds nothing of
		 * the daemon's but the descriptors it needs. */
		setsid();
		struct super_fds mine = *fds;
		mine.fd[SUPER_IX(SUPER_FD_LINK)] = l;
		supervisor_exec(&mine, "--supervisor");
		_exit(127);
	}
	*link = l;
	return pid;
}
