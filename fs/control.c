/* control: status, reload, reset and prune over an abstract Unix socket. */
#include "control.h"
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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

static cJSON *problems_json(const char *text)
{
	cJSON *a = cJSON_CreateArray();
	for (const char *p = text; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *line = xstrndup(p, n);
		cJSON_AddItemToArray(a, cJSON_CreateString(line));
		free(line);
		p += n + (e != NULL);
	}
	return a;
}

char *control_status(struct bfs *fs)
{
	cJSON *root = cJSON_CreateObject();
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	cJSON_AddNumberToObject(root, "pid", getpid());
	int super = atomic_load(&fs->supervisor_pid);
	if (super > 0)
		cJSON_AddNumberToObject(root, "supervisor", super);
	else
		cJSON_AddNullToObject(root, "supervisor");
	cJSON_AddStringToObject(root, "version", BUNDLEFS_VERSION);
	cJSON_AddStringToObject(root, "mountpoint", fs->mountpoint);
	cJSON_AddStringToObject(root, "spec", fs->spec_path);
	cJSON_AddNumberToObject(root, "started", seconds(&fs->started));
	cJSON_AddNumberToObject(root, "uptime", seconds(&now) - seconds(&fs->started));
	if (fs->state) {
		struct state_history h;
		state_history(fs->state, &h);
		cJSON_AddNumberToObject(root, "mounted", h.mounted);
		cJSON_AddNumberToObject(root, "failovers", h.failovers);
		cJSON_AddNumberToObject(root, "upgrades", h.upgrades);
	}
	cJSON_AddNumberToObject(root, "nodes", (double)fs->nodes.live);
	cJSON *pt = cJSON_AddObjectToObject(root, "passthrough");
	cJSON_AddBoolToObject(pt, "on", fs->pt != NULL);
	if (fs->pt) {
		struct passthrough_stats ps;
		passthrough_stats(fs->pt, &ps);
		cJSON_AddNumberToObject(pt, "backing_files", (double)ps.ids);
		cJSON_AddNumberToObject(pt, "opens", (double)ps.opens);
		cJSON_AddNumberToObject(pt, "registered", (double)ps.registered);
		cJSON_AddNumberToObject(pt, "failed", (double)ps.failed);
	}
	cJSON *su = cJSON_AddObjectToObject(root, "substitution");
	cJSON_AddBoolToObject(su, "on", fs->subst != NULL);
	if (fs->subst) {
		struct realise_stats rs;
		realise_stats(fs, &rs);
		cJSON *urls = cJSON_AddArrayToObject(su, "substituters");
		for (size_t i = 0; i < subst_count(fs->subst); i++)
			cJSON_AddItemToArray(urls, cJSON_CreateString(subst_url(fs->subst, i)));
		uint64_t fetched, bytes;
		subst_stats(fs->subst, &fetched, &bytes);
		cJSON_AddNumberToObject(su, "narinfo", (double)fetched);
		cJSON_AddNumberToObject(su, "realised", (double)rs.realised);
		cJSON_AddNumberToObject(su, "failed", (double)rs.failed);
		cJSON_AddNumberToObject(su, "running", rs.running);
		cJSON_AddNumberToObject(su, "queued", rs.queued);
		cJSON_AddNumberToObject(su, "prefetch", rs.prefetch);
	}
	cJSON_AddNumberToObject(root, "rss", (double)rss_kib() * 1024);

	pthread_mutex_lock(&fs->reload_lock);
	cJSON *rl = cJSON_AddObjectToObject(root, "last_reload");
	if (fs->last_reload.at.tv_sec) {
		cJSON_AddBoolToObject(rl, "ok", fs->last_reload.ok);
		cJSON_AddNumberToObject(rl, "at", seconds(&fs->last_reload.at));
		cJSON_AddItemToObject(rl, "problems", problems_json(fs->last_reload.problems));
	}
	pthread_mutex_unlock(&fs->reload_lock);

	pthread_rwlock_rdlock(&fs->gen_lock);
	cJSON_AddNumberToObject(root, "generation", (double)fs->generation);
	cJSON_AddNumberToObject(root, "loaded", seconds(&fs->loaded));
	cJSON *arr = cJSON_AddArrayToObject(root, "bundles");
	struct bundles *set = fs->bundles;
	for (size_t i = 0; i < bundles_count(set); i++) {
		struct bstate *b = bundles_at(set, i);
		struct bundle_info info;
		bundle_info(b, &info);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", bundle_name(b));
		cJSON_AddStringToObject(o, "state", info.state);
		if (!strcmp(info.state, "ready")) {
			cJSON_AddNumberToObject(o, "paths", (double)info.paths);
			cJSON_AddNumberToObject(o, "bytes", (double)info.bytes);
			size_t local, inflight, missing;
			realise_count(fs, bundle_closure(b), &local, &inflight, &missing);
			cJSON_AddNumberToObject(o, "local", (double)local);
			cJSON_AddNumberToObject(o, "realising", (double)inflight);
			cJSON_AddNumberToObject(o, "missing", (double)missing);
		}
		cJSON_AddNumberToObject(o, "requests", (double)info.requests);
		cJSON_AddNumberToObject(o, "served", (double)info.served);
		if (info.problems)
			cJSON_AddItemToObject(o, "problems", problems_json(info.problems));
		free(info.problems);
		cJSON_AddItemToArray(arr, o);
	}
	pthread_rwlock_unlock(&fs->gen_lock);
	char *out = cJSON_Print(root);
	cJSON_Delete(root);
	return out;
}

static char *reload_doc(struct bfs *fs)
{
	struct reload_result r;
	reload_run(fs, &r);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddBoolToObject(root, "ok", r.ok);
	cJSON_AddNumberToObject(root, "generation", (double)r.generation);
	cJSON_AddItemToObject(root, "problems", problems_json(r.problems));
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

static void serve(struct bfs *fs, int c)
{
	char line[320];
	if (!control_read_line(c, line, sizeof(line)))
		return;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	bool trusted = getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
		       (cred.uid == 0 || cred.uid == geteuid());
	char *doc;
	if (!strncmp(line, "takeover ", 9)) {
		/* (the client waits for the hand-over: no timeout) */
		struct timeval none = {0};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
		hand_over(fs, c, line + 9, trusted);
		return;
	}
	if (!strcmp(line, "status"))
		doc = control_status(fs);
	else if (!strcmp(line, "reload"))
		doc = trusted ? reload_doc(fs) : error_doc("reload: permission denied");
	else if (!strncmp(line, "reset ", 6))
		doc = trusted ? reset_doc(fs, line + 6) : error_doc("reset: permission denied");
	else if (!strncmp(line, "prune", 5) && (!line[5] || line[5] == ' '))
		doc = trusted ? prune_doc(fs, line + 5) : error_doc("prune: permission denied");
	else
		doc = error_doc("unknown command");
	size_t len = strlen(doc);
	for (size_t off = 0; off < len;) {
		ssize_t w = send(c, doc + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(doc);
}

struct listener {
	struct bfs *fs;
	int fd;
};

static void *control_thread(void *arg)
{
	struct listener *l = arg;
	for (;;) {
		int c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		/* A client that sends nothing must not hold the socket. */
		struct timeval tv = {.tv_sec = 5};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		serve(l->fs, c);
		close(c);
	}
	return NULL;
}

int control_listen(const struct bfs *fs)
{
	struct sockaddr_un sun;
	socklen_t len = mounts_control_addr(fs->mnt.major, fs->mnt.minor, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* The name is the mount's device, which no other live mount has; it
	 * is taken only by what is left of an ended mount whose device this
	 * one reuses (its daemon or supervisor still exiting): wait for it to
	 * go, a few seconds at most. */
	int r, tries = 0;
	while ((r = bind(fd, (struct sockaddr *)&sun, len)) < 0 && errno == EADDRINUSE &&
	       ++tries < 300)
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	if (r < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

errint_t control_start(struct bfs *fs, int fd)
{
	struct listener *l = xmalloc(sizeof(*l));
	*l = (struct listener){fs, fd};
	pthread_t t;
	int e = pthread_create(&t, NULL, control_thread, l);
	if (e) {
		free(l);
		return -e;
	}
	pthread_detach(t);
	return 0;
}
