/* overlay: mounting, detaching and resetting writable roots. */
#include "overlay.h"
#include "bfs.h"
#include "log.h"
#include "mounts.h"
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct job {
	struct bstate *b; /* a reference */
	void (*done)(void *ctx);
	void *ctx;
	struct job *next;
};

struct overlays {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	bool stopping, started;
	pthread_t thread;	  /* started on first use: after the daemon forked */
	pthread_mutex_t mounting; /* one mount_one at a time (the thread, a reset) */
};

/* The mount point, as a file name: '/' becomes '-', and every byte but
 * letters, digits, '.' and '_' is written %XX, so that no two mount
 * points share a directory. */
static void escape(struct buf *b, const char *path)
{
	if (!path[1]) {
		buf_addc(b, '-');
		return;
	}
	for (const char *c = path + 1; *c; c++) {
		unsigned char u = (unsigned char)*c;
		if (u == '/')
			buf_addc(b, '-');
		else if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
			 (u >= '0' && u <= '9') || u == '.' || u == '_')
			buf_addc(b, (char)u);
		else
			buf_addf(b, "%%%02X", u);
	}
}

char *overlay_dir(const struct bfs *fs, const char *name)
{
	struct buf b = {0};
	buf_adds(&b, fs->state_dir);
	buf_addc(&b, '/');
	escape(&b, fs->mountpoint);
	buf_addc(&b, '/');
	buf_adds(&b, name);
	return b.data;
}

static char *target_of(const struct bfs *fs, const struct bstate *b)
{
	return xasprintf("%s/%s/%llu/rootfs", fs->mountpoint, VERSIONS_DIR,
			 (unsigned long long)bundle_serial(b));
}

static int mkdirs(char *path, mode_t mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = mkdir(path, 0755);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
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

/* mount(2) and umount2(2) walk paths through this filesystem, so a thread
 * of the daemon making them waits on the daemon's own answers; killed
 * then, that thread would stay blocked, and the process (holding the
 * supervisor's link) would never end: no successor would answer. A child
 * process that holds no descriptor makes them instead. Returns 0 or
 * -errno. */
static errint_t in_child(const char *target, const char *opts)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close_range(0, ~0U, 0);
		int r = opts ? mount("bundlefs", target, "overlay", MS_NOSUID | MS_NODEV, opts)
			     : umount2(target, MNT_DETACH);
		_exit(r < 0 ? errno : 0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? -WEXITSTATUS(status) : -EIO;
}

/* Is an overlay mounted on `target` (a successor finds those its
 * predecessor mounted)? */
static bool mounted(const char *target)
{
	struct mountent m;
	return mounts_at(target, &m) == 1 && !strcmp(m.fstype, "overlay");
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

static void mount_one(struct bfs *fs, struct bstate *b)
{
	pthread_mutex_lock(&fs->overlays->mounting);
	if (bundle_overlay(b) != BO_NONE) {
		pthread_mutex_unlock(&fs->overlays->mounting);
		return;
	}
	char *target = target_of(fs, b), *dir = overlay_dir(fs, bundle_name(b));
	char *upper = xasprintf("%s/upper", dir), *work = xasprintf("%s/work", dir);
	errint_t e = 0;
	const char *what = "";
	if (mounted(target)) {
		bundle_set_overlay(b, BO_MOUNTED, NULL);
		goto out;
	}
	/* A closure that cannot be resolved (now) is the bundle's problem,
	 * reported as such under its rootfs: tried again on a later use. */
	if (bundle_ready(b) < 0)
		goto out;
	if ((e = mkdirs(upper, 0755)) < 0 || (e = mkdirs(work, 0700)) < 0) {
		what = upper;
	} else {
		struct buf opts = {0};
		buf_adds(&opts, "lowerdir=");
		add_escaped(&opts, target);
		buf_adds(&opts, ",upperdir=");
		add_escaped(&opts, upper);
		buf_adds(&opts, ",workdir=");
		add_escaped(&opts, work);
		/* Directories renamed as they are (not copied), and no index:
		 * the lower layer is never written, so nothing to index. */
		buf_adds(&opts, ",redirect_dir=on,index=off");
		if ((e = in_child(target, opts.data)) < 0)
			what = "mounting overlayfs";
		buf_free(&opts);
	}
	if (e < 0) {
		const struct bundle *sb = bundle_spec(b);
		char *msg =
		    xasprintf("%s:%u: bundle \"%s\": readonly = false needs a writable root, "
			      "and %s%s%s failed: %s",
			      fs->spec_path, sb->line, sb->name, what, *what == '/' ? "" : " on ",
			      *what == '/' ? "" : target, strerror(-e));
		log_err("%s", msg);
		bundle_set_overlay(b, BO_FAILED, msg);
		free(msg);
		forget_rootfs(fs, b);
	} else {
		bundle_set_overlay(b, BO_MOUNTED, NULL);
		log_info("bundle \"%s\": writable root mounted (changes in %s)", bundle_name(b),
			 upper);
	}
out:
	pthread_mutex_unlock(&fs->overlays->mounting);
	free(upper);
	free(work);
	free(dir);
	free(target);
}

static void *run(void *arg)
{
	struct bfs *fs = arg;
	struct overlays *o = fs->overlays;
	pthread_mutex_lock(&o->lock);
	for (;;) {
		while (!o->head && !o->stopping)
			pthread_cond_wait(&o->cond, &o->lock);
		struct job *j = o->head;
		if (!j)
			break;
		o->head = j->next;
		if (!o->head)
			o->tail = &o->head;
		pthread_mutex_unlock(&o->lock);
		mount_one(fs, j->b);
		j->done(j->ctx);
		bundle_put(j->b);
		free(j);
		pthread_mutex_lock(&o->lock);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

errint_t overlays_start(struct bfs *fs)
{
	struct overlays *o = xcalloc(1, sizeof(*o));
	pthread_mutex_init(&o->lock, NULL);
	pthread_mutex_init(&o->mounting, NULL);
	pthread_cond_init(&o->cond, NULL);
	o->tail = &o->head;
	fs->overlays = o;
	return 0;
}

void overlays_stop(struct bfs *fs)
{
	struct overlays *o = fs->overlays;
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	if (o->started)
		pthread_join(o->thread, NULL);
	/* (Jobs left are requests the kernel no longer waits for.) */
	for (struct job *j = o->head, *next; j; j = next) {
		next = j->next;
		bundle_put(j->b);
		free(j);
	}
	pthread_mutex_destroy(&o->lock);
	pthread_mutex_destroy(&o->mounting);
	pthread_cond_destroy(&o->cond);
	free(o);
	fs->overlays = NULL;
}

void overlay_ensure(struct bfs *fs, struct bstate *b, void (*done)(void *ctx), void *ctx)
{
	struct overlays *o = fs->overlays;
	if (bundle_overlay(b) != BO_NONE) {
		done(ctx);
		return;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->b = bundle_get(b);
	j->done = done;
	j->ctx = ctx;
	pthread_mutex_lock(&o->lock);
	if (!o->started) {
		int e = pthread_create(&o->thread, NULL, run, fs);
		if (e) {
			pthread_mutex_unlock(&o->lock);
			char *msg =
			    xasprintf("bundle \"%s\": no thread to mount its writable root: %s",
				      bundle_name(b), strerror(e));
			log_err("%s", msg);
			bundle_set_overlay(b, BO_FAILED, msg);
			free(msg);
			bundle_put(j->b);
			free(j);
			done(ctx);
			return;
		}
		o->started = true;
	}
	*o->tail = j;
	o->tail = &j->next;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

void overlay_detach(struct bfs *fs, struct bstate *b)
{
	char *target = target_of(fs, b);
	errint_t e = mounted(target) ? in_child(target, NULL) : 0;
	if (e < 0)
		log_warning("%s: detaching a writable root: %s", target, strerror(-e));
	free(target);
}

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

errint_t overlay_reset(struct bfs *fs, const char *name, char **msg)
{
	*msg = NULL;
	char *dir = overlay_dir(fs, name);
	pthread_rwlock_rdlock(&fs->gen_lock);
	struct bstate *b = bundles_find(fs->bundles, name);
	if (b)
		b = bundle_get(b);
	pthread_rwlock_unlock(&fs->gen_lock);
	bool writable = b && !bundle_spec(b)->readonly;
	if (writable)
		overlay_detach(fs, b);
	errint_t e = 0;
	struct stat st;
	if (lstat(dir, &st) == 0 && nftw(dir, remove_cb, 32, FTW_DEPTH | FTW_PHYS) < 0) {
		e = -errno;
		*msg = xasprintf("%s: %s", dir, strerror(errno));
	}
	if (writable) {
		/* Mounted again at once: the kernel may keep the name's
		 * target cached, and not ask again. */
		bundle_set_overlay(b, BO_NONE, NULL);
		mount_one(fs, b);
		if (bundle_overlay(b) != BO_MOUNTED && !e) {
			e = -EIO;
			*msg =
			    xasprintf("bundle \"%s\": its writable root could not be mounted again "
				      "(see bundlectl status)",
				      name);
		}
	}
	bundle_put(b);
	if (!e)
		log_notice("bundle \"%s\": writes discarded (%s)", name, dir);
	free(dir);
	return e;
}
