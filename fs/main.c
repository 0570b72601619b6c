/* bundlefs: mounts the OCI runtime bundles of a spec as a read-only FUSE
 * filesystem, each bundle's rootfs a view of its Nix closure served
 * straight from the store, so that `runc run -b MOUNT/NAME` starts without
 * copying anything.
 *
 * This file starts the daemon: reads the spec (nothing else: bundles are
 * resolved on first access), detaches, mounts, and runs the loop; the
 * command returns once the mount serves. SIGTERM and SIGINT detach the
 * mount lazily (the loop ends when the kernel drops the last reference,
 * so containers that still hold files keep working until they let go);
 * SIGHUP reloads the spec. */
#include "bfs.h"
#include "control.h"
#include "log.h"
#include "mounts.h"
#include "options.h"
#include "reload.h"
#include "service.h"
#include "tree.h"
#include "watchdog.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Out of descriptors: close every cached one not in use. */
static void reclaim(void *ctx)
{
	struct bfs *f = ctx;
	handles_trim(f);
	tree_trim(f);
}

/* Raises the soft limit on open descriptors to the hard one, and returns
 * the limit. */
static unsigned raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > 1u << 20 ? 1u << 20 : (unsigned)rl.rlim_cur;
}

static unsigned clamp(unsigned x, unsigned lo, unsigned hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

static void hold_bundle(struct bstate *b)
{
	bundle_get(b);
}

/* Sets up everything the handlers use, from the spec `sp` (taken over).
 * Returns 0 or -errno. */
static errint_t bfs_init(struct bfs *f, const struct options *o, struct spec *sp)
{
	errint_t e = store_open(&f->st);
	if (e < 0)
		return e;
	clock_gettime(CLOCK_REALTIME, &f->started);
	f->loaded = f->started;
	f->uid = geteuid();
	f->gid = getegid();
	backing_init(&f->backing, f->st.fd, o->no_openat2, reclaim, f);
	f->resolver = resolver_new(&f->st);
	gcroots_init(&f->gcroots);
	f->env = (struct bundle_env){.st = &f->st,
				     .resolver = f->resolver,
				     .gcroots = &f->gcroots,
				     .registry = bundle_registry_new()};
	f->bundles = bundles_new(sp, &f->env, NULL);
	f->generation = 1;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* A reload is not starved by a steady stream of lookups. */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->gen_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&f->reload_lock, NULL);
	pthread_cond_init(&f->retired_cond, NULL);
	nodes_init(&f->nodes, &(struct nodes_owner){hold_bundle, bundle_put});
	/* The handle caches share what descriptors are left once each worker
	 * thread has its own device descriptor, and each request in flight
	 * two (a path and the file it reopens), and a few for the rest. */
	unsigned limit = raise_nofile();
	unsigned reserve = 3 * o->threads + 24;
	unsigned budget = limit > reserve + 12 ? limit - reserve : 12;
	tree_init(f, clamp(budget / 4, 2, 64));
	handles_init(f, clamp(budget / 2, 4, 64), clamp(budget / 4, 2, 64));
	/* Opens can skip the daemon only while the kernel itself refuses
	 * writes; with a read-write mount OPEN must stay to answer EROFS. */
	f->zero_open = !o->mount_rw;
	return 0;
}

static void bfs_fini(struct bfs *f)
{
	reload_stop(f);
	handles_fini(f);
	tree_fini(f);
	nodes_destroy(&f->nodes);
	bundles_put(f->bundles);
	bundle_registry_free(f->env.registry);
	gcroots_close(&f->gcroots);
	resolver_free(f->resolver);
	free(f->last_reload.problems);
	pthread_rwlock_destroy(&f->gen_lock);
	pthread_mutex_destroy(&f->reload_lock);
	pthread_cond_destroy(&f->retired_cond);
	free(f->retired);
}

/* Registers served closures as GC roots, in the directory named by our
 * pid (so: after detaching). */
static void start_gcroots(struct bfs *f, const char *opt)
{
	char *dir = NULL;
	if (!opt)
		dir = gcroots_default(&f->st);
	else if (strcmp(opt, "none"))
		dir = xstrdup(opt);
	errint_t e;
	if (dir && (e = gcroots_open(&f->gcroots, dir)) < 0)
		log_msg("GC roots in %s: %s; served closures are not protected from "
			"garbage collection",
			dir, strerror(-e));
	free(dir);
}

struct sigctx {
	sigset_t set;
	struct bfs *fs;
	bool foreground;
};

static void *signal_thread(void *arg)
{
	struct sigctx *c = arg;
	int sig;
	while (sigwait(&c->set, &sig) == 0) {
		if (sig == SIGHUP) {
			reload_run(c->fs, NULL);
			continue;
		}
		if (c->foreground)
			log_msg("%s: unmounting %s", strsignal(sig), c->fs->mountpoint);
		service_notify("STOPPING=1");
		errint_t e = unmount_detach(c->fs->mountpoint, c->fs->mnt_id);
		if (e == -EBUSY)
			log_msg("not unmounting %s: another mount covers it", c->fs->mountpoint);
		else if (e < 0 && e != -ENOENT)
			log_msg("unmounting %s: %s", c->fs->mountpoint, strerror(-e));
	}
	return NULL;
}

/* After starting, where messages go. */
struct logplan {
	const char *file;
	bool syslog;
};

/* Decided before detaching, so that a problem reaches the user. */
static int plan_logging(const struct options *o, struct logplan *p)
{
	p->file = o->log;
	p->syslog = !o->log && log_syslog_available();
	if (o->log) {
		int fd = open(o->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
		if (fd < 0) {
			fprintf(stderr, "bundlefs: --log %s: %s\n", o->log, strerror(errno));
			return -1;
		}
		close(fd);
	} else if (!o->foreground && !p->syslog) {
		fprintf(stderr, "bundlefs: no syslog on this machine (/dev/log): messages of the "
				"background daemon are lost; give --log FILE to keep them\n");
	}
	return 0;
}

struct started {
	struct logplan plan;
	bool foreground;
};

/* The kernel's INIT has been answered: the mount serves. */
static void on_serving(void *ctx)
{
	struct started *s = ctx;
	if (!s->foreground) {
		if (s->plan.file)
			log_to_file(s->plan.file);
		else if (s->plan.syslog)
			log_to_syslog();
		else
			log_to_nothing();
		/* Let go of the terminal (or the pipe) the command was run on. */
		service_drop_stdio();
	}
	service_ready();
}

/* Refuses a mount point already served by bundlefs: a second mount would
 * cover the first, which would then unmount the second. */
static int check_mountpoint(const char *mnt)
{
	struct mountent m;
	if (mounts_at(mnt, &m) != 1 || !mounts_is_bundlefs(&m))
		return 0;
	struct sockaddr_un sun;
	socklen_t len = mounts_control_addr(m.major, m.minor, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = fd >= 0 && connect(fd, (struct sockaddr *)&sun, len) == 0;
	if (fd >= 0)
		close(fd);
	if (live)
		fprintf(stderr,
			"bundlefs: %s: already a bundlefs mount; `bundlectl status %s` "
			"shows it, `bundlectl reload %s` changes what it serves\n",
			mnt, mnt, mnt);
	else
		fprintf(stderr,
			"bundlefs: %s: a bundlefs mount whose daemon is gone is there; "
			"remove it with `fusermount3 -u -z %s`\n",
			mnt, mnt);
	return -1;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct bfs fs = {0};
	store_init(&fs.st);
	int rc = options_parse(argc, argv, &o, &fs.st);
	if (rc >= 0)
		goto out_args;

	/* Checked files are reopened through /proc/self/fd, and mounts are
	 * found in /proc/self/mountinfo. */
	rc = 1;
	if (access("/proc/self/fd", F_OK) < 0 || access("/proc/self/mountinfo", R_OK) < 0) {
		fprintf(stderr,
			"bundlefs: /proc is not mounted: bundlefs needs it to open store files "
			"safely (/proc/self/fd) and to watch its mount (/proc/self/mountinfo)\n");
		goto out_args;
	}
	fs.spec_path = mounts_abspath(o.spec);
	struct spec sp;
	struct diags d = {0};
	rc = 2;
	if (spec_load(&sp, fs.spec_path, &fs.st, &d) < 0) {
		diag_print(&d, stderr, NULL);
		diag_clear(&d);
		goto out_args;
	}
	rc = 1;
	char *lexical = mounts_abspath(o.mountpoint);
	int busy = check_mountpoint(lexical);
	free(lexical);
	char mnt[PATH_MAX];
	struct stat st;
	if (busy < 0) {
		spec_free(&sp);
		goto out_args;
	}
	if (!realpath(o.mountpoint, mnt) || stat(mnt, &st) < 0) {
		fprintf(stderr, "bundlefs: mountpoint %s: %s\n", o.mountpoint, strerror(errno));
		spec_free(&sp);
		goto out_args;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "bundlefs: mountpoint %s: not a directory\n", o.mountpoint);
		spec_free(&sp);
		goto out_args;
	}
	fs.mountpoint = mnt;
	struct started started = {.foreground = o.foreground};
	if (plan_logging(&o, &started.plan) < 0) {
		spec_free(&sp);
		goto out_args;
	}
	errint_t e = bfs_init(&fs, &o, &sp);
	if (e < 0) {
		fprintf(stderr, "bundlefs: store %s: %s\n", fs.st.real, strerror(-e));
		spec_free(&sp);
		goto out_args;
	}

	/* The daemon, not libfuse, owns these signals: they detach the mount
	 * lazily instead of tearing the session down under open files, and
	 * SIGHUP reloads. Blocked before any thread starts. */
	struct sigctx sc = {.fs = &fs, .foreground = o.foreground};
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* In the background, the command waits for the mount to serve. */
	if (!o.foreground && (e = service_detach()) < 0) {
		fprintf(stderr, "bundlefs: fork: %s\n", strerror(-e));
		goto out_fs;
	}

	struct buf opts = {0};
	buf_adds(&opts, o.mount_rw ? "rw" : "ro");
	buf_adds(&opts, ",nosuid,nodev,default_permissions,fsname=bundlefs,subtype=bundlefs");
	if (geteuid() == 0)
		buf_adds(&opts, ",allow_other");
	if (o.fuse_opts.len)
		buf_adds(&opts, o.fuse_opts.data);
	char *fargv[] = {argv[0], "-o", opts.data, o.debug ? "-d" : NULL, NULL};
	struct fuse_args fargs = FUSE_ARGS_INIT(o.debug ? 4 : 3, fargv);

	struct fuse_session *session = fuse_session_new(&fargs, &bfs_ops, sizeof(bfs_ops), &fs);
	if (!session)
		goto out_opts;
	fs.session = session;
	if (fuse_session_mount(session, mnt) != 0) {
		fprintf(stderr, "bundlefs: cannot mount %s\n", mnt);
		goto out_session;
	}
	struct mountent me;
	if (mounts_at(mnt, &me) != 1 || !mounts_is_bundlefs(&me)) {
		fprintf(stderr, "bundlefs: %s: mounted, but not found in /proc/self/mountinfo\n",
			mnt);
		goto out_unmount;
	}
	fs.mnt_id = me.id;
	fs.dev_major = me.major;
	fs.dev_minor = me.minor;
	/* No file handles: open_by_handle_at must not reach nodes by id. The
	 * INIT reply also tells us when the mount serves. */
	fs.devio.no_export = true;
	fs.devio.on_init = on_serving;
	fs.devio.on_init_ctx = &started;
	if ((e = devio_attach(session, &fs.devio)) < 0) {
		fprintf(stderr, "bundlefs: %s: %s\n", mnt, strerror(-e));
		goto out_unmount;
	}
	if ((e = watchdog_start(mnt, fs.mnt_id)) < 0)
		log_msg("no watchdog (%s): if the daemon dies, unmount with fusermount3 -u -z",
			strerror(-e));
	start_gcroots(&fs, o.gcroots);
	if ((e = control_start(&fs)) < 0)
		log_msg("no control socket (%s): bundlectl status and reload will not reach "
			"this mount",
			strerror(-e));
	if ((e = reload_start(&fs)) < 0)
		log_msg("retired bundle versions will stay cached (%s)", strerror(-e));
	if (o.watch && (e = reload_watch(&fs)) < 0)
		log_msg("cannot watch %s (%s): reload with SIGHUP", fs.spec_path, strerror(-e));

	pthread_t sigthr;
	pthread_create(&sigthr, NULL, signal_thread, &sc);
	pthread_detach(sigthr);

	if (o.single) {
		rc = fuse_session_loop(session);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(cfg, 1);
		fuse_loop_cfg_set_max_threads(cfg, o.threads);
		rc = fuse_session_loop_mt(session, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	rc = rc == 0 ? 0 : 1;
	service_notify("STOPPING=1");
out_unmount:
	fuse_session_unmount(session);
out_session:
	fuse_session_destroy(session);
out_opts:
	fuse_opt_free_args(&fargs);
	buf_free(&opts);
out_fs:
	service_failed(rc ? rc : 1);
	bfs_fini(&fs);
out_args:
	free(fs.spec_path);
	store_free(&fs.st);
	options_free(&o);
	return rc;
}
