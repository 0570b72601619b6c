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
#include "backing.h"
#include "bfs.h"
#include "gcroots.h"
#include "watchdog.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
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

static struct bfs fs;
static struct fuse_session *session;

void bfs_log(struct bfs *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (f->foreground) {
		char line[2048];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "bundlefs: %s\n", line);
	} else {
		vsyslog(LOG_ERR, fmt, ap);
	}
	va_end(ap);
}

struct args {
	const char *mountpoint, *spec;
	const char *gcroots; /* NULL: the default; "none": none */
	struct buf fuse_opts;
	bool debug, single;
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
static int parse_args(int argc, char **argv, struct args *a)
{
	a->threads = 8;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(usage_text, stdout);
			fputs(store_options_help, stdout);
			fputs(usage_tail, stdout);
			return 0;
		} else if (!strcmp(s, "-V") || !strcmp(s, "--version")) {
			printf("bundlefs %s (libfuse %s)\n", BUNDLEFS_VERSION, fuse_pkgversion());
			return 0;
		} else if (!strcmp(s, "-f") || !strcmp(s, "--foreground")) {
			fs.foreground = true;
		} else if (!strcmp(s, "-d") || !strcmp(s, "--debug")) {
			a->debug = fs.foreground = true;
		} else if (!strcmp(s, "-s")) {
			a->single = true;
		} else if (!strncmp(s, "-o", 2)) {
			const char *v = s[2] ? s + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v)
				return usage_error("%s needs a value", "-o");
			buf_addc(&a->fuse_opts, ',');
			buf_adds(&a->fuse_opts, v);
		} else if (!strcmp(s, "--threads") || !strncmp(s, "--threads=", 10)) {
			const char *v = s[9] == '=' ? s + 10 : (i + 1 < argc ? argv[++i] : NULL);
			char *end;
			long n = v ? strtol(v, &end, 10) : 0;
			if (!v || *end || n < 1 || n > 1024)
				return usage_error("--threads needs a number from 1 to 1024%s", "");
			a->threads = (unsigned)n;
		} else if (!strcmp(s, "--gcroots") || !strncmp(s, "--gcroots=", 10)) {
			a->gcroots = s[9] == '=' ? s + 10 : (i + 1 < argc ? argv[++i] : NULL);
			if (!a->gcroots || !*a->gcroots)
				return usage_error("--gcroots needs a directory or none%s", "");
		} else if (s[0] == '-' && s[1]) {
			char *err = NULL;
			int r = store_parse_arg(&fs.st, argc, argv, &i, &err);
			if (r == 0)
				return usage_error("unknown option %s", s);
			if (r < 0) {
				int rc = usage_error("%s", err);
				free(err);
				return rc;
			}
			i--;
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
	if (store_finish(&fs.st, &err) < 0) {
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
static void detach(void)
{
	if (geteuid() == 0) {
		if (umount2(fs.mountpoint, MNT_DETACH) == 0 || errno != EPERM)
			return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", fs.mountpoint, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;
	while (sigwait(set, &sig) == 0) {
		if (fs.foreground)
			bfs_log(&fs, "%s: unmounting %s", strsignal(sig), fs.mountpoint);
		detach();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	store_init(&fs.st);
	int rc = parse_args(argc, argv, &a);
	if (rc >= 0) {
		store_free(&fs.st);
		buf_free(&a.fuse_opts);
		return rc;
	}

	struct diags d = {0};
	if (spec_load(&fs.spec, a.spec, &fs.st, &d) < 0) {
		diag_print(&d, stderr, NULL);
		diag_clear(&d);
		store_free(&fs.st);
		buf_free(&a.fuse_opts);
		return 2;
	}
	char mnt[PATH_MAX];
	struct stat st;
	if (!realpath(a.mountpoint, mnt) || stat(mnt, &st) < 0) {
		fprintf(stderr, "bundlefs: mountpoint %s: %s\n", a.mountpoint, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "bundlefs: mountpoint %s: not a directory\n", a.mountpoint);
		return 1;
	}
	fs.mountpoint = mnt;
	int e = backing_init(fs.st.real);
	if (e < 0) {
		fprintf(stderr, "bundlefs: store %s: %s\n", fs.st.real, strerror(-e));
		return 1;
	}

	clock_gettime(CLOCK_REALTIME, &fs.started);
	fs.uid = geteuid();
	fs.gid = getegid();
	fs.resolver = resolver_new(&fs.st);
	bundles_init(&fs);
	nodes_init(&fs.nodes);
	ll_caches_init(&fs);
	nodes_root(&fs.nodes, &(struct nattr){.mode = S_IFDIR | 0755,
					      .nlink = 2 + (uint32_t)fs.spec.n,
					      .uid = fs.uid,
					      .gid = fs.gid,
					      .size = 4096,
					      .blksize = 4096,
					      .atime = fs.started.tv_sec,
					      .mtime = fs.started.tv_sec,
					      .ctime = fs.started.tv_sec});

	/* The daemon, not libfuse, owns these signals: they detach the mount
	 * lazily instead of tearing the session down under open files. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct buf opts = {0};
	buf_adds(&opts, "ro,nosuid,nodev,default_permissions,fsname=bundlefs,subtype=bundlefs");
	if (geteuid() == 0)
		buf_adds(&opts, ",allow_other");
	if (a.fuse_opts.len)
		buf_adds(&opts, a.fuse_opts.data);
	/* Opens can skip the daemon only while the kernel itself refuses
	 * writes; with a forced rw mount OPEN must stay to answer EROFS. */
	fs.zero_open = !has_option(a.fuse_opts.data, "rw");
	char *fargv[] = {argv[0], "-o", opts.data, a.debug ? "-d" : NULL, NULL};
	struct fuse_args fargs = FUSE_ARGS_INIT(a.debug ? 4 : 3, fargv);

	rc = 1;
	session = fuse_session_new(&fargs, &bfs_ops, sizeof(bfs_ops), &fs);
	if (!session)
		goto out;
	if (fuse_session_mount(session, mnt) != 0) {
		fprintf(stderr, "bundlefs: cannot mount %s\n", mnt);
		goto out_session;
	}
	if (!fs.foreground)
		openlog("bundlefs", LOG_PID, LOG_DAEMON);
	if (fuse_daemonize(fs.foreground) != 0)
		goto out_unmount;

	/* After daemonizing: the watchdog watches this process, and the
	 * roots directory is named by our pid. */
	if ((e = watchdog_start(mnt)) < 0)
		bfs_log(&fs, "no watchdog (%s): if the daemon dies, unmount with fusermount3 -u -z",
			strerror(-e));

	char *gcdir = NULL;
	if (!a.gcroots)
		gcdir = gcroots_default(&fs.st);
	else if (strcmp(a.gcroots, "none"))
		gcdir = xstrdup(a.gcroots);
	if (gcdir && (e = gcroots_init(gcdir)) < 0) {
		bfs_log(&fs,
			"GC roots in %s: %s; served closures are not protected from "
			"garbage collection",
			gcdir, strerror(-e));
		free(gcdir);
		gcdir = NULL;
	}
	fs.gcroots = gcdir;

	pthread_t sigthr;
	pthread_create(&sigthr, NULL, signal_thread, &sigs);
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
	gcroots_fini();
	free(gcdir);
out_unmount:
	fuse_session_unmount(session);
out_session:
	fuse_session_destroy(session);
out:
	fuse_opt_free_args(&fargs);
	ll_caches_free(&fs);
	nodes_destroy(&fs.nodes);
	bundles_fini(&fs);
	resolver_free(fs.resolver);
	backing_fini();
	spec_free(&fs.spec);
	store_free(&fs.st);
	buf_free(&opts);
	buf_free(&a.fuse_opts);
	return rc;
}
