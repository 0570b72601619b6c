/* daemon: setting up, serving and ending a mount's daemon. */
#include "daemon.h"
#include "control.h"
#include "ctlsock.h"
#include "defer.h"
#include "fdbudget.h"
#include "log.h"
#include "loop.h"
#include "mounts.h"
#include "overlay.h"
#include "realise.h"
#include "reload.h"
#include "service.h"
#include "specwatch.h"
#include "state.h"
#include "subst.h"
#include "tree.h"
#include "watchdog.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
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
 * the limit; *hard says the hard one. */
static unsigned raise_nofile(unsigned *hard)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return *hard = 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	*hard = rl.rlim_max > 1u << 20 ? 1u << 20 : (unsigned)rl.rlim_max;
	return rl.rlim_cur > 1u << 20 ? 1u << 20 : (unsigned)rl.rlim_cur;
}

int daemon_plan_fds(struct daemon *d)
{
	unsigned hard, limit = raise_nofile(&hard);
	unsigned want = d->o.single ? 1 : d->o.threads;
	if (fdbudget_plan(limit, want, &d->fds) < 0) {
		log_err("the descriptor limit is %u (hard limit %u): too few to serve, bundlefs "
			"needs at least %u (raise it: ulimit -n, or LimitNOFILE= for a service)",
			limit, hard, fdbudget_min());
		return -1;
	}
	if (d->fds.threads < want)
		log_notice("the descriptor limit (%u) has room for %u worker thread%s, not %u "
			   "(%u has room for all)",
			   limit, d->fds.threads, d->fds.threads == 1 ? "" : "s", want,
			   fdbudget_min() + (want - 1) * FDBUDGET_PER_WORKER);
	return 0;
}

static void hold_bundle(struct bstate *b)
{
	bundle_get(b);
}

void daemon_prepare(struct daemon *d)
{
	*d = (struct daemon){.link = -1};
	d->fs.quit = eventfd(0, EFD_CLOEXEC);
	clock_gettime(CLOCK_MONOTONIC, &d->t0);
	pthread_mutex_init(&d->link_lock, NULL);
	for (int i = 0; i < SUPER_NFDS; i++)
		d->sfds.fd[i] = -1;
	d->fs.daemon = d;
	store_init(&d->fs.st);
}

errint_t daemon_init(struct daemon *d, struct spec *sp)
{
	struct bfs *f = &d->fs;
	const struct options *o = &d->o;
	if (!d->fds.limit && daemon_plan_fds(d) < 0)
		return -EMFILE;
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
				     .registry = bundle_registry_new(),
				     .uid = f->uid,
				     .gid = f->gid};
	if (sp) {
		f->bundles = bundles_new(sp, &f->env, NULL);
		f->generation = 1;
	}
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* A reload is not starved by a steady stream of lookups. */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->gen_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&f->reload_lock, NULL);
	pthread_cond_init(&f->retired_cond, NULL);
	pthread_mutex_init(&f->handover_lock, NULL);
	pthread_cond_init(&f->handover_cond, NULL);
	nodes_init(&f->nodes, &(struct nodes_owner){hold_bundle, bundle_put});
	/* The handle caches get what descriptors the workers and the
	 * control socket leave (daemon_plan_fds). */
	tree_init(f, d->fds.tree);
	handles_init(f, d->fds.files, d->fds.dirs);
	/* Opens can skip the daemon only while the kernel itself refuses
	 * writes; with a read-write mount OPEN must stay to answer EROFS. */
	f->zero_open = f->zero_opendir = !o->mount_rw;
	f->passthrough_ok = !o->no_passthrough;
	f->pt_files = o->pt_files;
	f->state_dir = o->state_dir;
	f->run_dir = o->run_dir;
	f->data = o->data;
	f->took_over = !sp;
	if ((e = overlays_start(f)) < 0)
		return e;
	/* Substitution needs Nix's own store, where nix-store writes, and
	 * its database, which says when a path written there is valid. */
	if (!o->no_substitute && !strcmp(f->st.real, f->st.dir) && f->st.db) {
		f->subst = subst_new();
		for (size_t i = 0; i < o->nsubstituters; i++) {
			char *err = NULL;
			if (subst_add_url(f->subst, o->substituters[i], &err) < 0)
				free(err); /* (checked by options_parse) */
		}
		resolver_set_subst(f->resolver, f->subst, true);
	}
	struct buf extra = {0};
	for (size_t i = 0; i < o->nsubstituters; i++)
		buf_addf(&extra, "%s%s", i ? " " : "", o->substituters[i]);
	buf_addc(&extra, 0);
	realiser_start(f, o->prefetch, extra.data, o->stall_timeout);
	f->deferrer = defer_new();
	log_debug("settings: %u threads, passthrough %s, substitution %s%s (prefetch %u, stall "
		  "timeout %u s), store %s (%s), state dir %s; %u descriptors: %u control clients "
		  "at once, handle caches %u/%u/%u",
		  d->fds.threads, o->no_passthrough ? "off" : "when offered",
		  f->subst ? "on" : "off", extra.len > 1 ? " with extra caches" : "", o->prefetch,
		  o->stall_timeout, f->st.dir, f->st.real, f->state_dir, d->fds.limit,
		  d->fds.clients, d->fds.tree, d->fds.files, d->fds.dirs);
	buf_free(&extra);
	d->inited = true;
	return 0;
}

void daemon_leaving(struct daemon *d, bool leaving)
{
	pthread_mutex_lock(&d->link_lock);
	d->leaving = leaving;
	pthread_mutex_unlock(&d->link_lock);
}

/* The service threads end before what they use is freed. */
static void stop_services(struct daemon *d)
{
	if (d->fs.quit >= 0) {
		uint64_t one = 1;
		if (write(d->fs.quit, &one, sizeof(one)) < 0) {
			/* (an eventfd write of 1 does not fail) */
		}
	}
	for (size_t i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	d->nthreads = 0;
}

void daemon_fini(struct daemon *d)
{
	struct bfs *f = &d->fs;
	daemon_leaving(d, true);
	stop_services(d);
	if (d->inited) {
		overlays_stop(f);
		realiser_stop(f);
		/* (No worker runs: no interrupt comes any more. Those that
		 * came are answered before the session goes.) */
		defer_free(f->deferrer);
		f->deferrer = NULL;
		reload_stop(f);
		if (f->session)
			fuse_session_destroy(f->session);
		handles_fini(f);
		passthrough_free(f->pt);
		tree_fini(f);
		nodes_destroy(&f->nodes);
		bundles_put(f->bundles);
		bundle_registry_free(f->env.registry);
		gcroots_close(&f->gcroots);
		resolver_free(f->resolver);
		subst_free(f->subst);
		f->subst = NULL;
		free(f->last_reload.problems);
		free(f->retired);
		pthread_rwlock_destroy(&f->gen_lock);
		pthread_mutex_destroy(&f->reload_lock);
		pthread_cond_destroy(&f->retired_cond);
		pthread_mutex_destroy(&f->handover_lock);
		pthread_cond_destroy(&f->handover_cond);
	}
	state_close(f->state);
	if (f->quit >= 0)
		close(f->quit);
	buf_free(&d->fuse_opts);
	free(f->spec_path);
	store_free(&f->st);
	options_free(&d->o);
}

int daemon_plan_logging(struct daemon *d)
{
	log_configure(d->o.foreground, d->o.verbose);
	if (d->o.foreground) {
		/* (Successors write the --log file: it is checked all the same.) */
		if (d->o.log) {
			int fd = open(d->o.log,
				      O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
			if (fd < 0) {
				log_err("--log %s: %s", d->o.log, strerror(errno));
				return -1;
			}
			close(fd);
		}
		return 0;
	}
	/* The background daemon's lines go where they will go from the
	 * start; until it serves, its command shows the problems too. */
	errint_t e;
	if (d->o.log) {
		if ((e = log_to_file(d->o.log)) < 0) {
			log_err("--log %s: %s", d->o.log, strerror(-e));
			return -1;
		}
	} else if (log_syslog_available()) {
		log_to_syslog();
	} else {
		log_warning("no syslog on this machine (/dev/log): messages of the background "
			    "daemon are lost; give --log FILE to keep them");
		log_to_nothing();
	}
	log_echo_stderr(true);
	return 0;
}

void daemon_detach_logging(struct daemon *d)
{
	if (d->o.foreground || d->stdio_dropped)
		return;
	log_echo_stderr(false);
	/* Let go of the terminal (or the pipe) the command was run on. */
	service_drop_stdio();
	d->stdio_dropped = true;
}

void daemon_mark(struct daemon *d, const char *what)
{
	if (d->nmarks >= sizeof(d->marks) / sizeof(d->marks[0]))
		return;
	d->marks[d->nmarks].what = what;
	clock_gettime(CLOCK_MONOTONIC, &d->marks[d->nmarks].at);
	d->nmarks++;
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

void daemon_log_marks(const struct daemon *d)
{
	if (!log_enabled(LOG_DEBUG) || !d->nmarks)
		return;
	struct buf b = {0};
	const struct timespec *prev = &d->t0;
	for (size_t i = 0; i < d->nmarks; i++) {
		buf_addf(&b, "%s%s %.2f", i ? ", " : "", d->marks[i].what,
			 ms_between(prev, &d->marks[i].at));
		prev = &d->marks[i].at;
	}
	buf_addc(&b, 0);
	log_debug("start (ms from main): %s; total %.2f", b.data, ms_between(&d->t0, prev));
	buf_free(&b);
}

unsigned long long daemon_uptime_ms(const struct daemon *d)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	long long ms =
	    (long long)(t.tv_sec - d->t0.tv_sec) * 1000 + (t.tv_nsec - d->t0.tv_nsec) / 1000000;
	return ms > 0 ? (unsigned long long)ms : 0;
}

/* libfuse's own messages (its errors; with -d, every request) are lines
 * of the daemon's log, at the priority libfuse gives them (its levels are
 * syslog's). */
__attribute__((format(printf, 2, 0))) static void fuse_log_line(enum fuse_log_level level,
								const char *fmt, va_list ap)
{
	log_vat((int)level, fmt, ap);
}

errint_t daemon_session(struct daemon *d)
{
	struct buf *b = &d->fuse_opts;
	buf_reset(b);
	buf_adds(b, d->o.mount_rw ? "rw" : "ro");
	buf_adds(b, ",nosuid,nodev,default_permissions,fsname=bundlefs,subtype=bundlefs");
	if (geteuid() == 0)
		buf_adds(b, ",allow_other");
	if (d->o.fuse_opts.len)
		buf_adds(b, d->o.fuse_opts.data);
	fuse_set_log_func(fuse_log_line);
	char *fargv[] = {"bundlefs", "-o", b->data, d->o.debug ? "-d" : NULL, NULL};
	struct fuse_args fargs = FUSE_ARGS_INIT(d->o.debug ? 4 : 3, fargv);
	d->se = fuse_session_new(&fargs, &bfs_ops, sizeof(bfs_ops), &d->fs);
	fuse_opt_free_args(&fargs);
	if (!d->se)
		return -EINVAL;
	d->fs.session = d->se;
	return 0;
}

/* Whether /etc/mtab needs a line for the mount: only where it is a file
 * of its own (it is a link to the kernel's table on any current system,
 * or absent). */
static bool mtab_kept(void)
{
	struct stat st;
	return lstat("/etc/mtab", &st) == 0 && !S_ISLNK(st.st_mode);
}

errint_t daemon_mount(struct daemon *d, const char *mnt)
{
	/* As root, with no -o option for libfuse and no mtab to keep, the
	 * mount is made here, and libfuse is given its descriptor
	 * (/dev/fd/N): libfuse's own mount (3.16 and later) runs `mount -f`
	 * after every mount it makes as root, to write /etc/mtab even where
	 * that is a link: a fork and an exec on the way to the first
	 * request. The options are the ones libfuse would give the kernel. */
	if (geteuid() != 0 || d->o.fuse_opts.len || mtab_kept()) {
		if (fuse_session_mount(d->se, mnt) == 0)
			return 0;
		log_err("cannot mount %s", mnt);
		return -EIO;
	}
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		errint_t e = -errno;
		log_err("/dev/fuse: %s", strerror(errno));
		return e;
	}
	char opts[128];
	snprintf(opts, sizeof(opts),
		 "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions,allow_other", fd,
		 (unsigned)geteuid(), (unsigned)getegid());
	unsigned long flags = MS_NOSUID | MS_NODEV | (d->o.mount_rw ? 0 : MS_RDONLY);
	if (mount("bundlefs", mnt, "fuse.bundlefs", flags, opts) < 0) {
		errint_t e = -errno;
		log_err("cannot mount %s: %s", mnt, strerror(errno));
		close(fd);
		return e;
	}
	char dev[32];
	snprintf(dev, sizeof(dev), "/dev/fd/%d", fd);
	if (fuse_session_mount(d->se, dev) != 0) {
		umount2(mnt, MNT_DETACH);
		close(fd);
		return -EIO;
	}
	d->self_mounted = true;
	return 0;
}

void daemon_unmount(struct daemon *d, const char *mnt)
{
	if (!d->self_mounted) {
		fuse_session_unmount(d->se);
		return;
	}
	/* (As libfuse does: a connection that ended has no mount left to
	 * take down; one that stands is detached, on the way out of a
	 * failed start.) */
	struct pollfd p = {.fd = fuse_session_fd(d->se), .events = 0};
	if (poll(&p, 1, 0) >= 0 && !(p.revents & (POLLERR | POLLNVAL)))
		umount2(mnt, MNT_DETACH);
}

/* ---- signals ---------------------------------------------------------------- */

int bfs_wait(const struct bfs *fs, int fd, short events, int ms)
{
	/* (poll ignores a negative descriptor.) */
	struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = fs->quit, .events = POLLIN}};
	int n;
	while ((n = poll(p, 2, ms)) < 0 && errno == EINTR)
		;
	return n < 0 || p[1].revents ? -1 : n == 0 ? 0 : p[0].revents;
}

/* The signals the signal thread handles (blocked in every thread). */
static void handled(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
}

void daemon_block_signals(void)
{
	sigset_t set;
	handled(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void on_signal(struct daemon *d, int sig)
{
	struct bfs *fs = &d->fs;
	if (sig == SIGHUP) {
		log_info("SIGHUP: reloading %s", fs->spec_path);
		reload_run(fs, NULL);
		return;
	}
	if (sig == SIGUSR1) {
		errint_t e = log_reopen();
		if (e < 0)
			log_err("SIGUSR1: cannot open the log file again (%s); logging on to "
				"the file that was open",
				strerror(-e));
		else
			log_info("SIGUSR1: log file opened again");
		return;
	}
	if (unmount_covered(fs->mountpoint, &fs->mnt)) {
		/* (Detaching it would take the mount on top along.) */
		log_warning("SIG%s: not unmounting %s: another mount covers it; serving on "
			    "until that one is unmounted and the signal sent again",
			    sigabbrev_np(sig), fs->mountpoint);
		return;
	}
	log_notice("SIG%s: unmounting %s", sigabbrev_np(sig), fs->mountpoint);
	service_notify("STOPPING=1");
	/* Nothing more is fetched or realised, and no lookup waits on a
	 * cache: done before the mount is detached. link_lock orders it with
	 * a daemon_fini that started otherwise. */
	pthread_mutex_lock(&d->link_lock);
	if (!d->leaving)
		realiser_quiesce(fs);
	pthread_mutex_unlock(&d->link_lock);
	errint_t e = unmount_detach(fs->mountpoint, &fs->mnt);
	if (e == -EBUSY)
		log_warning("not unmounting %s: another mount covers it", fs->mountpoint);
	else if (e < 0 && e != -ENOENT)
		log_err("unmounting %s: %s", fs->mountpoint, strerror(-e));
}

/* SIGTERM and SIGINT detach the mount lazily instead of tearing the
 * session down under open files; SIGHUP reloads; SIGUSR1 opens the --log
 * file again (logrotate). Until the daemon leaves (fs->quit). */
static void *signal_thread(void *arg)
{
	struct daemon *d = arg;
	sigset_t set;
	handled(&set);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		log_warning("signals cannot be read (%s): SIGTERM and SIGHUP do nothing",
			    strerror(errno));
		return NULL;
	}
	struct signalfd_siginfo si;
	while (bfs_wait(&d->fs, sfd, POLLIN, -1) > 0)
		if (read(sfd, &si, sizeof(si)) == sizeof(si))
			on_signal(d, (int)si.ssi_signo);
	close(sfd);
	return NULL;
}

/* ---- the supervisor's link ---------------------------------------------------- */

/* The supervisor says its pid; when it dies, another one takes its place
 * (serving goes on). */
static void *link_thread(void *arg)
{
	struct daemon *d = arg;
	struct timespec started;
	clock_gettime(CLOCK_MONOTONIC, &started);
	unsigned quick = 0;
	for (;;) {
		int ev = bfs_wait(&d->fs, d->link, POLLIN, -1);
		if (ev < 0)
			return NULL; /* the daemon leaves */
		if (!(ev & (POLLHUP | POLLERR))) {
			int pid = supervisor_said_pid(d->link);
			if (pid > 0) {
				atomic_store(&d->fs.supervisor_pid, pid);
				continue;
			}
			char c;
			if (recv(d->link, &c, 1, MSG_DONTWAIT | MSG_PEEK) != 0)
				continue;
		}
		struct mountent m;
		pthread_mutex_lock(&d->link_lock);
		if (d->leaving) {
			/* Its descriptors may be closed, their numbers reused,
			 * or another daemon's now: wait and see (until the
			 * daemon leaves, or hands over, for good). */
			pthread_mutex_unlock(&d->link_lock);
			if (bfs_wait(&d->fs, -1, 0, 100) < 0)
				return NULL;
			continue;
		}
		if (mounts_find(&d->fs.mnt, &m) == 0) {
			pthread_mutex_unlock(&d->link_lock);
			return NULL; /* nothing left to supervise */
		}
		/* One that dies at once, again and again, is not started
		 * forever. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		quick = now.tv_sec - started.tv_sec < 2 ? quick + 1 : 0;
		started = now;
		int old = d->link, link;
		int pid = quick > 3 ? -ECHILD : supervisor_start(&d->sfds, &link);
		pthread_mutex_unlock(&d->link_lock);
		if (pid < 0) {
			atomic_store(&d->fs.supervisor_pid, 0);
			log_warning(
			    "the supervisor died, and another cannot be started (%s): if this "
			    "daemon dies too, the mount goes",
			    pid == -ECHILD ? "each one dies at once" : strerror(-pid));
			return NULL;
		}
		log_warning("the supervisor died; another took its place (pid %d)", pid);
		atomic_store(&d->fs.supervisor_pid, 0); /* until it says its pid */
		d->link = link;
		close(old);
	}
}

void daemon_services(struct daemon *d)
{
	struct bfs *fs = &d->fs;
	errint_t e;
	int cfd = d->sfds.fd[SUPER_IX(SUPER_FD_CONTROL)];
	if ((e = cfd < 0 ? -ENOTCONN
			 : control_start(fs, cfd, d->fds.clients, &d->threads[d->nthreads])) == 0)
		d->nthreads++;
	else
		log_warning("no control socket (%s): bundlectl status and reload will not reach "
			    "this mount",
			    strerror(-e));
	if ((e = reload_start(fs)) < 0)
		log_warning("retired bundle versions will stay cached (%s)", strerror(-e));
	if (d->o.watch && (e = specwatch_start(fs, &d->threads[d->nthreads])) == 0)
		d->nthreads++;
	else if (d->o.watch)
		log_warning("cannot watch %s (%s): reload with SIGHUP", fs->spec_path,
			    strerror(-e));
	overlays_adopt(fs, fs->took_over);
	if (pthread_create(&d->threads[d->nthreads], NULL, signal_thread, d) == 0)
		d->nthreads++;
	if (d->link >= 0 && pthread_create(&d->threads[d->nthreads], NULL, link_thread, d) == 0)
		d->nthreads++;
}

/* ---- serving -------------------------------------------------------------------- */

int daemon_serve(struct daemon *d, void (*serving)(struct daemon *d))
{
	struct bfs *fs = &d->fs;
	unsigned threads = d->fds.threads;
	for (;;) {
		errint_t e = loop_start(&fs->loop, d->se, threads);
		if (e < 0) {
			log_err("cannot start the workers: %s", strerror(-e));
			return 1;
		}
		if (serving) {
			serving(d);
			serving = NULL;
		}
		int rc = loop_wait(fs->loop);
		if (rc == 0)
			log_notice("%s was unmounted", fs->mountpoint);
		else if (rc == 1)
			log_err("%s: reading the FUSE device failed; the daemon stops serving",
				fs->mountpoint);
		if (rc != 2) {
			loop_free(fs->loop);
			fs->loop = NULL;
			daemon_leaving(d, true); /* the mount is gone */
			/* With its connection: nothing is left to control. (After
			 * a failure the supervisor may start a successor on it.) */
			if (rc == 0)
				ctlsock_remove(d->sfds.fd[SUPER_IX(SUPER_FD_CONTROL)]);
			return rc;
		}
		/* Stopped for a live upgrade (control.c): the new daemon
		 * restores, then says whether it serves. (The loop is freed
		 * only then: the hand-over may still be stopping it.) */
		pthread_mutex_lock(&fs->handover_lock);
		while (fs->handover == HANDOVER_STOPPED)
			pthread_cond_wait(&fs->handover_cond, &fs->handover_lock);
		bool done = fs->handover == HANDOVER_DONE;
		fs->handover = HANDOVER_NONE;
		pthread_mutex_unlock(&fs->handover_lock);
		loop_free(fs->loop);
		fs->loop = NULL;
		if (done) {
			/* The new daemon holds everything: the connection, the
			 * state, the GC roots and their lock, the links. Leave
			 * without touching any of it. */
			log_notice("handed %s over to the new daemon (live upgrade); exiting",
				   fs->mountpoint);
			_exit(0);
		}
		log_warning("the new daemon did not take %s over; serving on", fs->mountpoint);
	}
}
