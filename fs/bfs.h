/* bfs: the state of one bundlefs mount, shared by the FUSE handlers
 * (ll.c), the tree (tree.c), the handles (handles.c), reloads (reload.c),
 * the control socket (control.c) and main.
 *
 * Lock order. Locks are taken in this order and never the other way:
 *
 *   reload_lock (reload.c: one reload at a time)
 *    -> mounting (overlay.c: one root mounted, reset or taken off at a time)
 *     -> gen_lock (the current set of bundles: read by lookups and
 *                  listings in the root until they have replied, written
 *                  by a reload to swap the set)
 *       -> handle.lock (handles.c: one reader of a directory stream)
 *         -> bstate.lock (bundle.c: one bundle computing its config or closure)
 *           -> resolver lock (closure.c: the database, caches, shared closures)
 *           -> the substituters' lock (subst.c: narinfo found)
 *           -> gcroots.lock (gcroots.c: registering roots)
 *
 * The node table's lock (nodes.c), the handle caches' locks (hcache.c), the
 * realiser's lock (realise.c), a bundle's root_lock (bundle.c: its root in
 * the runtime directory), the slots of opened handles (handles.c) and the
 * queue of interrupted requests (defer.c, taken under libfuse's lock of a
 * request, in its interrupt callback) are leaves: nothing else is
 * locked and no I/O is done while one is held. Kernel notifications are
 * sent with no lock held: the kernel may wait for a request that waits
 * for a lock. */
#ifndef BUNDLEFS_BFS_H
#define BUNDLEFS_BFS_H

#include "backing.h"
#include "bundle.h"
#include "devio.h"
#include "gcroots.h"
#include "handles.h"
#include "mounts.h"
#include "nodes.h"
#include "spec.h"
#include "store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* How the last reload went, for `bundlectl status` and `reload`. */
struct reload_result {
	uint64_t generation; /* of the set it installed, or the current one */
	bool ok;
	char *problems; /* one per line, or NULL */
	struct timespec at;
};

struct bfs {
	struct store st;
	struct bundle_env env;
	struct resolver *resolver;
	struct gcroots gcroots;
	struct backing backing;
	struct nodes nodes;
	struct handles handles;
	struct hcache *dirpaths; /* tree.c: descriptors of backing directories */
	struct devio devio;	 /* the FUSE device's I/O hooks */

	pthread_rwlock_t gen_lock;
	struct bundles *bundles; /* the current set */
	uint64_t generation;	 /* of the current set: 1, then one more per reload */
	struct timespec loaded;	 /* when its spec was read */

	pthread_mutex_t reload_lock;
	struct reload_result last_reload;
	/* Versions no set holds any more, which the kernel may still cache:
	 * reload.c has it forget each once nothing is mounted on it. */
	uint64_t *retired;
	size_t nretired, retired_cap;
	pthread_cond_t retired_cond;
	pthread_t reaper;
	bool reaping, stopping;
	char *spec_path; /* absolute, as given (a symlink is read anew each time) */

	struct timespec started;
	uid_t uid; /* owner of the synthesized entries */
	gid_t gid;
	/* Answer OPEN (OPENDIR) with ENOSYS: the mount is read-only, and
	 * files (directories) are opened by the kernel alone. */
	bool zero_open, zero_opendir;
	bool passthrough_ok;	/* ask for passthrough (unless --no-passthrough) */
	unsigned pt_files;	/* slots of its table */
	struct passthrough *pt; /* store files' backing ids, when the kernel passes through */

	void *session;		    /* the struct fuse_session, for notifications */
	struct state *state;	    /* what a successor takes over (state.h) */
	struct loop *loop;	    /* the workers (loop.h) */
	struct daemon *daemon;	    /* daemon.h: what a hand-over passes on */
	_Atomic int supervisor_pid; /* as it said (supervisor.h), or 0 */
	/* A live upgrade in progress (control.c): the workers stopped, the
	 * new daemon restoring; handover ends it. */
	pthread_mutex_t handover_lock;
	pthread_cond_t handover_cond;
	enum { HANDOVER_NONE, HANDOVER_STOPPED, HANDOVER_DONE, HANDOVER_FAILED } handover;
	const char *state_dir;	   /* overlay.h: where writable roots keep changes */
	const char *run_dir;	   /* overlay.h: where they are mounted */
	enum spec_data data;	   /* the data path of bundles whose spec has none (--data) */
	bool took_over;		   /* this daemon succeeded another (takeover.c) */
	struct overlays *overlays; /* overlay.h */
	struct subst *subst;	   /* the caches absent paths come from, or NULL */
	struct realiser *realiser; /* realise.h */
	struct deferrer *deferrer; /* defer.h: interrupts of deferred requests */
	const char *mountpoint;	   /* absolute */
	struct mountid mnt;	   /* the mount (its device is the connection's) */
	/* An eventfd written when the daemon leaves: the service threads
	 * (signals, control socket, --watch, the supervisor's link) end,
	 * and are joined, before what they use is freed. */
	int quit;
};

/* Waits until `fd` (or none, when negative) has one of `events` (returns
 * its revents), for at most `ms` (-1: forever; returns 0 when the time is
 * up), unless the daemon leaves first (fs->quit written: returns -1). The
 * service threads wait this way. */
int bfs_wait(const struct bfs *fs, int fd, short events, int ms);

/* The FUSE operations (ll.c). */
extern const struct fuse_lowlevel_ops bfs_ops;

/* Tells the kernel to forget its entry `name` in directory `parent` (the
 * directory's cached listing and attributes when name is NULL). Call it
 * with no lock held. (ll.c) */
void ll_forget_entry(struct bfs *fs, node_id parent, const char *name);

#endif
