/* daemon: what every way of starting bundlefs shares: setting the mount's
 * state up, the FUSE session, the services (control socket, reloads,
 * signals, the supervisor's link) and the loop, and what happens when it
 * ends: an unmount, or a hand-over to a new daemon.
 *
 * A daemon starts in one of three ways (main.c): it mounts (main.c), it
 * succeeds one that died (takeover.c, started by the supervisor), or it
 * takes the connection over from a running one (takeover.c, a live
 * upgrade). */
#ifndef BUNDLEFS_DAEMON_H
#define BUNDLEFS_DAEMON_H

#include "bfs.h"
#include "fdbudget.h"
#include "options.h"
#include "supervisor.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

struct fuse_session;

struct daemon {
	struct options o;
	struct bfs fs;
	struct fuse_session *se;
	struct buf fuse_opts;
	struct timespec t0;    /* CLOCK_MONOTONIC, when the process started */
	struct fdbudget fds;   /* what the descriptors are spent on (daemon_plan_fds) */
	struct super_fds sfds; /* what a supervisor holds (SUPER_FD_* order) */
	int link;	       /* our end of the supervisor's link, or -1 */
	bool self_mounted;     /* daemon_mount made the mount itself */
	int super_forked;      /* the pid of the supervisor forked at start */
	/* Set once the daemon leaves: its descriptors are going, so no
	 * supervisor may be started on them. Guarded by link_lock, which
	 * the signal thread also holds while it stops the realiser on a
	 * SIGTERM (realise.h), so that daemon_fini does not free it meanwhile.
	 * (link_lock comes before the realiser's lock.) */
	bool leaving;
	pthread_mutex_t link_lock;
	pthread_t threads[4]; /* the service threads (daemon_services), joined at fini */
	size_t nthreads;
	bool stdio_dropped;
	bool inited; /* by daemon_init */
	/* Where the start went: the end of each step (daemon_mark). */
	struct {
		const char *what;
		struct timespec at;
	} marks[16];
	size_t nmarks;
};

/* Notes that step `what` of the start ends now. */
void daemon_mark(struct daemon *d, const char *what);
/* The steps, with what each took, as a debug line of the log. */
void daemon_log_marks(const struct daemon *d);

/* An empty daemon: no descriptors, no link. */
void daemon_prepare(struct daemon *d);

/* Raises the soft limit on descriptors to the hard one and shares it out
 * (fdbudget.h): d->fds. A limit too low to serve is refused, with a
 * message that says what it takes. Returns 0 or -1. */
int daemon_plan_fds(struct daemon *d);

/* Sets up everything the handlers use (after daemon_plan_fds). The bundles come from `sp` (taken
 * over), or when it is NULL from the state region (a successor). Returns 0
 * or -errno. */
errint_t daemon_init(struct daemon *d, struct spec *sp);
void daemon_fini(struct daemon *d);

/* Whether the daemon is leaving (or handing over): then a supervisor that
 * dies is not replaced, as what it would get is going, or another daemon's
 * now. */
void daemon_leaving(struct daemon *d, bool leaving);

/* Sets up logging from d->o (log.h): a background daemon logs where it
 * will once detached from now on, its problems also shown on the
 * command's stderr until it detaches. A problem (--log cannot be opened)
 * is printed. Returns 0 or -1. */
int daemon_plan_logging(struct daemon *d);
/* Lets go of stdio, and stops showing problems there (background daemons
 * only). */
void daemon_detach_logging(struct daemon *d);
/* Milliseconds since the process started (daemon_prepare). */
unsigned long long daemon_uptime_ms(const struct daemon *d);

/* The FUSE session, with the mount options of d->o. Returns 0 or -errno. */
errint_t daemon_session(struct daemon *d);

/* Mounts the session at `mnt` (itself where it can, else by libfuse).
 * Returns 0 or -errno, having logged why. */
errint_t daemon_mount(struct daemon *d, const char *mnt);
/* Undoes daemon_mount where the mount still serves (a failed start); at
 * the end, lets the session's descriptor go. */
void daemon_unmount(struct daemon *d, const char *mnt);

/* Starts the control socket, the reaper of retired versions, --watch,
 * the signal thread and the watch on the supervisor's link. */
void daemon_services(struct daemon *d);

/* Serves until the mount goes (returns 0), the loop fails (1), or the
 * connection is handed over to a new daemon (then it does not return: the
 * process exits without touching the mount). `serving` is called once
 * the workers run. */
int daemon_serve(struct daemon *d, void (*serving)(struct daemon *d));

/* Signals that the daemon blocks and handles (main.c blocks them before
 * any thread starts). */
void daemon_block_signals(void);

#endif
