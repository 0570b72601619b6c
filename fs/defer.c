/* defer: deferred requests' interrupts, answered from a thread of their own. */
#include "defer.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The lock is a leaf, taken under libfuse's request lock (in the
 * interrupt callback). */
struct deferrer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct deferral *head, **tail; /* claimed by an interrupt, to answer */
	pthread_t thread;
	bool started, failed, stopping;
};

struct deferrer *defer_new(void)
{
	struct deferrer *q = xcalloc(1, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->tail = &q->head;
	return q;
}

static void put(struct deferral *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1)
		d->release(d);
}

/* Answers the requests interrupts claimed. Nothing here waits but on the
 * queue (and, for a moment, on a callback still running). */
static void *answerer(void *arg)
{
	struct deferrer *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct deferral *d = q->head;
		if (!d) {
			if (q->stopping)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		if (!(q->head = d->next))
			q->tail = &q->head;
		pthread_mutex_unlock(&q->lock);
		/* (The callback that queued d may not have returned yet.) */
		fuse_req_interrupt_func(d->req, NULL, NULL);
		log_debug("%s: interrupted (its caller got a signal): answered EINTR", d->what);
		fuse_reply_err(d->req, EINTR);
		put(d);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* libfuse's interrupt callback, called with the request's lock held: no
 * reply here, only the hand-off. */
static void interrupted(fuse_req_t req, void *data)
{
	(void)req;
	struct deferral *d = data;
	if (atomic_exchange(&d->answered, true))
		return; /* (answered, or being answered, by the completion) */
	struct deferrer *q = d->owner;
	pthread_mutex_lock(&q->lock);
	d->next = NULL;
	*q->tail = d;
	q->tail = &d->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void defer_start(struct deferrer *q, struct deferral *d, fuse_req_t req, const char *what,
		 void (*release)(struct deferral *d))
{
	d->req = req;
	d->what = what;
	d->owner = q;
	atomic_init(&d->answered, false);
	atomic_init(&d->refs, 2);
	d->release = release;
	d->next = NULL;
	/* The thread starts with the first deferral: most mounts never
	 * defer a request. Without it, interrupts are not answered and the
	 * completion answers, as it would have anyway. */
	pthread_mutex_lock(&q->lock);
	if (!q->started && !q->failed && !q->stopping) {
		int e = pthread_create(&q->thread, NULL, answerer, q);
		q->started = e == 0;
		q->failed = e != 0;
		if (e)
			log_err(
			    "a thread to answer interrupted requests: %s; a reader waiting for a "
			    "store path cannot be interrupted",
			    strerror(e));
	}
	bool answering = q->started && !q->stopping;
	pthread_mutex_unlock(&q->lock);
	/* (Called at once when the request was interrupted already.) */
	if (answering)
		fuse_req_interrupt_func(req, interrupted, d);
}

bool defer_claim(struct deferral *d)
{
	if (atomic_exchange(&d->answered, true))
		return false;
	/* Waits out a callback running now (it found d answered), and none
	 * comes after: the completion may answer, and then free d. */
	fuse_req_interrupt_func(d->req, NULL, NULL);
	/* (No answer from the thread, then: its reference goes now.) */
	atomic_fetch_sub(&d->refs, 1);
	return true;
}

void defer_done(struct deferral *d)
{
	put(d);
}

void defer_free(struct deferrer *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	bool started = q->started;
	pthread_mutex_unlock(&q->lock);
	if (started)
		pthread_join(q->thread, NULL);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}
