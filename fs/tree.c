/* tree: which entries exist, with what attributes and contents: one row of
 * operations per kind of node. */
#include "tree.h"
#include "backing.h"
#include "bfs.h"
#include "hcache.h"
#include "log.h"
#include "overlay.h"
#include "realise.h"
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- attributes ---------------------------------------------------------- */

/* Synthesized entries are owned by the mounting user and dated from the
 * mount. */
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

static struct nattr synth_dir(const struct bfs *fs, uint32_t nsubdirs)
{
	return synth_attr(fs, S_IFDIR | 0755, 2 + nsubdirs, 4096);
}

/* A skeleton entry: a directory, or a file (a file bind's mount point,
 * /etc/passwd), with its layout's mode. */
static struct nattr layout_attr(const struct bfs *fs, const struct layout_dir *ld, uint32_t nsub)
{
	if (ld->kind == LAYOUT_FILE)
		return synth_attr(fs, S_IFREG | ld->mode, 1, ld->len);
	return synth_attr(fs, S_IFDIR | ld->mode, 2 + nsub, 4096);
}

/* Backing entries are served with the store's attributes. */
static struct nattr backing_attr(const struct stat *st)
{
	return (struct nattr){
	    .size = (uint64_t)st->st_size,
	    .blocks = (uint64_t)st->st_blocks,
	    .mode = store_served_mode(st->st_mode),
	    .nlink = (uint32_t)st->st_nlink,
	    .uid = st->st_uid,
	    .gid = st->st_gid,
	    .blksize = (uint32_t)st->st_blksize,
	    .atime = st->st_atim.tv_sec,
	    .atime_ns = (uint32_t)st->st_atim.tv_nsec,
	    .mtime = st->st_mtim.tv_sec,
	    .mtime_ns = (uint32_t)st->st_mtim.tv_nsec,
	    .ctime = st->st_ctim.tv_sec,
	    .ctime_ns = (uint32_t)st->st_ctim.tv_nsec,
	};
}

/* A backing entry that is not what was looked up any more (ESTALE from
 * backing.c) is gone. */
static errint_t gone(errint_t e)
{
	return e == -ESTALE ? -ENOENT : e;
}

/* What the node's backing entry was when it was looked up. */
static struct backing_id backing_id(const struct node *n)
{
	return (struct backing_id){.dev = n->bdev,
				   .ino = n->bino,
				   .size = n->attr.size,
				   .mode = n->attr.mode,
				   .mtime = n->attr.mtime,
				   .mtime_ns = n->attr.mtime_ns};
}

/* ---- NK_ROOT: the bundles' names ------------------------------------------ */

/* Each name is a symlink to its bundle's current version. A reload that
 * changes a bundle repoints the symlink; the version directory itself is
 * never invalidated, so the mounts a running container has below it (its
 * root, /proc, /dev...) are never detached by the kernel, which would
 * happen to any directory whose identity changed. */
static errint_t root_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
			    struct node *p)
{
	if (!strcmp(name, VERSIONS_DIR)) {
		p->kind = NK_VERSIONS;
		p->attr = synth_dir(fs, (uint32_t)bundles_count(fs->bundles));
		return 0;
	}
	struct bstate *b = bundles_find(fs->bundles, name);
	if (!b)
		return -ENOENT;
	char target[64];
	int n = snprintf(target, sizeof(target), VERSIONS_DIR "/%llu",
			 (unsigned long long)bundle_serial(b));
	p->kind = NK_LINK;
	p->bundle = b;
	p->attr = synth_attr(fs, S_IFLNK | 0777, 1, (uint64_t)n);
	return 0;
}

/* The versions directory is found by name, not listed. */
static bool root_entry(struct bfs *fs, struct node *dir, size_t i, const char **name,
		       unsigned char *type)
{
	if (i >= bundles_count(fs->bundles))
		return false;
	*name = bundles_spec_at(fs->bundles, i)->name;
	*type = DT_LNK;
	return true;
}

/* ---- NK_LINK: a bundle's name ------------------------------------------------ */

/* Into the mount, or to the writable root (overlay.h) while mounted. */
static ssize_t link_readlink(struct bfs *fs, struct node *n, char *buf, size_t size)
{
	ssize_t out = overlay_bundle_dir(fs, n->bundle, buf, size);
	if (out != -ENOENT)
		return out;
	int len =
	    snprintf(buf, size, VERSIONS_DIR "/%llu", (unsigned long long)bundle_serial(n->bundle));
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : len;
}

/* ---- NK_VERSIONS: every bundle that lives, by serial number ------------------ */

static errint_t versions_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
				struct node *p)
{
	char *end;
	unsigned long long serial = strtoull(name, &end, 10);
	if (*end || !*name || name[0] == '0')
		return -ENOENT;
	struct bstate *b = bundles_by_serial(&fs->env, serial);
	if (!b)
		return -ENOENT;
	p->kind = NK_BUNDLE;
	p->bundle = b;
	p->attr = synth_dir(fs, 1);
	bundle_put(b); /* the node takes its own reference */
	return 0;
}

/* Lists the versions of the current bundles. */
static bool versions_entry(struct bfs *fs, struct node *dir, size_t i, const char **name,
			   unsigned char *type)
{
	static __thread char buf[32];
	if (i >= bundles_count(fs->bundles))
		return false;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)bundles_serial_at(fs->bundles, i));
	*name = buf;
	*type = DT_DIR;
	return true;
}

/* ---- NK_BUNDLE: config.json and rootfs ------------------------------------ */

/* Attributes of a skeleton directory: its subdirectories, and in the store
 * directory the closure's directories, count as links. */
static struct node vdir_proto(struct bfs *fs, struct bstate *b, const struct layout_dir *ld)
{
	uint32_t sub = ld->nsubdirs + (ld->is_store ? (uint32_t)bundle_closure(b)->ndirs : 0);
	return (struct node){.kind = ld->kind == LAYOUT_FILE ? NK_VFILE : NK_VDIR,
			     .bundle = b,
			     .ldir = ld,
			     .attr = layout_attr(fs, ld, sub)};
}

static errint_t bundle_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
			      struct node *p)
{
	/* First use: the command starts coming, if it is not here. */
	realise_early(fs, dir->bundle);
	if (!strcmp(name, "config.json")) {
		const char *data;
		size_t len;
		errint_t e = bundle_config(dir->bundle, &data, &len);
		if (e < 0)
			return e;
		/* data = bind: the runtime bind-mounts every store path, so
		 * all must be here first (realise.h: they are prefetched). */
		if (bundle_spec(dir->bundle)->data == SPEC_DATA_BIND &&
		    !realise_all_local(fs, dir->bundle)) {
			realise_prefetch(fs, dir->bundle);
			return -EIO;
		}
		p->kind = NK_CONFIG;
		p->bundle = dir->bundle;
		p->attr = synth_attr(fs, S_IFREG | 0444, 1, len);
		return 0;
	}
	if (!strcmp(name, "rootfs")) {
		/* A writable root that cannot be mounted is not served
		 * read-only instead (overlay.h). */
		if (!bundle_spec(dir->bundle)->readonly && bundle_overlay(dir->bundle) == BO_FAILED)
			return -EIO;
		errint_t e = bundle_ready(dir->bundle);
		if (e < 0)
			return e;
		/* First use: what is not here yet starts coming. */
		realise_prefetch(fs, dir->bundle);
		*p = vdir_proto(fs, dir->bundle, bundle_rootfs(dir->bundle));
		return 0;
	}
	return -ENOENT;
}

static bool bundle_entry(struct bfs *fs, struct node *dir, size_t i, const char **name,
			 unsigned char *type)
{
	static const char *const names[] = {"config.json", "rootfs"};
	if (i >= ARRAY_SIZE(names))
		return false;
	*name = names[i];
	*type = i ? DT_DIR : DT_REG;
	return true;
}

/* ---- NK_CONFIG ------------------------------------------------------------ */

static errint_t config_open(struct bfs *fs, struct node *n, struct content *c)
{
	c->fd = -1;
	return bundle_config(n->bundle, &c->data, &c->len);
}

/* ---- backing entries -------------------------------------------------------- */

/* A node for store entry `rel`, stat'ed relative to `dirfd` as `name`, or
 * known already (`known`, from closure resolution). */
static errint_t backing_proto(struct bfs *fs, struct bstate *b, char *rel, int dirfd,
			      const char *name, const struct stat *known, struct node *p)
{
	struct stat st;
	if (known) {
		st = *known;
	} else if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		free(rel);
		return -errno;
	}
	if (!store_servable(st.st_mode)) {
		free(rel);
		return -ENOENT;
	}
	p->kind = S_ISDIR(st.st_mode) ? NK_BDIR : NK_BFILE;
	p->shared = p->kind == NK_BFILE;
	/* (A file shared by several bundles counts for the one that looked
	 * it up first.) */
	p->bundle = b;
	p->bdev = st.st_dev;
	p->bino = st.st_ino;
	p->rel = rel;
	p->attr = backing_attr(&st);
	return 0;
}

/* ---- NK_VDIR: the rootfs skeleton and the store directory ------------------- */

static errint_t vdir_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
			    struct node *p)
{
	const struct layout_dir *ld = layout_child(dir->ldir, name);
	if (ld) {
		*p = vdir_proto(fs, dir->bundle, ld);
		return 0;
	}
	/* Only the closure is visible in the store directory, with the
	 * attributes its resolution saw. */
	const struct closure *c = bundle_closure(dir->bundle);
	ssize_t idx = dir->ldir->is_store ? closure_find(c, name) : -1;
	if (idx < 0)
		return -ENOENT;
	if (closure_absent(c, (size_t)idx)) {
		/* Absent when resolved: valid now (realised), or not yet. What
		 * is on disk but not valid may be half written, or refused. */
		if (!realise_is_local(fs, name))
			return TREE_NOT_LOCAL;
		errint_t e =
		    backing_proto(fs, dir->bundle, xstrdup(name), fs->st.fd, name, NULL, p);
		return e == -ENOENT ? TREE_NOT_LOCAL : e;
	}
	return backing_proto(fs, dir->bundle, xstrdup(name), -1, name, &c->st[idx], p);
}

static bool vdir_entry(struct bfs *fs, struct node *dir, size_t i, const char **name,
		       unsigned char *type)
{
	const struct layout_dir *ld = dir->ldir;
	if (i < ld->nkids) {
		*name = ld->kids[i]->name;
		*type = ld->kids[i]->kind == LAYOUT_FILE ? DT_REG : DT_DIR;
		return true;
	}
	const struct closure *c = bundle_closure(dir->bundle);
	i -= ld->nkids;
	if (!ld->is_store || i >= c->n)
		return false;
	*name = c->base[i];
	*type = (unsigned char)IFTODT(c->st[i].st_mode);
	return true;
}

/* ---- NK_VFILE: a file of the skeleton ---------------------------------------- */

static errint_t vfile_open(struct bfs *fs, struct node *n, struct content *c)
{
	c->fd = -1;
	c->data = n->ldir->data ? n->ldir->data : "";
	c->len = n->ldir->len;
	return 0;
}

/* ---- NK_BDIR: a directory of a store path ----------------------------------- */

/* O_PATH descriptors of backing directories, cached so that a lookup in
 * one is a single fstatat instead of a walk from the store. */
struct dirpath {
	int fd;
};

static errint_t dirpath_make(void *ctx, struct node *n, void **out)
{
	int fd = tree_open_dirpath(ctx, n);
	if (fd < 0)
		return fd;
	struct dirpath *d = xmalloc(sizeof(*d));
	d->fd = fd;
	*out = d;
	return 0;
}

static void dirpath_destroy(void *obj)
{
	struct dirpath *d = obj;
	close(d->fd);
	free(d);
}

errint_t tree_open_dirpath(struct bfs *fs, struct node *n)
{
	struct stat st;
	int fd = backing_open_path(&fs->backing, n->rel, &st);
	if (fd < 0)
		return fd;
	if (st.st_dev != n->bdev || st.st_ino != n->bino || !S_ISDIR(st.st_mode)) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

static errint_t bdir_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
			    struct node *p)
{
	char *rel = xasprintf("%s/%s", dir->rel, name);
	if (dirfd >= 0)
		return backing_proto(fs, dir->bundle, rel, dirfd, name, NULL, p);
	struct hcache_ref ref;
	errint_t e = hcache_get(fs->dirpaths, dir, &ref);
	if (e < 0) {
		free(rel);
		return e;
	}
	e = backing_proto(fs, dir->bundle, rel, ((struct dirpath *)ref.obj)->fd, name, NULL, p);
	hcache_put(&ref);
	return e;
}

static errint_t bdir_opendir(struct bfs *fs, struct node *dir, struct dirstream *ds)
{
	struct backing_id id = backing_id(dir);
	int fd = backing_open_checked(&fs->backing, dir->rel, &id);
	if (fd < 0)
		return gone(fd);
	ds->dir = fdopendir(fd);
	if (!ds->dir) {
		int e = errno;
		close(fd);
		return -e;
	}
	return 0;
}

static errint_t bdir_readdir(struct bfs *fs, struct node *dir, struct dirstream *ds, off_t off,
			     tree_emit_fn *emit, void *ctx)
{
	int fd = dirfd(ds->dir);
	if (ds->pending && ds->pat == off) {
		if (!emit(ctx, ds->pname, ds->ptype, ds->pnext, fd))
			return 0;
		off = ds->pnext; /* where the stream is */
	} else if (ds->at != off) {
		if (off)
			seekdir(ds->dir, off);
		else
			rewinddir(ds->dir);
	}
	ds->pending = false;
	struct dirent *de;
	while ((errno = 0, de = readdir(ds->dir))) {
		off_t at = off;
		off = de->d_off;
		unsigned char type = de->d_type;
		if (type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = (unsigned char)IFTODT(st.st_mode);
		}
		if (!store_servable(DTTOIF(type)))
			continue;
		if (!emit(ctx, de->d_name, type, de->d_off, fd)) {
			free(ds->pname);
			ds->pname = xstrdup(de->d_name);
			ds->ptype = type;
			ds->pat = at;
			ds->pnext = de->d_off;
			ds->pending = true;
			break;
		}
	}
	ds->at = off;
	return errno && !ds->pending ? -errno : 0;
}

/* ---- NK_BFILE: a store file or symlink -------------------------------------- */

static errint_t bfile_open(struct bfs *fs, struct node *n, struct content *c)
{
	struct backing_id id = backing_id(n);
	int fd = backing_open_checked(&fs->backing, n->rel, &id);
	if (fd < 0)
		return gone(fd);
	c->fd = fd;
	return 0;
}

static ssize_t bfile_readlink(struct bfs *fs, struct node *n, char *buf, size_t size)
{
	struct backing_id id = backing_id(n);
	ssize_t len = backing_readlink(&fs->backing, n->rel, &id, buf, size);
	return len < 0 ? gone((errint_t)len) : len;
}

/* ---- the table --------------------------------------------------------------- */

static const struct kind_ops {
	/* Its children change with the spec: a name is looked up anew each
	 * time (nodes_add replaces a node made from another bundle). */
	bool reloadable;
	/* Fills `p` for the entry `name` of a directory; -ENOENT if none. */
	errint_t (*lookup)(struct bfs *fs, struct node *dir, const char *name, int dirfd,
			   struct node *p);
	/* A virtual directory: its i-th entry, or false past the last. */
	bool (*entry)(struct bfs *fs, struct node *dir, size_t i, const char **name,
		      unsigned char *type);
	/* A backing directory: opened and read as a stream. */
	errint_t (*opendir)(struct bfs *fs, struct node *dir, struct dirstream *ds);
	errint_t (*readdir)(struct bfs *fs, struct node *dir, struct dirstream *ds, off_t off,
			    tree_emit_fn *emit, void *ctx);
	errint_t (*open)(struct bfs *fs, struct node *n, struct content *c);
	ssize_t (*readlink)(struct bfs *fs, struct node *n, char *buf, size_t size);
} kinds[NK_COUNT] = {
    [NK_ROOT] = {.reloadable = true, .lookup = root_lookup, .entry = root_entry},
    [NK_LINK] = {.readlink = link_readlink},
    [NK_VERSIONS] = {.reloadable = true, .lookup = versions_lookup, .entry = versions_entry},
    [NK_BUNDLE] = {.lookup = bundle_lookup, .entry = bundle_entry},
    [NK_CONFIG] = {.open = config_open},
    [NK_VDIR] = {.lookup = vdir_lookup, .entry = vdir_entry},
    [NK_VFILE] = {.open = vfile_open},
    [NK_BDIR] = {.lookup = bdir_lookup, .opendir = bdir_opendir, .readdir = bdir_readdir},
    [NK_BFILE] = {.open = bfile_open, .readlink = bfile_readlink},
};

bool tree_enter(struct bfs *fs, const struct node *dir)
{
	if (!kinds[dir->kind].reloadable)
		return false;
	pthread_rwlock_rdlock(&fs->gen_lock);
	return true;
}

void tree_leave(struct bfs *fs, bool entered)
{
	if (entered)
		pthread_rwlock_unlock(&fs->gen_lock);
}

size_t tree_reloaded(struct bfs *fs, const struct bundles *old, struct node *root, char ***names)
{
	const struct bundles *now = fs->bundles;
	size_t n = 0, cap = 0;
	*names = NULL;
	for (int pass = 0; pass < 2; pass++) {
		const struct bundles *set = pass ? old : now;
		for (size_t i = 0; i < bundles_count(set); i++) {
			const char *name = bundle_name(bundles_at(set, i));
			if (pass && bundles_find(now, name))
				continue; /* seen in the first pass */
			if (bundles_find(old, name) == bundles_find(now, name))
				continue; /* unchanged: nothing to forget */
			nodes_unmap_child(&fs->nodes, root, name);
			GROW(*names, n, cap);
			(*names)[n++] = xstrdup(name);
		}
	}
	return n;
}

void tree_restore_node(struct bfs *fs, const struct jnode *j)
{
	struct node p = {0}, *parent = NULL;
	errint_t e = -ENOENT;
	if (j->shared) {
		struct stat st;
		int fd = backing_open_path(&fs->backing, j->name, &st);
		if (fd >= 0) {
			close(fd);
			struct bstate *b =
			    j->serial ? bundles_by_serial(&fs->env, j->serial) : NULL;
			e = backing_proto(fs, b, xstrdup(j->name), -1, j->name, &st, &p);
			if (b)
				bundle_put(b); /* the node takes its own */
		}
	} else if ((parent = nodes_get(&fs->nodes, j->parent)) && kinds[parent->kind].lookup) {
		e = kinds[parent->kind].lookup(fs, parent, j->name, -1, &p);
	} else if (!parent) {
		/* (A journal written before parents came first: the node
		 * cannot be found again; the kernel gets ESTALE for it.) */
		log_warning("takeover: node %llu is under node %llu, which is not known",
			    (unsigned long long)j->id, (unsigned long long)j->parent);
		return;
	}
	/* Never another file under the old id: a backing entry must be the
	 * very file it was (the store may have changed under the name). */
	bool dead = e < 0 || (j->shared && p.kind != NK_BFILE) ||
		    (j->bino && (p.bdev != j->bdev || p.bino != j->bino)) || p.kind != j->kind;
	if (dead) {
		free(p.rel);
		/* (kept as it was: a later snapshot writes it again) */
		p = (struct node){.kind = NK_DEAD,
				  .shared = j->shared,
				  .rel = j->shared ? xstrdup(j->name) : NULL,
				  .bdev = j->bdev,
				  .bino = j->bino,
				  .attr = {.mode = j->mode}};
	}
	nodes_restore(&fs->nodes, j->id, j->gen, parent, j->name, &p, j->nlookup, dead);
	free(p.rel);
}

void tree_init(struct bfs *fs, unsigned dirpaths)
{
	struct node root = {.kind = NK_ROOT, .attr = synth_dir(fs, 1)};
	nodes_root(&fs->nodes, &root);
	fs->dirpaths = hcache_new(dirpaths, dirpath_make, dirpath_destroy, fs);
}

void tree_trim(struct bfs *fs)
{
	hcache_trim(fs->dirpaths);
}

void tree_fini(struct bfs *fs)
{
	hcache_free(fs->dirpaths);
	fs->dirpaths = NULL;
}

errint_t tree_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
		     struct node **out)
{
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -ENOENT;
	const struct kind_ops *ops = &kinds[dir->kind];
	if (!ops->lookup)
		return -ENOTDIR;
	struct node *n = ops->reloadable ? NULL : nodes_lookup_child(&fs->nodes, dir, name);
	if (n) {
		*out = n;
		return 0;
	}
	struct node p = {0};
	errint_t e = ops->lookup(fs, dir, name, dirfd, &p);
	if (e < 0)
		return e;
	*out = nodes_add(&fs->nodes, dir, name, &p);
	free(p.rel);
	return 0;
}

errint_t tree_opendir(struct bfs *fs, struct node *dir, struct dirstream *ds)
{
	const struct kind_ops *ops = &kinds[dir->kind];
	memset(ds, 0, sizeof(*ds));
	if (ops->opendir)
		return ops->opendir(fs, dir, ds);
	return ops->entry ? 0 : -ENOTDIR;
}

void tree_closedir(struct dirstream *ds)
{
	if (ds->dir)
		closedir(ds->dir);
	free(ds->pname);
	memset(ds, 0, sizeof(*ds));
}

errint_t tree_readdir(struct bfs *fs, struct node *dir, struct dirstream *ds, off_t off,
		      tree_emit_fn *emit, void *ctx)
{
	const struct kind_ops *ops = &kinds[dir->kind];
	if (ops->readdir)
		return ops->readdir(fs, dir, ds, off, emit, ctx);
	if (!ops->entry)
		return -ENOTDIR;
	/* Offsets: 0 is ".", 1 "..", 2 + i the i-th entry. */
	const char *name;
	unsigned char type;
	for (size_t i = (size_t)off;; i++) {
		if (i < 2) {
			name = i ? ".." : ".";
			type = DT_DIR;
		} else if (!ops->entry(fs, dir, i - 2, &name, &type)) {
			return 0;
		}
		if (!emit(ctx, name, type, (off_t)i + 1, -1))
			return 0;
	}
}

errint_t tree_is_there(struct bfs *fs, const struct node *n)
{
	/* One fstatat, not the confined walk of an open: it only compares.
	 * A symlink swapped in above the file leads elsewhere, to another
	 * inode (or to this very one, which is the file anyway), and the
	 * open that follows a "no" is confined as ever. */
	struct stat st;
	if (fstatat(fs->backing.storefd, n->rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENAMETOOLONG)
			return -errno;
		int fd = backing_open_path(&fs->backing, n->rel, &st);
		if (fd < 0)
			return fd;
		close(fd);
	}
	return (uint64_t)st.st_dev == n->bdev && (uint64_t)st.st_ino == n->bino ? 0 : -ESTALE;
}

bool tree_is_store_file(const struct node *n)
{
	return n->kind == NK_BFILE && S_ISREG(n->attr.mode);
}

errint_t tree_open(struct bfs *fs, struct node *n, struct content *c)
{
	const struct kind_ops *ops = &kinds[n->kind];
	if (!ops->open || !S_ISREG(n->attr.mode))
		return S_ISDIR(n->attr.mode) ? -EISDIR : -ELOOP;
	return ops->open(fs, n, c);
}

ssize_t tree_readlink(struct bfs *fs, struct node *n, char *buf, size_t size)
{
	const struct kind_ops *ops = &kinds[n->kind];
	if (!ops->readlink || !S_ISLNK(n->attr.mode))
		return -EINVAL;
	return ops->readlink(fs, n, buf, size);
}
