/* ctlsock: where a bundlefs mount's control socket is, and how its daemon
 * and its clients (bundlectl, `bundlefs --takeover`) find and check each
 * other.
 *
 * The socket is a file in a directory to which only the daemon's user
 * can add entries, so no other user can take its name:
 *
 *   root:        /run/bundlefs/@control/            (0755, root's)
 *   other users: /run/user/UID/bundlefs/            (their runtime directory,
 *                                                    $XDG_RUNTIME_DIR under
 *                                                    systemd-logind), or without
 *                                                    one /tmp/bundlefs-UID/ (0700)
 *
 * (independent of --run-dir: a client must find it knowing only the
 * mount). In it, MAJOR:MINOR, the mount's FUSE device, is a symlink to
 * the socket itself, MAJOR:MINOR.PID.T, named after the daemon that bound
 * it and when (CLOCK_BOOTTIME): a name no other daemon binds. A device
 * number is free for another mount once its connection has ended, while
 * what served it may still live (stopped, or on its way out): the new
 * mount's daemon points the name at its own socket with a rename, which
 * nothing the old one holds can stop. The socket lives as long as the
 * mount, across failovers and upgrades (the listening descriptor is
 * handed on); whoever sees the mount end removes it (ctlsock_remove).
 *
 * A client finds the mount in mountinfo (its device, and its owner: the
 * `user_id` of a FUSE mount's options, the uid of the daemon that
 * mounted it), and talks only to a peer of that uid (SO_PEERCRED). */
#ifndef BUNDLEFS_CTLSOCK_H
#define BUNDLEFS_CTLSOCK_H

#include "mounts.h"
#include "util.h"

/* Binds and listens on the control socket of the mount on FUSE device
 * major:minor, served by this process's user, and points the device's
 * name at it. Returns the listening descriptor, or -errno with *why
 * (malloc'ed) saying what failed, and where. */
int ctlsock_listen(unsigned major, unsigned minor, char **why);

/* The mount that `fd` (ctlsock_listen's) served is over: removes the
 * socket, and the device's name if it still points at it (not if the
 * next mount of the device has taken it). */
void ctlsock_remove(int fd);

/* How long a client waits for the daemon by default: to connect, and for
 * each answer. A daemon that does not answer (stopped, wedged) fails the
 * client, which never hangs. */
#define CTLSOCK_TIMEOUT_MS 10000

/* Connects to the control socket of the FUSE mount `m`, and checks that
 * the process at the other end runs as the mount's owner. Connecting
 * waits at most `timeout_ms` (for a daemon whose queue is full), and so
 * does each send and receive on the descriptor returned (SO_SNDTIMEO,
 * SO_RCVTIMEO: they fail with EAGAIN then). Returns the connected
 * descriptor, or -errno with *why (malloc'ed): -EPERM when the socket is
 * served by another user (refused before anything is sent), -ENOENT when
 * there is none, -ETIMEDOUT when connecting took too long. */
int ctlsock_connect(const struct mountent *m, int timeout_ms, char **why);

/* Reads the daemon's answer on `fd` (a connection of ctlsock_connect's)
 * up to the end of the connection, appending it to `out`, for at most
 * `timeout_ms` in all. Returns 0, -ETIMEDOUT, or -errno. */
errint_t ctlsock_read_answer(int fd, int timeout_ms, struct buf *out);

#endif
