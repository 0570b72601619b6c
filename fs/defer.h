/* defer: FUSE requests answered later, from another thread, that their
 * callers may give up on.
 *
 * A request whose answer waits (a LOOKUP of a store path being realised:
 * realise.h) holds its caller in the kernel until the daemon answers, and
 * not even SIGKILL ends that wait: the kernel sends FUSE_INTERRUPT and
 * waits on. libfuse hands the interrupt to a callback, called with the
 * request's lock held, where no reply may be sent (a reply frees the
 * request, whose lock libfuse releases after the callback). So the
 * callback only claims the request and queues it; the answering thread,
 * which does nothing else and never waits on anything else, answers it
 * EINTR. What the request waited for goes on for its other waiters, and
 * its completion finds the request answered.
 *
 * One reply: the completion (defer_claim) and the interrupt race for an
 * atomic flag, and only the winner answers. One free: a deferral is freed
 * by the last of the completion (defer_done) and the answering thread.
 * Whoever answers first turns the interrupt callback off, waiting out one
 * that is running (fuse_req_interrupt_func with NULL takes the request's
 * lock), so that no callback touches a deferral once it may be freed. */
#ifndef BUNDLEFS_DEFER_H
#define BUNDLEFS_DEFER_H

#include "util.h"

#include <fuse_lowlevel.h>

#include <stdatomic.h>

struct deferrer;

struct deferral {
	fuse_req_t req;
	struct deferrer *owner;
	atomic_bool answered;
	atomic_uint refs;		     /* the completion's, and the answer's */
	void (*release)(struct deferral *d); /* frees what d is part of */
	const char *what;		     /* for the log: what the request asks */
	struct deferral *next;		     /* while queued for EINTR */
};

struct deferrer *defer_new(void);
/* Answers what is queued and ends the answering thread. Call it once no
 * FUSE worker runs (no interrupt comes any more), before the session is
 * destroyed. */
void defer_free(struct deferrer *q);

/* Defers req (from its handler, before handing it on): from now on an
 * interrupt answers it EINTR. release(d) frees what holds d, once both
 * the completion and any answer are done with it; `what` (for the log)
 * lives as long. */
void defer_start(struct deferrer *q, struct deferral *d, fuse_req_t req, const char *what,
		 void (*release)(struct deferral *d));
/* For the completion, before it answers: true if it must answer d->req
 * now (no interrupt is answered any more), false if the request was
 * answered already (EINTR): it must not be touched. */
bool defer_claim(struct deferral *d);
/* The completion is finished with d, whether it answered or not. */
void defer_done(struct deferral *d);

#endif
