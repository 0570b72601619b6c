/* layout: builds the rootfs skeleton shared by the daemon and by
 * `bundlectl materialize`, so that both produce the same tree. */
#include "layout.h"
#include "closure.h"
#include "fsguard.h"
#include "ocicfg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Binary search for the first n bytes of `name` among d's kids: returns the
 * kid, or NULL with its insertion point in *pos. */
static struct layout_dir *find_kid(const struct layout_dir *d, const char *name, size_t n,
				   size_t *pos)
{
	size_t lo = 0, hi = d->nkids;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *k = d->kids[mid]->name;
		int c = strncmp(k, name, n);
		if (c == 0 && k[n])
			c = 1;
		if (c == 0)
			return d->kids[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

static struct layout_dir *add_child(struct layout *l, struct layout_dir *d, const char *name,
				    size_t n)
{
	size_t lo;
	struct layout_dir *found = find_kid(d, name, n, &lo);
	if (found)
		return found;
	if (d->kind == LAYOUT_FILE) {
		d->kind = LAYOUT_DIR;
		d->mode = 0755;
		d->data = NULL;
		d->len = 0;
	}
	struct layout_dir *c = arena_alloc(&l->arena, sizeof(*c));
	c->name = arena_strndup(&l->arena, name, n);
	c->kind = LAYOUT_DIR;
	c->mode = 0755;
	/* Copying on every insert is quadratic, but a layout has a handful of
	 * entries per directory. */
	struct layout_dir **kids = arena_alloc(&l->arena, (d->nkids + 1) * sizeof(*kids));
	if (d->nkids) {
		memcpy(kids, d->kids, lo * sizeof(*kids));
		memcpy(kids + lo + 1, d->kids + lo, (d->nkids - lo) * sizeof(*kids));
	}
	kids[lo] = c;
	d->kids = kids;
	d->nkids++;
	d->nsubdirs++;
	return c;
}

/* The entry for `path`, its parents made directories (even a file bind's
 * mount point with mounts below it: the runtime then reports the bind). */
static struct layout_dir *add_path(struct layout *l, const char *path)
{
	struct layout_dir *d = l->root;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		d = add_child(l, d, p, n);
		p += n;
	}
	return d;
}

static void make_file(struct layout_dir *e, const char *data, size_t len, mode_t mode)
{
	if (e->kind == LAYOUT_DIR && !e->nkids) {
		e->kind = LAYOUT_FILE;
		e->mode = mode;
		e->data = data;
		e->len = len;
	}
}

static void recount(struct layout_dir *d)
{
	d->nsubdirs = 0;
	for (size_t i = 0; i < d->nkids; i++) {
		recount(d->kids[i]);
		d->nsubdirs += d->kids[i]->kind == LAYOUT_DIR;
	}
}

/* The mode= option of a mount (octal, as mount(8) takes it), or -1. */
static long mode_option(const char *const *opts)
{
	long mode = -1;
	for (size_t i = 0; opts && opts[i]; i++) {
		if (strncmp(opts[i], "mode=", 5))
			continue;
		char *end;
		long v = strtol(opts[i] + 5, &end, 8);
		if (end != opts[i] + 5 && !*end && v >= 0 && v <= 07777)
			mode = v;
	}
	return mode;
}

static bool is_bind(const struct ocimount *m)
{
	if (!strcmp(m->type, "bind"))
		return true;
	for (size_t i = 0; m->options && m->options[i]; i++)
		if (!strcmp(m->options[i], "bind") || !strcmp(m->options[i], "rbind"))
			return true;
	return false;
}

static unsigned mount_line(const struct bundle *b, const char *dest)
{
	for (size_t i = 0; i < b->nmounts; i++)
		if (!strcmp(b->mounts[i].dest, dest))
			return b->mounts[i].line;
	return b->line;
}

/* What a bind of `source` needs as its mount point: 0 a directory, 1 a
 * file, or -errno after a message. */
static int bind_kind(const struct bundle *b, const struct ocimount *m, const char *file,
		     struct diags *d)
{
	struct stat st;
	if (m->source[0] != '/')
		return 0; /* relative to the bundle: the runtime's business */
	/* Looked at without entering a bundlefs mount: one that is this
	 * daemon's would wait for itself (fsguard.h), holding the lookup
	 * that asked in the kernel for good. */
	char *mnt = NULL;
	int fd = fsguard_open(m->source, O_PATH, &mnt);
	if (fd < 0 && errno == EXDEV) {
		diag_add(d,
			 "%s:%u: bundle \"%s\": mount %s: source %s is in the bundlefs mount %s: "
			 "a bundle cannot bind what a bundlefs mount serves",
			 file, mount_line(b, m->dest), b->name, m->dest, m->source, mnt);
		free(mnt);
		return -EINVAL;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		diag_add(d, "%s:%u: bundle \"%s\": mount %s: source %s: %s", file,
			 mount_line(b, m->dest), b->name, m->dest, m->source, strerror(e));
		return e == ENOENT || e == ENOTDIR ? -EAGAIN : -EINVAL;
	}
	close(fd);
	if (S_ISDIR(st.st_mode))
		return 0;
	if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ||
	    S_ISSOCK(st.st_mode))
		return 1;
	diag_add(d, "%s:%u: bundle \"%s\": mount %s: source %s is neither a file nor a directory",
		 file, mount_line(b, m->dest), b->name, m->dest, m->source);
	return -EINVAL;
}

static bool mounted_at(const struct ocimount *m, size_t n, const char *dest)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].dest, dest))
			return true;
	return false;
}

/* /etc/passwd and /etc/group with root and the bundle's user, as
 * dockerTools.fakeNss writes them, where no mount provides them. */
static void add_users(struct layout *l, const struct bundle *b, const struct ocimount *m, size_t n)
{
	if (!b->user || mounted_at(m, n, "/etc"))
		return;
	struct buf pw = {0}, gr = {0};
	buf_adds(&pw, "root:x:0:0:root:/root:/bin/sh\n");
	if (b->uid != 0)
		buf_addf(&pw, "user:x:%u:%u:user:/:/bin/sh\n", b->uid, b->gid);
	buf_adds(&pw, "nobody:x:65534:65534:nobody:/var/empty:/bin/false\n");
	buf_adds(&gr, "root:x:0:\n");
	if (b->gid != 0 && b->gid != 65534)
		buf_addf(&gr, "user:x:%u:\n", b->gid);
	for (size_t i = 0; i < b->ngids; i++) {
		uint32_t g = b->gids[i];
		bool seen = g == 0 || g == b->gid || g == 65534;
		for (size_t j = 0; j < i && !seen; j++)
			seen = b->gids[j] == g;
		if (!seen)
			buf_addf(&gr, "group%u:x:%u:%s\n", g, g, b->uid ? "user" : "root");
	}
	buf_adds(&gr, "nogroup:x:65534:\n");
	if (!mounted_at(m, n, "/etc/passwd"))
		make_file(add_path(l, "/etc/passwd"), arena_strndup(&l->arena, pw.data, pw.len),
			  pw.len, 0644);
	if (!mounted_at(m, n, "/etc/group"))
		make_file(add_path(l, "/etc/group"), arena_strndup(&l->arena, gr.data, gr.len),
			  gr.len, 0644);
	buf_free(&pw);
	buf_free(&gr);
}

/* The cwd, so that the runtime can enter it on a read-only root too
 * (runc and crun make a missing cwd themselves, which fails there). Not
 * where something else provides it: in the store directory (the
 * closure's business) and below a mount destination (what is mounted
 * there). */
static void add_cwd(struct layout *l, const struct bundle *b, const struct store *st,
		    const struct ocimount *m, size_t n)
{
	if (!b->cwd)
		return;
	if (store_in_dir(st, b->cwd))
		return;
	for (size_t i = 0; i < n; i++) {
		size_t ml = strlen(m[i].dest);
		if (!strncmp(b->cwd, m[i].dest, ml) && b->cwd[ml] == '/')
			return;
	}
	add_path(l, b->cwd);
}

int layout_build(struct layout *l, const struct bundle *b, const char *file, const struct store *st,
		 const struct closure *c, struct diags *d)
{
	memset(l, 0, sizeof(*l));
	l->root = arena_alloc(&l->arena, sizeof(*l->root));
	l->root->name = "";
	l->root->mode = 0755;
	add_path(l, "/dev");
	add_path(l, "/proc");
	add_path(l, "/sys");
	size_t n;
	struct ocimount *m = ocicfg_mounts(b, NULL, &n);
	int rc = 0;
	/* Shorter destinations first (sorted), so that a mount inside a
	 * file bind's destination is seen as such. */
	for (size_t i = 0; i < n; i++) {
		struct layout_dir *e = add_path(l, m[i].dest);
		long mode = mode_option(m[i].options);
		int kind = is_bind(&m[i]) ? bind_kind(b, &m[i], file, d) : 0;
		if (kind < 0 && rc != -EINVAL)
			rc = kind;
		if (kind == 1)
			make_file(e, NULL, 0, 0644);
		else if (mode >= 0)
			e->mode = (mode_t)mode;
	}
	add_users(l, b, m, n);
	add_cwd(l, b, st, m, n);
	ocicfg_mounts_free(m, n);
	struct layout_dir *store = add_path(l, st->dir);
	if (b->data != SPEC_DATA_BIND || !c) {
		store->is_store = true;
	} else {
		/* data = bind: the runtime binds each store path on its own
		 * mount point. */
		for (size_t i = 0; i < c->n; i++) {
			struct layout_dir *e = add_child(l, store, c->base[i], strlen(c->base[i]));
			if (!S_ISDIR(c->st[i].st_mode))
				make_file(e, NULL, 0, 0444);
			else
				e->mode = 0555;
		}
	}
	recount(l->root);
	if (rc < 0)
		layout_free(l);
	return rc;
}

void layout_free(struct layout *l)
{
	arena_free(&l->arena);
	l->root = NULL;
}

struct layout_dir *layout_child(const struct layout_dir *d, const char *name)
{
	size_t pos;
	return find_kid(d, name, strlen(name), &pos);
}

/* (Each entry's path is `where` and the names below it, in `path`.) */
static int write_below(const struct layout_dir *ld, int dfd, struct buf *path, char **err)
{
	for (size_t i = 0; i < ld->nkids; i++) {
		const struct layout_dir *k = ld->kids[i];
		size_t plen = path->len;
		buf_addc(path, '/');
		buf_adds(path, k->name);
		int fd;
		if (k->kind == LAYOUT_FILE) {
			fd = openat(dfd, k->name,
				    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd < 0 || write_full(fd, k->data ? k->data : "", k->len) < 0 ||
			    fchmod(fd, k->mode) < 0 || close(fd) < 0) {
				*err = xasprintf("%s: %s", path->data, strerror(errno));
				return -1;
			}
		} else {
			if ((mkdirat(dfd, k->name, 0755) < 0 && errno != EEXIST) ||
			    (fd = openat(dfd, k->name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
				*err = xasprintf("%s: %s", path->data, strerror(errno));
				return -1;
			}
			fchmod(fd, k->mode);
			int rc = write_below(k, fd, path, err);
			close(fd);
			if (rc < 0)
				return rc;
		}
		path->len = plen;
		path->data[plen] = 0;
	}
	return 0;
}

int layout_write(const struct layout_dir *ld, int dfd, const char *where, char **err)
{
	struct buf path = {0};
	buf_adds(&path, where);
	int rc = write_below(ld, dfd, &path, err);
	buf_free(&path);
	return rc;
}
