/* specwatch: --watch, a reload whenever what the spec path leads to
 * changes: the spec file written or replaced (an editor's save renames a
 * new file over it), or any symlink on the way repointed (the `result`
 * link that `nix-build -o result` replaces, a profile's two levels of
 * links, a symlinked directory). The path is walked as the kernel walks
 * it (fsguard.h); after each change the walk may lead elsewhere, and the
 * watches follow it. */
#ifndef BUNDLEFS_SPECWATCH_H
#define BUNDLEFS_SPECWATCH_H

#include "bfs.h"

#include <pthread.h>
#include <time.h>

/* Starts watching fs->spec_path, from a thread of its own, `*thread`,
 * which ends once fs->quit is written. Returns 0 or -errno. */
errint_t specwatch_start(struct bfs *fs, pthread_t *thread);

/* Has anything on the way to the spec (a symlink, the file) changed at
 * or after `t`? (A successor asks, for what changed while no daemon
 * watched; a link's time is when it was made.) */
bool specwatch_changed_since(const struct bfs *fs, const struct timespec *t);

#endif
