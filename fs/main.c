/* bundlefs: mounts the OCI runtime bundles of a spec as a read-only FUSE
 * filesystem, each bundle's rootfs a view of its Nix closure served
 * straight from the store, so that `runc run -b MOUNT/NAME` starts without
 * copying anything.
 *
 * This file parses arguments, reads the spec (nothing else: bundles are
 * resolved on first access), mounts, daemonizes and runs the loop. On
 * SIGTERM, SIGINT or SIGHUP the mount is detached lazily; the loop ends
 * when the kernel drops the last reference, so containers that still hold
 * files keep working until they let go. */
#include "bfs.h"
#include "cli.h"
#include "log.h"
#include "tree.h"
#include "watchdog.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: bundlefs [OPTIONS] MOUNTPOINT SPEC\n"
    "\n"
    "Mounts every bundle of SPEC as MOUNTPOINT/NAME/{config.json,rootfs/}, an OCI\n"
    "runtime bundle whose rootfs is the bundle's Nix closure, served read-only\n"
    "from the store without copying. Then: runc run -b MOUNTPOINT/NAME ID\n"
    "\n"
    "Options:\n"
    "  -f, --foreground    stay in the foreground (log to stderr, not syslog)\n"
    "  -d, --debug         log every FUSE request (implies -f)\n"
    "  -s                  single-threaded\n"
    "  -o OPT[,OPT...]     extra FUSE mount options\n"
    "  --threads N         at most N worker threads (default 8)\n"
    "  --gcroots DIR|none  register served closures as Nix GC roots below DIR\n"
    "                      (default: the gcroots directory beside Nix's database,\n"
    "                      when it exists); none: register nothing\n"
    "  --no-openat2        resolve store paths one component at a time even where\n"
    "                      the kernel has openat2 (the fallback, for testing it)\n"
    "  -h, --help          this text\n"
    "  -V, --version       the version\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "The mount is always ro,nosuid,nodev; as root it is also allow_other with\n"
    "default_permissions, so containers running as any user can read it.\n"
    "Unmount with `fusermount3 -u MOUNTPOINT`, `umount MOUNTPOINT`, or SIGTERM.\n"
    "Exit status: 0 after a clean unmount, 1 on a failure, 2 for a bad spec\n"
    "or bad usage.\n";

struct args {
	const char *mountpoint, *spec;
	const char *gcroots; /* NULL: the default; "none": none */
	struct buf fuse_opts;
	bool foreground, debug, single, no_openat2;
	unsigned threads;
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bundlefs: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry `bundlefs --help'.\n");
	return 2;
}

/* Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, struct args *a, struct store *st)
{
	a->threads = 8;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v;
		char *err = NULL;
		int r;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(usage_text, stdout);
			fputs(cli_store_help, stdout);
			fputs(usage_tail, stdout);
			return 0;
		} else if (!strcmp(s, "-V") || !strcmp(s, "--version")) {
			printf("bundlefs %s (libfuse %s)\n", BUNDLEFS_VERSION, fuse_pkgversion());
			return 0;
		} else if (!strcmp(s, "-f") || !strcmp(s, "--foreground")) {
			a->foreground = true;
		} else if (!strcmp(s, "-d") || !strcmp(s, "--debug")) {
			a->debug = a->foreground = true;
		} else if (!strcmp(s, "-s")) {
			a->single = true;
		} else if (!strcmp(s, "--no-openat2")) {
			a->no_openat2 = true;
		} else if (!strncmp(s, "-o", 2)) {
			v = s[2] ? s + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v)
				return usage_error("%s needs a value", "-o");
			buf_addc(&a->fuse_opts, ',');
			buf_adds(&a->fuse_opts, v);
		} else if (cli_opt(argc, argv, &i, "--threads", &v)) {
			char *end;
			long n = v ? strtol(v, &end, 10) : 0;
			if (!v || *end || n < 1 || n > 1024)
				return usage_error("--threads needs a number from 1 to 1024%s", "");
			a->threads = (unsigned)n;
		} else if (cli_opt(argc, argv, &i, "--gcroots", &a->gcroots)) {
			if (!a->gcroots || !*a->gcroots)
				return usage_error("--gcroots needs a directory or none%s", "");
		} else if ((r = cli_store_arg(st, argc, argv, &i, &err)) != 0) {
			if (r < 0) {
				int rc = usage_error("%s", err);
				free(err);
				return rc;
			}
		} else if (s[0] == '-' && s[1]) {
			return usage_error("unknown option %s", s);
		} else if (!a->mountpoint) {
			a->mountpoint = s;
		} else if (!a->spec) {
			a->spec = s;
		} else {
			return usage_error("unexpected argument %s", s);
		}
	}
	if (!a->mountpoint || !a->spec)
		return usage_error("%s", "need a MOUNTPOINT and a SPEC");
	char *err = NULL;
	if (store_finish(st, &err) < 0) {
		int rc = usage_error("%s", err);
		free(err);
		return rc;
	}
	return -1;
}

/* Is `opt` one of the comma-separated options in `list`? */
static bool has_option(const char *list, const char *opt)
{
	size_t n = strlen(opt);
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && !strncmp(p, opt, n))
			return true;
		p = e ? e + 1 : p + len;
	}
	return false;
}

/* Detaches the mount from the tree; the kernel ends the session once
 * nothing uses it any more. */
static void detach(const char *mountpoint)
{
	if (geteuid() == 0) {
		if (umount2(mountpoint, MNT_DETACH) == 0 || errno != EPERM)
			return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", mountpoint, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

struct sigctx {
	sigset_t set;
	const char *mountpoint;
	bool foreground;
};

static void *signal_thread(void *arg)
{
	struct sigctx *c = arg;
	int sig;
	while (sigwait(&c->set, &sig) == 0) {
		if (c->foreground)
			log_msg("%s: unmounting %s", strsignal(sig), c->mountpoint);
		detach(c->mountpoint);
	}
	return NULL;
}

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

/* Bounds x to [lo, hi]. */
static unsigned clamp(unsigned x, unsigned lo, unsigned hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

/* Sets up everything the handlers use. Returns 0 or -errno. */
static errint_t bfs_init(struct bfs *f, const struct args *a)
{
	errint_t e = store_open(&f->st);
	if (e < 0)
		return e;
	clock_gettime(CLOCK_REALTIME, &f->started);
	f->uid = geteuid();
	f->gid = getegid();
	backing_init(&f->backing, f->st.fd, a->no_openat2, reclaim, f);
	f->resolver = resolver_new(&f->st);
	gcroots_init(&f->gcroots);
	struct bundle_env env = {.st = &f->st, .resolver = f->resolver, .gcroots = &f->gcroots};
	f->bundles = bundles_new(&f->spec, &env);
	nodes_init(&f->nodes);
	/* The handle caches share what descriptors are left once each worker
	 * thread has its own device descriptor, and each request in flight
	 * two (a path and the file it reopens), and a few for the rest. */
	unsigned limit = raise_nofile();
	unsigned reserve = 3 * a->threads + 24;
	unsigned budget = limit > reserve + 12 ? limit - reserve : 12;
	tree_init(f, clamp(budget / 4, 2, 64));
	handles_init(f, clamp(budget / 2, 4, 64), clamp(budget / 4, 2, 64));
	/* Opens can skip the daemon only while the kernel itself refuses
	 * writes; with a forced rw mount OPEN must stay to answer EROFS. */
	f->zero_open = !has_option(a->fuse_opts.data, "rw");
	return 0;
}

static void bfs_fini(struct bfs *f)
{
	handles_fini(f);
	tree_fini(f);
	nodes_destroy(&f->nodes);
	bundles_free(f->bundles);
	gcroots_close(&f->gcroots);
	resolver_free(f->resolver);
}

/* Registers served closures as GC roots, in the directory named by our
 * pid (so: after daemonizing). */
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

int main(int argc, char **argv)
{
	struct args a = {0};
	struct bfs fs = {0};
	store_init(&fs.st);
	int rc = parse_args(argc, argv, &a, &fs.st);
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
	struct diags d = {0};
	rc = 2;
	if (spec_load(&fs.spec, a.spec, &fs.st, &d) < 0) {
		diag_print(&d, stderr, NULL);
		diag_clear(&d);
		goto out_args;
	}
	rc = 1;
	char mnt[PATH_MAX];
	struct stat st;
	if (!realpath(a.mountpoint, mnt) || stat(mnt, &st) < 0) {
		fprintf(stderr, "bundlefs: mountpoint %s: %s\n", a.mountpoint, strerror(errno));
		goto out_spec;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "bundlefs: mountpoint %s: not a directory\n", a.mountpoint);
		goto out_spec;
	}
	errint_t e = bfs_init(&fs, &a);
	if (e < 0) {
		fprintf(stderr, "bundlefs: store %s: %s\n", fs.st.real, strerror(-e));
		goto out_spec;
	}

	/* The daemon, not libfuse, owns these signals: they detach the mount
	 * lazily instead of tearing the session down under open files. */
	struct sigctx sc = {.mountpoint = mnt, .foreground = a.foreground};
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct buf opts = {0};
	buf_adds(&opts, "ro,nosuid,nodev,default_permissions,fsname=bundlefs,subtype=bundlefs");
	if (geteuid() == 0)
		buf_adds(&opts, ",allow_other");
	if (a.fuse_opts.len)
		buf_adds(&opts, a.fuse_opts.data);
	char *fargv[] = {argv[0], "-o", opts.data, a.debug ? "-d" : NULL, NULL};
	struct fuse_args fargs = FUSE_ARGS_INIT(a.debug ? 4 : 3, fargv);

	struct fuse_session *session = fuse_session_new(&fargs, &bfs_ops, sizeof(bfs_ops), &fs);
	if (!session)
		goto out_fs;
	if (fuse_session_mount(session, mnt) != 0) {
		fprintf(stderr, "bundlefs: cannot mount %s\n", mnt);
		goto out_session;
	}
	/* No file handles: open_by_handle_at must not reach nodes by id. */
	fs.devio.no_export = true;
	if ((e = devio_attach(session, &fs.devio)) < 0) {
		fprintf(stderr, "bundlefs: %s: %s\n", mnt, strerror(-e));
		goto out_unmount;
	}
	if (!a.foreground)
		log_to_syslog();
	if (fuse_daemonize(a.foreground) != 0)
		goto out_unmount;

	/* After daemonizing: the watchdog watches this process, and the
	 * roots directory is named by our pid. */
	if ((e = watchdog_start(mnt)) < 0)
		log_msg("no watchdog (%s): if the daemon dies, unmount with fusermount3 -u -z",
			strerror(-e));
	start_gcroots(&fs, a.gcroots);

	pthread_t sigthr;
	pthread_create(&sigthr, NULL, signal_thread, &sc);
	pthread_detach(sigthr);

	if (a.single) {
		rc = fuse_session_loop(session);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(cfg, 1);
		fuse_loop_cfg_set_max_threads(cfg, a.threads);
		rc = fuse_session_loop_mt(session, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	rc = rc == 0 ? 0 : 1;
out_unmount:
	fuse_session_unmount(session);
out_session:
	fuse_session_destroy(session);
out_fs:
	fuse_opt_free_args(&fargs);
	buf_free(&opts);
	bfs_fini(&fs);
out_spec:
	spec_free(&fs.spec);
out_args:
	store_free(&fs.st);
	buf_free(&a.fuse_opts);
	return rc;
}
