/* control: the daemon's control socket, which `bundlectl status` and
 * `bundlectl reload` talk to.
 *
 * A Unix socket file in a directory only the daemon's user can add to,
 * named after the mount's FUSE device (ctlsock.h says where, and how a
 * client checks it talks to the mount's daemon). A client sends one line,
 * "status" or "reload", and reads one JSON document back. Anyone who can
 * reach the socket may ask for the status (the mount's contents are
 * readable by all anyway); a reload, reset or prune is done only for root
 * and for the daemon's own user (SO_PEERCRED), as is "takeover FORMAT",
 * by which a new daemon takes the mount over (a live upgrade,
 * takeover.h): it gets the connection's descriptors, tells this daemon
 * to "stop" (its workers stop at a request boundary, "stopped"),
 * restores, and says "serving PID"; this daemon then leaves. If it goes
 * away before that, the workers start again. A daemon whose connection
 * has ended (its device may be another mount's now) answers nothing but
 * that. */
#ifndef BUNDLEFS_CONTROL_H
#define BUNDLEFS_CONTROL_H

#include "bfs.h"

#include <pthread.h>

/* Binds the socket and listens. Returns the descriptor, or -errno with
 * *why (malloc'ed) saying what failed. */
int control_listen(const struct bfs *fs, char **why);
/* Serves the listening socket `fd` (control_listen's, or one taken over
 * from a predecessor) from a thread of its own, `*thread`, which ends once
 * fs->quit is written (and the request it carries out, if any, answered),
 * and never before. Up to `clients` clients are served side by side, each
 * with a deadline for its request and for taking its answer, so that one
 * that sends or reads nothing holds no one else up; see control.c. Returns
 * 0 or -errno. */
errint_t control_start(struct bfs *fs, int fd, unsigned clients, pthread_t *thread);

/* The status document (malloc'ed JSON), as bundlectl(1) documents it
 * (STATUS DOCUMENT). */
char *control_status(struct bfs *fs);

/* The status in one short line, for systemd (STATUS=): the bundles
 * served, failed and retrying, and whether the last reload, `last` (or
 * NULL), failed. Malloc'ed. */
char *control_status_line(struct bfs *fs, const struct reload_result *last);

/* Reads one line (without its newline) from the connection `c`, one byte
 * at a time (nothing after it is consumed). */
bool control_read_line(int c, char *line, size_t size);

#endif
