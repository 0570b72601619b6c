/* supervisor: keeps the mount served when the daemon dies.
 *
 * A process of its own (in a session of its own) holds what serving the
 * mount takes: the FUSE connection's descriptor, the state region
 * (state.h), the GC roots directory (and with it its lock), and the write
 * end of the watchdog's pipe. It is linked to the daemon by a socket. When
 * the daemon dies, however it dies, the link closes: if the mount is still
 * there, the supervisor starts a successor (the daemon's own binary, with
 * `--successor`) on those descriptors, which takes the connection over
 * (takeover.h). Requests the dead daemon had read are sent again by the
 * kernel (FUSE_NOTIFY_RESEND); readers see a pause.
 *
 * When the supervisor dies, the daemon starts another one. When both die,
 * the watchdog, whose pipe they both hold, takes the mount down.
 *
 * Descriptors handed to an exec'd process sit at fixed numbers
 * (SUPER_FD_*). */
#ifndef BUNDLEFS_SUPERVISOR_H
#define BUNDLEFS_SUPERVISOR_H

#include "util.h"

#include <stdint.h>

enum {
	SUPER_FD_FUSE = 3,
	SUPER_FD_STATE,
	SUPER_FD_GCROOTS, /* -1 when there is no GC roots directory */
	SUPER_FD_WATCH,
	SUPER_FD_CONTROL, /* the control socket, listening (control.h) */
	SUPER_FD_LINK,
	SUPER_FD_EXE, /* the daemon's binary, for successors */
	SUPER_NFDS = 7
};

/* The index of SUPER_FD_x in struct super_fds. */
#define SUPER_IX(x) ((x)-SUPER_FD_FUSE)

/* What the supervisor holds, in SUPER_FD_* order (from SUPER_FD_FUSE). */
struct super_fds {
	int fd[SUPER_NFDS];
};

/* Starts a supervisor (the binary `fds` names, exec'd, in a session of
 * its own) for the daemon holding `fds` (its link end is made here; *link
 * is the daemon's end). Returns the supervisor's pid or -errno; it is
 * counted on once it says so.
 *
 * On the link, the supervisor says "pid N" (its own) when it runs; the
 * daemon may send the descriptor of a new binary (after a live upgrade);
 * a successor says "ok" once it serves. */
int supervisor_start(const struct super_fds *fds, int *link);

/* Forks the daemon's first supervisor, early: while the daemon is one
 * thread, before it mounts. No exec: a fork costs a fraction of a
 * millisecond where an exec of the daemon's binary (and its linking) cost
 * several, on the way to the first request. The child waits on the link
 * for the descriptors (supervisor_hand), which the daemon sends as soon
 * as the mount and the state are there, before the kernel's INIT is
 * answered: from the mount's first request on, a dead daemon is
 * replaced. The child leaves if the link closes first. `argv` (the
 * daemon's) is overwritten in the child to name it in ps. Returns its pid
 * or -errno; *link is the daemon's end. */
int supervisor_fork(char **argv, const char *mnt, int *link);

/* Hands `fds` (the link's slot ignored) to a supervisor_fork'ed
 * supervisor. */
errint_t supervisor_hand(int link, const struct super_fds *fds);

/* Reads what the supervisor said on the link, if anything: its pid, or
 * 0. */
int supervisor_said_pid(int link);

/* The supervisor's own entry, for `bundlefs --supervisor` (its
 * descriptors at SUPER_FD_*). Never returns. */
_Noreturn void supervisor_main(void);

/* Puts `fds` at SUPER_FD_* and execs the binary `exe` with `role`
 * ("--successor", "--supervisor"). Returns only on failure (-errno). */
errint_t supervisor_exec(const struct super_fds *fds, const char *role);

#endif
