/* overlay: mounting, detaching and resetting writable roots, in an area
 * of the runtime directory that goes with the mount. */
#include "overlay.h"
#include "bfs.h"
#include "fuseovl.h"
#include "image.h"
#include "layout.h"
#include "log.h"
#include "mounts.h"
#include "realise.h"
#include "statedir.h"
#include "tree.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* How often generations left by a reset are looked at while a container
 * may still use them. */
#define SWEEP_MS 5000

struct job {
	struct bstate *b; /* a reference */
	void (*done)(void *ctx);
	void *ctx;
	struct job *next;
};

/* A generation a reset left, removed once no mount uses it. */
struct discarded {
	char *dir; /* the bundle's state directory */
	unsigned gen;
};

struct overlays {
	pthread_mutex_t lock; /* the queues, stopping, started */
	/* Requests waiting for a root (a writable one's READLINK), and roots
	 * made in the background (read-only kernel-native ones): the first
	 * go first. */
	struct job *head, **tail;
	struct job *bg_head, **bg_tail;
	bool stopping, started;
	int wake;	  /* eventfd: jobs, or stopping */
	pthread_t thread; /* started on first use: after the daemon forked */
	/* One mount_one, reset or close at a time; guards what follows. */
	pthread_mutex_t mounting;
	char *area;	     /* RUN_DIR/<mount point>/<minor>, once known */
	bool area_mounted;   /* our area is there: a tmpfs (root), a directory (not) */
	bool closed;	     /* the FUSE mount is gone: nothing more is mounted */
	int mountinfo;	     /* watched while the area is mounted, or -1 */
	bool swept_at_start; /* generations earlier daemons left were queued */
	struct discarded *discarded;
	size_t ndiscarded, discarded_cap;
	/* Why no root of this mount can be kernel-native, once known (not
	 * built in, not root, the kernel refused one), or NULL. */
	char *native_off;
	/* A daemon that is not root: the fuse-overlayfs processes of its
	 * writable roots (fuseovl.h), reaped once they exit. */
	struct fuseovl_root *procs;
	size_t nprocs, procs_cap;
	bool told_pinned;
};

/* A daemon that is not root makes writable roots with fuse-overlayfs, in
 * a directory of the runtime directory (no tmpfs: it cannot mount one). */
static bool as_user(void)
{
	return geteuid() != 0;
}

/* The type of this daemon's writable roots in mountinfo. */
static const char *root_fstype(void)
{
	return as_user() ? FUSEOVL_FSTYPE : "overlay";
}

char *overlay_dir(const struct bfs *fs, const char *name)
{
	return statedir_bundle(fs->state_dir, fs->mountpoint, name);
}

char *overlay_area(const struct bfs *fs)
{
	char *esc = statedir_escape(fs->mountpoint);
	char *area = xasprintf("%s/%s/%u", fs->run_dir, esc, fs->mnt.minor);
	free(esc);
	return area;
}

static const char *area_of(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	if (!o->area)
		o->area = overlay_area(fs);
	return o->area;
}

static char *version_dir(struct bfs *fs, const struct bstate *b)
{
	return xasprintf("%s/%llu", area_of(fs), (unsigned long long)bundle_serial(b));
}

static char *target_of(struct bfs *fs, const struct bstate *b)
{
	return xasprintf("%s/%llu/rootfs", area_of(fs), (unsigned long long)bundle_serial(b));
}

/* The version's rootfs in the FUSE mount: the overlay's lower layer. */
static char *lower_of(const struct bfs *fs, const struct bstate *b)
{
	return xasprintf("%s/%s/%llu/rootfs", fs->mountpoint, VERSIONS_DIR,
			 (unsigned long long)bundle_serial(b));
}

/* overlayfs reads ',' as a separator and ':' between lower layers. */
static void add_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == ',' || *s == ':' || *s == '\\')
			buf_addc(b, '\\');
		buf_addc(b, *s);
	}
}

/* mount(2) walks the lower layer's path through this filesystem, and the
 * last umount2(2) of an overlay may end the FUSE connection, so a thread
 * of the daemon making them could wait on the daemon's own answers;
 * killed then, that thread would stay blocked, and the process (holding
 * the supervisor's link) would never end: no successor would answer. A
 * child process that holds no descriptor makes them instead. Returns 0 or
 * -errno. */
static errint_t in_child(const char *target, const char *opts, unsigned long flags)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close_range(0, ~0U, 0);
		int r =
		    opts ? mount("bundlefs", target, "overlay", MS_NOSUID | MS_NODEV | flags, opts)
			 : umount2(target, MNT_DETACH);
		_exit(r < 0 ? errno : 0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? -WEXITSTATUS(status) : -EIO;
}

/* Detaches the root on `target` (lazily: containers keep theirs). */
static errint_t detach(const char *target)
{
	return as_user() ? fuseovl_detach(target) : in_child(target, NULL, 0);
}

/* Is a filesystem of this type mounted on `target`? */
static bool mounted(const char *target, const char *fstype)
{
	struct mountent m;
	return mounts_at(target, &m) == 1 && !strcmp(m.fstype, fstype);
}

/* The kernel forgets the version's rootfs entry (looked up by the failed
 * mount itself), so that it is looked up again, and refused. Not while
 * any mount namespace has a mount there: forgetting an entry detaches
 * what is mounted on it (a running container's root). */
static void forget_rootfs(struct bfs *fs, struct bstate *b)
{
	char name[32], root_path[64];
	snprintf(name, sizeof(name), "%llu", (unsigned long long)bundle_serial(b));
	snprintf(root_path, sizeof(root_path), "/%s/%s", VERSIONS_DIR, name);
	char *point = xasprintf("%s%s", fs->mountpoint, root_path);
	bool busy = mounts_any_under(fs->mnt.major, fs->mnt.minor, root_path, point);
	free(point);
	if (busy)
		return;
	struct node *root = nodes_get(&fs->nodes, NODES_ROOT_ID);
	node_id versions = root ? nodes_child_id(&fs->nodes, root, VERSIONS_DIR) : 0;
	struct node *v = versions ? nodes_get(&fs->nodes, versions) : NULL;
	node_id version = v ? nodes_child_id(&fs->nodes, v, name) : 0;
	if (version)
		ll_forget_entry(fs, version, "rootfs");
}

/* ---- the area ------------------------------------------------------------------ */

static void watch_mount_table(struct overlays *o)
{
	if (o->mountinfo < 0)
		o->mountinfo = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
}

/* The area, mounted (a tmpfs, shared) unless it is. Called with
 * `mounting` held. */
static errint_t area_ready(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	if (o->area_mounted)
		return 0;
	char *area = xstrdup(area_of(fs));
	if (as_user()) {
		/* (No tmpfs, no propagation to set: the roots are mounted in
		 * the user's own namespace by fusermount3, where the user's
		 * runtime makes its namespaces from.) */
		errint_t e = mkdir_p(area, 0755);
		free(area);
		if (e < 0)
			return e;
		o->area_mounted = true;
		watch_mount_table(o);
		return 0;
	}
	errint_t e = mkdir_p(area, 0755);
	if (e == 0 && !mounted(area, "tmpfs") &&
	    mount("bundlefs", area, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") < 0)
		e = -errno;
	/* Roots mounted in it reach the namespaces made from this one that
	 * take mounts from it (slave or shared), as runtimes' are. */
	if (e == 0 && mount(NULL, area, NULL, MS_SHARED, NULL) < 0)
		e = -errno;
	free(area);
	if (e < 0)
		return e;
	o->area_mounted = true;
	watch_mount_table(o);
	return 0;
}

struct user_roots {
	const char *area;
	char **points;
	size_t n, cap;
};

static bool user_root_at(void *ctx, const struct mountent *m)
{
	struct user_roots *u = ctx;
	if (!strcmp(m->fstype, FUSEOVL_FSTYPE) && mounts_path_under(m->point, u->area)) {
		GROW(u->points, u->n, u->cap);
		u->points[u->n++] = xstrdup(m->point);
	}
	return true;
}

/* An area that is a directory (a daemon that is not root): each
 * fuse-overlayfs root in it is detached, each version's directory
 * removed. Only unlink and rmdir: nothing that could reach into a root
 * still mounted. */
static errint_t remove_user_area(const char *area)
{
	struct user_roots u = {.area = area};
	errint_t e = mounts_each(user_root_at, &u);
	for (size_t i = 0; i < u.n; i++) {
		errint_t d = fuseovl_detach(u.points[i]);
		if (d < 0 && !e)
			e = d;
		free(u.points[i]);
	}
	free(u.points);
	DIR *dir = opendir(area);
	struct dirent *de;
	while (dir && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s/config.json", area, de->d_name);
		unlink(p);
		free(p);
		p = xasprintf("%s/%s/rootfs", area, de->d_name);
		rmdir(p);
		free(p);
		p = xasprintf("%s/%s", area, de->d_name);
		rmdir(p);
		free(p);
	}
	if (dir)
		closedir(dir);
	return e;
}

errint_t overlay_remove_area(const char *area)
{
	errint_t e = mounted(area, "tmpfs") ? in_child(area, NULL, 0) : remove_user_area(area);
	rmdir(area);
	/* (The mount point's directory, when no other area is left in it.) */
	char *up = xstrdup(area);
	*strrchr(up, '/') = 0;
	rmdir(up);
	free(up);
	return e;
}

/* The FUSE mount is gone: the area goes, with every root in it (running
 * containers keep their copies), and nothing is mounted any more. Called
 * with `mounting` held. */
static void area_close(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	o->closed = true;
	errint_t e = overlay_remove_area(area_of(fs));
	if (e < 0)
		log_warning("%s: detaching the writable roots' area: %s", o->area, strerror(-e));
	o->area_mounted = false;
	if (o->mountinfo >= 0) {
		close(o->mountinfo);
		o->mountinfo = -1;
	}
}

/* ---- one writable root ----------------------------------------------------------- */

/* Writes the version's config.json into its directory in the area. */
static errint_t write_config(struct bstate *b, const char *dir)
{
	const char *data;
	size_t len;
	errint_t e = bundle_config(b, &data, &len);
	if (e < 0)
		return e;
	cleanup_free char *tmp = xasprintf("%s/.config.json", dir);
	cleanup_free char *path = xasprintf("%s/config.json", dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, data, len);
	e = w < 0 ? -errno : (size_t)w != len ? -EIO : 0;
	close(fd);
	if (e == 0 && rename(tmp, path) < 0)
		e = -errno;
	if (e < 0)
		unlink(tmp);
	return e;
}

/* ---- kernel-native roots ------------------------------------------------------- */

/* Why version `b`'s root cannot be kernel-native, as its spec, the mount's
 * options and the machine say (before it is resolved), or NULL. */
static const char *why_not_asked(struct bfs *fs, struct bstate *b)
{
	const struct bundle *sb = bundle_spec(b);
	enum spec_data d = sb->data != SPEC_DATA_DEFAULT ? sb->data : fs->data;
	if (d == SPEC_DATA_BIND)
		return "data = bind";
	if (d == SPEC_DATA_FUSE)
		return sb->data != SPEC_DATA_DEFAULT ? "data = fuse" : "--data fuse";
	return fs->overlays->native_off;
}

/* Why version `b`'s root cannot be kernel-native, or NULL when it can be.
 * Called with `mounting` held, after bundle_ready. */
static const char *why_not_native(struct bfs *fs, struct bstate *b)
{
	const char *why = why_not_asked(fs, b);
	if (!why && !realise_all_local(fs, b))
		why = "store paths of its closure are not here yet";
	return why;
}

/* No root of this mount can be kernel-native, for `why`: said once, as
 * a warning when the kernel refused one (an expected limit, such as not
 * being root, is a notice). */
static void native_off(struct bfs *fs, int prio, const char *why)
{
	struct overlays *o = fs->overlays;
	if (o->native_off)
		return;
	o->native_off = xstrdup(why);
	log_at(prio, "no kernel-native roots on %s (%s): bundles are served by the FUSE tree",
	       fs->mountpoint, why);
}

/* A mount the kernel refuses for what it lacks, not for what was asked. */
static bool unsupported(errint_t e)
{
	return e == -EINVAL || e == -ENODEV || e == -ENOTBLK || e == -EOPNOTSUPP;
}

/* The image of `b`'s closure (built unless cached) mounted in the area,
 * shared by every version of the closure: its mount point in *meta
 * (malloc'ed). Returns 0, or -errno with *what and *detail as
 * native_layers says. A cached image the kernel refuses may be damaged:
 * it is made again, once; refused again, it is the kernel's doing. */
static errint_t mount_image(struct bfs *fs, struct bstate *b, char **meta, const char **what,
			    char **detail)
{
	cleanup_free char *images = statedir_images(fs->state_dir);
	for (int attempt = 0;; attempt++) {
		cleanup_free char *image = NULL;
		struct image_stats stats;
		*what = "building its closure's metadata image";
		errint_t e =
		    image_ensure(&fs->st, bundle_closure(b), images, &image, &stats, detail);
		if (e < 0)
			return e;
		if (stats.damaged)
			log_warning(
			    "bundle \"%s\": its closure's image in %s was damaged: building "
			    "it again",
			    bundle_name(b), images);
		if (stats.built)
			log_info("bundle \"%s\": closure image built: %zu entries, %llu bytes, in "
				 "%.1f + %.1f ms (%s)",
				 bundle_name(b), stats.entries, (unsigned long long)stats.bytes,
				 stats.walk_ms, stats.write_ms, image);
		*meta = xasprintf("%s/images/%.*s", area_of(fs), IMAGE_KEY_LEN - 1,
				  strrchr(image, '/') + 1);
		*what = "mounting its closure's metadata image";
		if ((e = mkdir_p(*meta, 0755)) == 0 &&
		    (mounted(*meta, "erofs") ||
		     mount(image, *meta, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) == 0))
			return 0;
		e = e < 0 ? e : -errno;
		free(*meta);
		*meta = NULL;
		if (!stats.built && attempt == 0 && unlink(image) == 0) {
			log_warning("%s: the kernel refused it (%s): building it again", image,
				    strerror(-e));
			continue;
		}
		if (unsupported(e))
			native_off(fs, LOG_WARNING,
				   "the kernel cannot mount an EROFS image from a file (Linux 6.12 "
				   "or later)");
		return e;
	}
}

/* The lower layers of `b`'s kernel-native root, made ready and appended
 * to `opts` (lowerdir's value): its skeleton (written beside its rootfs
 * in the area), its closure's image (mount_image) and, as the data-only
 * layer, the store. Returns 0, or -errno with *what naming the step and
 * *detail (malloc'ed, or NULL) what failed. Called with `mounting` held. */
static errint_t native_layers(struct bfs *fs, struct bstate *b, struct buf *opts, const char **what,
			      char **detail)
{
	cleanup_free char *meta = NULL;
	errint_t e = mount_image(fs, b, &meta, what, detail);
	if (e < 0)
		return e;
	/* The skeleton: dev, proc, sys, mount points, cwd, files. */
	cleanup_free char *skel =
	    xasprintf("%s/%llu/skel", area_of(fs), (unsigned long long)bundle_serial(b));
	*what = "writing its skeleton";
	if (mkdir(skel, 0755) == 0) {
		int fd = open(skel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		int rc = layout_write(bundle_rootfs(b), fd, skel, detail);
		close(fd);
		if (rc < 0)
			return -EIO;
	} else if (errno != EEXIST) {
		return -errno;
	}
	add_escaped(opts, skel);
	buf_addc(opts, ':');
	add_escaped(opts, meta);
	buf_adds(opts, "::");
	add_escaped(opts, fs->st.real);
	return 0;
}

/* ---- mounting a root -------------------------------------------------------------- */

/* Has the FUSE mount gone from the mount table? */
static bool mount_gone(struct bfs *fs)
{
	struct mountent m;
	return mounts_find(&fs->mnt, &m) == 0;
}

/* Are the mount and the daemon still there to mount a root for? */
static bool still_wanted(struct bfs *fs)
{
	pthread_mutex_lock(&fs->overlays->lock);
	bool stopping = fs->overlays->stopping;
	pthread_mutex_unlock(&fs->overlays->lock);
	return !stopping && !mount_gone(fs);
}

/* Mounts `b`'s writable root on `target` as a daemon that is not root
 * does: fuse-overlayfs over its rootfs in the FUSE mount, generation
 * `gen` of its state as upper layer (fuseovl.h). Returns as mount_root.
 * Called with `mounting` held. */
static errint_t user_root(struct bfs *fs, struct bstate *b, const char *target, unsigned gen,
			  const char **what, char **detail)
{
	struct overlays *o = fs->overlays;
	cleanup_free char *lower = lower_of(fs, b);
	cleanup_free char *dir = overlay_dir(fs, bundle_name(b));
	cleanup_free char *upper = statedir_upper(dir, gen);
	cleanup_free char *work = statedir_work(dir, gen);
	*detail = NULL;
	errint_t e = statedir_make(dir, gen);
	if (e < 0) {
		*what = "making its state directory";
		return e;
	}
	if (!still_wanted(fs))
		return -ECANCELED;
	struct fuseovl_root r;
	if ((e = fuseovl_mount(lower, upper, work, target, &r, what, detail)) < 0)
		return e;
	GROW(o->procs, o->nprocs, o->procs_cap);
	o->procs[o->nprocs++] = r;
	if (r.pinned && !o->told_pinned) {
		o->told_pinned = true;
		log_notice("%s: writable roots hold the mount (no user namespace to copy their "
			   "lower layer in): `fusermount3 -u %s` answers busy while one is "
			   "mounted; SIGTERM or `fusermount3 -u -z` unmount it",
			   fs->mountpoint, fs->mountpoint);
	}
	return 0;
}

/* Mounts `b`'s root on `target`: an overlay whose lower layers are its
 * kernel-native ones (`native`) or its rootfs in the FUSE mount; a
 * writable one with generation `gen` of its state as upper layer, a
 * read-only one (native only) without. Returns 0 or -errno, with *what
 * naming what failed and *detail (malloc'ed, or NULL) how. */
static errint_t mount_root(struct bfs *fs, struct bstate *b, const char *target, bool native,
			   unsigned gen, const char **what, char **detail)
{
	if (!native && as_user())
		return user_root(fs, b, target, gen, what, detail);
	bool readonly = bundle_spec(b)->readonly;
	struct buf opts = {0};
	buf_adds(&opts, "lowerdir=");
	errint_t e = 0;
	*detail = NULL;
	if (native) {
		if ((e = native_layers(fs, b, &opts, what, detail)) < 0)
			goto out;
		/* A file of the image takes its bytes from the store file
		 * its redirect names (composefs asks the same). */
		buf_adds(&opts, ",metacopy=on");
	} else {
		cleanup_free char *lower = lower_of(fs, b);
		add_escaped(&opts, lower);
	}
	if (!readonly) {
		cleanup_free char *dir = overlay_dir(fs, bundle_name(b));
		cleanup_free char *upper = statedir_upper(dir, gen);
		cleanup_free char *work = statedir_work(dir, gen);
		if ((e = statedir_make(dir, gen)) < 0) {
			*what = "making its state directory";
			goto out;
		}
		buf_adds(&opts, ",upperdir=");
		add_escaped(&opts, upper);
		buf_adds(&opts, ",workdir=");
		add_escaped(&opts, work);
		/* No index: the lower layers are never written. */
		buf_adds(&opts, ",index=off");
	}
	/* Directories renamed as they are (not copied), and redirects
	 * followed. */
	buf_adds(&opts, ",redirect_dir=on");
	/* (Building an image takes a while: the mount may be gone, or the
	 * daemon leaving, by now. Nothing is mounted for it then.) */
	if (!still_wanted(fs)) {
		e = -ECANCELED;
		goto out;
	}
	*what = "mounting overlayfs";
	e = in_child(target, opts.data, readonly ? MS_RDONLY : 0);
	if (e < 0 && native && unsupported(e))
		native_off(fs, LOG_WARNING,
			   "the kernel refused an overlay with a data-only layer (Linux 6.5 or "
			   "later)");
out:
	buf_free(&opts);
	return e;
}

/* Removes what mount_one put in the version's directory of the area; its
 * skeleton only with `skel` (a lower layer of its root: not while a
 * container's root is that root). */
static void remove_version_dir(struct bfs *fs, struct bstate *b, bool skel)
{
	cleanup_free char *vdir = version_dir(fs, b);
	char *path = xasprintf("%s/rootfs", vdir);
	rmdir(path); /* (only ever rmdir: were a root still mounted there...) */
	free(path);
	path = xasprintf("%s/config.json", vdir);
	unlink(path);
	free(path);
	if (skel) {
		path = xasprintf("%s/skel", vdir);
		statedir_remove_tree(path);
		free(path);
	}
	rmdir(vdir);
}

/* Makes `b`'s root: a writable one (its name's READLINK waits for it),
 * or a read-only kernel-native one (in the background; the name then
 * points at it, for the containers started from then on). Returns true
 * when the name must be looked up again. */
static bool mount_one(struct bfs *fs, struct bstate *b)
{
	struct overlays *o = fs->overlays;
	pthread_mutex_lock(&o->mounting);
	if (bundle_overlay(b) != BO_NONE || o->closed) {
		pthread_mutex_unlock(&o->mounting);
		return false;
	}
	bool readonly = bundle_spec(b)->readonly, repoint = false;
	cleanup_free char *vdir = version_dir(fs, b);
	cleanup_free char *target = target_of(fs, b);
	cleanup_free char *dir = overlay_dir(fs, bundle_name(b));
	cleanup_free char *detail = NULL;
	errint_t e = 0;
	const char *what = "", *why;
	/* A closure that cannot be resolved (now) is the bundle's problem,
	 * reported as such under its rootfs: tried again on a later use. A
	 * data = bind bundle's config.json lists the closure's paths: they
	 * must all be here first (they are prefetched). */
	if (bundle_ready(b) < 0)
		goto out;
	if (bundle_spec(b)->data == SPEC_DATA_BIND && !realise_all_local(fs, b)) {
		realise_prefetch(fs, b);
		goto out;
	}
	why = why_not_native(fs, b);
	if (readonly && why) {
		bundle_set_overlay(b, BO_FUSE, why);
		log_notice("bundle \"%s\": served by the FUSE tree, not kernel-native: %s",
			   bundle_name(b), why);
		goto out;
	}
	const char *missing = as_user() ? fuseovl_missing() : NULL;
	if (missing) {
		what = "finding fuse-overlayfs";
		detail = xstrdup(missing);
		e = -ENOENT;
		goto failed;
	}
	if ((e = area_ready(fs)) < 0) {
		what = "mounting its area in the runtime directory";
		if (as_user()) {
			what = "making its area in the runtime directory";
			detail = xasprintf("%s (a daemon that is not root needs one it may write: "
					   "$XDG_RUNTIME_DIR, or --run-dir)",
					   strerror(-e));
		}
		goto failed;
	}
	if (mounted(target, root_fstype())) { /* (a predecessor's) */
		cleanup_free char *skel = xasprintf("%s/skel", vdir);
		bundle_set_native(b, access(skel, F_OK) == 0, NULL);
		bundle_set_overlay(b, BO_MOUNTED, NULL);
		goto out;
	}
	char *rootfs = xstrdup(target);
	e = mkdir_p(rootfs, 0755);
	free(rootfs);
	if (e == 0)
		e = write_config(b, vdir);
	if (e < 0) {
		what = "writing its bundle directory";
		goto failed;
	}
	long gen = statedir_current(dir);
	unsigned g = gen < 0 ? 0 : (unsigned)gen;
	if (!why) {
		e = mount_root(fs, b, target, true, g, &what, &detail);
		if (e == -ECANCELED) {
			remove_version_dir(fs, b, true);
			goto out;
		}
		if (e == 0) {
			bundle_set_native(b, true, NULL);
			bundle_set_overlay(b, BO_MOUNTED, NULL);
			log_info("bundle \"%s\": kernel-native %s root mounted on %s",
				 bundle_name(b), readonly ? "read-only" : "writable", target);
			repoint = readonly;
			goto out;
		}
		char *not = xasprintf("%s failed: %s", what, detail ? detail : strerror(-e));
		log_warning("bundle \"%s\": no kernel-native root (%s)", bundle_name(b), not );
		bundle_set_native(b, false, not );
		free(not );
		if (readonly) {
			char *w = NULL;
			bundle_native(b, &w);
			bundle_set_overlay(b, BO_FUSE, w);
			free(w);
			remove_version_dir(fs, b, true);
			goto out;
		}
		free(detail);
		detail = NULL;
	} else {
		bundle_set_native(b, false, why);
	}
	if ((e = mount_root(fs, b, target, false, g, &what, &detail)) == 0) {
		bundle_set_overlay(b, BO_MOUNTED, NULL);
		log_info("bundle \"%s\": writable root mounted on %s (changes in %s)",
			 bundle_name(b), target, dir);
		goto out;
	}
failed:;
	const struct bundle *sb = bundle_spec(b);
	char *msg = xasprintf("%s:%u: bundle \"%s\": readonly = false needs a writable root, "
			      "and %s failed (%s): %s",
			      fs->spec_path, sb->line, sb->name, what, target,
			      detail ? detail : strerror(-e));
	log_err("%s", msg);
	bundle_set_overlay(b, BO_FAILED, msg);
	free(msg);
	forget_rootfs(fs, b);
out:
	pthread_mutex_unlock(&o->mounting);
	return repoint;
}

/* Takes the root of `b` off its mount point and removes its directory.
 * Called with `mounting` held. */
static void unmount_one(struct bfs *fs, struct bstate *b)
{
	cleanup_free char *target = target_of(fs, b);
	struct mountent m;
	bool is = mounts_at(target, &m) == 1 && !strcmp(m.fstype, root_fstype()), used = false;
	if (is) {
		/* A container's root: the root mounted elsewhere too. */
		struct mounts_all all;
		used = true; /* (unless it can tell) */
		if (mounts_all_read(&all) == 0) {
			used = mounts_all_elsewhere(&all, m.major, m.minor, target);
			mounts_all_free(&all);
		}
	}
	errint_t e = is ? detach(target) : 0;
	if (e < 0)
		log_warning("%s: detaching a root: %s", target, strerror(-e));
	/* (A skeleton a container still uses goes with the area.) */
	remove_version_dir(fs, b, !used);
}

/* ---- generations a reset left ----------------------------------------------------- */

/* Called with `mounting` held. */
static void discard(struct overlays *o, const char *dir, unsigned gen)
{
	for (size_t i = 0; i < o->ndiscarded; i++)
		if (o->discarded[i].gen == gen && !strcmp(o->discarded[i].dir, dir))
			return;
	GROW(o->discarded, o->ndiscarded, o->discarded_cap);
	o->discarded[o->ndiscarded++] = (struct discarded){xstrdup(dir), gen};
}

/* Removes each discarded generation no mount uses any more. Called with
 * `mounting` held. */
static void sweep(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	size_t k = 0;
	for (size_t i = 0; i < o->ndiscarded; i++) {
		struct discarded *d = &o->discarded[i];
		cleanup_free char *upper = statedir_upper(d->dir, d->gen);
		if (!mounts_overlay_in_use(upper, fs->run_dir)) {
			errint_t e = statedir_remove(d->dir, d->gen);
			if (e < 0)
				log_warning("%s: removing what a reset left: %s", upper,
					    strerror(-e));
			free(d->dir);
			continue;
		}
		o->discarded[k++] = *d;
	}
	o->ndiscarded = k;
}

/* Generations earlier daemons of this mount point left (a reset whose
 * containers outlived their daemon). Called with `mounting` held. */
static void discard_left_over(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	o->swept_at_start = true;
	char *esc = statedir_escape(fs->mountpoint);
	char *top = xasprintf("%s/%s", fs->state_dir, esc);
	free(esc);
	DIR *d = opendir(top);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *dir = xasprintf("%s/%s", top, de->d_name);
		unsigned *gens;
		size_t n = statedir_generations(dir, &gens);
		for (size_t i = 0; i + 1 < n; i++)
			discard(o, dir, gens[i]);
		free(gens);
		free(dir);
	}
	if (d)
		closedir(d);
	free(top);
}

/* ---- the thread ------------------------------------------------------------------ */

/* The name of `b` points at its root now: the kernel forgets the target
 * it cached (and the name), and asks again. With no lock held. */
static void repoint(struct bfs *fs, struct bstate *b)
{
	struct node *root = nodes_get(&fs->nodes, NODES_ROOT_ID);
	node_id link = root ? nodes_child_id(&fs->nodes, root, bundle_name(b)) : 0;
	if (link)
		ll_forget_entry(fs, link, NULL);
	ll_forget_entry(fs, NODES_ROOT_ID, bundle_name(b));
}

/* Reaps the fuse-overlayfs processes that have exited (their roots
 * detached, and no container left on them), waiting up to `ms` for each.
 * Called with `mounting` held. */
static void reap(struct overlays *o, int ms)
{
	size_t k = 0;
	for (size_t i = 0; i < o->nprocs; i++)
		if (!fuseovl_reap(&o->procs[i], ms))
			o->procs[k++] = o->procs[i];
	o->nprocs = k;
}

static void *run(void *arg)
{
	struct bfs *fs = arg;
	struct overlays *o = fs->overlays;
	struct pollfd *p = NULL;
	size_t pcap = 0;
	for (;;) {
		pthread_mutex_lock(&o->mounting);
		/* The wake-up, the mount table, and each fuse-overlayfs
		 * process, readable once it has exited. */
		size_t np = 2 + o->nprocs;
		if (np > pcap) {
			pcap = np * 2;
			p = xreallocarray(p, pcap, sizeof(*p));
		}
		p[0] = (struct pollfd){.fd = o->wake, .events = POLLIN};
		p[1] = (struct pollfd){.fd = o->mountinfo, .events = POLLPRI};
		for (size_t i = 0; i < o->nprocs; i++)
			p[2 + i] = (struct pollfd){.fd = o->procs[i].pidfd, .events = POLLIN};
		int timeout = o->ndiscarded ? SWEEP_MS : -1;
		pthread_mutex_unlock(&o->mounting);
		pthread_mutex_lock(&o->lock);
		if (o->bg_head)
			timeout = 0; /* (more to do) */
		pthread_mutex_unlock(&o->lock);
		/* (poll ignores a negative descriptor) */
		int n = poll(p, np, timeout);
		uint64_t x;
		if (n > 0 && (p[0].revents & POLLIN) && read(o->wake, &x, sizeof(x)) < 0) {
			/* (counted again on the next write) */
		}
		/* Every waiting request, else one root made in the background. */
		pthread_mutex_lock(&o->lock);
		struct job *j = o->head, *bg = NULL;
		o->head = NULL;
		o->tail = &o->head;
		if (!j && (bg = o->bg_head)) {
			o->bg_head = bg->next;
			if (!o->bg_head)
				o->bg_tail = &o->bg_head;
		}
		bool stopping = o->stopping;
		pthread_mutex_unlock(&o->lock);
		for (struct job *next; j; j = next) {
			next = j->next;
			/* (When stopping, the kernel no longer waits for them.) */
			if (!stopping) {
				mount_one(fs, j->b);
				j->done(j->ctx);
			}
			bundle_put(j->b);
			free(j);
		}
		if (bg) {
			if (!stopping && mount_one(fs, bg->b))
				repoint(fs, bg->b);
			bundle_put(bg->b);
			free(bg);
		}
		if (stopping)
			break;
		pthread_mutex_lock(&o->mounting);
		if (!o->swept_at_start)
			discard_left_over(fs);
		if (o->mountinfo >= 0 && (p[1].revents & (POLLPRI | POLLERR)) && mount_gone(fs)) {
			log_notice("%s is unmounted: its roots leave %s (running containers keep "
				   "theirs)",
				   fs->mountpoint, area_of(fs));
			area_close(fs);
		}
		if (o->ndiscarded)
			sweep(fs);
		reap(o, 0);
		pthread_mutex_unlock(&o->mounting);
	}
	free(p);
	return NULL;
}

/* Starts the thread unless it runs. Called with o->lock held. */
static errint_t start_thread(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	if (o->started)
		return 0;
	int e = pthread_create(&o->thread, NULL, run, fs);
	if (e)
		return -e;
	o->started = true;
	return 0;
}

static void wake(struct overlays *o)
{
	uint64_t one = 1;
	if (write(o->wake, &one, sizeof(one)) < 0) {
		/* (the counter is full: the thread is awake anyway) */
	}
}

errint_t overlays_start(struct bfs *fs)
{
	struct overlays *o = xcalloc(1, sizeof(*o));
	o->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (o->wake < 0) {
		free(o);
		return -errno;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_mutex_init(&o->mounting, NULL);
	o->tail = &o->head;
	o->bg_tail = &o->bg_head;
	o->mountinfo = -1;
	fs->overlays = o;
	return 0;
}

/* May a bundle of the current set get a root in the area: a writable
 * one, or a kernel-native one? */
static bool any_kernel_root(struct bfs *fs)
{
	unsigned native = 0; /* the data of bundles with a kernel-native root */
	if (!fs->overlays->native_off)
		native = 1u << SPEC_DATA_NATIVE |
			 (fs->data == SPEC_DATA_NATIVE ? 1u << SPEC_DATA_DEFAULT : 0);
	return bundles_any(fs->bundles, native);
}

void overlays_adopt(struct bfs *fs, bool took_over)
{
	struct overlays *o = fs->overlays;
	struct stat st;
	bool there = stat(area_of(fs), &st) == 0;
	pthread_mutex_lock(&o->mounting);
	if (there && !took_over) {
		/* Left by a mount whose daemon and watchdog both failed to
		 * remove it: nothing in it is this mount's. */
		area_close(fs);
		o->closed = false;
	} else if (there && (as_user() || mounted(o->area, "tmpfs"))) {
		o->area_mounted = true;
		watch_mount_table(o);
	}
	/* What no root can be, on this machine. */
	if (!image_built_in())
		native_off(fs, LOG_NOTICE, "this bundlefs was built without libcomposefs");
	else if (geteuid() != 0)
		native_off(fs, LOG_NOTICE, "they need root");
	/* Made now, before any container's mount namespace is: one made
	 * from this one before the area was there would not see the roots
	 * mounted in it. */
	errint_t e = 0;
	if (!o->area_mounted && geteuid() == 0 && any_kernel_root(fs))
		e = area_ready(fs);
	pthread_mutex_unlock(&o->mounting);
	if (e < 0)
		log_err("%s: %s: writable roots cannot be mounted", o->area, strerror(-e));
	if (o->area_mounted) {
		pthread_mutex_lock(&o->lock);
		e = start_thread(fs);
		pthread_mutex_unlock(&o->lock);
		if (e < 0)
			log_warning(
			    "no thread to watch %s (%s): unmount its writable roots by hand",
			    o->area, strerror(-e));
	}
}

void overlays_stop(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	wake(o);
	pthread_mutex_unlock(&o->lock);
	if (o->started)
		pthread_join(o->thread, NULL);
	for (int q = 0; q < 2; q++)
		for (struct job *j = q ? o->bg_head : o->head, *next; j; j = next) {
			next = j->next;
			bundle_put(j->b);
			free(j);
		}
	/* The mount is gone (the loop ended): so is the area, unless the
	 * thread was not there to see it. */
	if (o->area_mounted && mount_gone(fs))
		area_close(fs);
	/* fuse-overlayfs processes end once their roots are detached and
	 * no container uses them; after an unmount the connection has ended,
	 * so they have (they held its lower layers). Ones still serving
	 * containers (a hand-over) are left to run. */
	reap(o, mount_gone(fs) ? 2000 : 0);
	free(o->procs);
	for (size_t i = 0; i < o->ndiscarded; i++)
		free(o->discarded[i].dir);
	free(o->discarded);
	if (o->mountinfo >= 0)
		close(o->mountinfo);
	close(o->wake);
	free(o->area);
	free(o->native_off);
	pthread_mutex_destroy(&o->lock);
	pthread_mutex_destroy(&o->mounting);
	free(o);
	fs->overlays = NULL;
}

void overlay_ensure(struct bfs *fs, struct bstate *b, void (*done)(void *ctx), void *ctx)
{
	struct overlays *o = fs->overlays;
	if (bundle_overlay(b) != BO_NONE || (!done && why_not_asked(fs, b))) {
		if (done)
			done(ctx);
		return;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->b = bundle_get(b);
	j->done = done;
	j->ctx = ctx;
	pthread_mutex_lock(&o->lock);
	errint_t e = start_thread(fs);
	if (e < 0) {
		pthread_mutex_unlock(&o->lock);
		bundle_put(j->b);
		free(j);
		if (!done)
			return; /* (the FUSE tree serves it) */
		char *msg = xasprintf("bundle \"%s\": no thread to mount its writable root: %s",
				      bundle_name(b), strerror(-e));
		log_err("%s", msg);
		bundle_set_overlay(b, BO_FAILED, msg);
		free(msg);
		done(ctx);
		return;
	}
	if (done) {
		*o->tail = j;
		o->tail = &j->next;
	} else {
		*o->bg_tail = j;
		o->bg_tail = &j->next;
	}
	wake(o);
	pthread_mutex_unlock(&o->lock);
}

ssize_t overlay_bundle_dir(struct bfs *fs, struct bstate *b, char *buf, size_t size)
{
	if (bundle_overlay(b) != BO_MOUNTED)
		return -ENOENT;
	int len = snprintf(buf, size, "%s/%llu", area_of(fs), (unsigned long long)bundle_serial(b));
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : len;
}

void overlay_detach(struct bfs *fs, struct bstate *b)
{
	struct overlays *o = fs->overlays;
	pthread_mutex_lock(&o->mounting);
	if (bundle_overlay(b) == BO_MOUNTED && !o->closed)
		unmount_one(fs, b);
	pthread_mutex_unlock(&o->mounting);
}

errint_t overlay_reset(struct bfs *fs, const char *name, char **msg)
{
	struct overlays *o = fs->overlays;
	pthread_rwlock_rdlock(&fs->gen_lock);
	struct bstate *b = bundles_find(fs->bundles, name);
	if (b)
		b = bundle_get(b);
	pthread_rwlock_unlock(&fs->gen_lock);
	if (!b) {
		*msg = xasprintf("%s has no bundle \"%s\" (`bundlectl prune` removes what bundles "
				 "no longer in it wrote)",
				 fs->spec_path, name);
		return -ENOENT;
	}
	if (bundle_spec(b)->readonly) {
		*msg = xasprintf("bundle \"%s\" is read-only (readonly = true): containers cannot "
				 "write in it, there is nothing to discard",
				 name);
		bundle_put(b);
		return -EROFS;
	}
	pthread_mutex_lock(&o->mounting);
	cleanup_free char *dir = overlay_dir(fs, name);
	long old = statedir_current(dir);
	errint_t e = 0;
	bool lost = false;
	*msg = NULL;
	cleanup_free char *detail = NULL;
	if (old >= 0) {
		unsigned gen = (unsigned)old + 1;
		const char *what = "making its state directory";
		if ((e = statedir_make(dir, gen)) == 0 && bundle_overlay(b) == BO_MOUNTED &&
		    !o->closed) {
			/* The old root leaves its mount point (running
			 * containers keep theirs); the new one takes it. */
			cleanup_free char *target = target_of(fs, b);
			if ((e = detach(target)) < 0)
				what = "unmounting its writable root";
			else
				e = mount_root(fs, b, target, bundle_native(b, NULL), gen, &what,
					       &detail);
		}
		if (e < 0) {
			*msg = xasprintf("bundle \"%s\": %s failed: %s", name, what,
					 detail ? detail : strerror(-e));
			log_err("%s", *msg);
			if (bundle_overlay(b) == BO_MOUNTED) {
				/* Its name must not lead to the empty mount point. */
				unmount_one(fs, b);
				bundle_set_overlay(b, BO_FAILED, *msg);
				lost = true;
			}
		} else {
			discard(o, dir, (unsigned)old);
			sweep(fs);
		}
	}
	bool pending = o->ndiscarded > 0;
	pthread_mutex_unlock(&o->mounting);
	if (lost)
		repoint(fs, b);
	if (e == 0)
		log_notice(
		    "bundle \"%s\": writes discarded; new containers start from a clean root",
		    name);
	/* What running containers still use goes once they are gone: the
	 * thread looks again every few seconds. */
	if (pending) {
		pthread_mutex_lock(&o->lock);
		if (start_thread(fs) == 0)
			wake(o);
		pthread_mutex_unlock(&o->lock);
	}
	bundle_put(b);
	return e;
}

/* ---- prune ------------------------------------------------------------------------ */

struct pruned {
	cJSON *out;
	bool dry_run;
};

static void report(void *ctx, const char *upper, uint64_t bytes, const char *kept)
{
	struct pruned *p = ctx;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "upper", upper);
	cJSON_AddNumberToObject(o, "bytes", (double)bytes);
	cJSON_AddBoolToObject(o, "removed", !kept && !p->dry_run);
	if (kept)
		cJSON_AddStringToObject(o, "kept", kept);
	else
		cJSON_AddNullToObject(o, "kept");
	cJSON_AddItemToArray(p->out, o);
}

errint_t overlay_prune(struct bfs *fs, bool dry_run, cJSON *out)
{
	struct overlays *o = fs->overlays;
	char *esc = statedir_escape(fs->mountpoint);
	char *top = xasprintf("%s/%s", fs->state_dir, esc);
	free(esc);
	struct pruned p = {out, dry_run};
	errint_t rc = 0;
	pthread_mutex_lock(&o->mounting);
	DIR *d = opendir(top);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		pthread_rwlock_rdlock(&fs->gen_lock);
		struct bstate *b = bundles_find(fs->bundles, de->d_name);
		bool wanted = b && !bundle_spec(b)->readonly;
		pthread_rwlock_unlock(&fs->gen_lock);
		char *dir = xasprintf("%s/%s", top, de->d_name);
		errint_t e = statedir_prune(dir, wanted, dry_run, fs->run_dir, report, &p);
		if (e < 0 && !rc)
			rc = e;
		free(dir);
	}
	if (d)
		closedir(d);
	if (!dry_run)
		rmdir(top);
	errint_t e = statedir_prune_images(fs->state_dir, dry_run, report, &p);
	if (e < 0 && !rc)
		rc = e;
	pthread_mutex_unlock(&o->mounting);
	free(top);
	return rc;
}

void overlay_status(struct bfs *fs, struct bstate *b, const struct mounts_all *all,
		    struct overlay_status *out)
{
	*out = (struct overlay_status){0};
	const struct bundle *sb = bundle_spec(b);
	if (!sb->readonly) {
		cleanup_free char *dir = overlay_dir(fs, bundle_name(b));
		long gen = statedir_current(dir);
		out->upper = statedir_upper(dir, gen < 0 ? 0 : (unsigned)gen);
	}
	enum bundle_overlay state = bundle_overlay(b);
	bool native = bundle_native(b, &out->why);
	out->mounted = state == BO_MOUNTED;
	const char *asked = why_not_asked(fs, b);
	if (!out->why && asked)
		out->why = xstrdup(asked); /* (known before it is used) */
	if (sb->data == SPEC_DATA_BIND)
		out->data = "bind";
	else if (state == BO_MOUNTED && native)
		out->data = "native";
	else if (state != BO_NONE || out->why)
		out->data = "fuse";
	/* A container's root is the root mounted elsewhere than on its place
	 * in the area (runc and crun bind it, then pivot into it); copies in
	 * namespaces that take the area's mounts sit on that same place. */
	struct mountent m;
	cleanup_free char *target = target_of(fs, b);
	if (!out->mounted)
		out->in_use = 0;
	else if (!all || mounts_at(target, &m) != 1)
		out->in_use = -1;
	else
		out->in_use = mounts_all_elsewhere(all, m.major, m.minor, target);
}
