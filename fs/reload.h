/* reload: reads the spec again and replaces the set of bundles, all or
 * nothing.
 *
 * A spec with any problem changes nothing: the problems are logged (and
 * kept for `bundlectl reload`), and the mount goes on serving what it
 * served. Otherwise bundles the new spec asks for unchanged keep their
 * state (no cache dropped, no closure resolved again); bundles added,
 * removed or changed are the only names the kernel is told to forget.
 * Containers running from a removed or changed bundle keep the tree they
 * have (see bundle.h). Triggered by SIGHUP, by `bundlectl reload` (the
 * control socket) and, with -o watch, by the spec changing (specwatch.h). */
#ifndef BUNDLEFS_RELOAD_H
#define BUNDLEFS_RELOAD_H

#include "bfs.h"

/* Starts the thread that lets the kernel forget retired versions. Returns
 * 0 or -errno. */
errint_t reload_start(struct bfs *fs);
void reload_stop(struct bfs *fs);

/* Is version `serial` of a bundle (MOUNTPOINT/.bundlefs/SERIAL) in use:
 * has any mount namespace in `all` a mount of this filesystem whose root
 * is in it (a container's root, on a read-only bundle)? With `or_below`,
 * also anything mounted on or below its directory, which the kernel
 * forgetting the directory would detach. */
bool reload_version_in_use(struct bfs *fs, const struct mounts_all *all, uint64_t serial,
			   bool or_below);

/* Reloads; fills *out (out->problems malloc'ed, or NULL). Returns 0 or
 * -EINVAL when the spec has problems. */
errint_t reload_run(struct bfs *fs, struct reload_result *out);

#endif
