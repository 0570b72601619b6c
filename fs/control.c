/* control: status and reload over an abstract Unix socket. */
#include "control.h"
#include "log.h"
#include "mounts.h"
#include "reload.h"

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
	cJSON_AddStringToObject(root, "version", BUNDLEFS_VERSION);
	cJSON_AddStringToObject(root, "mountpoint", fs->mountpoint);
	cJSON_AddStringToObject(root, "spec", fs->spec_path);
	cJSON_AddNumberToObject(root, "started", seconds(&fs->started));
	cJSON_AddNumberToObject(root, "uptime", seconds(&now) - seconds(&fs->started));
	cJSON_AddNumberToObject(root, "nodes", (double)fs->nodes.live);
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

static void serve(struct bfs *fs, int c)
{
	char line[64];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		ssize_t r = read(c, line + n, 1);
		if (r <= 0 || line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	bool trusted = getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
		       (cred.uid == 0 || cred.uid == geteuid());
	char *doc;
	if (!strcmp(line, "status"))
		doc = control_status(fs);
	else if (!strcmp(line, "reload"))
		doc = trusted ? reload_doc(fs) : error_doc("reload: permission denied");
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

errint_t control_start(struct bfs *fs)
{
	struct sockaddr_un sun;
	socklen_t len = mounts_control_addr(fs->dev_major, fs->dev_minor, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, len) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct listener *l = xmalloc(sizeof(*l));
	*l = (struct listener){fs, fd};
	pthread_t t;
	int e = pthread_create(&t, NULL, control_thread, l);
	if (e) {
		close(fd);
		free(l);
		return -e;
	}
	pthread_detach(t);
	return 0;
}
