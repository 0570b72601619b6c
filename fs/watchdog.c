/* watchdog: detach the mount of a daemon that died. */
#include "watchdog.h"
#include "mounts.h"
#include "overlay.h"
#include "service.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Is `m`, the topmost mount at its point, the mount `id`? Its id and
 * device may be a new mount's that got both as ours went: the kernel's
 * unique id tells. */
static bool is_ours(const struct mountent *m, const struct mountid *id)
{
	return m->id == id->id && m->major == id->major && m->minor == id->minor &&
	       mounts_is_bundlefs(m) && mounts_same(id, m->point);
}

/* Where mount `id` is now, on top (in *ours): 0, -EBUSY when another
 * mount covers it, -ENOENT when it is gone. */
static int locate(const char *mnt, const struct mountid *id, struct mountent *ours)
{
	struct mountent top;
	int found = mounts_at(mnt, &top);
	if (found < 0)
		return found;
	if (found && is_ours(&top, id)) {
		*ours = top;
		return 0;
	}
	/* Found by its id where it is now: a directory above it may have
	 * been renamed since it was mounted. */
	if (mounts_find(id, ours) != 1)
		return -ENOENT;
	if (mounts_at(ours->point, &top) != 1 || top.id != ours->id)
		return -EBUSY;
	/* (On top at its point: the unique id, which only the top one's
	 * path reaches, tells whether it is ours.) */
	return is_ours(&top, id) ? 0 : -ENOENT;
}

bool unmount_covered(const char *mnt, const struct mountid *id)
{
	struct mountent ours;
	return locate(mnt, id, &ours) == -EBUSY;
}

int unmount_detach(const char *mnt, const struct mountid *id)
{
	struct mountent ours;
	int e = locate(mnt, id, &ours);
	if (e < 0)
		return e;
	mnt = ours.point;
	if (geteuid() == 0) {
		if (umount2(mnt, MNT_DETACH) == 0)
			return 0;
		if (errno != EPERM)
			return -errno;
	}
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

static void close_all_but(int keep)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int dfd = dirfd(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (de->d_name[0] != '.' && fd > 2 && fd != keep && fd != dfd)
			close(fd);
	}
	closedir(d);
}

int watchdog_start(const char *mnt, const struct mountid *id, const char *area, int *wfd)
{
	/* The daemon keeps the writing end open until it exits; the
	 * watchdog reads. */
	int keep;
	pid_t pid = service_fork(false, &keep);
	if (pid != 0) {
		*wfd = keep;
		return pid < 0 ? pid : 0;
	}

	/* The watchdog. It must outlive signals meant for the daemon, also
	 * those sent to the daemon's whole process group or session. */
	setsid();
	prctl(PR_SET_NAME, "bundlefs-watch");
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN); /* (logrotate's, for the daemon) */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	close_all_but(keep);
	service_drop_stdio();
	char c;
	while (read(keep, &c, 1) < 0 && errno == EINTR)
		;
	/* The daemon is gone. While another mount covers ours, wait for it
	 * to go (mountinfo polls POLLPRI when mounts change). */
	int mi = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	for (;;) {
		int e = unmount_detach(mnt, id);
		if (e != -EBUSY || mi < 0) {
			/* The daemon's writable roots go with its mount. */
			if (area)
				overlay_remove_area(area);
			_exit(0);
		}
		struct pollfd pfd = {.fd = mi, .events = POLLPRI};
		poll(&pfd, 1, 1000);
	}
}
