/* mountctl: bundlectl's commands that talk to a running mount through its
 * control socket (see fs/control.h): status, reload and reset. */
#ifndef BUNDLEFS_MOUNTCTL_H
#define BUNDLEFS_MOUNTCTL_H

#include <stdbool.h>

/* `bundlectl status [--json] MOUNTPOINT`. Returns the exit status. */
int mountctl_status(const char *mountpoint, bool json);
/* `bundlectl reload MOUNTPOINT`: 0 when the spec was reloaded, 2 when it
 * has problems (printed as FILE:LINE: message), 1 on other failures. */
int mountctl_reload(const char *mountpoint);
/* `bundlectl reset MOUNTPOINT NAME`: 0 when bundle NAME's writes are
 * discarded, 1 otherwise. */
int mountctl_reset(const char *mountpoint, const char *name);

#endif
