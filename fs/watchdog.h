/* watchdog: takes the mount down if the daemon dies, and unmounting in
 * general: always the daemon's own mount, never one stacked on it.
 *
 * A small child process, in a session of its own, waits on a pipe that
 * only the daemon and its supervisor (supervisor.h) hold open. When the pipe closes and the
 * daemon's mount (recognised by its mount id) is still in place, the daemon died without
 * unmounting: the watchdog detaches the mount so that it does not stay
 * wedged. (libfuse's auto_unmount cannot be used: its helper probes the
 * mount by opening it, which a mount that opens directories without asking
 * the daemon answers from cache even after the daemon is gone.) */
#ifndef BUNDLEFS_WATCHDOG_H
#define BUNDLEFS_WATCHDOG_H

#include "mounts.h"

#include <stdbool.h>
#include <stdint.h>

/* Detaches the mount `id` at `mnt`, or where it is now if a directory
 * above was renamed (lazily: what is open stays usable), if it is the
 * topmost mount there: umount2 acts on the topmost,
 * and a mount stacked on ours is not ours to remove. Returns 0, -EBUSY
 * when another mount covers ours, -ENOENT when ours is gone, or -errno. */
int unmount_detach(const char *mnt, const struct mountid *id);
/* Is mount `id` (mounted at `mnt`) there but covered by another mount? */
bool unmount_covered(const char *mnt, const struct mountid *id);

/* Starts the watchdog for the mount `id` at `mnt`, whose writable roots
 * are mounted in `area` (overlay.h); *wfd is the pipe's write end, held by
 * the daemon and by its supervisor (the watchdog acts when every holder is
 * gone). Returns 0 or -errno. */
int watchdog_start(const char *mnt, const struct mountid *id, const char *area, int *wfd);

#endif
