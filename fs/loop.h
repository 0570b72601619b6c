/* loop: the daemon's workers. Each of a fixed number of threads reads a
 * request from the FUSE device and handles it, until the mount goes.
 *
 * The loop is ours, not libfuse's, so that it can stop at a request
 * boundary: a live upgrade hands the connection over with every request
 * the old daemon read answered, and none half done. Workers are woken from
 * their read by a signal (SIGUSR2, installed without SA_RESTART; SIGUSR1
 * is the signal thread's: it opens the log file again). */
#ifndef BUNDLEFS_LOOP_H
#define BUNDLEFS_LOOP_H

#include "util.h"

struct fuse_session;
struct loop;

/* Starts `threads` workers on `se`. Returns 0 or -errno. */
errint_t loop_start(struct loop **out, struct fuse_session *se, unsigned threads);
/* Waits for the workers: until the mount goes (returns 0), a worker fails
 * (1), or loop_stop (2). */
int loop_wait(struct loop *l);
/* Makes the workers stop after the request each is handling, if any; a
 * request read is always answered. Returns once all have stopped. */
void loop_stop(struct loop *l);
void loop_free(struct loop *l);

#endif
