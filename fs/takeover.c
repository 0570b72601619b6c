/* takeover: a new daemon on a live connection. */
#include "takeover.h"
#include "control.h"
#include "ctlsock.h"
#include "daemon.h"
#include "log.h"
#include "mounts.h"
#include "reload.h"
#include "service.h"
#include "specwatch.h"
#include "state.h"
#include "tree.h"
#include "watchdog.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7 /* Linux 6.9, protocol 7.40 */
#endif

/* Names of the root's children the kernel holds: told to forget them
 * once serving, since the dead daemon may not have (a reload it was in). */
struct restore {
	struct bfs *fs;
	char **names;
	size_t n, cap;
};

static void restore_one(void *ctx, const struct jnode *j)
{
	struct restore *r = ctx;
	tree_restore_node(r->fs, j);
	/* (Never the versions' directory: forgetting it would detach the
	 * mounts of running containers below it.) */
	if (!j->shared && j->parent == NODES_ROOT_ID && strcmp(j->name, VERSIONS_DIR)) {
		GROW(r->names, r->n, r->cap);
		r->names[r->n++] = xstrdup(j->name);
	}
}

static struct restore restored;

/* Says what went wrong: on stderr (a user's `--takeover`) or in the log. */
__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("takeover: %s", msg);
	return 1;
}

/* Everything up to serving. `stop_old` (a live upgrade) makes the old
 * daemon stop its workers before the nodes are restored from the journal,
 * which it no longer writes then. */
static int take(struct daemon *d, char ***argv_out, const struct mountid *expect,
		int (*stop_old)(void *ctx), void *ctx)
{
	struct bfs *fs = &d->fs;
	struct state *st;
	uint32_t format = 0;
	int sfd = dup(d->sfds.fd[SUPER_IX(SUPER_FD_STATE)]);
	errint_t e = sfd < 0 ? -errno : state_open(sfd, &st, &format);
	if (e == -EPROTO)
		return fail("the running daemon's state is in format %u; this bundlefs reads %u",
			    format, STATE_FORMAT);
	if (e < 0)
		return fail("state: %s", strerror(-e));
	fs->state = st;

	/* The options the mount was started with. */
	char **argv;
	const char *cwd;
	int argc = state_args(st, &argv, &cwd);
	*argv_out = argv;
	struct mount_paths paths;
	state_mount(st, &fs->mnt, &paths);
	/* (A state for another mount is not this one's, whoever sent it.) */
	if (expect && (fs->mnt.id != expect->id || fs->mnt.major != expect->major ||
		       fs->mnt.minor != expect->minor))
		return fail("the state handed over is of mount %llu (device %u:%u), not of the "
			    "mount there (%llu, device %u:%u)",
			    (unsigned long long)fs->mnt.id, fs->mnt.major, fs->mnt.minor,
			    (unsigned long long)expect->id, expect->major, expect->minor);
	fs->mountpoint = paths.mountpoint;
	fs->spec_path = xstrdup(paths.spec);
	/* Relative to where the first daemon was started (unless that is in
	 * the mount, which cannot be entered before it serves). */
	if (!mounts_path_under(cwd, fs->mountpoint) && chdir(cwd) < 0)
		return fail("%s: %s", cwd, strerror(errno));
	d->o.reparse = true;
	if (options_parse(argc, argv, &d->o, &fs->st) >= 0)
		return fail("the mount's own arguments do not parse");
	/* The new daemon is nobody's foreground: it logs where a
	 * background daemon would (a successor at once: its stderr is
	 * nobody's; a live upgrade's once it serves). */
	d->o.foreground = d->o.debug = false;
	if (!stop_old) {
		daemon_plan_logging(d);
		daemon_detach_logging(d);
	} else if (daemon_plan_logging(d) < 0) {
		return 1;
	}
	if (daemon_plan_fds(d) < 0)
		return 1;
	e = daemon_init(d, NULL);
	if (chdir("/") < 0 || e < 0)
		return fail("store %s: %s", fs->st.real, strerror(e < 0 ? -e : errno));

	size_t len;
	const char *doc = state_bundles(st, &len);
	uint64_t generation;
	double loaded;
	struct bundle_hold *hold;
	if (bundles_restore(doc, len, &fs->env, &fs->bundles, &generation, &loaded, &hold) < 0)
		return fail("the bundles in the state cannot be read");
	fs->generation = generation;
	fs->loaded = (struct timespec){(time_t)loaded, (long)((loaded - (time_t)loaded) * 1e9)};
	int gfd = d->sfds.fd[SUPER_IX(SUPER_FD_GCROOTS)];
	if (gfd >= 0 && paths.gcroots)
		gcroots_adopt(&fs->gcroots, gfd, paths.gcroots);

	fs->devio.no_export = true;
	fs->devio.state = st;
	if ((e = daemon_session(d)) < 0 ||
	    (e = devio_attach(d->se, &fs->devio, d->sfds.fd[SUPER_IX(SUPER_FD_FUSE)])) < 0)
		return fail("session: %s", strerror(-e));
	if ((e = devio_inject_init(d->se, &fs->devio)) < 0)
		return fail("the connection was set up by a bundlefs whose answer to the kernel "
			    "differs from this one's: it cannot serve it");
	if (stop_old && stop_old(ctx) < 0) {
		bundles_hold_free(hold);
		return fail("the running daemon did not stop");
	}

	/* Every node the kernel holds, as it was. */
	restored = (struct restore){.fs = fs};
	uint32_t max_gen;
	e = state_replay(st, restore_one, &restored, &max_gen);
	nodes_restored(&fs->nodes, max_gen);
	/* Retired versions go once no container uses them (reload.c). */
	uint64_t *retired;
	size_t nretired = bundles_hold_retired(hold, fs->bundles, &retired);
	for (size_t i = 0; i < nretired; i++) {
		GROW(fs->retired, fs->nretired, fs->retired_cap);
		fs->retired[fs->nretired++] = retired[i];
	}
	free(retired);
	bundles_hold_free(hold);
	if (e < 0)
		log_warning(
		    "takeover: the node journal ends early; nodes after that are not known");
	if (fs->pt)
		passthrough_adopt(fs->pt);
	struct nodes_journal j;
	state_journal(st, &j);
	nodes_set_journal(&fs->nodes, &j);
	state_count_takeover(st, stop_old != NULL);
	return 0;
}

/* Asks the kernel to send again the requests the old daemon read and did
 * not answer. */
static void resend(struct daemon *d)
{
	struct fuse_out_header h = {.len = sizeof(h), .error = FUSE_NOTIFY_RESEND};
	if (write(d->sfds.fd[SUPER_IX(SUPER_FD_FUSE)], &h, sizeof(h)) < 0)
		log_warning("the kernel cannot send requests again (%s, Linux 6.9 needed): readers "
			    "the old daemon left unanswered wait forever",
			    strerror(errno));
}

/* Once serving: the kernel forgets the root's names it holds (they may
 * name what a reload changed), requests in flight come again. */
static void serving(struct daemon *d, const char *how)
{
	resend(d);
	for (size_t i = 0; i < restored.n; i++) {
		ll_forget_entry(&d->fs, NODES_ROOT_ID, restored.names[i]);
		free(restored.names[i]);
	}
	ll_forget_entry(&d->fs, NODES_ROOT_ID, NULL);
	free(restored.names);
	restored.names = NULL;
	log_notice("took %s over (%s, bundlefs %s; generation %llu, %zu nodes; serving %llu ms "
		   "after start)",
		   d->fs.mountpoint, how, BUNDLEFS_VERSION, (unsigned long long)d->fs.generation,
		   d->fs.nodes.live, daemon_uptime_ms(d));
	/* A spec written, or a link on the way repointed, while no daemon
	 * watched is read now. */
	if (d->o.watch && specwatch_changed_since(&d->fs, &d->fs.loaded))
		reload_run(&d->fs, NULL);
}

/* ---- failover ------------------------------------------------------------------ */

static void successor_serving(struct daemon *d)
{
	serving(d, "failover: the daemon before died");
	send(d->link, "ok", 2, MSG_NOSIGNAL); /* the supervisor waits for it */
	/* Only now does `bundlectl status` name this daemon: once it says
	 * so, it serves. */
	daemon_services(d);
	/* Under systemd (NotifyAccess=all), this is the service's main
	 * process now: reloads and stops are sent here. */
	char note[32];
	snprintf(note, sizeof(note), "MAINPID=%d", (int)getpid());
	service_notify(note);
}

int takeover_successor(void)
{
	struct daemon d;
	daemon_prepare(&d);
	daemon_block_signals();
	for (int i = 0; i < SUPER_NFDS; i++) {
		int fd = SUPER_FD_FUSE + i;
		d.sfds.fd[i] = fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : fd;
	}
	d.link = d.sfds.fd[SUPER_IX(SUPER_FD_LINK)];
	d.sfds.fd[SUPER_IX(SUPER_FD_LINK)] = -1;
	atomic_store(&d.fs.supervisor_pid, (int)getppid());
	char **argv = NULL;
	int rc = take(&d, &argv, NULL, NULL, NULL);
	if (rc == 0) {
		rc = daemon_serve(&d, successor_serving);
		unmount_detach(d.fs.mountpoint, &d.fs.mnt);
		log_at(rc ? LOG_ERR : LOG_NOTICE, "exiting (status %d)", rc);
	} else {
		/* The GC roots stay: the supervisor tries again. */
		gcroots_release(&d.fs.gcroots);
	}
	daemon_fini(&d);
	free(argv);
	return rc;
}

/* ---- live upgrade ------------------------------------------------------------------ */

struct old {
	int c;		    /* the control connection to the running daemon */
	struct mountid mnt; /* the mount it serves, as mountinfo says */
};

/* How long the old daemon's workers may take to finish the requests they
 * hold when told to stop (as long as a successor may take to serve). */
#define STOP_MS 30000

static int stop_old(void *ctx)
{
	struct old *o = ctx;
	char line[32] = "";
	struct timeval tv = {.tv_sec = STOP_MS / 1000};
	setsockopt(o->c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	errno = 0;
	if (send(o->c, "stop\n", 5, MSG_NOSIGNAL) < 0 ||
	    !control_read_line(o->c, line, sizeof(line)) || strcmp(line, "stopped")) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			log_err("takeover: the running daemon did not stop its workers within %d s",
				STOP_MS / 1000);
		return -1;
	}
	return 0;
}

/* Whether `fd` is a /dev/fuse connection that still stands. */
static bool live_fuse(int fd)
{
	struct stat st;
	struct pollfd p = {.fd = fd, .events = 0};
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == makedev(10, 229) && poll(&p, 1, 0) >= 0 &&
	       !(p.revents & (POLLERR | POLLNVAL));
}

/* Connects to the daemon serving `mnt` and receives its descriptors. */
static int ask_old(const char *mnt, struct daemon *d, struct old *o)
{
	char *abs = mounts_abspath(mnt);
	struct mountent m;
	int found = mounts_at(abs, &m);
	free(abs);
	if (found != 1 || !mounts_is_bundlefs(&m)) {
		log_err("%s: no bundlefs mount there", mnt);
		return -1;
	}
	/* Only the mount's owner's socket is asked: what it sends is trusted
	 * (the connection, the state a successor restores). */
	char *why;
	o->c = ctlsock_connect(&m, CTLSOCK_TIMEOUT_MS, &why);
	if (o->c < 0) {
		log_err("%s: %s", mnt, why);
		free(why);
		return -1;
	}
	o->mnt = (struct mountid){m.id, m.major, m.minor, mounts_unique_id(mnt)};
	char req[32];
	int n = snprintf(req, sizeof(req), "takeover %u\n", STATE_FORMAT);
	send(o->c, req, (size_t)n, MSG_NOSIGNAL);
	char msg[256] = "";
	int fds[SUPER_NFDS];
	char ctl[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = {msg, sizeof(msg) - 1};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	ssize_t r = recvmsg(o->c, &mh, MSG_CMSG_CLOEXEC);
	bool late = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	unsigned mask;
	int super = 0;
	if (r > 0)
		msg[r] = 0;
	if (r <= 0 || sscanf(msg, "ok %u %d", &mask, &super) < 1) {
		char *nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		char when[64];
		snprintf(when, sizeof(when), "no answer within %d s", CTLSOCK_TIMEOUT_MS / 1000);
		log_err("%s: the running daemon does not hand over: %s", mnt,
			r > 0  ? msg
			: late ? when
			       : "no answer");
		return -1;
	}
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	size_t nfds = cm ? (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) : 0;
	if (cm)
		memcpy(fds, CMSG_DATA(cm), nfds * sizeof(int));
	size_t k = 0;
	for (int i = 0; i < SUPER_NFDS; i++)
		d->sfds.fd[i] = (mask & (1u << i)) && k < nfds ? fds[k++] : -1;
	atomic_store(&d->fs.supervisor_pid, super);
	if (!live_fuse(d->sfds.fd[SUPER_IX(SUPER_FD_FUSE)])) {
		log_err("%s: the running daemon did not hand over a live FUSE connection", mnt);
		return -1;
	}
	return 0;
}

/* Tells the supervisor which binary successors are started from now. */
static void give_exe(struct daemon *d)
{
	int fd = d->sfds.fd[SUPER_IX(SUPER_FD_EXE)];
	char ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof(ctl));
	struct iovec iov = {"exe", 3};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	sendmsg(d->link, &m, MSG_NOSIGNAL);
}

static void upgrade_serving(struct daemon *d)
{
	daemon_detach_logging(d);
	serving(d, "live upgrade");
	give_exe(d);
	char *status = control_status_line(&d->fs, NULL);
	service_ready(status);
	free(status);
}

int takeover_upgrade(const char *mountpoint)
{
	/* Made absolute here: detaching from the command leaves its
	 * working directory for /. */
	cleanup_free char *abs = mounts_abspath(mountpoint);
	mountpoint = abs;
	struct daemon d;
	daemon_prepare(&d);
	struct old o = {.c = -1};
	daemon_block_signals();
	/* The command returns once the new daemon serves. */
	errint_t e = service_detach();
	if (e < 0) {
		log_err("fork: %s", strerror(-e));
		return 1;
	}
	int rc = 1;
	char **argv = NULL;
	if (ask_old(mountpoint, &d, &o) < 0)
		goto out;
	d.link = d.sfds.fd[SUPER_IX(SUPER_FD_LINK)];
	d.sfds.fd[SUPER_IX(SUPER_FD_LINK)] = -1;
	d.sfds.fd[SUPER_IX(SUPER_FD_EXE)] = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	rc = take(&d, &argv, &o.mnt, stop_old, &o);
	if (rc)
		goto out;
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "serving %d\n", (int)getpid());
	send(o.c, msg, (size_t)n, MSG_NOSIGNAL);
	close(o.c);
	o.c = -1;
	daemon_services(&d);
	rc = daemon_serve(&d, upgrade_serving);
	unmount_detach(d.fs.mountpoint, &d.fs.mnt);
	log_at(rc ? LOG_ERR : LOG_NOTICE, "exiting (status %d)", rc);
out:
	if (o.c >= 0)
		close(o.c); /* the old daemon serves on */
	if (rc) {
		/* Whatever was received goes back with this process. */
		for (int i = 0; i < SUPER_NFDS; i++)
			if (d.sfds.fd[i] >= 0)
				close(d.sfds.fd[i]);
		gcroots_release(&d.fs.gcroots);
	}
	service_failed(rc ? rc : 1);
	daemon_fini(&d);
	free(argv);
	return rc;
}
