/* fdbudget: what the daemon's descriptors are spent on.
 *
 * A daemon out of descriptors fails what it is asked: an open of a store
 * file answers EMFILE to a reader, the control socket accepts no one. So
 * every descriptor it may hold at once is counted against the limit
 * (RLIMIT_NOFILE, whose soft value is raised to the hard one at start):
 *
 *   held         what the daemon holds whatever it serves (stdio, the
 *                FUSE device, the state region, the supervisor's link, the
 *                control socket, the watchdog's pipe, the signalfd and
 *                eventfds, the store and GC roots directories, Nix's
 *                database and its log and index, the binary; a log file or
 *                syslog, --watch's inotify), and a few for brief uses (a
 *                status reads /proc, a reload its spec, the realiser's
 *                pipes)
 *   per worker   the pipe libfuse splices file data through (one per
 *                thread that replies with data, kept while it lives), and
 *                the request in flight: a path and the file it reopens
 *   control      the clients the control socket serves at once (control.h)
 *   caches       the handle caches (hcache.h), a share of the rest
 *
 * Fewer workers serve than asked when the limit has no room for them; a
 * limit with no room for one refuses to start: a daemon that would answer
 * EMFILE or no one is worse than none. */
#ifndef BUNDLEFS_FDBUDGET_H
#define BUNDLEFS_FDBUDGET_H

#include "util.h"

#define FDBUDGET_HELD	     24
#define FDBUDGET_PER_WORKER  4
#define FDBUDGET_CACHES_MIN  8 /* 2 directory descriptors, 4 files, 2 listings */
#define FDBUDGET_CLIENTS_MIN 2
#define FDBUDGET_CLIENTS_MAX 16

struct fdbudget {
	unsigned limit;		    /* descriptors in all */
	unsigned threads;	    /* worker threads */
	unsigned clients;	    /* control clients at once */
	unsigned tree, files, dirs; /* the handle caches (tree_init, handles_init) */
};

/* The least limit a daemon serves with (one worker): 38, which --help,
 * bundlefs(1) and the docs say. */
#define FDBUDGET_MIN                                                                               \
	(FDBUDGET_HELD + FDBUDGET_PER_WORKER + FDBUDGET_CLIENTS_MIN + FDBUDGET_CACHES_MIN)
unsigned fdbudget_min(void);

/* Shares `limit` descriptors out for at most `threads` worker threads.
 * Returns 0, or -EMFILE when the limit is below fdbudget_min(). */
errint_t fdbudget_plan(unsigned limit, unsigned threads, struct fdbudget *out);

#endif
