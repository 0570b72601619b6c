/* takeover: a daemon that takes a live connection over, instead of
 * mounting.
 *
 *   bundlefs --successor            started by the supervisor when the
 *                                   daemon died (its descriptors at
 *                                   SUPER_FD_*): requests the dead daemon
 *                                   had read are sent again by the kernel
 *   bundlefs --takeover MOUNTPOINT  a live upgrade: the running daemon
 *                                   hands over (control.c) and leaves
 *
 * Either way the new daemon maps the state region (refusing a format it
 * does not read, in which case the old daemon serves on), makes libfuse
 * accept the connection (devio_inject_init: the reply must be the one the
 * kernel got), restores the bundles and every node the kernel holds, with
 * the same ids and generations (state.h), and serves. Nothing is
 * unmounted; readers see a pause. */
#ifndef BUNDLEFS_TAKEOVER_H
#define BUNDLEFS_TAKEOVER_H

/* Entries, from main. Return the exit status. */
int takeover_successor(void);
int takeover_upgrade(const char *mountpoint);

#endif
