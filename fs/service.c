/* service: readiness for systemd and for the starting process. */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ready_fd = -1; /* to the waiting parent */
static atomic_bool told;

void service_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = 0; /* abstract */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
	       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	close(fd);
}

pid_t service_fork(bool parent_reads, int *fd)
{
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
	int reads = (pid > 0) == parent_reads;
	close(p[reads ? 1 : 0]);
	*fd = p[reads ? 0 : 1];
	return pid;
}

void service_drop_stdio(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return;
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	close(null);
}

int service_detach(void)
{
	int fd;
	pid_t pid = service_fork(true, &fd);
	if (pid < 0)
		return pid;
	if (pid > 0) {
		/* The command the user ran: its status is the daemon's start. */
		unsigned char status = 1;
		ssize_t r;
		while ((r = read(fd, &status, 1)) < 0 && errno == EINTR)
			;
		_exit(r == 1 ? status : 1);
	}
	ready_fd = fd;
	setsid();
	if (chdir("/") < 0) {
		/* nothing relies on the working directory */
	}
	return 0;
}

static void tell(unsigned char status)
{
	if (ready_fd < 0)
		return;
	while (write(ready_fd, &status, 1) < 0 && errno == EINTR)
		;
	close(ready_fd);
	ready_fd = -1;
}

/* READY=1, and STATUS= in the same message (a line cut at 256 bytes). */
static void notify_ready(const char *status)
{
	char msg[272] = "READY=1";
	if (status)
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	service_notify(msg);
}

void service_ready(const char *status)
{
	if (atomic_exchange(&told, true))
		return;
	tell(0);
	notify_ready(status);
}

void service_reloaded(const char *status)
{
	notify_ready(status);
}

void service_failed(int status)
{
	if (atomic_exchange(&told, true))
		return;
	tell((unsigned char)status);
}
