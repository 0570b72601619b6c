/* mounts: what /proc/self/mountinfo (and every mount namespace's) says,
 * read without touching the mounts themselves (a bundlefs mount whose daemon is gone must not make
 * its reader wait). */
#ifndef BUNDLEFS_MOUNTS_H
#define BUNDLEFS_MOUNTS_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mountent {
	uint64_t id, parent;
	unsigned major, minor;
	char point[4096]; /* as mountinfo writes it (octal escapes decoded) */
	char fstype[64];
	uid_t owner; /* a FUSE mount's user_id (its daemon's uid), else (uid_t)-1 */
};

/* Calls fn for every mount, in mountinfo order (a mount stacked on the
 * same point comes after the one below it), until fn returns false.
 * Returns 0, or -errno when mountinfo cannot be read. */
int mounts_each(bool (*fn)(void *ctx, const struct mountent *m), void *ctx);

/* The topmost mount at `point` (an absolute path): 1 with *m filled, 0
 * when nothing is mounted there, -errno. */
int mounts_at(const char *point, struct mountent *m);

/* A mount as a daemon knows its own: its id, and its device (an id alone
 * is reused once the mount is gone, and so is a device: a new mount made
 * as the old one goes may get both), and the kernel's unique id for it,
 * which is never reused (0 where the kernel has none: before 6.8). */
struct mountid {
	uint64_t id;
	unsigned major, minor;
	uint64_t unique;
};

/* The unique id (STATX_MNT_ID_UNIQUE) of the topmost mount at `point`, or
 * 0. Asks no filesystem anything (AT_STATX_DONT_SYNC: a FUSE mount whose
 * daemon is gone or busy answers from its cache). */
uint64_t mounts_unique_id(const char *point);

/* Is the mount at `point` (found there by id and device) the very mount
 * `id`, as far as the kernel can tell? */
bool mounts_same(const struct mountid *id, const char *point);

/* Is `path` `top` or below it (lexically)? */
bool mounts_path_under(const char *path, const char *top);

/* Finds the bundlefs mount `id` (same id, same device, a bundlefs mount)
 * into *m. Returns 1, 0 when it is gone, or -errno. */
int mounts_find(const struct mountid *id, struct mountent *m);

/* Is this mount a bundlefs mount? */
bool mounts_is_bundlefs(const struct mountent *m);

/* Every mount of every mount namespace on the machine, as one process of
 * each namespace shows it (/proc/PID/mountinfo): read once, then asked
 * about many things. Namespaces of processes this one may not look into
 * are not in it. */
struct mounts_all {
	struct mounts_all_ent {
		unsigned major, minor; /* the filesystem's device */
		const char *root;      /* the mount's root in the filesystem */
		const char *point;     /* where it is mounted, in its namespace */
		const char *upper;     /* an overlayfs's (or a fuse-overlayfs root's) upper
					  directory, or NULL */
		const char *image;     /* an EROFS mount's image file, or NULL */
	} * v;
	size_t n, cap;
	struct arena names;
};
/* Returns 0, or -errno when /proc cannot be read. */
int mounts_all_read(struct mounts_all *all);
void mounts_all_free(struct mounts_all *all);
/* Is there a mount of the filesystem major:minor whose root is `root` or
 * below it (a bind mount of that directory, as a container's root is),
 * or (`point` not NULL) any mount on `point` or below it? */
bool mounts_all_under(const struct mounts_all *all, unsigned major, unsigned minor,
		      const char *root, const char *point);
/* Is there a mount of the filesystem major:minor anywhere but on `point`
 * (a container's root, where the filesystem is mounted on `point`)? */
bool mounts_all_elsewhere(const struct mounts_all *all, unsigned major, unsigned minor,
			  const char *point);

/* Is there an overlayfs (or a fuse-overlayfs root) with `upper` as its
 * upper directory, mounted outside `except` (NULL: anywhere)? A
 * container's root is such a mount (at "/" in its namespace); the copies
 * of a daemon's own writable roots, which sit below its runtime directory
 * in every namespace that takes mounts from it, are left out by naming
 * that directory. */
bool mounts_all_overlay(const struct mounts_all *all, const char *upper, const char *except);

/* Is the EROFS image file `image` mounted anywhere? */
bool mounts_all_image(const struct mounts_all *all, const char *image);

/* mounts_all_overlay, from a fresh look at every namespace; true when
 * /proc cannot be read (cannot tell: in use). */
bool mounts_overlay_in_use(const char *upper, const char *except);

/* mounts_all_under, from a fresh look at every namespace; true when
 * /proc cannot be read (cannot tell: in use). */
bool mounts_any_under(unsigned major, unsigned minor, const char *root, const char *point);

/* `path` made absolute (against the working directory) and normalised
 * (no ".", "..", "//"), without looking at the filesystem. Returns a
 * malloc'ed string. */
char *mounts_abspath(const char *path);

#endif
