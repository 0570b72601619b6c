/* state: what a successor needs to go on serving the mount a daemon
 * served, kept where it outlives the daemon.
 *
 * A memfd, shared by the daemon and its supervisor (supervisor.h), holds:
 *   - the kernel's INIT request and the daemon's reply, so that a
 *     successor can make libfuse accept the connection as it is;
 *   - the mount (id, device, mount point) and the daemon's arguments;
 *   - the bundles (every live version with its spec, and which version
 *     each name points to: a line of JSON, then the bytes of the specs
 *     they were read from; see bundle.c), rewritten at start and before
 *     each reload takes effect;
 *   - a journal of the node table: every node made, every lookup taken or
 *     given back, written under the table's lock before the kernel hears
 *     of the node, so that the kernel never holds an id the journal does
 *     not know. When the half being written reaches three times the
 *     last snapshot (4 MiB at least), a snapshot of the live nodes is
 *     written to the other half, the halves swap, and the old half's
 *     pages are given back;
 *   - the backing ids registered for passthrough (passthrough.h).
 *
 * Writing costs a memcpy; nothing is sent anywhere. A successor maps the
 * memfd, checks its format (STATE_FORMAT; another one is refused), and
 * replays the journal into the nodes alive at its end.
 *
 * The region is sparse: only what has been written takes memory. */
#ifndef BUNDLEFS_STATE_H
#define BUNDLEFS_STATE_H

#include "nodes.h"
#include "passthrough.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bumped whenever what is written here changes meaning. (A build may
 * set another, to test that upgrades across formats are refused.) */
#ifdef BUNDLEFS_STATE_FORMAT
#define STATE_FORMAT BUNDLEFS_STATE_FORMAT
#else
#define STATE_FORMAT 3
#endif

struct state;

/* A new, empty region. Returns 0 or -errno. */
errint_t state_create(struct state **out);
/* Maps the region in `fd` (taken over). Returns 0, -EPROTO when it is not
 * a state region of STATE_FORMAT (*format then says which), or -errno. */
errint_t state_open(int fd, struct state **out, uint32_t *format);
void state_close(struct state *s);
int state_fd(const struct state *s);
/* The format a region was written in, and the mount point it is for,
 * without mapping it (nor allocating: safe after fork). */
errint_t state_peek_format(int fd, uint32_t *format);
void state_peek_mountpoint(int fd, char *buf, size_t size);

/* The kernel's INIT request (fuse_init_in) and the reply sent. */
void state_set_init(struct state *s, const void *in, size_t inlen, const void *out, size_t outlen);
bool state_init(const struct state *s, const void **in, size_t *inlen, const void **out,
		size_t *outlen);

/* The passthrough table's slots: STATE_PT_SLOTS of them. */
#define STATE_PT_SLOTS 16384u
struct pt_slot *state_passthrough(struct state *s);

/* The mount, and the arguments the daemon was started with. */
struct mountid;
struct mount_paths {
	const char *mountpoint, *spec, *gcroots; /* absolute; gcroots may be NULL */
};
void state_set_mount(struct state *s, const struct mountid *id, const struct mount_paths *p);
void state_mount(const struct state *s, struct mountid *id, struct mount_paths *p);
/* `cwd`: the directory relative arguments are relative to. */
void state_set_args(struct state *s, int argc, char **argv, const char *cwd);
/* The arguments (argv[argc] is NULL), in malloc'ed memory (*argv, one
 * block), and their directory. */
int state_args(const struct state *s, char ***argv, const char **cwd);

/* When the mount was made (state_set_mount), and how many daemons took it
 * over since: after one died, and by live upgrades. */
struct state_history {
	double mounted;
	uint32_t failovers, upgrades;
};
void state_history(const struct state *s, struct state_history *out);
void state_count_takeover(struct state *s, bool upgrade);

/* The bundles document, from its pieces. */
struct iovec;
void state_set_bundles(struct state *s, const struct iovec *iov, size_t n);
/* Writes it for `current` as the set served (bundles_document): at start,
 * and by a reload before the set it installs is served. At start it is
 * written before the supervisor is handed the connection (main.c): a daemon that dies
 * before it is written has no successor, and its mount goes as it would
 * without failover; a successor never finds the region without it. It
 * costs about what copying the spec does (a line of JSON and the spec's
 * own bytes, written through the memfd), so serving waits for little. */
struct bundle_env;
struct bundles;
void state_save_bundles(struct state *s, const struct bundle_env *env,
			const struct bundles *current, uint64_t generation, double loaded);
const char *state_bundles(const struct state *s, size_t *len);

/* The journal, as the node table sees it (nodes.h). */
void state_journal(struct state *s, struct nodes_journal *j);

/* A node alive at the end of the journal. */
struct jnode {
	node_id id, parent; /* parent: 0 for shared nodes */
	uint32_t gen;
	uint32_t mode; /* its type, for one that cannot be found again */
	uint8_t kind;  /* the tree's, opaque here */
	bool shared;   /* name is the backing path, not a name in parent */
	uint64_t nlookup;
	uint64_t serial;     /* its bundle's, or 0 */
	uint64_t bdev, bino; /* a backing entry's identity, or 0 */
	const char *name;
};

/* Calls fn for every node alive at the end of the journal, each parent
 * before its children; and returns the highest generation written. */
errint_t state_replay(const struct state *s, void (*fn)(void *ctx, const struct jnode *n),
		      void *ctx, uint32_t *max_gen);

#endif
