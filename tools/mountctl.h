/* mountctl: bundlectl's commands that talk to a running mount through its
 * control socket (see fs/control.h): status, reload, reset and prune. Each
 * fails, with exit status 1, when the daemon does not answer within
 * `timeout_ms`. */
#ifndef BUNDLEFS_MOUNTCTL_H
#define BUNDLEFS_MOUNTCTL_H

#include <stdbool.h>

/* `bundlectl status [--json] MOUNTPOINT`. Returns the exit status. */
int mountctl_status(const char *mountpoint, bool json, int timeout_ms);
/* `bundlectl reload MOUNTPOINT`: 0 when the spec was reloaded, 2 when it
 * has problems (printed as FILE:LINE: message), 1 on other failures. */
int mountctl_reload(const char *mountpoint, int timeout_ms);
/* `bundlectl reset MOUNTPOINT NAME`: 0 when bundle NAME starts from a
 * clean root, 2 when the spec has no such bundle or it is read-only, 1 on
 * other failures. */
int mountctl_reset(const char *mountpoint, const char *name, int timeout_ms);
/* `bundlectl prune [--dry-run] MOUNTPOINT`: the daemon removes the state
 * no bundle of its spec uses. Returns the exit status. */
int mountctl_prune(const char *mountpoint, bool dry_run, int timeout_ms);
/* `bundlectl prune [--dry-run] --state-dir DIR`: every mount point's state
 * in DIR; a live mount's daemon prunes its own, the state of mount points
 * nothing serves goes unless a mount uses it. */
int mountctl_prune_dir(const char *state_dir, bool dry_run, int timeout_ms);

#endif
