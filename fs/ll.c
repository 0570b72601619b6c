/* ll: the FUSE low-level handlers. Each one fetches the node, checks its
 * kind, asks the core or the backing store, and replies.
 *
 * The tree never changes while mounted, so every entry, attribute and
 * negative entry is cached by the kernel forever, file data and directory
 * listings are kept across opens, and reads are spliced from the backing
 * file straight into the FUSE device. */
#include "backing.h"
#include "bfs.h"
#include "hcache.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FOREVER DBL_MAX
/* d_ino of entries listed without a lookup (as libfuse's high-level API). */
#define UNKNOWN_INO 0xffffffff

static struct bfs *fsof(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void to_stat(const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	const struct nattr *a = &n->attr;
	st->st_ino = n->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = a->blksize;
	st->st_atim = (struct timespec){a->atime, a->atime_ns};
	st->st_mtim = (struct timespec){a->mtime, a->mtime_ns};
	st->st_ctim = (struct timespec){a->ctime, a->ctime_ns};
}

static void fill_entry(const struct node *n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->generation = n->gen;
	to_stat(n, &e->attr);
	e->attr_timeout = FOREVER;
	e->entry_timeout = FOREVER;
}

/* Attributes of synthesized entries: owned by the mounting user, dated
 * from the mount. */
static struct nattr synth_attr(const struct bfs *fs, mode_t mode, uint32_t nlink, uint64_t size)
{
	struct nattr a = {.mode = mode,
			  .nlink = nlink,
			  .uid = fs->uid,
			  .gid = fs->gid,
			  .size = size,
			  .blocks = (size + 511) / 512,
			  .blksize = 4096};
	a.atime = a.mtime = a.ctime = fs->started.tv_sec;
	a.atime_ns = a.mtime_ns = a.ctime_ns = (uint32_t)fs->started.tv_nsec;
	return a;
}

static uint32_t store_dir_nlink(const struct bstate *b, const struct layout_dir *ld)
{
	return 2 + ld->nsubdirs + (ld->is_store ? (uint32_t)b->closure.ndirs : 0);
}

static struct node vdir_proto(struct bfs *fs, uint32_t bundle, const struct layout_dir *ld)
{
	struct node p = {.kind = NK_VDIR, .bundle = bundle, .ldir = ld};
	p.attr = synth_attr(fs, S_IFDIR | 0755, store_dir_nlink(&fs->bundles[bundle], ld), 4096);
	return p;
}

/* Looks up a store entry: `rel` below the real store, stat'ed relative to
 * `dirfd` (a directory already open on the parent) when given, or known
 * already (`known`, from closure resolution). */
static int backing_proto(const char *rel, int dirfd, const char *name, const struct stat *known,
			 struct node *p)
{
	struct stat st;
	if (known) {
		st = *known;
	} else if (dirfd >= 0) {
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	} else {
		int fd = backing_open_path(rel, &st);
		if (fd < 0)
			return fd;
		close(fd);
	}
	if (!backing_servable(st.st_mode))
		return -ENOENT;
	p->kind = S_ISDIR(st.st_mode) ? NK_BDIR : NK_BFILE;
	p->bdev = st.st_dev;
	p->bino = st.st_ino;
	p->rel = (char *)rel;
	backing_attr(&st, &p->attr);
	return 0;
}

/* Looks up `name` in backing directory node `dir`: relative to a directory
 * descriptor (the listing's, or a cached one of `dir`), which is one
 * fstatat instead of resolving the whole path again. */
static int lookup_in_dir(struct bfs *fs, struct node *dir, const char *rel, int dirfd,
			 const char *name, struct node *p)
{
	if (dirfd >= 0)
		return backing_proto(rel, dirfd, name, NULL, p);
	int slot, err;
	void *h = hcache_get(fs->paths, dir, &slot, &err);
	if (!h)
		return backing_proto(rel, -1, name, NULL, p);
	int rc = backing_proto(rel, (int)((intptr_t)h - 1), name, NULL, p);
	hcache_put(fs->paths, slot, h);
	return rc;
}

/* Resolves `name` in `parent`. Returns 0 with e filled (e->ino == 0 for a
 * name that does not exist, to be cached as a negative entry), or an
 * errno. */
static int do_lookup(struct bfs *fs, struct node *parent, const char *name, int dirfd,
		     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = FOREVER;
	if (strlen(name) > 255)
		return ENAMETOOLONG;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return ENOENT;

	struct node *n = nodes_lookup_child(&fs->nodes, parent, name);
	if (n) {
		fill_entry(n, e);
		return 0;
	}

	struct node p = {0};
	char *rel = NULL;
	int rc = 0;
	switch (parent->kind) {
	case NK_ROOT: {
		const struct bundle *b = spec_find(&fs->spec, name);
		if (!b)
			return 0;
		p.kind = NK_BUNDLE;
		p.bundle = (uint32_t)(b - fs->spec.bundles);
		p.attr = synth_attr(fs, S_IFDIR | 0755, 3, 4096);
		break;
	}
	case NK_BUNDLE:
		if (!strcmp(name, "config.json")) {
			const char *data;
			size_t len;
			bundle_config(fs, parent->bundle, &data, &len);
			p.kind = NK_CONFIG;
			p.bundle = parent->bundle;
			p.attr = synth_attr(fs, S_IFREG | 0444, 1, len);
		} else if (!strcmp(name, "rootfs")) {
			if (bundle_ready(fs, parent->bundle) < 0)
				return EIO;
			p = vdir_proto(fs, parent->bundle, fs->bundles[parent->bundle].layout.root);
		} else {
			return 0;
		}
		break;
	case NK_VDIR: {
		const struct layout_dir *ld = layout_child(parent->ldir, name);
		if (ld) {
			p = vdir_proto(fs, parent->bundle, ld);
			break;
		}
		/* Only the closure is visible in the store directory, with
		 * the attributes its resolution saw. */
		const struct closure *c = &fs->bundles[parent->bundle].closure;
		ssize_t idx = parent->ldir->is_store ? closure_find(c, name) : -1;
		if (idx < 0)
			return 0;
		rel = xstrdup(name);
		rc = backing_proto(rel, -1, name, &c->st[idx], &p);
		p.bundle = parent->bundle;
		break;
	}
	case NK_BDIR:
		rel = xasprintf("%s/%s", parent->rel, name);
		rc = lookup_in_dir(fs, parent, rel, dirfd, name, &p);
		p.bundle = parent->bundle;
		break;
	default:
		return ENOTDIR;
	}
	if (rc == -ENOENT) {
		free(rel);
		return 0;
	}
	if (rc < 0) {
		free(rel);
		return -rc;
	}
	n = nodes_add(&fs->nodes, parent, name, &p);
	free(rel);
	fill_entry(n, e);
	return 0;
}

static struct node *node_or_reply(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = nodes_get(&fsof(req)->nodes, ino);
	if (!n)
		fuse_reply_err(req, ESTALE);
	return n;
}

/* The errno for a backing entry that is not what was looked up any more:
 * replaced (ESTALE from backing.c) or removed is "gone"; a symlink swapped
 * into its path is ELOOP. */
static int gone(int err)
{
	return err == ESTALE ? ENOENT : err;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Splice file data from the backing fd into the device. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* READDIRPLUS_AUTO stays on (libfuse's default): the kernel asks for
	 * attributes with a listing only when the lister also looks at the
	 * entries (as `ls -l` and `find` do); a plain listing (as Python's
	 * import system makes) then costs no stat of every entry.
	 *
	 * Nothing changes under the mount: no need to compare mtimes. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = node_or_reply(req, parent);
	if (!p)
		return;
	struct fuse_entry_param e;
	int rc = do_lookup(fsof(req), p, name, -1, &e);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	nodes_forget(&fsof(req)->nodes, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		nodes_forget(&fsof(req)->nodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	struct stat st;
	to_stat(n, &st);
	fuse_reply_attr(req, &st, FOREVER);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	if (n->kind != NK_BFILE || !S_ISLNK(n->attr.mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	char buf[PATH_MAX + 1];
	ssize_t len = backing_readlink(n->rel, n->bdev, n->bino, buf, sizeof(buf) - 1);
	if (len < 0) {
		fuse_reply_err(req, gone((int)-len));
		return;
	}
	buf[len] = 0;
	fuse_reply_readlink(req, buf);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fsof(req)->zero_open) {
		/* From now on the kernel opens files itself (fh 0, page cache
		 * kept); see hcache.h. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (n->kind == NK_CONFIG) {
		fi->fh = 0;
	} else if (n->kind == NK_BFILE && S_ISREG(n->attr.mode)) {
		int fd = backing_open_checked(n->rel, n->bdev, n->bino, false);
		if (fd < 0) {
			fuse_reply_err(req, gone(-fd));
			return;
		}
		fi->fh = (uint64_t)fd;
	} else {
		fuse_reply_err(req, S_ISDIR(n->attr.mode) ? EISDIR : ELOOP);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct bfs *fs = fsof(req);
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	if (n->kind == NK_CONFIG) {
		const char *data;
		size_t len;
		bundle_config(fs, n->bundle, &data, &len);
		if ((size_t)off >= len)
			size = 0;
		else if (size > len - (size_t)off)
			size = len - (size_t)off;
		fuse_reply_buf(req, data + (size ? off : 0), size);
		return;
	}
	int slot = -1, fd = (int)fi->fh;
	if (!fi->fh) {
		int err; /* file_make refuses anything but a regular file */
		void *h = hcache_get(fs->files, n, &slot, &err);
		if (!h) {
			fuse_reply_err(req, gone(err));
			return;
		}
		fd = (int)((intptr_t)h - 1);
	}
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	if (!fi->fh)
		hcache_put(fs->files, slot, (void *)(intptr_t)(fd + 1)); /* req is gone */
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = nodes_get(&fsof(req)->nodes, ino);
	if (n && n->kind == NK_BFILE && fi->fh)
		close((int)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- directories --------------------------------------------------------- */

struct dent {
	const char *name;
	unsigned char type;
};

/* A snapshot of a directory taken at opendir: offsets are indexes into it,
 * so they stay valid for the life of the handle. */
struct dirh {
	struct dirh *prev, *next; /* open handles, freed at exit if the kernel
				     never released them (a lazy unmount) */
	DIR *dir;		  /* backing directories: kept open for fstatat in readdirplus */
	struct dent *v;
	size_t n, cap;
	struct arena names;
};

static struct dirh open_dirs = {.prev = &open_dirs, .next = &open_dirs};
static pthread_mutex_t open_dirs_lock = PTHREAD_MUTEX_INITIALIZER;

static void dirh_add(struct dirh *d, const char *name, unsigned char type, bool copy)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = xreallocarray(d->v, d->cap, sizeof(*d->v));
	}
	d->v[d->n++] = (struct dent){copy ? arena_strdup(&d->names, name) : name, type};
}

static void dirh_free(struct dirh *d)
{
	if (d->dir)
		closedir(d->dir);
	free(d->v);
	arena_free(&d->names);
	free(d);
}

static int fill_backing_dir(struct dirh *d, const struct node *n)
{
	int fd = backing_open_checked(n->rel, n->bdev, n->bino, true);
	if (fd < 0)
		return -gone(-fd);
	d->dir = fdopendir(fd);
	if (!d->dir) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d->dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		unsigned char type = de->d_type;
		if (type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd(d->dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = (unsigned char)IFTODT(st.st_mode);
		}
		if (type == DT_DIR || type == DT_REG || type == DT_LNK)
			dirh_add(d, de->d_name, type, true);
	}
	return errno ? -errno : 0;
}

/* Builds the listing of directory node n. */
static struct dirh *dirh_build(struct bfs *fs, struct node *n, int *err)
{
	struct dirh *d = xcalloc(1, sizeof(*d));
	int rc = 0;
	switch (n->kind) {
	case NK_ROOT:
		for (size_t i = 0; i < fs->spec.n; i++)
			dirh_add(d, fs->spec.bundles[i].name, DT_DIR, false);
		break;
	case NK_BUNDLE:
		dirh_add(d, "config.json", DT_REG, false);
		dirh_add(d, "rootfs", DT_DIR, false);
		break;
	case NK_VDIR: {
		const struct layout_dir *ld = n->ldir;
		for (size_t i = 0; i < ld->nkids; i++)
			dirh_add(d, ld->kids[i]->name, DT_DIR, false);
		if (ld->is_store) {
			const struct closure *c = &fs->bundles[n->bundle].closure;
			for (size_t i = 0; i < c->n; i++)
				dirh_add(d, c->base[i], (unsigned char)IFTODT(c->st[i].st_mode),
					 false);
		}
		break;
	}
	case NK_BDIR:
		rc = fill_backing_dir(d, n);
		break;
	default:
		rc = -ENOTDIR;
	}
	if (rc < 0) {
		dirh_free(d);
		*err = -rc;
		return NULL;
	}
	return d;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bfs *fs = fsof(req);
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	if (fs->zero_open) {
		/* The kernel then opens directories itself and caches their
		 * listings; readdir takes a listing from fs->dirs. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	int err;
	struct dirh *d = dirh_build(fs, n, &err);
	if (!d) {
		fuse_reply_err(req, err);
		return;
	}
	pthread_mutex_lock(&open_dirs_lock);
	d->next = open_dirs.next;
	d->prev = &open_dirs;
	open_dirs.next->prev = d;
	open_dirs.next = d;
	pthread_mutex_unlock(&open_dirs_lock);
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct bfs *fs = fsof(req);
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	int slot = -1, err;
	if (!d && !(d = hcache_get(fs->dirs, n, &slot, &err))) {
		fuse_reply_err(req, err);
		return;
	}
	char *buf = xmalloc(size);
	size_t pos = 0;
	for (size_t i = (size_t)off; i < d->n + 2; i++) {
		struct fuse_entry_param e = {0};
		const char *name;
		if (i < 2) {
			name = i ? ".." : ".";
			e.attr.st_ino = i ? (n->parent ? n->parent->ino : FUSE_ROOT_ID) : n->ino;
			e.attr.st_mode = S_IFDIR;
		} else {
			name = d->v[i - 2].name;
			e.attr.st_mode = (mode_t)DTTOIF(d->v[i - 2].type);
			e.attr.st_ino = UNKNOWN_INO;
			if (plus) {
				int rc = do_lookup(fs, n, name, d->dir ? dirfd(d->dir) : -1, &e);
				if (rc == 0 && e.ino == 0)
					continue; /* gone since opendir */
				if (rc) {
					/* Listed without attributes; a stat will
					 * report the error. */
					memset(&e, 0, sizeof(e));
					e.attr.st_mode = (mode_t)DTTOIF(d->v[i - 2].type);
				}
			}
		}
		size_t rem = size - pos;
		size_t sz =
		    plus ? fuse_add_direntry_plus(req, buf + pos, rem, name, &e, (off_t)i + 1)
			 : fuse_add_direntry(req, buf + pos, rem, name, &e.attr, (off_t)i + 1);
		if (sz > rem) {
			if (plus && e.ino)
				nodes_forget(&fs->nodes, e.ino, 1);
			break;
		}
		pos += sz;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
	if (!fi->fh)
		hcache_put(fs->dirs, slot, d);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	if (d) {
		pthread_mutex_lock(&open_dirs_lock);
		d->prev->next = d->next;
		d->next->prev = d->prev;
		pthread_mutex_unlock(&open_dirs_lock);
		dirh_free(d);
	}
	fuse_reply_err(req, 0);
}

/* ---- handle caches (see hcache.h) ---------------------------------------- */

static void *file_make(void *ctx, struct node *n, int *err)
{
	if (n->kind != NK_BFILE || !S_ISREG(n->attr.mode)) {
		*err = EISDIR;
		return NULL;
	}
	int fd = backing_open_checked(n->rel, n->bdev, n->bino, false);
	if (fd < 0) {
		*err = -fd;
		return NULL;
	}
	return (void *)(intptr_t)(fd + 1);
}

static void fd_destroy(void *obj)
{
	close((int)((intptr_t)obj - 1));
}

static void *path_make(void *ctx, struct node *n, int *err)
{
	struct stat st;
	int fd = backing_open_path(n->rel, &st);
	if (fd < 0) {
		*err = -fd;
		return NULL;
	}
	if (st.st_dev != n->bdev || st.st_ino != n->bino || !S_ISDIR(st.st_mode)) {
		close(fd);
		*err = ENOENT;
		return NULL;
	}
	return (void *)(intptr_t)(fd + 1);
}

static void *dir_make(void *ctx, struct node *n, int *err)
{
	return dirh_build(ctx, n, err);
}

static void dir_destroy(void *obj)
{
	dirh_free(obj);
}

void ll_caches_init(struct bfs *fs)
{
	fs->files = hcache_new(64, file_make, fd_destroy, fs);
	fs->paths = hcache_new(64, path_make, fd_destroy, fs);
	fs->dirs = hcache_new(16, dir_make, dir_destroy, fs);
}

void ll_caches_free(struct bfs *fs)
{
	hcache_free(fs->files);
	hcache_free(fs->paths);
	hcache_free(fs->dirs);
	while (open_dirs.next != &open_dirs) {
		struct dirh *d = open_dirs.next;
		open_dirs.next = d->next;
		dirh_free(d);
	}
	open_dirs.prev = &open_dirs;
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255};
	sv.f_files = fsof(req)->nodes.live;
	fuse_reply_statfs(req, &sv);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

/* ---- everything that would modify: read-only ---------------------------- */

static void rofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	rofs(req);
}
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	rofs(req);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	rofs(req);
}
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	rofs(req);
}
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	rofs(req);
}
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	rofs(req);
}
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	rofs(req);
}
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	rofs(req);
}
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	rofs(req);
}
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	rofs(req);
}
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	rofs(req);
}
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	rofs(req);
}

/* getxattr and listxattr are left out: the kernel then answers
 * EOPNOTSUPP itself and stops asking. flush and fsync are left out for the
 * same reason. */
const struct fuse_lowlevel_ops bfs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .access = op_access,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .create = op_create,
    .write = op_write,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .fallocate = op_fallocate,
};
