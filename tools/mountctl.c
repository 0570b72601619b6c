/* mountctl: status, reload, reset and prune, from the daemon's control
 * socket. */
#include "mountctl.h"
#include "ctlsock.h"
#include "mounts.h"
#include "statedir.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Sends `cmd` to the daemon serving `mountpoint`; returns its JSON reply
 * (parsed), or NULL after saying why on stderr. A daemon that does not
 * answer within `timeout_ms` fails it. */
static cJSON *request(const char *mountpoint, const char *cmd, int timeout_ms)
{
	char *mnt = mounts_abspath(mountpoint);
	struct mountent m;
	int found = mounts_at(mnt, &m);
	if (found <= 0 || !mounts_is_bundlefs(&m)) {
		fprintf(stderr, "bundlectl: %s: %s\n", mnt,
			found < 0 ? strerror(-found) : "no bundlefs mount there");
		free(mnt);
		return NULL;
	}
	/* Only to the mount's own daemon: a socket served by another user is
	 * refused before anything is sent. */
	char *why;
	int fd = ctlsock_connect(&m, timeout_ms, &why);
	if (fd < 0) {
		fprintf(stderr, "bundlectl: %s: %s\n", mnt, why);
		free(why);
		free(mnt);
		return NULL;
	}
	free(mnt);
	struct buf line = {0};
	buf_addf(&line, "%s\n", cmd);
	struct buf reply = {0};
	errint_t e = send(fd, line.data, line.len, MSG_NOSIGNAL) < 0 ? -errno : 0;
	if (e == -EAGAIN)
		e = -ETIMEDOUT;
	if (e == 0)
		e = ctlsock_read_answer(fd, timeout_ms, &reply);
	buf_free(&line);
	close(fd);
	if (e == -ETIMEDOUT) {
		/* (A change asked for may still be made: it was sent.) */
		char verb[16];
		snprintf(verb, sizeof(verb), "%.*s", (int)strcspn(cmd, " "), cmd);
		fprintf(stderr,
			"bundlectl: %s: its daemon did not answer within %g s: it is stopped or "
			"too busy (--timeout SECONDS waits longer)",
			mountpoint, timeout_ms / 1000.0);
		if (strcmp(verb, "status"))
			fprintf(stderr, "; the %s may still be done", verb);
		fputc('\n', stderr);
		buf_free(&reply);
		return NULL;
	}
	if (e < 0) {
		fprintf(stderr, "bundlectl: %s: control socket: %s\n", mountpoint, strerror(-e));
		buf_free(&reply);
		return NULL;
	}
	buf_addc(&reply, 0);
	cJSON *doc = reply.len > 1 ? cJSON_Parse(reply.data) : NULL;
	buf_free(&reply);
	if (!doc) {
		fprintf(stderr, "bundlectl: %s: no answer from the daemon\n", mountpoint);
		return NULL;
	}
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
	if (cJSON_IsString(err)) {
		fprintf(stderr, "bundlectl: %s: %s\n", mountpoint, err->valuestring);
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void human_bytes(double b, char *out, size_t n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;
	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void human_time(double secs, char *out, size_t n)
{
	long s = (long)secs;
	if (s < 60)
		snprintf(out, n, "%lds", s);
	else if (s < 3600)
		snprintf(out, n, "%ldm%02lds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, n, "%ldh%02ldm", s / 3600, s / 60 % 60);
	else
		snprintf(out, n, "%ldd%02ldh", s / 86400, s / 3600 % 24);
}

/* Problems: strings (a reload's answer) or objects (the status
 * document's, whose message says it all). */
static void print_problems(const cJSON *arr, const char *indent, FILE *f)
{
	const cJSON *p;
	cJSON_ArrayForEach(p, arr)
	{
		if (cJSON_IsObject(p))
			p = cJSON_GetObjectItemCaseSensitive(p, "message");
		if (cJSON_IsString(p))
			fprintf(f, "%s%s\n", indent, p->valuestring);
	}
}

/* A bundle's root: read-only, or its writable root's state. */
static const char *root_of(const cJSON *b)
{
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(b, "writable_root");
	if (!cJSON_IsObject(w))
		return "ro";
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "mounted")))
		return "rw mounted";
	const cJSON *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(b, "problems"))
	{
		if (!strcmp(str(p, "kind"), "writable-root"))
			return "rw failed";
	}
	return "rw unmounted";
}

static const char *yes_no(const cJSON *v)
{
	return cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? "yes" : "no") : "?";
}

int mountctl_status(const char *mountpoint, bool json, int timeout_ms)
{
	cJSON *doc = request(mountpoint, "status", timeout_ms);
	if (!doc)
		return 1;
	if (json) {
		char *s = cJSON_Print(doc);
		puts(s);
		free(s);
		cJSON_Delete(doc);
		return 0;
	}
	char up[32], rss[32], when[64];
	human_time(num(doc, "uptime"), up, sizeof(up));
	human_bytes(num(doc, "rss"), rss, sizeof(rss));
	time_t loaded = (time_t)num(doc, "loaded");
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&loaded, &tm));
	printf("%s: bundlefs %s, pid %.0f, up %s, %.0f nodes, RSS %s\n", str(doc, "mountpoint"),
	       str(doc, "bundlefs"), num(doc, "pid"), up, num(doc, "nodes"), rss);
	printf("spec %s, loaded %s (generation %.0f), state dir %s\n", str(doc, "spec"), when,
	       num(doc, "generation"), str(doc, "state_dir"));
	const cJSON *super = cJSON_GetObjectItemCaseSensitive(doc, "supervisor");
	if (cJSON_IsNumber(super) &&
	    cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(doc, "mounted"))) {
		char mounted[32];
		human_time(num(doc, "uptime") + (num(doc, "started") - num(doc, "mounted")),
			   mounted, sizeof(mounted));
		printf("supervisor pid %.0f; mounted %s ago; since then failovers %.0f, upgrades "
		       "%.0f\n",
		       super->valuedouble, mounted, num(doc, "failovers"), num(doc, "upgrades"));
	} else {
		printf("no supervisor: if the daemon dies, the mount goes\n");
	}
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(doc, "passthrough");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pt, "on")))
		printf("passthrough: %.0f store files registered, %.0f opens passed through\n",
		       num(pt, "backing_files"), num(pt, "opens"));
	else if (pt)
		printf("passthrough: off (store files are read through the daemon)\n");
	const cJSON *su = cJSON_GetObjectItemCaseSensitive(doc, "substitution");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(su, "on"))) {
		printf("substitution: %.0f paths realised, %.0f failed, %.0f running, %.0f queued "
		       "(prefetch %.0f at a time)\n",
		       num(su, "realised"), num(su, "failed"), num(su, "running"),
		       num(su, "queued"), num(su, "prefetch"));
	}
	const cJSON *rl = cJSON_GetObjectItemCaseSensitive(doc, "last_reload");
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rl, "ok"))) {
		printf("last reload failed; still serving the spec loaded before:\n");
		print_problems(cJSON_GetObjectItemCaseSensitive(rl, "problems"), "  ", stdout);
	}
	printf("\n%-24s %-10s %6s %10s %9s %10s  %-6s  %-6s %s\n", "BUNDLE", "STATE", "PATHS",
	       "SIZE", "REQUESTS", "SERVED", "DATA", "IN USE", "ROOT");
	const cJSON *b;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(doc, "bundles"))
	{
		char paths[16] = "-", size[32] = "-", served[32];
		if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(b, "paths"))) {
			snprintf(paths, sizeof(paths), "%.0f", num(b, "paths"));
			human_bytes(num(b, "bytes"), size, sizeof(size));
		}
		human_bytes(num(b, "served"), served, sizeof(served));
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(b, "data");
		const char *path = *str(data, "path") ? str(data, "path") : "-";
		printf("%-24s %-10s %6s %10s %9.0f %10s  %-6s  %-6s %s\n", str(b, "name"),
		       str(b, "state"), paths, size, num(b, "requests"), served, path,
		       yes_no(cJSON_GetObjectItemCaseSensitive(b, "in_use")), root_of(b));
		/* Why the FUSE tree serves, unless the spec or --data chose it. */
		const char *why = str(data, "why");
		if (!strcmp(path, "fuse") && *why && strncmp(why, "data = ", 7) &&
		    strcmp(why, "--data fuse"))
			printf("    not kernel-native: %s\n", why);
		if (num(b, "missing") + num(b, "realising") > 0)
			printf("    %.0f paths here, %.0f being realised, %.0f not here yet\n",
			       num(b, "local"), num(b, "realising"), num(b, "missing"));
		print_problems(cJSON_GetObjectItemCaseSensitive(b, "problems"), "    ", stdout);
	}
	cJSON_Delete(doc);
	return 0;
}

int mountctl_reload(const char *mountpoint, int timeout_ms)
{
	cJSON *doc = request(mountpoint, "reload", timeout_ms);
	if (!doc)
		return 1;
	int rc = 0;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ok"))) {
		printf("%s: reloaded, generation %.0f\n", mountpoint, num(doc, "generation"));
	} else {
		print_problems(cJSON_GetObjectItemCaseSensitive(doc, "problems"), "", stderr);
		fprintf(stderr,
			"bundlectl: %s: the spec has problems; still serving generation %.0f\n",
			mountpoint, num(doc, "generation"));
		rc = 2;
	}
	cJSON_Delete(doc);
	return rc;
}

int mountctl_reset(const char *mountpoint, const char *name, int timeout_ms)
{
	char req[320];
	if (snprintf(req, sizeof(req), "reset %s", name) >= (int)sizeof(req) ||
	    strchr(name, '\n')) {
		fprintf(stderr, "bundlectl: \"%s\" is not a bundle name\n", name);
		return 2;
	}
	cJSON *doc = request(mountpoint, req, timeout_ms);
	if (!doc)
		return 1;
	int rc = 0;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ok"))) {
		printf("%s: bundle %s: writes discarded; new containers start from a clean root\n",
		       mountpoint, name);
	} else if (*str(doc, "refused")) {
		fprintf(stderr, "bundlectl: %s: %s\n", mountpoint, str(doc, "refused"));
		rc = 2;
	} else {
		const char *e = str(doc, "error");
		fprintf(stderr, "bundlectl: %s: %s\n", mountpoint, *e ? e : "reset failed");
		rc = 1;
	}
	cJSON_Delete(doc);
	return rc;
}

/* ---- prune ------------------------------------------------------------------ */

static void print_generation(const char *upper, double bytes, const char *kept, bool dry_run)
{
	char size[32];
	human_bytes(bytes, size, sizeof(size));
	if (kept)
		printf("kept          %10s  %s (%s)\n", size, upper, kept);
	else
		printf("%-13s %10s  %s\n", dry_run ? "would remove" : "removed", size, upper);
}

/* Asks the daemon serving `mountpoint` to prune. Returns the exit status. */
static int prune_mount(const char *mountpoint, bool dry_run, int timeout_ms)
{
	cJSON *doc = request(mountpoint, dry_run ? "prune dry-run" : "prune", timeout_ms);
	if (!doc)
		return 1;
	const cJSON *g;
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(doc, "generations"))
	{
		const cJSON *kept = cJSON_GetObjectItemCaseSensitive(g, "kept");
		print_generation(str(g, "upper"), num(g, "bytes"),
				 cJSON_IsString(kept) ? kept->valuestring : NULL, dry_run);
	}
	int rc = 0;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ok"))) {
		fprintf(stderr, "bundlectl: %s: pruning: %s\n", mountpoint, str(doc, "problem"));
		rc = 1;
	}
	cJSON_Delete(doc);
	return rc;
}

int mountctl_prune(const char *mountpoint, bool dry_run, int timeout_ms)
{
	return prune_mount(mountpoint, dry_run, timeout_ms);
}

static void report_local(void *ctx, const char *upper, uint64_t bytes, const char *kept)
{
	print_generation(upper, (double)bytes, kept, *(bool *)ctx);
}

int mountctl_prune_dir(const char *state_dir, bool dry_run, int timeout_ms)
{
	DIR *d = opendir(state_dir);
	if (!d) {
		fprintf(stderr, "bundlectl: %s: %s\n", state_dir, strerror(errno));
		return 1;
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *mnt = statedir_unescape(de->d_name);
		if (!mnt && !strcmp(de->d_name, "@images"))
			continue; /* (below) */
		if (!mnt) {
			fprintf(stderr, "bundlectl: %s/%s: not a mount point's state; left alone\n",
				state_dir, de->d_name);
			continue;
		}
		/* A live mount knows which bundles its spec has: it prunes. */
		struct mountent m;
		if (mounts_at(mnt, &m) == 1 && mounts_is_bundlefs(&m)) {
			int r = prune_mount(mnt, dry_run, timeout_ms);
			rc = rc ? rc : r;
			free(mnt);
			continue;
		}
		free(mnt);
		char *top = xasprintf("%s/%s", state_dir, de->d_name);
		DIR *b = opendir(top);
		struct dirent *be;
		while (b && (be = readdir(b))) {
			if (be->d_name[0] == '.')
				continue;
			char *dir = xasprintf("%s/%s", top, be->d_name);
			errint_t e =
			    statedir_prune(dir, false, dry_run, NULL, report_local, &dry_run);
			if (e < 0) {
				fprintf(stderr, "bundlectl: %s: %s\n", dir, strerror(-e));
				rc = 1;
			}
			free(dir);
		}
		if (b)
			closedir(b);
		if (!dry_run)
			rmdir(top);
		free(top);
	}
	closedir(d);
	errint_t e = statedir_prune_images(state_dir, dry_run, report_local, &dry_run);
	if (e < 0) {
		fprintf(stderr, "bundlectl: %s: %s\n", state_dir, strerror(-e));
		rc = 1;
	}
	return rc;
}
