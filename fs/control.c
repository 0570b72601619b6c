/* control: status, reload, reset and prune over the control socket. */
#include "control.h"
#include "ctlsock.h"
#include "daemon.h"
#include "loop.h"
#include "service.h"
#include "state.h"
#include "log.h"
#include "mounts.h"
#include "overlay.h"
#include "realise.h"
#include "reload.h"
#include "subst.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double seconds(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	long kib = -1;
	char line[256];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* The next line of `*p` (problems are kept one per line), malloc'ed, or
 * NULL at the end; *p moves past it. */
static char *next_line(const char **p)
{
	if (!*p || !**p)
		return NULL;
	const char *e = strchr(*p, '\n');
	size_t n = e ? (size_t)(e - *p) : strlen(*p);
	char *line = xstrndup(*p, n);
	*p += n + (e != NULL);
	return line;
}

/* The problems of `text` as strings (the reload command's answer). */
static cJSON *lines_json(const char *text)
{
	cJSON *a = cJSON_CreateArray();
	for (char *line; (line = next_line(&text)); free(line))
		cJSON_AddItemToArray(a, cJSON_CreateString(line));
	return a;
}

/* ---- the status document ------------------------------------------------ */

/* Its schema: see bundlectl(1), STATUS DOCUMENT, which lists every field.
 * Every field is there in every state (null where unknown or not
 * applicable). Fields are only added within a version; removing one or
 * changing its meaning makes a new version. */
#define STATUS_VERSION 1

static void add_count(cJSON *o, const char *name, bool known, double v)
{
	if (known)
		cJSON_AddNumberToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

static cJSON *problem_json(const char *bundle, enum problem_kind kind, const char *message)
{
	cJSON *p = cJSON_CreateObject();
	if (bundle)
		cJSON_AddStringToObject(p, "bundle", bundle);
	else
		cJSON_AddNullToObject(p, "bundle");
	cJSON_AddStringToObject(p, "kind", problem_kind_name(kind));
	cJSON_AddStringToObject(p, "message", message);
	return p;
}

/* Each problem into `list` and into the document's `all`. */
static void add_problem(cJSON *list, cJSON *all, const char *bundle, enum problem_kind kind,
			const char *message)
{
	cJSON_AddItemToArray(list, problem_json(bundle, kind, message));
	cJSON_AddItemToArray(all, problem_json(bundle, kind, message));
}

static void add_tristate(cJSON *o, const char *name, int v)
{
	if (v < 0)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddBoolToObject(o, name, v);
}

static void add_daemon(cJSON *root, struct bfs *fs)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	cJSON_AddNumberToObject(root, "version", STATUS_VERSION);
	cJSON_AddStringToObject(root, "bundlefs", BUNDLEFS_VERSION);
	cJSON_AddNumberToObject(root, "pid", getpid());
	int super = atomic_load(&fs->supervisor_pid);
	add_count(root, "supervisor", super > 0, super);
	cJSON_AddStringToObject(root, "mountpoint", fs->mountpoint);
	cJSON_AddStringToObject(root, "spec", fs->spec_path);
	cJSON_AddStringToObject(root, "state_dir", fs->state_dir);
	cJSON_AddNumberToObject(root, "started", seconds(&fs->started));
	cJSON_AddNumberToObject(root, "uptime", seconds(&now) - seconds(&fs->started));
	struct state_history h = {0};
	if (fs->state)
		state_history(fs->state, &h);
	add_count(root, "mounted", fs->state != NULL, h.mounted);
	add_count(root, "failovers", fs->state != NULL, h.failovers);
	add_count(root, "upgrades", fs->state != NULL, h.upgrades);
	cJSON_AddNumberToObject(root, "nodes", (double)fs->nodes.live);
	cJSON_AddNumberToObject(root, "rss", (double)rss_kib() * 1024);

	cJSON *pt = cJSON_AddObjectToObject(root, "passthrough");
	struct passthrough_stats ps = {0};
	if (fs->pt)
		passthrough_stats(fs->pt, &ps);
	cJSON_AddBoolToObject(pt, "on", fs->pt != NULL);
	add_count(pt, "backing_files", fs->pt != NULL, (double)ps.ids);
	add_count(pt, "opens", fs->pt != NULL, (double)ps.opens);
	add_count(pt, "registered", fs->pt != NULL, (double)ps.registered);
	add_count(pt, "failed", fs->pt != NULL, (double)ps.failed);

	cJSON *su = cJSON_AddObjectToObject(root, "substitution");
	bool on = fs->subst != NULL;
	struct realise_stats rs = {0};
	uint64_t fetched = 0, bytes = 0;
	cJSON_AddBoolToObject(su, "on", on);
	if (on) {
		realise_stats(fs, &rs);
		subst_stats(fs->subst, &fetched, &bytes);
		cJSON *urls = cJSON_AddArrayToObject(su, "substituters");
		for (size_t i = 0; i < subst_count(fs->subst); i++)
			cJSON_AddItemToArray(urls, cJSON_CreateString(subst_url(fs->subst, i)));
	} else {
		cJSON_AddNullToObject(su, "substituters");
	}
	add_count(su, "narinfo", on, (double)fetched);
	add_count(su, "realised", on, (double)rs.realised);
	add_count(su, "failed", on, (double)rs.failed);
	add_count(su, "running", on, rs.running);
	add_count(su, "queued", on, rs.queued);
	add_count(su, "prefetch", on, rs.prefetch);
}

/* One bundle of the current set. Called with gen_lock held (read). */
static cJSON *bundle_json(struct bfs *fs, struct bstate *b, const struct mounts_all *all,
			  cJSON *problems)
{
	const char *name = bundle_name(b);
	struct bundle_info info;
	bundle_info(b, &info);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddNumberToObject(o, "serial", (double)bundle_serial(b));
	cJSON_AddStringToObject(o, "state", info.state);
	bool readonly = bundle_spec(b)->readonly;
	cJSON_AddBoolToObject(o, "readonly", readonly);
	add_count(o, "paths", info.resolved, (double)info.paths);
	add_count(o, "bytes", info.resolved, (double)info.bytes);
	size_t local = 0, inflight = 0, missing = 0;
	if (info.resolved)
		realise_count(fs, bundle_closure(b), &local, &inflight, &missing);
	add_count(o, "local", info.resolved, (double)local);
	add_count(o, "realising", info.resolved, (double)inflight);
	add_count(o, "missing", info.resolved, (double)missing);
	cJSON_AddNumberToObject(o, "requests", (double)info.requests);
	cJSON_AddNumberToObject(o, "served", (double)info.served);
	/* In use: a container has its root on the version (read-only), or on
	 * its writable root. */
	int in_use = all ? reload_version_in_use(fs, all, bundle_serial(b), false) : -1;
	struct overlay_status os;
	overlay_status(fs, b, all, &os);
	cJSON *data = cJSON_AddObjectToObject(o, "data");
	if (os.data)
		cJSON_AddStringToObject(data, "path", os.data);
	else
		cJSON_AddNullToObject(data, "path");
	if (os.why)
		cJSON_AddStringToObject(data, "why", os.why);
	else
		cJSON_AddNullToObject(data, "why");
	cJSON *wr = NULL;
	if (!readonly) {
		wr = cJSON_CreateObject();
		cJSON_AddStringToObject(wr, "upper", os.upper);
		cJSON_AddBoolToObject(wr, "mounted", os.mounted);
		add_tristate(wr, "in_use", os.in_use);
	}
	if (in_use == 0)
		in_use = os.in_use;
	free(os.upper);
	free(os.why);
	add_tristate(o, "in_use", in_use);
	if (wr)
		cJSON_AddItemToObject(o, "writable_root", wr);
	else
		cJSON_AddNullToObject(o, "writable_root");
	cJSON *list = cJSON_AddArrayToObject(o, "problems");
	for (size_t i = 0; i < info.nproblems; i++)
		add_problem(list, problems, name, info.problems[i].kind, info.problems[i].message);
	bundle_info_free(&info);
	return o;
}

char *control_status(struct bfs *fs)
{
	cJSON *root = cJSON_CreateObject();
	add_daemon(root, fs);

	pthread_mutex_lock(&fs->reload_lock);
	const struct reload_result *r = &fs->last_reload;
	bool reloaded = r->at.tv_sec != 0;
	/* Every problem: the last reload's, then each bundle's (also in its
	 * own list). */
	cJSON *problems = cJSON_AddArrayToObject(root, "problems");
	cJSON *rl = cJSON_AddObjectToObject(root, "last_reload");
	add_count(rl, "at", reloaded, seconds(&r->at));
	if (reloaded)
		cJSON_AddBoolToObject(rl, "ok", r->ok);
	else
		cJSON_AddNullToObject(rl, "ok");
	add_count(rl, "generation", reloaded, (double)r->generation);
	cJSON *list = cJSON_AddArrayToObject(rl, "problems");
	const char *text = r->problems;
	for (char *line; (line = next_line(&text)); free(line))
		add_problem(list, problems, NULL, PROBLEM_SPEC, line);
	pthread_mutex_unlock(&fs->reload_lock);

	/* Which versions containers use: every namespace's mounts, read once
	 * (before the lock: it reads /proc, which may take a while). */
	struct mounts_all all;
	bool known = mounts_all_read(&all) == 0;
	pthread_rwlock_rdlock(&fs->gen_lock);
	cJSON_AddNumberToObject(root, "generation", (double)fs->generation);
	cJSON_AddNumberToObject(root, "loaded", seconds(&fs->loaded));
	cJSON *arr = cJSON_AddArrayToObject(root, "bundles");
	struct bundles *set = fs->bundles;
	for (size_t i = 0; i < bundles_count(set); i++)
		cJSON_AddItemToArray(
		    arr, bundle_json(fs, bundles_at(set, i), known ? &all : NULL, problems));
	pthread_rwlock_unlock(&fs->gen_lock);
	if (known)
		mounts_all_free(&all);
	char *out = cJSON_Print(root);
	cJSON_Delete(root);
	return out;
}

char *control_status_line(struct bfs *fs, const struct reload_result *last)
{
	size_t n, failed = 0, retrying = 0;
	uint64_t generation;
	pthread_rwlock_rdlock(&fs->gen_lock);
	generation = fs->generation;
	n = bundles_count(fs->bundles);
	for (size_t i = 0; i < n; i++) {
		const char *s = bundles_state_at(fs->bundles, i);
		failed += !strcmp(s, "failed");
		retrying += !strcmp(s, "retrying");
	}
	pthread_rwlock_unlock(&fs->gen_lock);
	struct buf b = {0};
	buf_addf(&b, "serving %zu bundle%s (generation %llu)", n, n == 1 ? "" : "s",
		 (unsigned long long)generation);
	if (failed)
		buf_addf(&b, "; %zu failed", failed);
	if (retrying)
		buf_addf(&b, "; %zu retrying", retrying);
	if (last && !last->ok)
		buf_adds(&b, "; the last reload failed: the spec has problems");
	return b.data;
}

static char *reload_doc(struct bfs *fs)
{
	struct reload_result r;
	reload_run(fs, &r);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddBoolToObject(root, "ok", r.ok);
	cJSON_AddNumberToObject(root, "generation", (double)r.generation);
	cJSON_AddItemToObject(root, "problems", lines_json(r.problems));
	free(r.problems);
	char *out = cJSON_Print(root);
	cJSON_Delete(root);
	return out;
}

static char *error_doc(const char *msg)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "error", msg);
	char *out = cJSON_Print(root);
	cJSON_Delete(root);
	return out;
}

/* `reset NAME`: the bundle starts from a clean root (overlay.h). A name
 * the spec does not have, or a read-only bundle, is refused: the client
 * exits 2 for those, as for any bad argument. */
static char *reset_doc(struct bfs *fs, const char *name)
{
	if (!spec_valid_name(name, strlen(name)) || !strcmp(name, SPEC_RESERVED_NAME))
		return error_doc("reset: not a bundle name");
	char *msg = NULL;
	errint_t e = overlay_reset(fs, name, &msg);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddBoolToObject(root, "ok", e == 0);
	if (msg)
		cJSON_AddStringToObject(root, e == -ENOENT || e == -EROFS ? "refused" : "error",
					msg);
	free(msg);
	char *out = cJSON_Print(root);
	cJSON_Delete(root);
	return out;
}

/* `prune [dry-run]`: the state no bundle of the spec uses (overlay.h). */
static char *prune_doc(struct bfs *fs, const char *args)
{
	bool dry_run = !strcmp(args, " dry-run");
	if (*args && !dry_run)
		return error_doc("prune: unknown argument");
	cJSON *root = cJSON_CreateObject();
	cJSON *gens = cJSON_CreateArray();
	errint_t e = overlay_prune(fs, dry_run, gens);
	cJSON_AddBoolToObject(root, "ok", e == 0);
	cJSON_AddStringToObject(root, "state_dir", fs->state_dir);
	cJSON_AddItemToObject(root, "generations", gens);
	if (e < 0)
		cJSON_AddStringToObject(root, "problem", strerror(-e));
	char *out = cJSON_Print(root);
	cJSON_Delete(root);
	return out;
}

/* ---- live upgrade: handing the connection over --------------------------------- */

bool control_read_line(int c, char *line, size_t size)
{
	size_t n = 0;
	while (n < size - 1) {
		ssize_t r = read(c, line + n, 1);
		if (r <= 0)
			return false;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	return true;
}

static void say(int c, const char *msg)
{
	send(c, msg, strlen(msg), MSG_NOSIGNAL);
}

/* `takeover FORMAT`, from a new daemon (takeover.c). It gets the
 * connection's descriptors and checks it can read the state; the workers
 * stop at a request boundary; it restores the nodes and says it serves;
 * this daemon leaves (daemon_serve). If the new one goes away before it
 * serves, the workers start again. */
static void hand_over(struct bfs *fs, int c, const char *args, bool trusted)
{
	struct daemon *d = fs->daemon;
	unsigned format = 0;
	if (!trusted || !d) {
		say(c, "error: permission denied\n");
		return;
	}
	if (sscanf(args, "%u", &format) != 1 || format != STATE_FORMAT) {
		char msg[128];
		snprintf(msg, sizeof(msg),
			 "error: the state is in format %u, the new daemon reads %u\n",
			 STATE_FORMAT, format);
		say(c, msg);
		return;
	}
	/* No reload while the connection changes hands: held until this
	 * daemon leaves, or given back. */
	pthread_mutex_lock(&fs->reload_lock);
	int fds[SUPER_NFDS], n = 0;
	unsigned mask = 0;
	for (int i = 0; i < SUPER_NFDS; i++) {
		int fd = i == SUPER_IX(SUPER_FD_LINK) ? d->link : d->sfds.fd[i];
		if (fd >= 0 && i != SUPER_IX(SUPER_FD_EXE)) {
			fds[n++] = fd;
			mask |= 1u << i;
		}
	}
	char msg[64];
	int len = snprintf(msg, sizeof(msg), "ok %u %d\n", mask, atomic_load(&fs->supervisor_pid));
	char ctl[CMSG_SPACE(sizeof(fds))];
	memset(ctl, 0, sizeof(ctl));
	struct iovec iov = {msg, (size_t)len};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = ctl,
			   .msg_controllen = CMSG_SPACE(n * sizeof(int))};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	char line[64];
	if (sendmsg(c, &m, MSG_NOSIGNAL) < 0 || !control_read_line(c, line, sizeof(line)) ||
	    strcmp(line, "stop")) {
		pthread_mutex_unlock(&fs->reload_lock);
		return;
	}
	daemon_leaving(d, true);
	pthread_mutex_lock(&fs->handover_lock);
	fs->handover = HANDOVER_STOPPED;
	pthread_mutex_unlock(&fs->handover_lock);
	loop_stop(fs->loop);
	say(c, "stopped\n");
	unsigned long pid = 0;
	bool served =
	    control_read_line(c, line, sizeof(line)) && sscanf(line, "serving %lu", &pid) == 1;
	if (served) {
		char note[64];
		snprintf(note, sizeof(note), "MAINPID=%lu", pid);
		service_notify(note);
	} else {
		daemon_leaving(d, false);
		pthread_mutex_unlock(&fs->reload_lock);
	}
	pthread_mutex_lock(&fs->handover_lock);
	fs->handover = served ? HANDOVER_DONE : HANDOVER_FAILED;
	pthread_cond_broadcast(&fs->handover_cond);
	pthread_mutex_unlock(&fs->handover_lock);
	/* The listening socket is the new daemon's now: this one accepts
	 * nothing more while it leaves. */
	while (served)
		pause();
}

/* Whether this daemon's FUSE connection has ended (the kernel reports an
 * error on its descriptor then): its device number may be another
 * mount's already, whose clients must not take this daemon for theirs. */
static bool connection_ended(struct bfs *fs)
{
	int fd = fs->daemon ? fs->daemon->sfds.fd[SUPER_IX(SUPER_FD_FUSE)] : -1;
	struct pollfd p = {.fd = fd, .events = 0};
	return fd >= 0 && poll(&p, 1, 0) >= 0 && (p.revents & (POLLERR | POLLNVAL));
}

/* The answer to request `line` from a client (`trusted`: root or the
 * daemon's user), malloc'ed; NULL when a takeover took the connection
 * (answered as it went). */
static char *answer(struct bfs *fs, int c, const char *line, bool trusted)
{
	bool takeover = !strncmp(line, "takeover ", 9);
	if (connection_ended(fs))
		return takeover ? xstrdup("error: this daemon's mount has ended\n")
				: error_doc("this daemon's mount has ended");
	if (takeover) {
		/* (A conversation: the connection blocks, and waits as long as
		 * the new daemon takes, which only root or this user can be.) */
		fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK);
		hand_over(fs, c, line + 9, trusted);
		return NULL;
	}
	if (!strcmp(line, "status"))
		return control_status(fs);
	if (!strcmp(line, "reload"))
		return trusted ? reload_doc(fs) : error_doc("reload: permission denied");
	if (!strncmp(line, "reset ", 6))
		return trusted ? reset_doc(fs, line + 6) : error_doc("reset: permission denied");
	if (!strncmp(line, "prune", 5) && (!line[5] || line[5] == ' '))
		return trusted ? prune_doc(fs, line + 5) : error_doc("prune: permission denied");
	return error_doc("unknown command");
}

/* ---- serving clients side by side ----------------------------------------------- */

/* Clients are served from one poll loop, none waited for: a client has
 * REQUEST_MS to send its line and ANSWER_MS to take the answer, and one
 * that sends or reads nothing holds no one else up meanwhile. At most
 * `max` are served at once (each holds a descriptor: fdbudget.h); one
 * more makes room by dropping another, a client that may change nothing
 * before root or the daemon's user, the oldest first. Requests are
 * carried out here, one at a time, those of root and the daemon's user
 * first. Out of descriptors, accepting waits BACKOFF_MS and tries again,
 * first making room by dropping a client that may change nothing: the
 * thread never ends before the daemon leaves. */
#define REQUEST_MS 2000
#define ANSWER_MS  10000
#define BACKOFF_MS 100

enum client_state { READING, ANSWERING };

struct client {
	int fd;
	bool trusted; /* root or the daemon's user (SO_PEERCRED) */
	enum client_state state;
	uint64_t seq;	  /* accepted as the seq-th */
	int64_t deadline; /* for its request, then its answer (now_ms) */
	char line[320];
	size_t n;
	char *out; /* the answer */
	size_t len, off;
};

struct server {
	struct bfs *fs;
	int fd; /* listening */
	unsigned max;
	struct client *c;
	unsigned n;
	uint64_t seq;
	int64_t retry_at; /* accept no earlier (out of descriptors), or 0 */
	int short_of;	  /* the errno accepting last failed with, logged once */
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void drop(struct server *s, unsigned i)
{
	close(s->c[i].fd);
	free(s->c[i].out);
	s->c[i] = s->c[--s->n];
}

/* The client to drop for room: one that may change nothing before root
 * or the daemon's user, the oldest first; with `untrusted_only`, none
 * else. -1 when there is none. */
static int victim(const struct server *s, bool untrusted_only)
{
	int v = -1;
	for (unsigned i = 0; i < s->n; i++) {
		const struct client *c = &s->c[i];
		if (untrusted_only && c->trusted)
			continue;
		if (v < 0 || (!c->trusted && s->c[v].trusted) ||
		    (c->trusted == s->c[v].trusted && c->seq < s->c[v].seq))
			v = (int)i;
	}
	return v;
}

/* A client turned away for room, told why if it listens. */
static void turn_away(int fd)
{
	static const char busy[] = "{\"error\": \"too many clients at once: try again\"}";
	send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void push_out(struct server *s, unsigned i)
{
	turn_away(s->c[i].fd);
	drop(s, i);
}

static void admit(struct server *s, int fd)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	bool trusted = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
		       (cred.uid == 0 || cred.uid == geteuid());
	if (s->n == s->max) {
		int v = victim(s, false);
		/* (The newcomer is the newest: it goes only if everyone in may
		 * change things and it may not.) */
		if (!trusted && s->c[v].trusted) {
			turn_away(fd);
			close(fd);
			return;
		}
		push_out(s, (unsigned)v);
	}
	s->c[s->n++] = (struct client){.fd = fd,
				       .trusted = trusted,
				       .state = READING,
				       .seq = s->seq++,
				       .deadline = now_ms() + REQUEST_MS};
}

/* Takes the clients waiting to connect. */
static void accept_all(struct server *s)
{
	for (unsigned k = 0; k < s->max + 64; k++) {
		/* (The listening socket blocks: it is shared with the
		 * supervisor and successors, and so are its flags.) */
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
			return;
		int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			if (s->short_of) {
				log_info("control socket: accepting clients again");
				s->short_of = 0;
			}
			admit(s, fd);
			continue;
		}
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return;
		if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM)
			continue;
		/* Out of descriptors: a client that may change nothing makes
		 * room (so that a crowd of them does not keep root out). Out
		 * of memory (ENOBUFS, ENOMEM), or anything else: the clients
		 * wait in the socket's queue until accepting is tried again. */
		int v = e == EMFILE || e == ENFILE ? victim(s, true) : -1;
		if (v >= 0) {
			push_out(s, (unsigned)v);
			continue;
		}
		if (s->short_of != e)
			log_warning(
			    "control socket: cannot accept clients (%s): they wait until it "
			    "can",
			    strerror(e));
		s->short_of = e;
		s->retry_at = now_ms() + BACKOFF_MS;
		return;
	}
}

/* Reads what client `c` sent of its line (one byte at a time: nothing
 * after the line is taken, which a takeover reads itself). Returns false
 * when it went away. */
static bool read_request(struct client *c)
{
	while (c->n < sizeof(c->line) - 1) {
		ssize_t r = read(c->fd, c->line + c->n, 1);
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		if (r == 0)
			return false;
		if (c->line[c->n] == '\n')
			break;
		c->n++;
	}
	/* (A line too long is taken as it is: no command is that long.) */
	c->line[c->n] = 0;
	c->state = ANSWERING;
	return true;
}

/* Sends what it can of client `c`'s answer. Returns false once it is all
 * sent, or the client went away. */
static bool send_answer(struct client *c)
{
	while (c->off < c->len) {
		ssize_t w =
		    send(c->fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		c->off += (size_t)w;
	}
	return false;
}

/* Carries out the request of every client that has sent one, root's and
 * the daemon's user's first; what comes back is sent as the client
 * takes it. */
static void carry_out(struct server *s)
{
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < s->n;) {
			struct client *c = &s->c[i];
			if (c->state != ANSWERING || c->out || c->trusted != (pass == 0)) {
				i++;
				continue;
			}
			c->out = answer(s->fs, c->fd, c->line, c->trusted);
			if (!c->out) {
				drop(s, i);
				continue;
			}
			c->len = strlen(c->out);
			c->deadline = now_ms() + ANSWER_MS;
			if (!send_answer(c)) {
				drop(s, i);
				continue;
			}
			i++;
		}
	}
}

static void *control_thread(void *arg)
{
	struct server *s = arg;
	struct pollfd *p = xcalloc(s->max + 2, sizeof(*p));
	for (;;) {
		int64_t now = now_ms(), wait = -1;
		bool listening = !s->retry_at || now >= s->retry_at;
		if (listening)
			s->retry_at = 0;
		else
			wait = s->retry_at - now;
		p[0] = (struct pollfd){.fd = s->fs->quit, .events = POLLIN};
		p[1] = (struct pollfd){.fd = listening ? s->fd : -1, .events = POLLIN};
		for (unsigned i = 0; i < s->n; i++) {
			struct client *c = &s->c[i];
			p[i + 2] = (struct pollfd){
			    .fd = c->fd, .events = c->state == READING ? POLLIN : POLLOUT};
			int64_t left = c->deadline > now ? c->deadline - now : 0;
			if (wait < 0 || left < wait)
				wait = left;
		}
		unsigned n = s->n;
		if (poll(p, n + 2, wait > INT32_MAX ? INT32_MAX : (int)wait) < 0) {
			if (errno != EINTR && bfs_wait(s->fs, -1, 0, BACKOFF_MS) < 0)
				break;
			continue;
		}
		if (p[0].revents) {
			/* The daemon leaves (it frees what a request reads):
			 * answers are sent as far as they go at once. */
			for (unsigned i = 0; i < s->n; i++)
				if (s->c[i].out)
					send_answer(&s->c[i]);
			break;
		}
		/* (Backwards: a client dropped takes the last one's place.) */
		for (unsigned i = n; i-- > 0;) {
			struct client *c = &s->c[i];
			bool go_on = true;
			if (p[i + 2].revents)
				go_on = c->state == READING ? read_request(c) : send_answer(c);
			/* Late: what it sent has been read (also what came
			 * while a request was carried out), and nothing more
			 * is waited for. */
			bool waiting = c->state == READING || c->out;
			if (!go_on || (waiting && c->deadline <= now_ms()))
				drop(s, i);
		}
		carry_out(s);
		if (p[1].revents & POLLIN)
			accept_all(s);
	}
	while (s->n)
		drop(s, s->n - 1);
	free(p);
	free(s->c);
	free(s);
	return NULL;
}

int control_listen(const struct bfs *fs, char **why)
{
	return ctlsock_listen(fs->mnt.major, fs->mnt.minor, why);
}

errint_t control_start(struct bfs *fs, int fd, unsigned clients, pthread_t *thread)
{
	struct server *s = xmalloc(sizeof(*s));
	*s = (struct server){.fs = fs, .fd = fd, .max = clients ? clients : 1};
	s->c = xcalloc(s->max, sizeof(*s->c));
	int e = pthread_create(thread, NULL, control_thread, s);
	if (e) {
		free(s->c);
		free(s);
		return -e;
	}
	return 0;
}
