/* fuseovl: writable roots for a daemon that is not root, made by
 * fuse-overlayfs (overlay.h decides when and where; this file knows
 * processes, paths and descriptors, nothing of bundles).
 *
 * A user may not mount overlayfs where their runtime would see it (only
 * in a user namespace of their own, whose mounts no other namespace
 * gets), but may mount FUSE filesystems through fusermount3. So such a
 * root is a fuse-overlayfs process, a child of the daemon:
 *
 *  - fusermount3 makes the mount for the daemon and passes its
 *    descriptor back (libfuse's protocol), with the upper directory as
 *    the mount's source: mountinfo then says which upper directory a
 *    root writes, wherever it is mounted (a container's root is such a
 *    mount), as overlayfs's upperdir= option does (mounts.h).
 *    fuse-overlayfs is given the descriptor as /dev/fd/4 and serves it;
 *  - its lower layer is a detached copy of the version's rootfs
 *    (open_tree(OPEN_TREE_CLONE), made by a short-lived child in a user
 *    and mount namespace of its own), given as /proc/self/fd/3: what
 *    fuse-overlayfs holds open pins that copy, not the bundlefs mount,
 *    so that a plain `fusermount3 -u MOUNTPOINT` still unmounts while
 *    roots are up (kernel overlayfs does the same with its private
 *    copies of its layers). Where user namespaces are not allowed, the
 *    lower layer is the rootfs's own path, and a plain unmount answers
 *    busy while a root is mounted (`-z` and SIGTERM work);
 *  - each step that walks a path of the bundlefs mount or waits on a FUSE
 *    answer runs in a child process (see overlay.c's in_child);
 *  - the mount goes with `fusermount3 -u -z`; fuse-overlayfs exits once
 *    no namespace has it mounted (running containers keep theirs until
 *    they exit), and the daemon reaps it. */
#ifndef BUNDLEFS_FUSEOVL_H
#define BUNDLEFS_FUSEOVL_H

#include "util.h"

#include <stdbool.h>
#include <sys/types.h>

/* The type such a root has in mountinfo. */
#define FUSEOVL_FSTYPE "fuse.fuse-overlayfs"

/* NULL when fuse-overlayfs and fusermount3 are both in PATH; else what is
 * missing and what to install (a static string). */
const char *fuseovl_missing(void);

struct fuseovl_root {
	pid_t pid;   /* the fuse-overlayfs process (a child) */
	int pidfd;   /* readable once it has exited, or -1 */
	bool pinned; /* its lower layer is a path of the bundlefs mount */
};

/* Mounts on `target` a fuse-overlayfs of `lower` (a directory of the
 * bundlefs mount) with `upper` and `work`. Returns 0 with *r filled, or
 * -errno with *what naming the step that failed and *detail (malloc'ed,
 * or NULL) saying how, in fusermount3's or fuse-overlayfs's words;
 * nothing is left mounted or running then. */
errint_t fuseovl_mount(const char *lower, const char *upper, const char *work, const char *target,
		       struct fuseovl_root *r, const char **what, char **detail);

/* Detaches the root on `target` (fusermount3 -u -z, in a child). Returns
 * 0 or -errno. */
errint_t fuseovl_detach(const char *target);

/* Reaps `r`'s process if it has exited, waiting up to `ms` for it. True
 * when it is reaped (its pidfd is closed then). */
bool fuseovl_reap(struct fuseovl_root *r, int ms);

#endif
