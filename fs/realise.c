/* realise: brings absent store paths in through `nix-store --realise`. */
#include "realise.h"
#include "bfs.h"
#include "log.h"
#include "strmap.h"
#include "subst.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STDERR_KEEP (64u << 10)

extern char **environ;

struct waiter {
	void (*done)(void *ctx, errint_t e);
	void *ctx;
	struct waiter *next;
};

struct rpath {
	char *base;
	enum { RP_QUEUED, RP_RUNNING, RP_DONE, RP_FAILED } state;
	bool demand;		/* a lookup waits for it */
	bool waited;		/* counted in realiser.waited */
	bool realised;		/* valid: Nix said so (RP_DONE) */
	bool early;		/* started by realise_early, nobody waiting yet */
	struct waiter *waiters; /* the lookups waiting */
	struct rpath *next;	/* in a queue, while queued */
	pid_t pid;		/* nix-store, while running */
	uint64_t failed_at;	/* ms, monotonic */
};

struct call {
	void (*fn)(void *ctx);
	void *ctx;
	struct call *next;
};

/* The lock is a leaf: no I/O and no callback runs while it is held. */
struct realiser {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct bfs *fs;
	struct strmap paths;	      /* base -> struct rpath */
	struct rpath *dhead, **dtail; /* wanted by lookups, first come first */
	struct rpath *phead, **ptail; /* prefetch */
	struct call *chead, **ctail;  /* realise_call, first of all */
	unsigned running_demand, running_prefetch, waited, prefetch;
	uint64_t quiet_until; /* no prefetch starts before (ms) */
	uint64_t realised, failed;
	char *extra;	/* --substituter caches, for nix-store */
	char stall[16]; /* --stall-timeout, for nix-store, or "" */
	pthread_t *threads;
	unsigned nthreads;
	bool stopping;
	bool silent; /* waiters are dropped (-ECANCELED), not answered */
};

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

errint_t realiser_start(struct bfs *fs, unsigned prefetch, const char *extra, unsigned stall)
{
	struct realiser *r = xcalloc(1, sizeof(*r));
	r->extra = extra && *extra ? xstrdup(extra) : NULL;
	if (stall)
		snprintf(r->stall, sizeof(r->stall), "%u", stall);
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->fs = fs;
	r->prefetch = prefetch;
	r->dtail = &r->dhead;
	r->ptail = &r->phead;
	r->ctail = &r->chead;
	fs->realiser = r;
	return 0;
}

static void free_path(struct rpath *p)
{
	for (struct waiter *w = p->waiters, *next; w; w = next) {
		next = w->next;
		free(w);
	}
	free(p->base);
	free(p);
}

static void finish(struct realiser *r, struct rpath *p, bool ok);

/* Stops realising: caches stop being waited for, running nix-store
 * children get SIGTERM (Nix cleans up after them), and queued paths are
 * not started; the lookups waiting for them are told. Called with the
 * lock held. */
static void quiesce(struct bfs *fs, struct realiser *r)
{
	if (fs->subst)
		subst_cancel(fs->subst);
	r->stopping = true;
	for (size_t i = 0; i < r->paths.cap; i++) {
		struct rpath *p = r->paths.slots[i].key ? r->paths.slots[i].val : NULL;
		if (p && p->state == RP_RUNNING && p->pid > 0)
			kill(p->pid, SIGTERM);
	}
	struct rpath *queued[] = {r->dhead, r->phead};
	r->dhead = r->phead = NULL;
	r->dtail = &r->dhead;
	r->ptail = &r->phead;
	for (size_t k = 0; k < ARRAY_SIZE(queued); k++)
		for (struct rpath *p = queued[k], *next; p; p = next) {
			next = p->next;
			p->next = NULL;
			finish(r, p, false);
		}
	pthread_cond_broadcast(&r->cond);
}

void realiser_quiesce(struct bfs *fs)
{
	struct realiser *r = fs->realiser;
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	if (!r->stopping)
		quiesce(fs, r);
	pthread_mutex_unlock(&r->lock);
}

void realiser_stop(struct bfs *fs)
{
	struct realiser *r = fs->realiser;
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	/* From here lookups still waiting are not answered: the kernel sends
	 * them again to a successor, or no longer waits for them. */
	r->silent = true;
	quiesce(fs, r);
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 0; i < r->nthreads; i++)
		pthread_join(r->threads[i], NULL);
	for (size_t i = 0; i < r->paths.cap; i++)
		if (r->paths.slots[i].key && r->paths.slots[i].val)
			free_path(r->paths.slots[i].val);
	strmap_free(&r->paths);
	free(r->threads);
	free(r->extra);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
	fs->realiser = NULL;
}

/* Does Nix's message `m` (of n bytes) start with `prefix`? */
static bool starts(const char *m, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && !memcmp(m, prefix, k);
}

static bool contains(const char *m, size_t n, const char *what)
{
	size_t k = strlen(what);
	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(m + i, what, k))
			return true;
	return false;
}

/* What Nix said went wrong, from its stderr: its messages (a line and the
 * indented lines that continue it, on one line) but for its progress
 * (what it will fetch, what it copies), the warnings it prints on every
 * run and the tries it will make again; and its closing "build of ...
 * failed" only when nothing else says why. Messages are joined with "; ".
 * E.g. "error: hash mismatch importing path '...'; specified: sha256:...
 * got: sha256:..." for a corrupt archive; "warning: unable to download
 * '...': Couldn't connect to server (7); don't know how to build these
 * paths: /nix/store/..." for a cache that went away. */
static char *nix_reason(const char *text, size_t len)
{
	struct buf out = {0}, fallback = {0};
	size_t i = 0;
	while (i < len) {
		/* One message: its first line, and the lines that continue it. */
		struct buf m = {0};
		size_t end = i;
		do {
			size_t eol = end;
			while (eol < len && text[eol] != '\n')
				eol++;
			/* Whitespace runs become one space. */
			for (size_t k = end; k < eol; k++) {
				bool space = text[k] == ' ' || text[k] == '\t' || text[k] == '\r';
				if (!space)
					buf_addc(&m, text[k]);
				else if (m.len && m.data[m.len - 1] != ' ')
					buf_addc(&m, ' ');
			}
			end = eol < len ? eol + 1 : eol;
		} while (end < len && (text[end] == ' ' || text[end] == '\t'));
		i = end;
		while (m.len && m.data[m.len - 1] == ' ')
			m.len--;
		const char *s = m.data;
		size_t n = m.len;
		bool drop = !n || starts(s, n, "these ") || starts(s, n, "this path ") ||
			    starts(s, n, "copying path ") ||
			    (starts(s, n, "warning: ") && contains(s, n, "; retrying in ")) ||
			    (starts(s, n, "warning: the group ") &&
			     contains(s, n, "'build-users-group'")) ||
			    starts(s, n, "warning: you did not specify '--add-root'");
		if (!drop && starts(s, n, "error: build of ")) {
			buf_reset(&fallback);
			buf_add(&fallback, s, n);
			drop = true;
		}
		if (!drop) {
			if (out.len)
				buf_adds(&out, "; ");
			buf_add(&out, s, n);
		}
		buf_free(&m);
	}
	if (!out.len && fallback.len)
		buf_add(&out, fallback.data, fallback.len);
	buf_free(&fallback);
	if (out.len > 2000) {
		out.len = 2000;
		buf_adds(&out, "...");
	}
	buf_addc(&out, 0);
	return out.data;
}

/* Runs nix-store --realise for one path. Returns 0, or -1 with why in
 * *msg (malloc'ed). */
static int run_nix_store(struct realiser *r, struct rpath *p, char **msg)
{
	struct bfs *fs = r->fs;
	char *path = xasprintf("%s/%s", fs->st.dir, p->base);
	int err[2];
	if (pipe2(err, O_CLOEXEC) < 0) {
		*msg = xasprintf("a pipe: %s", strerror(errno));
		free(path);
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	/* Nix's own settings (nix.conf, NIX_CONFIG) apply as they are; the
	 * caches bundlefs was given are added. A cache that hangs (accepts
	 * no connection, or stops sending mid-transfer) fails the
	 * realisation after --stall-timeout instead of Nix's 300 s: a lookup
	 * waits for it, and its caller with it. */
	char *argv[16];
	size_t n = 0;
	argv[n++] = "nix-store";
	argv[n++] = "--realise";
	argv[n++] = path;
	argv[n++] = "--option";
	argv[n++] = "fallback";
	argv[n++] = "false";
	if (*r->stall) {
		argv[n++] = "--option";
		argv[n++] = "stalled-download-timeout";
		argv[n++] = r->stall;
		argv[n++] = "--option";
		argv[n++] = "connect-timeout";
		argv[n++] = r->stall;
	}
	if (r->extra) {
		argv[n++] = "--option";
		argv[n++] = "extra-substituters";
		argv[n++] = r->extra;
	}
	argv[n] = NULL;
	pid_t pid;
	int e = posix_spawnp(&pid, "nix-store", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(err[1]);
	if (e) {
		close(err[0]);
		*msg = xasprintf("nix-store: %s", strerror(e));
		free(path);
		return -1;
	}
	pthread_mutex_lock(&r->lock);
	p->pid = pid;
	bool stopping = r->stopping;
	pthread_mutex_unlock(&r->lock);
	if (stopping)
		kill(pid, SIGTERM);
	struct buf out = {0};
	read_stream(err[0], STDERR_KEEP, &out);
	close(err[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&r->lock);
	p->pid = 0;
	pthread_mutex_unlock(&r->lock);
	char *text = out.data;
	size_t len = out.len;
	int rc = 0;
	struct stat sb;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		if (WIFEXITED(status)) {
			char *why = nix_reason(text ? text : "", len);
			/* (curl's words for a transfer that went quiet, or a
			 * connection not accepted: name the setting.) */
			bool stalled =
			    *r->stall && text && contains(text, len, "Timeout was reached");
			*msg = xasprintf("nix-store --realise failed: %s%s%s%s",
					 *why ? why : "(it said nothing)",
					 stalled ? "; a cache sent nothing for " : "",
					 stalled ? r->stall : "",
					 stalled ? " s (--stall-timeout)" : "");
			free(why);
		} else {
			*msg = xasprintf("nix-store --realise was killed by signal %d",
					 WTERMSIG(status));
		}
		rc = -1;
	} else if (fstatat(fs->st.fd, p->base, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		*msg =
		    xasprintf("nix-store --realise succeeded, but %s: %s", path, strerror(errno));
		rc = -1;
	}
	buf_free(&out);
	free(path);
	return rc;
}

/* Ends a path's realisation: its waiters are answered with the lock
 * dropped. Called with the lock held. */
static void finish(struct realiser *r, struct rpath *p, bool ok)
{
	p->state = ok ? RP_DONE : RP_FAILED;
	if (!ok)
		p->failed_at = now_ms();
	if (p->waited)
		r->waited--;
	p->waited = false;
	struct waiter *w = p->waiters;
	p->waiters = NULL;
	p->demand = false;
	pthread_mutex_unlock(&r->lock);
	for (struct waiter *next; w; w = next) {
		next = w->next;
		w->done(w->ctx, ok ? 0 : r->silent ? -ECANCELED : -EIO);
		free(w);
	}
	pthread_mutex_lock(&r->lock);
}

/* The next job for this thread, or NULL to stop; *wait_ms > 0 asks to
 * wait that long for prefetch to be allowed. Called with the lock held. */
static struct rpath *next_job(struct realiser *r, bool *prefetch, long *wait_ms)
{
	*wait_ms = -1;
	if (r->dhead && r->running_demand < REALISE_DEMAND_MAX) {
		struct rpath *p = r->dhead;
		if (!(r->dhead = p->next))
			r->dtail = &r->dhead;
		*prefetch = false;
		return p;
	}
	if (!r->phead || r->running_demand || r->waited || r->running_prefetch >= r->prefetch)
		return NULL;
	uint64_t now = now_ms();
	if (now < r->quiet_until) {
		*wait_ms = (long)(r->quiet_until - now);
		return NULL;
	}
	struct rpath *p = r->phead;
	if (!(r->phead = p->next))
		r->ptail = &r->phead;
	*prefetch = true;
	return p;
}

static void *worker(void *arg)
{
	struct realiser *r = arg;
	struct bfs *fs = r->fs;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		/* (Calls run even when stopping: each answers a request.) */
		if (r->chead) {
			struct call *c = r->chead;
			if (!(r->chead = c->next))
				r->ctail = &r->chead;
			pthread_mutex_unlock(&r->lock);
			c->fn(c->ctx);
			free(c);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->stopping)
			break;
		bool prefetch;
		long wait_ms;
		struct rpath *p = next_job(r, &prefetch, &wait_ms);
		if (!p) {
			if (wait_ms > 0) {
				struct timespec t;
				clock_gettime(CLOCK_MONOTONIC, &t);
				t.tv_sec += wait_ms / 1000;
				t.tv_nsec += (wait_ms % 1000) * 1000000;
				if (t.tv_nsec >= 1000000000) {
					t.tv_sec++;
					t.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&r->cond, &r->lock, &t);
			} else {
				pthread_cond_wait(&r->cond, &r->lock);
			}
			continue;
		}
		p->next = NULL;
		p->state = RP_RUNNING;
		if (prefetch)
			r->running_prefetch++;
		else
			r->running_demand++;
		pthread_mutex_unlock(&r->lock);
		char *msg = NULL;
		bool ran = false, ok;
		uint64_t t0 = now_ms();
		/* Realising one path realises its references first: many are
		 * valid by the time their turn comes. */
		if (resolver_valid(fs->resolver, p->base) == 1) {
			ok = true;
		} else {
			ran = true;
			log_debug("%s/%s: realising%s", fs->st.dir, p->base,
				  prefetch ? " (prefetch)" : "");
			ok = run_nix_store(r, p, &msg) == 0;
			if (ok)
				log_info("%s/%s: realised in %llu ms%s", fs->st.dir, p->base,
					 (unsigned long long)(now_ms() - t0),
					 prefetch ? " (prefetch)" : "");
		}
		pthread_mutex_lock(&r->lock);
		p->realised = ok;
		if (prefetch)
			r->running_prefetch--;
		else
			r->running_demand--;
		if (!prefetch || p->waiters)
			r->quiet_until = now_ms() + REALISE_QUIET_MS;
		if (ran)
			*(ok ? &r->realised : &r->failed) += 1;
		/* An early start that failed with nobody waiting is forgotten:
		 * the first lookup tries again, and reports. A failure is
		 * logged before the lookups waiting for it are answered. */
		bool forget = !ok && p->early && !p->waiters, waited = p->waiters != NULL;
		p->early = false;
		pthread_mutex_unlock(&r->lock);
		/* (A failed prefetch costs nobody anything yet: a use tries
		 * again.) */
		if (!ok && !forget)
			log_at(prefetch && !waited ? LOG_WARNING : LOG_ERR,
			       "%s/%s: cannot be realised%s: %s", fs->st.dir, p->base,
			       prefetch ? " (prefetch)" : "", msg);
		pthread_mutex_lock(&r->lock);
		bool late = forget && p->waiters; /* (a lookup came meanwhile) */
		forget &= !late;
		finish(r, p, ok || forget);
		if (forget)
			p->realised = false;
		if (late) {
			pthread_mutex_unlock(&r->lock);
			log_err("%s/%s: cannot be realised: %s", fs->st.dir, p->base, msg);
			pthread_mutex_lock(&r->lock);
		}
		free(msg);
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Starts the threads on first use. Called with the lock held. */
static void ensure_threads(struct realiser *r)
{
	if (r->threads)
		return;
	unsigned want = REALISE_DEMAND_MAX + r->prefetch + REALISE_CALLS;
	r->threads = xcalloc(want, sizeof(*r->threads));
	for (unsigned i = 0; i < want; i++) {
		int e = pthread_create(&r->threads[r->nthreads], NULL, worker, r);
		if (e) {
			log_err("a thread to realise store paths: %s", strerror(e));
			break;
		}
		r->nthreads++;
	}
}

static struct rpath *path_of(struct realiser *r, const char *base)
{
	size_t len = strlen(base);
	struct rpath *p = strmap_get(&r->paths, base, len);
	if (!p) {
		p = xcalloc(1, sizeof(*p));
		p->base = xstrdup(base);
		p->state = RP_DONE; /* (the caller queues it) */
		strmap_put(&r->paths, p->base, len, p);
	}
	return p;
}

/* Takes p off the prefetch queue. Called with the lock held. */
static void unqueue_prefetch(struct realiser *r, struct rpath *p)
{
	for (struct rpath **q = &r->phead; *q; q = &(*q)->next)
		if (*q == p) {
			*q = p->next;
			if (!*q)
				r->ptail = q;
			p->next = NULL;
			return;
		}
}

void realise_demand(struct bfs *fs, const char *base, void (*done)(void *ctx, errint_t e),
		    void *ctx)
{
	struct realiser *r = fs->realiser;
	pthread_mutex_lock(&r->lock);
	bool fresh = !strmap_get(&r->paths, base, strlen(base));
	struct rpath *p = path_of(r, base);
	errint_t now = 1;
	if (r->stopping) {
		now = -EIO;
	} else if (p->state == RP_FAILED && now_ms() - p->failed_at < REALISE_RETRY_SECS * 1000) {
		now = -EIO;
	} else if (p->state == RP_DONE && p->realised && !fresh) {
		struct stat sb;
		/* (gone again: collected, or deleted; realised anew) */
		if (fstatat(fs->st.fd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			now = 0;
	}
	if (now <= 0) {
		pthread_mutex_unlock(&r->lock);
		done(ctx, now);
		return;
	}
	p->early = false;
	struct waiter *w = xmalloc(sizeof(*w));
	*w = (struct waiter){done, ctx, p->waiters};
	if (!p->waited && p->state == RP_RUNNING) {
		/* A lookup waits for a prefetch: no other starts meanwhile. */
		r->waited++;
		p->waited = true;
	}
	p->waiters = w;
	if (p->state == RP_QUEUED && !p->demand)
		unqueue_prefetch(r, p);
	if (p->state != RP_RUNNING && !(p->state == RP_QUEUED && p->demand)) {
		p->state = RP_QUEUED;
		p->next = NULL;
		*r->dtail = p;
		r->dtail = &p->next;
	}
	p->demand = true;
	ensure_threads(r);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void early_root(void *ctx, const char *base, size_t n)
{
	struct bfs *fs = ctx;
	struct realiser *r = fs->realiser;
	char *name = xstrndup(base, n);
	pthread_mutex_lock(&r->lock);
	bool known = r->stopping || strmap_get(&r->paths, name, n);
	pthread_mutex_unlock(&r->lock);
	/* (Not on disk: certainly not valid. Asking the database would wait
	 * for its writers.) */
	struct stat sb;
	if (!known && fstatat(fs->st.fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
		pthread_mutex_lock(&r->lock);
		if (!r->stopping && !strmap_get(&r->paths, name, n)) {
			struct rpath *p = path_of(r, name);
			p->state = RP_QUEUED;
			p->demand = p->early = true;
			*r->dtail = p;
			r->dtail = &p->next;
			ensure_threads(r);
			pthread_cond_broadcast(&r->cond);
		}
		pthread_mutex_unlock(&r->lock);
	}
	free(name);
}

void realise_early(struct bfs *fs, struct bstate *b)
{
	if (!fs->realiser || !fs->subst)
		return;
	const struct bundle *sb = bundle_spec(b);
	for (size_t i = 0; i < sb->nargs; i++)
		store_find_refs(&fs->st, sb->args[i], early_root, fs);
}

void realise_prefetch(struct bfs *fs, struct bstate *b)
{
	struct realiser *r = fs->realiser;
	const struct closure *c = bundle_closure(b);
	if (!r || !r->prefetch || !c->nabsent)
		return;
	bool queued = false;
	for (size_t i = 0; i < c->n; i++) {
		if (!closure_absent(c, i) || resolver_valid(fs->resolver, c->base[i]) == 1)
			continue;
		pthread_mutex_lock(&r->lock);
		if (!r->stopping && !strmap_get(&r->paths, c->base[i], strlen(c->base[i]))) {
			struct rpath *p = path_of(r, c->base[i]);
			p->state = RP_QUEUED;
			*r->ptail = p;
			r->ptail = &p->next;
			queued = true;
		}
		pthread_mutex_unlock(&r->lock);
	}
	if (queued) {
		pthread_mutex_lock(&r->lock);
		uint64_t quiet = now_ms() + REALISE_QUIET_MS;
		if (r->quiet_until < quiet)
			r->quiet_until = quiet;
		ensure_threads(r);
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	}
}

void realise_call(struct bfs *fs, void (*fn)(void *ctx), void *ctx)
{
	struct realiser *r = fs->realiser;
	pthread_mutex_lock(&r->lock);
	if (r->stopping) { /* (no thread may take it: done here) */
		pthread_mutex_unlock(&r->lock);
		fn(ctx);
		return;
	}
	struct call *c = xmalloc(sizeof(*c));
	*c = (struct call){fn, ctx, NULL};
	*r->ctail = c;
	r->ctail = &c->next;
	ensure_threads(r);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

bool realise_roots_here(struct bfs *fs, struct bstate *b)
{
	struct arena a = {0};
	const char **roots;
	size_t n = closure_roots(&fs->st, bundle_spec(b), &a, &roots);
	bool here = true;
	for (size_t i = 0; i < n && here; i++) {
		struct stat sb;
		here = fstatat(fs->st.fd, roots[i], &sb, AT_SYMLINK_NOFOLLOW) == 0;
	}
	arena_free(&a);
	return here;
}

bool realise_is_local(struct bfs *fs, const char *base)
{
	struct realiser *r = fs->realiser;
	pthread_mutex_lock(&r->lock);
	struct rpath *p = strmap_get(&r->paths, base, strlen(base));
	bool done = p && p->state == RP_DONE && p->realised;
	pthread_mutex_unlock(&r->lock);
	return done || resolver_valid(fs->resolver, base) == 1;
}

bool realise_all_local(struct bfs *fs, struct bstate *b)
{
	const struct closure *c = bundle_closure(b);
	for (size_t i = 0; c->nabsent && i < c->n; i++)
		if (closure_absent(c, i) && !realise_is_local(fs, c->base[i]))
			return false;
	return true;
}

void realise_count(struct bfs *fs, const struct closure *c, size_t *local, size_t *inflight,
		   size_t *missing)
{
	struct realiser *r = fs->realiser;
	*local = *inflight = *missing = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (!closure_absent(c, i) || realise_is_local(fs, c->base[i])) {
			(*local)++;
			continue;
		}
		pthread_mutex_lock(&r->lock);
		struct rpath *p = strmap_get(&r->paths, c->base[i], strlen(c->base[i]));
		bool running = p && p->state == RP_RUNNING;
		pthread_mutex_unlock(&r->lock);
		(*(running ? inflight : missing))++;
	}
}

void realise_stats(struct bfs *fs, struct realise_stats *out)
{
	struct realiser *r = fs->realiser;
	memset(out, 0, sizeof(*out));
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	out->realised = r->realised;
	out->failed = r->failed;
	out->running = r->running_demand + r->running_prefetch;
	for (struct rpath *p = r->dhead; p; p = p->next)
		out->queued++;
	for (struct rpath *p = r->phead; p; p = p->next)
		out->queued++;
	out->prefetch = r->prefetch;
	pthread_mutex_unlock(&r->lock);
}
