/* watchdog: detach the mount of a daemon that died. */
#include "watchdog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* The id of the newest mount on `mnt` that is ours, or -1. */
static long mount_id(const char *mnt)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	long id = -1;
	while (getline(&line, &cap, f) > 0) {
		long mid;
		char point[4096], *sep = strstr(line, " - fuse.bundlefs ");
		if (sep && sscanf(line, "%ld %*d %*s %*s %4095s", &mid, point) == 2 &&
		    !strcmp(point, mnt))
			id = mid;
	}
	free(line);
	fclose(f);
	return id;
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

int watchdog_start(const char *mnt)
{
	long id = mount_id(mnt);
	if (id < 0)
		return -ENOENT;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		close(p[0]);
		return 0; /* the daemon keeps p[1] open until it exits */
	}

	/* The watchdog. It must outlive signals meant for the daemon, also
	 * those sent to the daemon's whole process group or session. */
	setsid();
	prctl(PR_SET_NAME, "bundlefs-watch");
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	close_all_but(p[0]);
	char c;
	while (read(p[0], &c, 1) < 0 && errno == EINTR)
		;
	if (mount_id(mnt) != id)
		_exit(0); /* unmounted as it should be */
	if (umount2(mnt, MNT_DETACH) == 0 || errno != EPERM)
		_exit(0);
	execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *)NULL);
	_exit(127);
}
