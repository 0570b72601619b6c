/* ll: the FUSE low-level handlers. Each one fetches the node, asks the
 * tree (tree.h) or the handles (handles.h), and replies: errors arrive as
 * -errno and are made positive only here, where the reply is sent.
 *
 * The tree never changes while mounted, so every entry, attribute and
 * negative entry is cached by the kernel forever, file data and directory
 * listings are kept across opens, and reads are spliced from the backing
 * file straight into the FUSE device. */
#include "bfs.h"
#include "defer.h"
#include "devio.h"
#include "handles.h"
#include "overlay.h"
#include "passthrough.h"
#include "realise.h"
#include "state.h"
#include "tree.h"

#include <fuse_lowlevel.h>

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

static void reply_err(fuse_req_t req, errint_t e)
{
	fuse_reply_err(req, -e);
}

static void to_stat(const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	const struct nattr *a = &n->attr;
	st->st_ino = n->id;
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

/* A lookup's answer: the node found, or for -ENOENT a negative entry the
 * kernel may cache; other errors are errors. */
static errint_t lookup_entry(struct bfs *fs, struct node *dir, const char *name, int dirfd,
			     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = FOREVER;
	struct node *n;
	errint_t rc = tree_lookup(fs, dir, name, dirfd, &n);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	e->ino = n->id;
	e->generation = n->gen;
	to_stat(n, &e->attr);
	e->attr_timeout = FOREVER;
	return 0;
}

static struct node *node_or_reply(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = nodes_get(&fsof(req)->nodes, ino);
	if (!n || tree_is_dead(n)) {
		fuse_reply_err(req, ESTALE);
		return NULL;
	}
	return n;
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
	/* Interrupts must reach the daemon: a reader killed while its lookup
	 * waits for a realisation is let go only by an answer (defer.h).
	 * The kernel stops sending them once one is answered ENOSYS, which
	 * libfuse does only when told to (no_interrupt). */
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
	conn->no_interrupt = 0;
#endif
#ifdef FUSE_CAP_PASSTHROUGH
	/* Store files are read by the kernel itself (passthrough.h). Opens
	 * then reach the daemon, to attach the backing file; directories
	 * are still opened by the kernel alone. The backing files' stack
	 * depth stays libfuse's default (FUSE_BACKING_STACKED_UNDER): the
	 * store is not on a stacked filesystem, and a writable root's
	 * overlayfs can stack on this mount. */
	struct bfs *fs = userdata;
	if (fs->passthrough_ok && (conn->capable & FUSE_CAP_PASSTHROUGH) &&
	    passthrough_permitted()) {
		conn->want |= FUSE_CAP_PASSTHROUGH;
		conn->max_backing_stack_depth = FUSE_BACKING_STACKED_UNDER;
		fs->pt = passthrough_new(fuse_session_fd(fs->session),
					 fs->state ? state_passthrough(fs->state) : NULL,
					 STATE_PT_SLOTS, fs->pt_files);
		fs->zero_open = false;
	}
#endif
}

/* Counts a request for the node's bundle (bundlectl status). Before the
 * reply: once the kernel has it, it may forget the node (a FORGET on
 * another worker), and the node's bundle may go with it. */
static void account(const struct node *n, uint64_t bytes)
{
	if (n->bundle)
		bundle_account(n->bundle, bytes);
}

/* A LOOKUP answered from a realiser thread (realise.h): of a store path
 * being realised, or of a rootfs whose closure may be resolved from
 * binary caches. Its caller may give up meanwhile (defer.h): then it is
 * answered EINTR, and the completion answers nothing. */
struct pending_lookup {
	struct deferral d; /* (first) */
	struct bfs *fs;
	struct node *dir; /* the kernel holds it while it waits */
	char *what;
	char name[];
};

static void pending_free(struct deferral *d)
{
	struct pending_lookup *pl = (struct pending_lookup *)d;
	free(pl->what);
	free(pl);
}

static void lookup_realised(void *ctx, errint_t e)
{
	struct pending_lookup *pl = ctx;
	/* (Answered EINTR already: the kernel may have let dir go.) */
	if (!defer_claim(&pl->d)) {
		defer_done(&pl->d);
		return;
	}
	fuse_req_t req = pl->d.req;
	struct fuse_entry_param ep;
	if (e == -ECANCELED) { /* (a successor answers it) */
		fuse_reply_none(req);
	} else {
		if (e == 0)
			e = lookup_entry(pl->fs, pl->dir, pl->name, -1, &ep);
		if (e < 0)
			reply_err(req, e == TREE_NOT_LOCAL ? -EIO : e);
		else
			fuse_reply_entry(req, &ep);
	}
	defer_done(&pl->d);
}

/* Before the request is handed on: an interrupt may answer it from now. */
static struct pending_lookup *pending(fuse_req_t req, struct bfs *fs, struct node *dir,
				      const char *name)
{
	size_t len = strlen(name) + 1;
	struct pending_lookup *pl = xmalloc(sizeof(*pl) + len);
	*pl = (struct pending_lookup){.fs = fs, .dir = dir};
	memcpy(pl->name, name, len);
	pl->what = xasprintf("lookup of %s", name);
	defer_start(fs->deferrer, &pl->d, req, pl->what, pending_free);
	return pl;
}

static void lookup_later(void *ctx)
{
	lookup_realised(ctx, 0);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct bfs *fs = fsof(req);
	struct node *p = node_or_reply(req, parent);
	if (!p)
		return;
	/* Resolving a closure whose roots are not here fetches narinfo from
	 * binary caches: that waits on a realiser thread, not on a FUSE
	 * worker. */
	account(p, 0);
	if (fs->subst && p->kind == NK_BUNDLE && !strcmp(name, "rootfs") &&
	    bundle_may_resolve(p->bundle) && !realise_roots_here(fs, p->bundle)) {
		realise_call(fs, lookup_later, pending(req, fs, p, name));
		return;
	}
	struct fuse_entry_param e;
	bool entered = tree_enter(fs, p);
	errint_t rc = lookup_entry(fs, p, name, -1, &e);
	if (rc == TREE_NOT_LOCAL) {
		realise_demand(fs, name, lookup_realised, pending(req, fs, p, name));
	} else if (rc < 0) {
		reply_err(req, rc);
	} else {
		fuse_reply_entry(req, &e);
	}
	tree_leave(fs, entered);
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

static void reply_readlink(fuse_req_t req, struct bfs *fs, struct node *n)
{
	char buf[PATH_MAX + 1];
	ssize_t len = tree_readlink(fs, n, buf, sizeof(buf) - 1);
	if (len < 0) {
		reply_err(req, (errint_t)len);
		return;
	}
	buf[len] = 0;
	fuse_reply_readlink(req, buf);
}

/* A READLINK answered once a bundle's writable root is mounted. */
struct pending_link {
	fuse_req_t req;
	struct bfs *fs;
	struct node *n;	  /* the kernel holds it while it waits */
	struct bstate *b; /* a reference */
};

static void link_ready(void *ctx)
{
	struct pending_link *p = ctx;
	fuse_ino_t ino = p->n->id; /* (the node may go once the kernel has the reply) */
	/* Where the name points now: the writable root, once mounted. */
	reply_readlink(p->req, p->fs, p->n);
	/* Not mounted (its closure cannot be resolved yet): the kernel must
	 * not keep the target cached, so that the next use asks again. */
	if (bundle_overlay(p->b) == BO_NONE)
		fuse_lowlevel_notify_inval_inode(p->fs->session, ino, 0, 0);
	bundle_put(p->b);
	free(p);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	/* A bundle's name, followed: a writable root is mounted first
	 * (overlay.h), and the answer comes from the overlay thread; a
	 * read-only one's kernel-native root is made in the background, for
	 * the containers started once it is there. */
	if (n->kind == NK_LINK && !bundle_spec(n->bundle)->readonly) {
		struct pending_link *p = xmalloc(sizeof(*p));
		*p = (struct pending_link){req, fsof(req), n, bundle_get(n->bundle)};
		overlay_ensure(fsof(req), n->bundle, link_ready, p);
		return;
	}
	if (n->kind == NK_LINK)
		overlay_ensure(fsof(req), n->bundle, NULL, NULL);
	reply_readlink(req, fsof(req), n);
}

#ifdef FUSE_CAP_PASSTHROUGH
struct opening {
	struct bfs *fs;
	struct node *n;
};

/* A descriptor of the store file behind a node, to pass through. */
static int open_store_file(void *ctx)
{
	struct opening *o = ctx;
	struct content c;
	errint_t e = tree_open(o->fs, o->n, &c);
	return e < 0 ? (int)e : c.fd;
}

static int store_file_is_there(void *ctx)
{
	struct opening *o = ctx;
	return (int)tree_is_there(o->fs, o->n);
}
#endif

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bfs *fs = fsof(req);
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fs->zero_open) {
		/* From now on the kernel opens files itself (fh 0, page cache
		 * kept); see hcache.h. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
#ifdef FUSE_CAP_PASSTHROUGH
	if (fs->pt && tree_is_store_file(n)) {
		struct opening o = {fs, n};
		struct pt_file f = {open_store_file, store_file_is_there, &o};
		int32_t id = passthrough_open(fs->pt, n->bdev, n->bino, &f, &fi->fh);
		if (id > 0) {
			/* (No keep_cache: the kernel refuses it with passthrough,
			 * and there is no page cache of the mount's own to keep.) */
			account(n, 0);
			fi->backing_id = id;
			fi->noflush = 1;
			fuse_reply_open(req, fi);
			return;
		}
		/* (Not passed through: read through the daemon.) */
	}
#endif
	errint_t e = handles_open(fs, n, false, &fi->fh);
	if (e < 0) {
		reply_err(req, e);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	struct hold hold;
	errint_t e = handles_file(fsof(req), n, fi->fh, &hold);
	if (e < 0) {
		reply_err(req, e);
		return;
	}
	const struct content *c = &hold.h->file;
	uint64_t end = c->fd < 0 ? c->len : n->attr.size;
	account(n, (uint64_t)off < end ? (end - (uint64_t)off < size ? end - (uint64_t)off : size)
				       : 0);
	if (c->fd < 0) {
		size_t len = c->len;
		if ((size_t)off >= len)
			size = 0;
		else if (size > len - (size_t)off)
			size = len - (size_t)off;
		fuse_reply_buf(req, c->data + (size ? off : 0), size);
	} else {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = c->fd;
		buf.buf[0].pos = off;
		fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	}
	handles_put(&hold);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bfs *fs = fsof(req);
	/* A RELEASE sent again after a takeover may have been counted by the
	 * daemon that died: counted twice, an id could be given back while
	 * its file is open, and the kernel would refuse the next open of that
	 * file. Not counting it keeps the id (for as long as the mount). */
	if (!fs->pt || !passthrough_is_handle(fi->fh))
		handles_release(fs, fi->fh);
	else if (!devio_resent())
		passthrough_release(fs->pt, fi->fh);
	fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bfs *fs = fsof(req);
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	if (fs->zero_opendir) {
		/* The kernel then opens directories itself and caches their
		 * listings; readdir borrows a stream from a cache. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	errint_t e = handles_open(fs, n, true, &fi->fh);
	if (e < 0) {
		reply_err(req, e);
		return;
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* A readdir reply being filled. */
struct dirbuf {
	fuse_req_t req;
	struct bfs *fs;
	struct node *dir;
	bool plus;
	char *buf;
	size_t size, pos;
};

static bool add_entry(void *ctx, const char *name, unsigned char type, off_t next, int dirfd)
{
	struct dirbuf *b = ctx;
	struct fuse_entry_param e = {0};
	e.attr.st_mode = (mode_t)DTTOIF(type);
	e.attr.st_ino = UNKNOWN_INO;
	bool dot = !strcmp(name, ".") || !strcmp(name, "..");
	if (dot) {
		struct node *n = b->dir;
		e.attr.st_ino = name[1] ? (n->parent ? n->parent->id : FUSE_ROOT_ID) : n->id;
	} else if (b->plus) {
		errint_t rc = lookup_entry(b->fs, b->dir, name, dirfd, &e);
		if (rc == 0 && e.ino == 0)
			return true; /* gone since it was listed */
		if (rc < 0) {
			/* Listed without attributes; a stat will report the
			 * error. */
			memset(&e, 0, sizeof(e));
			e.attr.st_mode = (mode_t)DTTOIF(type);
			e.attr.st_ino = UNKNOWN_INO; /* (readdir hides ino 0) */
		}
	}
	size_t rem = b->size - b->pos;
	size_t sz = b->plus && !dot
			? fuse_add_direntry_plus(b->req, b->buf + b->pos, rem, name, &e, next)
			: fuse_add_direntry(b->req, b->buf + b->pos, rem, name, &e.attr, next);
	if (b->plus && dot && sz <= rem) {
		/* "." and ".." come without a lookup in a READDIRPLUS reply. */
		struct fuse_entry_param none = {.attr = e.attr};
		sz = fuse_add_direntry_plus(b->req, b->buf + b->pos, rem, name, &none, next);
	}
	if (sz > rem) {
		if (b->plus && e.ino)
			nodes_forget(&b->fs->nodes, e.ino, 1);
		return false;
	}
	b->pos += sz;
	return true;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct bfs *fs = fsof(req);
	struct node *n = node_or_reply(req, ino);
	if (!n)
		return;
	struct dirbuf b = {req, fs, n, plus, xmalloc(size), size, 0};
	account(n, 0);
	bool entered = tree_enter(fs, n);
	errint_t rc = handles_readdir(fs, n, fi->fh, off, add_entry, &b);
	if (rc < 0 && b.pos == 0)
		reply_err(req, rc);
	else
		fuse_reply_buf(req, b.buf, b.pos);
	tree_leave(fs, entered);
	free(b.buf);
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
	handles_release(fsof(req), fi->fh);
	fuse_reply_err(req, 0);
}

void ll_forget_entry(struct bfs *fs, node_id parent, const char *name)
{
	if (name)
		fuse_lowlevel_notify_inval_entry(fs->session, parent, name, strlen(name));
	else
		fuse_lowlevel_notify_inval_inode(fs->session, parent, 0, 0);
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
