/* watchdog: takes the mount down if the daemon dies.
 *
 * A small child process waits on a pipe that only the daemon holds open.
 * When the pipe closes and the daemon's mount (recognised by its mount id)
 * is still in place, the daemon died without unmounting: the watchdog
 * detaches the mount so that it does not stay wedged. (libfuse's
 * auto_unmount cannot be used: its helper probes the mount by opening it,
 * which a mount that opens directories without asking the daemon
 * answers from cache even after the daemon is gone.) */
#ifndef BUNDLEFS_WATCHDOG_H
#define BUNDLEFS_WATCHDOG_H

/* Starts the watchdog for the mount at `mnt` (absolute); `keep_fd` is
 * closed in the child. Returns 0 or -errno. */
int watchdog_start(const char *mnt);

#endif
