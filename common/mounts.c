/* mounts: mountinfo, parsed. */
#include "mounts.h"
#include "strmap.h"
#include "util.h"

#include <dirent.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p;) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 4;
		} else {
			*o++ = *p++;
		}
	}
	*o = 0;
}

int mounts_each(bool (*fn)(void *ctx, const struct mountent *m), void *ctx)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	struct mountent m;
	while (getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - ");
		unsigned long long id, parent;
		if (!sep ||
		    sscanf(line, "%llu %llu %u:%u %*s %4095s", &id, &parent, &m.major, &m.minor,
			   m.point) != 5 ||
		    sscanf(sep + 3, "%63s", m.fstype) != 1)
			continue;
		m.id = id;
		m.parent = parent;
		unescape(m.point);
		if (!fn(ctx, &m))
			break;
	}
	free(line);
	fclose(f);
	return 0;
}

struct match {
	const char *point;
	uint64_t id;
	struct mountent *out;
	int found;
};

static bool at_point(void *ctx, const struct mountent *m)
{
	struct match *x = ctx;
	if (!strcmp(m->point, x->point)) {
		*x->out = *m; /* the last one is the topmost */
		x->found = 1;
	}
	return true;
}

static bool with_id(void *ctx, const struct mountent *m)
{
	struct match *x = ctx;
	if (m->id != x->id)
		return true;
	*x->out = *m;
	x->found = 1;
	return false;
}

int mounts_at(const char *point, struct mountent *m)
{
	struct match x = {.point = point, .out = m};
	int e = mounts_each(at_point, &x);
	return e < 0 ? e : x.found;
}

bool mounts_path_under(const char *path, const char *top)
{
	size_t n = strlen(top);
	while (n > 1 && top[n - 1] == '/')
		n--;
	return !strncmp(path, top, n) && (path[n] == 0 || path[n] == '/' || n == 1);
}

int mounts_find(const struct mountid *id, struct mountent *m)
{
	struct match x = {.id = id->id, .out = m};
	int e = mounts_each(with_id, &x);
	if (e < 0)
		return e;
	return x.found && m->major == id->major && m->minor == id->minor;
}

bool mounts_is_bundlefs(const struct mountent *m)
{
	return !strcmp(m->fstype, "fuse.bundlefs");
}

socklen_t mounts_control_addr(unsigned major, unsigned minor, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	/* abstract: sun_path[0] is NUL, the name follows */
	int n =
	    snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "bundlefs/%u:%u", major, minor);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

char *mounts_abspath(const char *path)
{
	struct buf b = {0};
	if (path[0] != '/') {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd)))
			buf_adds(&b, cwd);
	}
	buf_addc(&b, '/');
	buf_adds(&b, path);
	/* Normalise in place: components separated by '/', "." dropped, ".."
	 * removing the one before. */
	char *s = b.data, *o = s;
	for (char *p = s; *p;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (o > s && *--o != '/')
				;
		} else {
			*o++ = '/';
			memmove(o, p, n);
			o += n;
		}
		p += n;
	}
	if (o == s)
		*o++ = '/';
	*o = 0;
	return s;
}

/* Calls fn with the path of one mountinfo per mount namespace on the
 * machine (of one process in it), until fn returns true. Returns what fn
 * returned last, or `unknown` when /proc cannot be read. */
static bool each_namespace(bool (*fn)(const char *mountinfo, void *ctx), void *ctx, bool unknown)
{
	DIR *d = opendir("/proc");
	if (!d)
		return unknown;
	struct strmap seen = {0};
	struct arena names = {0};
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], ns[64];
		snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", pid);
		ssize_t n = readlink(path, ns, sizeof(ns) - 1);
		if (n <= 0 || strmap_get(&seen, ns, (size_t)n))
			continue;
		strmap_put(&seen, arena_strndup(&names, ns, (size_t)n), (size_t)n, (void *)1);
		snprintf(path, sizeof(path), "/proc/%ld/mountinfo", pid);
		found = fn(path, ctx);
	}
	closedir(d);
	strmap_free(&seen);
	arena_free(&names);
	return found;
}

/* One line of a mountinfo: its fields split in place (octal escapes
 * decoded), or false for a line that is not one. */
struct mline {
	unsigned major, minor;
	char *root, *point, *fstype, *source, *options;
};

static bool split_line(char *line, struct mline *m)
{
	char *sep = strstr(line, " - ");
	if (!sep)
		return false;
	*sep = 0;
	char *f[6], *save = NULL, *p = line;
	for (int i = 0; i < 6; i++, p = NULL)
		if (!(f[i] = strtok_r(p, " ", &save)))
			return false;
	if (sscanf(f[2], "%u:%u", &m->major, &m->minor) != 2)
		return false;
	m->root = f[3];
	m->point = f[4];
	save = NULL;
	m->fstype = strtok_r(sep + 3, " \n", &save);
	m->source = strtok_r(NULL, " \n", &save);
	m->options = strtok_r(NULL, " \n", &save);
	if (!m->fstype || !m->source || !m->options)
		return false;
	unescape(m->root);
	unescape(m->point);
	return true;
}

/* Calls fn on every line of one mountinfo until it returns true. */
static bool each_line(const char *path, bool (*fn)(const struct mline *m, void *ctx), void *ctx)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	struct mline m;
	while (!found && getline(&line, &cap, f) > 0)
		found = split_line(line, &m) && fn(&m, ctx);
	free(line);
	fclose(f);
	return found;
}

struct under {
	unsigned major, minor;
	const char *root, *point;
};

/* A mount of the filesystem at a path below `root` (a container's root is
 * one), or anything mounted below `point`. */
static bool is_under(const struct mline *m, void *ctx)
{
	const struct under *u = ctx;
	return (m->major == u->major && m->minor == u->minor &&
		mounts_path_under(m->root, u->root)) ||
	       mounts_path_under(m->point, u->point);
}

static bool shows_under(const char *mountinfo, void *ctx)
{
	return each_line(mountinfo, is_under, ctx);
}

bool mounts_any_under(unsigned major, unsigned minor, const char *root, const char *point)
{
	struct under u = {major, minor, root, point};
	return each_namespace(shows_under, &u, true);
}

struct overlay_user {
	const char *upper, *except;
};

/* An overlay whose upper directory is x->upper, mounted outside
 * x->except. overlayfs writes its options with seq_show_option: a value's
 * commas (and blanks, backslashes) come octal-escaped. */
static bool uses_upper(const struct mline *m, void *ctx)
{
	const struct overlay_user *x = ctx;
	if (strcmp(m->fstype, "overlay") || (x->except && mounts_path_under(m->point, x->except)))
		return false;
	char *save = NULL;
	for (char *o = strtok_r(m->options, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (strncmp(o, "upperdir=", 9))
			continue;
		unescape(o);
		return !strcmp(o + 9, x->upper);
	}
	return false;
}

static bool shows_upper(const char *mountinfo, void *ctx)
{
	return each_line(mountinfo, uses_upper, ctx);
}

bool mounts_overlay_in_use(const char *upper, const char *except)
{
	struct overlay_user x = {upper, except};
	return each_namespace(shows_upper, &x, true);
}
