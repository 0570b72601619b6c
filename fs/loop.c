/* loop: workers reading the FUSE device. */
#include "loop.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct loop {
	struct fuse_session *se;
	unsigned n;
	pthread_t *threads;
	atomic_bool stopping;
	atomic_int result; /* 0, or 1 when a worker failed */
	atomic_uint running;
	pthread_mutex_t lock;
	pthread_cond_t done;
};

static void wake(int sig)
{
	(void)sig; /* only to interrupt read(2) */
}

static void *worker(void *arg)
{
	struct loop *l = arg;
	struct fuse_buf buf = {0};
	while (!atomic_load(&l->stopping)) {
		int res = fuse_session_receive_buf(l->se, &buf);
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0) {
			/* 0: the mount is gone (libfuse saw ENODEV). */
			if (res < 0)
				atomic_store(&l->result, 1);
			break;
		}
		/* A request read is answered, also when stopping. */
		fuse_session_process_buf(l->se, &buf);
	}
	free(buf.mem);
	pthread_mutex_lock(&l->lock);
	atomic_fetch_sub(&l->running, 1);
	pthread_cond_broadcast(&l->done);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

errint_t loop_start(struct loop **out, struct fuse_session *se, unsigned threads)
{
	struct sigaction sa = {.sa_handler = wake};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL); /* no SA_RESTART: read(2) returns EINTR */
	struct loop *l = xcalloc(1, sizeof(*l));
	l->se = se;
	l->n = threads ? threads : 1;
	l->threads = xcalloc(l->n, sizeof(*l->threads));
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->done, NULL);
	atomic_init(&l->running, 0);
	for (unsigned i = 0; i < l->n; i++) {
		atomic_fetch_add(&l->running, 1);
		int e = pthread_create(&l->threads[i], NULL, worker, l);
		if (e) {
			atomic_fetch_sub(&l->running, 1);
			l->n = i;
			loop_stop(l);
			loop_free(l);
			return -e;
		}
	}
	*out = l;
	return 0;
}

int loop_wait(struct loop *l)
{
	/* The first worker to end means the mount is gone (or stopping): the
	 * others are blocked in read(2) with nothing to come, so wake them. */
	pthread_mutex_lock(&l->lock);
	while (atomic_load(&l->running) == l->n)
		pthread_cond_wait(&l->done, &l->lock);
	pthread_mutex_unlock(&l->lock);
	bool stopped = atomic_exchange(&l->stopping, true);
	loop_stop(l);
	return stopped ? 2 : atomic_load(&l->result);
}

void loop_stop(struct loop *l)
{
	atomic_store(&l->stopping, true);
	pthread_mutex_lock(&l->lock);
	while (atomic_load(&l->running) > 0) {
		for (unsigned i = 0; i < l->n; i++)
			pthread_kill(l->threads[i], SIGUSR2);
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 10 * 1000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&l->done, &l->lock, &t);
	}
	pthread_mutex_unlock(&l->lock);
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->n; i++)
		pthread_join(l->threads[i], NULL);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->done);
	free(l->threads);
	free(l);
}
