/* overlay: the writable roots of readonly = false bundles.
 *
 * Such a bundle's rootfs gets a kernel overlayfs mounted on it: the FUSE
 * rootfs itself is the lower layer (read as fast as a read-only bundle's,
 * nothing copied), and an upper and a work directory under --state-dir,
 * one pair per mount point and bundle name, take the writes:
 *
 *   STATE_DIR/<mount point, escaped>/<name>/upper   what containers wrote
 *                                          /work    overlayfs's own
 *
 * The store is never written: the lower layer is read-only, copy-up reads
 * it. Writes persist across container runs and remounts; `bundlectl
 * reset` discards them.
 *
 * When: the first time the bundle's name is followed (the READLINK of
 * MOUNTPOINT/NAME, which every way in through the name makes, and which
 * waits for the mount), so that mounting stays lazy. mount(2) walks its
 * paths through this very filesystem, so it runs on a thread of its own,
 * never in a request's handler, and in a child process (a daemon killed
 * in the middle of it must still end); the READLINK is answered from the
 * thread. A
 * mount that fails (no privilege to mount: not root) makes the bundle's
 * rootfs answer EIO with the reason, never a silently read-only root. */
#ifndef BUNDLEFS_OVERLAY_H
#define BUNDLEFS_OVERLAY_H

#include "util.h"

struct bfs;
struct bstate;

/* Sets up (the thread starts on first use); stop waits for a mount in
 * progress. */
errint_t overlays_start(struct bfs *fs);
void overlays_stop(struct bfs *fs);

/* Calls done(ctx) once the writable root of `b` (readonly = false) is
 * mounted or has failed, or its closure cannot be resolved now (then it
 * is still not mounted, and is tried again on the next call): at once
 * when that is already so, else from the overlay thread. */
void overlay_ensure(struct bfs *fs, struct bstate *b, void (*done)(void *ctx), void *ctx);

/* Takes the overlay of version `b` (retired by a reload) off its mount
 * point; containers running on it keep theirs. */
void overlay_detach(struct bfs *fs, struct bstate *b);

/* Discards what containers wrote in bundle `name` (whether or not the
 * spec has it now); a mounted writable root is mounted again, empty.
 * Returns 0, or -errno with a message in *msg (malloc'ed). */
errint_t overlay_reset(struct bfs *fs, const char *name, char **msg);

/* The directory of bundle `name`'s changes (malloc'ed). */
char *overlay_dir(const struct bfs *fs, const char *name);

/* What `bundlectl status` says of the writable root of `b` (readonly =
 * false). `all` is every mount namespace's mounts (mounts.h), read once
 * for the whole status, or NULL when they could not be read. */
struct overlay_status {
	char *upper;  /* the directory of what containers wrote (malloc'ed) */
	bool mounted; /* the writable root is mounted */
	int in_use;   /* a container has its root on it: 1, 0, or -1 (cannot tell) */
};
struct mounts_all;
void overlay_status(struct bfs *fs, struct bstate *b, const struct mounts_all *all,
		    struct overlay_status *out);

#endif
