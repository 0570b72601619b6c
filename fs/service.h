/* service: telling whoever started the daemon how it is doing.
 *
 * systemd (Type=notify) learns from NOTIFY_SOCKET when the mount serves
 * (READY=1), when a reload starts and ends (RELOADING=1, READY=1) and when
 * the daemon stops (STOPPING=1); with READY=1 comes a STATUS= line that
 * `systemctl status` shows (the bundles served, failed). A `bundlefs` started in the background
 * waits, in the process that was started, until the daemon it forked
 * serves or fails, and exits with that status: when the command returns
 * the mount is ready, and every error before that reached its stderr. */
#ifndef BUNDLEFS_SERVICE_H
#define BUNDLEFS_SERVICE_H

#include <stdbool.h>
#include <sys/types.h>

/* Forks with a pipe between parent and child (close-on-exec): *fd is the
 * end each side keeps, the reading end in the parent when `parent_reads`,
 * else in the child. Returns the child's pid (0 in the child) or -errno. */
pid_t service_fork(bool parent_reads, int *fd);

/* Points stdin, stdout and stderr at /dev/null: a daemon must not hold the
 * terminal or pipe the command was run with. */
void service_drop_stdio(void);

/* Sends `state` ("READY=1", ...) to NOTIFY_SOCKET, when there is one. */
void service_notify(const char *state);

/* Forks: the parent waits for service_ready or service_failed in the
 * child, and exits with its status (or 1 if the child dies first). Returns
 * in the child, now in a session of its own. Returns -errno if it could not
 * fork. */
int service_detach(void);

/* The mount serves: the waiting parent exits 0, systemd hears READY=1,
 * and `status` (or NULL), a short line of what it serves, as STATUS=.
 * Only the first call does anything. */
void service_ready(const char *status);

/* A reload is done: READY=1 (after RELOADING=1), with the new STATUS=. */
void service_reloaded(const char *status);

/* Starting failed (the error is already on stderr): the parent exits
 * with `status`. */
void service_failed(int status);

#endif
