/* mounts: mountinfo, parsed. */
#include "mounts.h"
#include "strmap.h"
#include "util.h"

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* The user_id of a FUSE mount's superblock options (the third field of
 * `fs`, "TYPE SOURCE OPTIONS"): the uid of the process that mounted it. */
static uid_t fuse_owner(const char *fs)
{
	if (strncmp(fs, "fuse", 4))
		return (uid_t)-1;
	const char *opts = strchr(fs, ' ');
	opts = opts ? strchr(opts + 1, ' ') : NULL;
	if (!opts)
		return (uid_t)-1;
	for (const char *o = opts + 1; o && *o && *o != ' ' && *o != '\n';) {
		unsigned uid;
		if (sscanf(o, "user_id=%u", &uid) == 1)
			return (uid_t)uid;
		o = strchr(o, ',');
		o = o ? o + 1 : NULL;
	}
	return (uid_t)-1;
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
		m.owner = fuse_owner(sep + 3);
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
	/* (Ids and devices are both reused once a mount is gone: the type
	 * tells a bundlefs mount from, say, an EROFS image that got both.) */
	return x.found && m->major == id->major && m->minor == id->minor && mounts_is_bundlefs(m);
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U /* Linux 6.8 */
#endif

uint64_t mounts_unique_id(const char *point)
{
	struct statx sx;
	if (statx(AT_FDCWD, point, AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT, STATX_MNT_ID_UNIQUE, &sx) <
		0 ||
	    !(sx.stx_mask & STATX_MNT_ID_UNIQUE))
		return 0;
	return sx.stx_mnt_id;
}

bool mounts_same(const struct mountid *id, const char *point)
{
	return !id->unique || mounts_unique_id(point) == id->unique;
}

bool mounts_is_bundlefs(const struct mountent *m)
{
	return !strcmp(m->fstype, "fuse.bundlefs");
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

/* Reads one mountinfo (of some namespace) into *all. */
/* What one mountinfo line says of the filesystem, into `e` (strings in
 * `names`): an overlayfs's upper directory, an EROFS mount's source (the
 * image file it reads), a fuse-overlayfs root's source (its upper
 * directory, see fs/fuseovl.h). overlayfs writes its options with
 * seq_show_option: a value's commas (and blanks, backslashes) come
 * octal-escaped; so are the blanks of a source. */
static void fs_details(char *line, struct mounts_all_ent *e, struct arena *names)
{
	char *sep = strstr(line, " - ");
	char *save = NULL, *type = sep ? strtok_r(sep + 3, " \n", &save) : NULL;
	char *source = type ? strtok_r(NULL, " \n", &save) : NULL;
	if (!source)
		return;
	if (!strcmp(type, "erofs")) {
		unescape(source);
		e->image = arena_strdup(names, source);
		return;
	}
	/* A writable root of a daemon that is not root (fuse-overlayfs,
	 * fs/fuseovl.h) has its upper directory as its source; one mounted
	 * otherwise has no path there. */
	if (!strcmp(type, "fuse.fuse-overlayfs")) {
		unescape(source);
		if (source[0] == '/')
			e->upper = arena_strdup(names, source);
		return;
	}
	if (strcmp(type, "overlay"))
		return;
	char *opts = strtok_r(NULL, " \n", &save);
	for (char *o = opts ? strtok_r(opts, ",", &save) : NULL; o; o = strtok_r(NULL, ",", &save))
		if (!strncmp(o, "upperdir=", 9)) {
			unescape(o);
			e->upper = arena_strdup(names, o + 9);
			return;
		}
}

static void read_namespace(const char *path, struct mounts_all *all)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	char root[4096], point[4096];
	unsigned ma, mi;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%*u %*u %u:%u %4095s %4095s", &ma, &mi, root, point) != 4)
			continue;
		unescape(root);
		unescape(point);
		GROW(all->v, all->n, all->cap);
		struct mounts_all_ent *e = &all->v[all->n++];
		*e = (struct mounts_all_ent){.major = ma,
					     .minor = mi,
					     .root = arena_strdup(&all->names, root),
					     .point = arena_strdup(&all->names, point)};
		fs_details(line, e, &all->names);
	}
	free(line);
	fclose(f);
}

int mounts_all_read(struct mounts_all *all)
{
	memset(all, 0, sizeof(*all));
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	struct strmap seen = {0};
	struct arena names = {0};
	struct dirent *de;
	while ((de = readdir(d))) {
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
		read_namespace(path, all);
	}
	closedir(d);
	strmap_free(&seen);
	arena_free(&names);
	return 0;
}

void mounts_all_free(struct mounts_all *all)
{
	free(all->v);
	arena_free(&all->names);
	memset(all, 0, sizeof(*all));
}

bool mounts_all_under(const struct mounts_all *all, unsigned major, unsigned minor,
		      const char *root, const char *point)
{
	for (size_t i = 0; i < all->n; i++) {
		const struct mounts_all_ent *m = &all->v[i];
		/* A mount of the filesystem at a path below `root` (a
		 * container's root is one), or anything mounted below
		 * `point`. */
		if ((m->major == major && m->minor == minor && mounts_path_under(m->root, root)) ||
		    (point && mounts_path_under(m->point, point)))
			return true;
	}
	return false;
}

bool mounts_all_elsewhere(const struct mounts_all *all, unsigned major, unsigned minor,
			  const char *point)
{
	for (size_t i = 0; i < all->n; i++)
		if (all->v[i].major == major && all->v[i].minor == minor &&
		    strcmp(all->v[i].point, point))
			return true;
	return false;
}

bool mounts_all_overlay(const struct mounts_all *all, const char *upper, const char *except)
{
	for (size_t i = 0; i < all->n; i++)
		if (all->v[i].upper && !strcmp(all->v[i].upper, upper) &&
		    !(except && mounts_path_under(all->v[i].point, except)))
			return true;
	return false;
}

bool mounts_all_image(const struct mounts_all *all, const char *image)
{
	for (size_t i = 0; i < all->n; i++)
		if (all->v[i].image && !strcmp(all->v[i].image, image))
			return true;
	return false;
}

bool mounts_overlay_in_use(const char *upper, const char *except)
{
	struct mounts_all all;
	if (mounts_all_read(&all) < 0)
		return true; /* cannot tell: assume it is in use */
	bool found = mounts_all_overlay(&all, upper, except);
	mounts_all_free(&all);
	return found;
}

bool mounts_any_under(unsigned major, unsigned minor, const char *root, const char *point)
{
	struct mounts_all all;
	if (mounts_all_read(&all) < 0)
		return true; /* cannot tell: assume it is in use */
	bool found = mounts_all_under(&all, major, minor, root, point);
	mounts_all_free(&all);
	return found;
}
