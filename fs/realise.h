/* realise: store paths a served closure lists but the machine does not
 * have yet (closure.h, "absent"), brought in through Nix.
 *
 * A lookup of an absent path waits (its reply deferred, no worker thread
 * held) while `nix-store --realise` fetches it from the substituters, in a
 * child process: Nix checks signatures and hashes, writes the store and
 * registers the path, and, its invariant, the path's references first.
 * A first rootfs lookup that resolves a closure from the caches is run on
 * a realiser thread too (realise_call), so no FUSE worker waits on the
 * network.
 * Concurrent first uses of one path wait on one realisation. A path that
 * cannot be realised answers EIO, with one log line, and is not tried
 * again for REALISE_RETRY_SECS; the rest of the bundle keeps working.
 * A cache that hangs fails it after --stall-timeout (given to nix-store);
 * a lookup whose caller gets a signal meanwhile is answered at once
 * (defer.h), and its realisation goes on.
 *
 * Early: when a bundle is first used (its config.json or rootfs looked
 * up), the store paths its args name (the command) that are not in the
 * store start being realised at once, while the closure is resolved and the
 * runtime sets the container up; a lookup then joins the realisation.
 * (A failure of such a start is not reported until a lookup asks.)
 *
 * Prefetch: once a bundle is first used, its other absent paths are
 * queued and realised in the background, at most --prefetch at a time,
 * and only while no lookup is waiting for a realisation, once
 * REALISE_QUIET_MS have passed since the first use and since the last
 * realisation a lookup waited for: a starting container, whose first
 * uses come in bursts, goes first. */
#ifndef BUNDLEFS_REALISE_H
#define BUNDLEFS_REALISE_H

#include "closure.h"
#include "util.h"

#include <stdint.h>

#define REALISE_RETRY_SECS 30
#define REALISE_QUIET_MS   1000
#define REALISE_DEMAND_MAX 4 /* realisations for lookups at once */
#define REALISE_CALLS	   2 /* threads left for realise_call meanwhile */

struct bfs;
struct bstate;

/* Sets up (threads start on first use); stop ends the realisations
 * running (SIGTERM to nix-store) and drops the lookups waiting, which the
 * kernel sends again to a successor. */
/* `extra` (or NULL) is the caches given on the command line, which
 * nix-store gets as extra-substituters; Nix's own settings apply to it
 * as they are, but for `stall` (--stall-timeout, seconds; 0: Nix's own),
 * which bounds how long its downloads may receive nothing and its
 * connections take to be accepted. */
errint_t realiser_start(struct bfs *fs, unsigned prefetch, const char *extra, unsigned stall);
void realiser_stop(struct bfs *fs);
/* The mount is going away (SIGTERM): nothing more is fetched or
 * realised, and lookups waiting for that are answered EIO now. */
void realiser_quiesce(struct bfs *fs);

/* Calls done(ctx, e) once `base` is in the store (e = 0) or cannot be
 * (-EIO): at once when that is known, else from a realiser thread. When
 * the daemon stops, e is -ECANCELED: drop the request, do not answer. */
void realise_demand(struct bfs *fs, const char *base, void (*done)(void *ctx, errint_t e),
		    void *ctx);
/* Starts realising the store paths that bundle b's args name (its
 * command), where they are not in the store: see "Early" above. */
void realise_early(struct bfs *fs, struct bstate *b);
/* Queues the absent paths of bundle b's closure for the background. */
void realise_prefetch(struct bfs *fs, struct bstate *b);

/* Is `base` here and valid (realised, or valid in Nix's database)? */
bool realise_is_local(struct bfs *fs, const char *base);

/* Is every path of bundle b's (resolved) closure here and valid? */
bool realise_all_local(struct bfs *fs, struct bstate *b);

/* Runs fn(ctx) on a realiser thread: for a request whose answer may wait
 * on the network (a closure resolved from binary caches), so that no FUSE
 * worker waits with it. */
void realise_call(struct bfs *fs, void (*fn)(void *ctx), void *ctx);
/* Are the store paths bundle b's args and `paths` name all in the store?
 * (Then resolving its closure asks no cache, unless a closure file lists
 * more that are not.) */
bool realise_roots_here(struct bfs *fs, struct bstate *b);

/* Of closure c's paths: how many are local, being realised, missing. */
void realise_count(struct bfs *fs, const struct closure *c, size_t *local, size_t *inflight,
		   size_t *missing);

struct realise_stats {
	uint64_t realised, failed; /* realisations run, by outcome */
	unsigned running, queued;
	unsigned prefetch;
};
void realise_stats(struct bfs *fs, struct realise_stats *out);

#endif
