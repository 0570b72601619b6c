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
 * SIGHUP reloads the spec.
 *
 * The daemon's supervisor is a fork of it (supervisor.h); the same binary
 * is also a supervisor started again (`--supervisor`), the daemon's
 * successor when it dies (`--successor`), and the new daemon of a live
 * upgrade (`--takeover MOUNTPOINT`): see daemon.h. */
#include "control.h"
#include "ctlsock.h"
#include "daemon.h"
#include "log.h"
#include "mounts.h"
#include "overlay.h"
#include "service.h"
#include "state.h"
#include "supervisor.h"
#include "takeover.h"
#include "watchdog.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <unistd.h>

/* Registers served closures as GC roots, in a directory of this mount's
 * own. */
static void start_gcroots(struct bfs *f, const char *opt)
{
	char *dir = NULL;
	if (!opt)
		dir = gcroots_default(&f->st);
	else if (strcmp(opt, "none"))
		dir = xstrdup(opt);
	errint_t e;
	if (dir && (e = gcroots_open(&f->gcroots, dir)) < 0)
		log_warning("GC roots in %s: %s; served closures are not protected from "
			    "garbage collection",
			    dir, strerror(-e));
	else if (dir)
		log_debug("GC roots of served closures in %s", dir);
	free(dir);
}

/* The kernel's INIT has been answered: the mount serves. */
static void on_serving(void *ctx)
{
	struct daemon *d = ctx;
	daemon_mark(d, "INIT");
	daemon_detach_logging(d);
	char *status = control_status_line(&d->fs, NULL);
	size_t n = bundles_count(d->fs.bundles);
	log_notice("ready: %s serves %zu bundle%s (started in %llu ms; passthrough %s)",
		   d->fs.mountpoint, n, n == 1 ? "" : "s", daemon_uptime_ms(d),
		   d->fs.pt ? "on" : "off");
	service_ready(status);
	free(status);
	daemon_log_marks(d);
}

/* Refuses a mount point already served by bundlefs: a second mount would
 * cover the first, which would then unmount the second. */
static int check_mountpoint(const char *mnt)
{
	struct mountent m;
	if (mounts_at(mnt, &m) != 1 || !mounts_is_bundlefs(&m))
		return 0;
	char *why;
	int fd = ctlsock_connect(&m, CTLSOCK_TIMEOUT_MS, &why);
	if (fd >= 0) {
		close(fd);
		log_err("%s: already a bundlefs mount; `bundlectl status %s` shows it, "
			"`bundlectl reload %s` changes what it serves, `bundlefs --takeover %s` "
			"upgrades its daemon",
			mnt, mnt, mnt, mnt);
	} else if (fd == -EPERM) {
		log_err("%s: already a bundlefs mount (%s)", mnt, why);
	} else {
		log_err("%s: a bundlefs mount whose daemon is gone is there; remove it with "
			"`fusermount3 -u -z %s`",
			mnt, mnt);
	}
	free(why);
	return -1;
}

/* The mount point, absolute and checked, in `out`. Returns 0 or -1. */
static int find_mountpoint(const char *given, char out[PATH_MAX])
{
	char *lexical = mounts_abspath(given);
	int busy = check_mountpoint(lexical);
	free(lexical);
	if (busy < 0)
		return -1;
	struct stat st;
	if (!realpath(given, out) || stat(out, &st) < 0) {
		log_err("mountpoint %s: %s", given, strerror(errno));
		return -1;
	}
	/* And as the kernel will take it: through a symlink to a bundlefs
	 * mount, the new mount would cover that one. */
	if (check_mountpoint(out) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		log_err("mountpoint %s: not a directory", given);
		return -1;
	}
	return 0;
}

/* What a successor needs, written once the mount is there; and the
 * supervisor that starts one. Without them the mount works, but goes
 * with the daemon. */
static void start_failover(struct daemon *d, int argc, char **argv, const char *cwd, int wfd)
{
	struct bfs *fs = &d->fs;
	errint_t e = state_create(&fs->state);
	if (e < 0) {
		log_warning("no failover (state: %s): if the daemon dies, the mount goes",
			    strerror(-e));
		if (d->link >= 0)
			close(d->link); /* (the supervisor forked for it leaves) */
		d->link = -1;
		return;
	}
	if (d->o.dirs_from_env) {
		/* The defaults the environment gave are written out: a
		 * takeover may be run from another environment. */
		char **args = xcalloc((size_t)argc + 5, sizeof(*args));
		memcpy(args, argv, (size_t)argc * sizeof(*args));
		args[argc] = "--state-dir";
		args[argc + 1] = (char *)d->o.state_dir;
		args[argc + 2] = "--run-dir";
		args[argc + 3] = (char *)d->o.run_dir;
		state_set_args(fs->state, argc + 4, args, cwd);
		free(args);
	} else {
		state_set_args(fs->state, argc, argv, cwd);
	}
	state_set_mount(fs->state, &fs->mnt,
			&(struct mount_paths){fs->mountpoint, fs->spec_path, fs->gcroots.dir});
	state_save_bundles(fs->state, &fs->env, fs->bundles, fs->generation,
			   (double)fs->loaded.tv_sec + fs->loaded.tv_nsec / 1e9);
	struct nodes_journal j;
	state_journal(fs->state, &j);
	nodes_set_journal(&fs->nodes, &j);
	fs->devio.state = fs->state;

	int *fd = d->sfds.fd;
	fd[SUPER_IX(SUPER_FD_FUSE)] = fuse_session_fd(d->se);
	fd[SUPER_IX(SUPER_FD_STATE)] = state_fd(fs->state);
	fd[SUPER_IX(SUPER_FD_GCROOTS)] = fs->gcroots.fd;
	fd[SUPER_IX(SUPER_FD_WATCH)] = wfd;
	fd[SUPER_IX(SUPER_FD_EXE)] = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int pid;
	if (fd[SUPER_IX(SUPER_FD_EXE)] < 0)
		pid = -errno;
	else if (d->link >= 0) /* forked at start (supervisor.h) */
		pid = (e = supervisor_hand(d->link, &d->sfds)) < 0 ? e : d->super_forked;
	else
		pid = supervisor_start(&d->sfds, &d->link);
	if (pid < 0)
		log_warning("no supervisor (%s): if the daemon dies, the mount goes",
			    strerror(-pid));
	else
		log_debug("supervisor started (pid %d)", pid);
	/* (bundlectl status names it once it says it runs.) */
}

/* Mounts and serves. Returns the exit status. */
static int start(struct daemon *d, int argc, char **argv, const char *cwd)
{
	struct bfs *fs = &d->fs;
	const struct options *o = &d->o;
	/* Checked files are reopened through /proc/self/fd, and mounts are
	 * found in /proc/self/mountinfo. */
	if (access("/proc/self/fd", F_OK) < 0 || access("/proc/self/mountinfo", R_OK) < 0) {
		log_err("/proc is not mounted: bundlefs needs it to open store files safely "
			"(/proc/self/fd) and to watch its mount (/proc/self/mountinfo)");
		return 1;
	}
	fs->spec_path = mounts_abspath(o->spec);
	struct spec sp;
	struct diags dg = {0};
	if (spec_load(&sp, fs->spec_path, &fs->st, &dg) < 0) {
		char prefix[32];
		log_stderr_prefix(LOG_ERR, prefix, sizeof(prefix));
		diag_print(&dg, stderr, prefix);
		diag_clear(&dg);
		return 2;
	}
	daemon_mark(d, "spec");
	static char mnt[PATH_MAX];
	if (find_mountpoint(o->mountpoint, mnt) < 0 || daemon_plan_logging(d) < 0) {
		spec_free(&sp);
		return 1;
	}
	fs->mountpoint = mnt;
	if (daemon_plan_fds(d) < 0) {
		spec_free(&sp);
		return 1;
	}
	errint_t e = daemon_init(d, &sp);
	if (e < 0) {
		log_err("store %s: %s", fs->st.real, strerror(-e));
		spec_free(&sp);
		return 1;
	}
	daemon_mark(d, "init");
	/* Blocked before any thread starts. */
	daemon_block_signals();
	/* In the background, the command waits for the mount to serve. */
	if (!o->foreground && (e = service_detach()) < 0) {
		log_err("fork: %s", strerror(-e));
		return 1;
	}
	daemon_mark(d, "detach");
	/* The supervisor, forked now (supervisor.h); given the descriptors
	 * once they are there. */
	int pid = supervisor_fork(argv, mnt, &d->link);
	if (pid < 0)
		log_warning("no supervisor (%s): if the daemon dies, the mount goes",
			    strerror(-pid));
	d->super_forked = pid;
	daemon_mark(d, "supervisor");
	if (daemon_session(d) < 0)
		return 1;
	if (daemon_mount(d, mnt) < 0)
		return 1;
	daemon_mark(d, "mount");
	int rc = 1;
	struct mountent me;
	if (mounts_at(mnt, &me) != 1 || !mounts_is_bundlefs(&me)) {
		log_err("%s: mounted, but not found in /proc/self/mountinfo", mnt);
		goto out;
	}
	fs->mnt = (struct mountid){me.id, me.major, me.minor, mounts_unique_id(mnt)};
	/* (The control socket tells whether the connection still stands.) */
	d->sfds.fd[SUPER_IX(SUPER_FD_FUSE)] = fuse_session_fd(d->se);
	log_notice("mounted %s (spec %s, pid %d, bundlefs %s, libfuse %s)", mnt, fs->spec_path,
		   (int)getpid(), BUNDLEFS_VERSION, fuse_pkgversion());
	/* No file handles: open_by_handle_at must not reach nodes by id. The
	 * INIT reply also tells us when the mount serves. */
	fs->devio.no_export = true;
	fs->devio.on_init = on_serving;
	fs->devio.on_init_ctx = d;
	if ((e = devio_attach(d->se, &fs->devio, fuse_session_fd(d->se))) < 0) {
		log_err("%s: %s", mnt, strerror(-e));
		goto out;
	}
	daemon_mark(d, "attach");
	int wfd = -1;
	char *area = overlay_area(fs);
	e = watchdog_start(mnt, &fs->mnt, area, &wfd);
	free(area);
	if (e < 0)
		log_warning("no watchdog (%s): if the daemon dies, unmount with fusermount3 -u -z",
			    strerror(-e));
	daemon_mark(d, "watchdog");
	start_gcroots(fs, o->gcroots);
	char *why = NULL;
	int cfd = control_listen(fs, &why);
	if (cfd < 0)
		log_warning("no control socket (%s): bundlectl status and reload will not reach "
			    "this mount",
			    why);
	free(why);
	d->sfds.fd[SUPER_IX(SUPER_FD_CONTROL)] = cfd;
	daemon_mark(d, "control");
	start_failover(d, argc, argv, cwd, wfd);
	daemon_mark(d, "failover");
	daemon_services(d);
	daemon_mark(d, "services");
	rc = daemon_serve(d, NULL);
	service_notify("STOPPING=1");
out:
	daemon_unmount(d, mnt);
	return rc;
}

int main(int argc, char **argv)
{
	/* (Their other argument names the mount, for ps.) */
	if (argc >= 2 && !strcmp(argv[1], "--supervisor"))
		supervisor_main();
	if (argc >= 2 && !strcmp(argv[1], "--successor"))
		return takeover_successor();
	if (argc >= 2 && !strcmp(argv[1], "--takeover")) {
		if (argc != 3) {
			fprintf(stderr, "usage: bundlefs --takeover MOUNTPOINT\n");
			return 2;
		}
		return takeover_upgrade(argv[2]);
	}

	struct daemon d;
	daemon_prepare(&d);
	int rc = options_parse(argc, argv, &d.o, &d.fs.st);
	if (rc >= 0) {
		store_free(&d.fs.st);
		options_free(&d.o);
		return rc;
	}
	log_configure(d.o.foreground, d.o.verbose);
	char *cwd = getcwd(NULL, 0);
	rc = start(&d, argc, argv, cwd ? cwd : "/");
	free(cwd);
	if (d.fs.mnt.id)
		log_at(rc ? LOG_ERR : LOG_NOTICE, "exiting (status %d)", rc);
	service_failed(rc ? rc : 1);
	daemon_fini(&d);
	return rc;
}
