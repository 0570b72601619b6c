/* control: the daemon's control socket, which `bundlectl status` and
 * `bundlectl reload` talk to.
 *
 * An abstract Unix socket named after the mount's FUSE device
 * ("bundlefs/MAJOR:MINOR", see mounts.h), so that it needs no directory
 * and disappears with the daemon. A client sends one line, "status" or
 * "reload", and reads one JSON document back. Anyone may ask for the
 * status (the mount's contents are readable by all anyway); a reload is
 * done only for root and for the daemon's own user (SO_PEERCRED). */
#ifndef BUNDLEFS_CONTROL_H
#define BUNDLEFS_CONTROL_H

#include "bfs.h"

/* Binds the socket and serves it from a thread of its own. Returns 0 or
 * -errno. */
errint_t control_start(struct bfs *fs);

/* The status document (malloc'ed JSON). */
char *control_status(struct bfs *fs);

#endif
