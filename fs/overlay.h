/* overlay: the writable roots of readonly = false bundles.
 *
 * Such a bundle's root is a kernel overlayfs: the FUSE rootfs is the
 * lower layer (read as fast as a read-only bundle's, nothing copied), and
 * an upper and a work directory under --state-dir take the writes, one
 * pair per mount point, bundle name and generation (statedir.h). The store
 * is never written: the lower layer is read-only, copy-up reads it.
 *
 * Where: outside the FUSE mount, so that nothing is mounted below it and
 * a plain `umount MOUNTPOINT` works. Each mount has an area of its own in
 * the runtime directory (--run-dir), a small tmpfs made shared so that the
 * roots mounted in it reach the mount namespaces made from the daemon's,
 * as runtimes' are:
 *
 *   RUN_DIR/<mount point, escaped>/<FUSE device minor>/   the area (tmpfs)
 *     <serial>/config.json   the version's config.json (its bytes)
 *     <serial>/rootfs/       the overlay
 *
 * and the bundle's name (MOUNTPOINT/NAME, a symlink) points there once the
 * overlay is mounted, so that `runc run -b MOUNTPOINT/NAME` finds it. The
 * device minor keeps the areas of two mounts of one mount point apart (an
 * unmounted one still serving its containers, and its replacement).
 *
 * When: the first time the bundle's name is followed (the READLINK of
 * MOUNTPOINT/NAME, which every way in through the name makes, and which
 * waits for the mount), so that mounting stays lazy. mount(2) walks the
 * lower layer's path through this very filesystem, so it runs on a thread
 * of its own, never in a request's handler, and in a child process (a
 * daemon killed in the middle of it must still end); the READLINK is
 * answered from the thread. A mount that fails makes the bundle's rootfs
 * answer EIO with the reason, never a silently read-only root.
 *
 * A daemon that is not root can mount neither the tmpfs nor overlayfs
 * where its user's runtime would see them: its area is a plain directory
 * (in $XDG_RUNTIME_DIR by default), and its writable roots are
 * fuse-overlayfs processes it runs and reaps (fuseovl.h), in the same
 * places and with the same life.
 *
 * Going: the same thread watches the mount table. Once the FUSE mount is
 * gone (umount, fusermount3 -u, SIGTERM), the area is detached with every
 * root in it: containers keep the copies their namespaces hold, the FUSE
 * connection lives while they do, and the daemon exits after the last. */
#ifndef BUNDLEFS_OVERLAY_H
#define BUNDLEFS_OVERLAY_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bfs;
struct bstate;

/* Sets up (the thread starts on first use); stop waits for a mount in
 * progress. */
errint_t overlays_start(struct bfs *fs);
void overlays_stop(struct bfs *fs);
/* Once the mount is known: a daemon that took the mount over watches the
 * area its predecessor made (the roots in it are its own now); a new
 * mount removes an area some earlier mount of the same device left, and
 * makes its own at once when the spec has writable bundles (a mount
 * namespace made before the area would not see the roots in it). */
void overlays_adopt(struct bfs *fs, bool took_over);

/* Calls done(ctx) once the writable root of `b` (readonly = false) is
 * mounted or has failed, or its closure cannot be resolved now (then it
 * is still not mounted, and is tried again on the next call): at once
 * when that is already so, else from the overlay thread. */
void overlay_ensure(struct bfs *fs, struct bstate *b, void (*done)(void *ctx), void *ctx);

/* The directory the name of version `b` points to while its writable
 * root is mounted (RUN_DIR/.../SERIAL), in buf. Returns its length, or
 * -ENOENT when it is not mounted (the name points into the mount). */
ssize_t overlay_bundle_dir(struct bfs *fs, struct bstate *b, char *buf, size_t size);

/* Takes the overlay of version `b` (retired by a reload) off its mount
 * point; containers running on it keep theirs. */
void overlay_detach(struct bfs *fs, struct bstate *b);

/* Starts bundle `name` from a clean root: its writable root gets the next
 * generation, and a mounted one is mounted again, empty. Containers
 * running keep the generation they have, which is removed once no mount
 * uses it. Returns 0; -ENOENT when the spec has no such bundle, -EROFS
 * when it is read-only, or -errno; *msg (malloc'ed) says what happened. */
errint_t overlay_reset(struct bfs *fs, const char *name, char **msg);

/* The mount's area in the runtime directory (malloc'ed). */
char *overlay_area(const struct bfs *fs);
/* Detaches an area with every root in it, and removes its directory (and
 * its mount point's, when empty). For when the mount is gone. Returns 0
 * or -errno. */
errint_t overlay_remove_area(const char *area);

/* The state directory of bundle `name` (malloc'ed). */
char *overlay_dir(const struct bfs *fs, const char *name);

/* Removes the state of bundles the spec has no writable root for, and
 * old generations, that no mount uses (statedir_prune); with `dry_run`
 * only says what it would remove. Appends one JSON object per generation
 * to `out` (a cJSON array). Returns 0 or the first error. */
struct cJSON;
errint_t overlay_prune(struct bfs *fs, bool dry_run, struct cJSON *out);

/* What `bundlectl status` says of `b`'s root: its data path and, for a
 * writable one (readonly = false), its upper directory. `all` is every mount namespace's mounts
 * (mounts.h), read once for the whole status, or NULL when they could not be read. */
struct overlay_status {
	/* The data path: "native" (its root is kernel-native), "fuse", "bind",
	 * or NULL while undecided (not used yet, its image being built); and
	 * why not native (malloc'ed, or NULL). */
	const char *data;
	char *why;
	char *upper;  /* a writable root's directory of what containers wrote
			 (malloc'ed), or NULL */
	bool mounted; /* its root is mounted in the area */
	int in_use;   /* a container has its root on it: 1, 0, or -1 (cannot tell) */
};
struct mounts_all;
void overlay_status(struct bfs *fs, struct bstate *b, const struct mounts_all *all,
		    struct overlay_status *out);

#endif
