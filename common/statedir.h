/* statedir: the layout of the state directory (--state-dir), where the
 * writable roots of readonly = false bundles keep what containers wrote.
 * The daemon writes it (fs/overlay.c); `bundlectl prune` cleans it.
 *
 *   STATE_DIR/<mount point, escaped>/<bundle name>/upper     generation 0
 *                                                 /work
 *                                                 /upper.1   after a reset
 *                                                 /work.1
 *
 * A bundle's writable root uses its highest generation. `bundlectl reset`
 * starts the next one instead of emptying the upper directory under a
 * running container: an overlay keeps the generation it was mounted with,
 * and a generation goes once no mount uses it (mounts_overlay_in_use).
 *
 *   STATE_DIR/@images/KEY.erofs    closures' metadata images (fs/image.h),
 *                                  shared by every mount point ('@' is in
 *                                  no name of a mount point's state)
 *
 * Mount points are escaped into one file name: '/' becomes '-', and every
 * byte but letters, digits, '.' and '_' is written %XX ("/mnt/bundles" is
 * "mnt-bundles", "/" is "-"), so no two mount points share a directory
 * and the name can be read back. */
#ifndef BUNDLEFS_STATEDIR_H
#define BUNDLEFS_STATEDIR_H

#include "util.h"

#include <stdbool.h>
#include <stdint.h>

/* `path` (absolute) escaped into one file name (malloc'ed). */
char *statedir_escape(const char *path);
/* The absolute path an escaped name stands for (malloc'ed), or NULL when
 * `name` is not one statedir_escape makes. */
char *statedir_unescape(const char *name);

/* STATE_DIR/<mount point>/<name> (malloc'ed). */
char *statedir_bundle(const char *state_dir, const char *mountpoint, const char *name);

/* The generations a bundle's directory holds, ascending, in *gens
 * (malloc'ed). Returns how many (0 when the directory is not there). */
size_t statedir_generations(const char *bundle_dir, unsigned **gens);
/* Its highest generation, or -1 when it has none. */
long statedir_current(const char *bundle_dir);
/* The upper and work directories of a generation (malloc'ed). */
char *statedir_upper(const char *bundle_dir, unsigned gen);
char *statedir_work(const char *bundle_dir, unsigned gen);
/* Makes a generation's directories (and the ones above). Returns 0 or
 * -errno. */
errint_t statedir_make(const char *bundle_dir, unsigned gen);
/* Removes a generation's directories. Returns 0 or -errno. */
errint_t statedir_remove(const char *bundle_dir, unsigned gen);
/* Removes a directory tree (without following symlinks or crossing into
 * mounts). Returns 0 (also when it is not there) or -errno. */
errint_t statedir_remove_tree(const char *path);
/* The bytes a directory tree takes on disk (not crossing mounts). */
uint64_t statedir_bytes(const char *path);

/* The directory of the closures' metadata images (malloc'ed). */
char *statedir_images(const char *state_dir);

/* What prune finds in a bundle's directory, one call per generation: its
 * upper directory, its size, and whether it stays (the current one of a
 * bundle the spec has, or one a mount uses) and why. */
typedef void statedir_report_fn(void *ctx, const char *upper, uint64_t bytes, const char *kept);

/* Removes every generation of `bundle_dir` that no overlay outside
 * `except` uses (mounts_overlay_in_use), but its current one when
 * `keep_current`, then the directory if it is left empty. With `dry_run`
 * only reports. Returns 0, or -errno of the first removal that failed. */
errint_t statedir_prune(const char *bundle_dir, bool keep_current, bool dry_run, const char *except,
			statedir_report_fn *report, void *ctx);

/* Removes the images of STATE_DIR that no mount uses (an image is mounted
 * while a root made from it is; one not mounted is made again in
 * milliseconds when it is needed), reporting each as prune does. Returns
 * 0 or -errno of the first removal that failed. */
errint_t statedir_prune_images(const char *state_dir, bool dry_run, statedir_report_fn *report,
			       void *ctx);

#endif
