/* passthrough: FUSE passthrough of store files (kernel 6.9+, libfuse
 * 3.16+).
 *
 * A store file opened through the mount is answered with a backing id: the
 * kernel then reads, maps and reads ahead the store file itself, with no
 * READ request and with one page cache (the store file's), as if the
 * container had opened the store file. The daemon only answers the OPEN.
 *
 * Registering a backing file costs an open(2) and an ioctl, so ids are
 * kept and reused: one per store file (by device and inode, so the same
 * library in a hundred bundles is one id). An id is never given back while
 * a file opened with it is open: the kernel keeps the backing file of an
 * open inode and refuses another open of that inode with another id, even
 * for the same file. So each slot counts its opens (OPEN up, RELEASE down;
 * the handle says which slot). Across a takeover a count may only err
 * upwards: a RELEASE the kernel sends again is not counted (the daemon
 * that died may have counted it; devio_resent), an OPEN sent again is
 * counted twice, and such an id stays until the mount ends. Of the ids
 * with no open file, the `idle`
 * most recently used are kept (a clock); the others are given back, so
 * that the daemon pins few store files nobody has open (a file deleted
 * from the store frees its space once it is let go).
 *
 * An id keeps the file it was registered with: a store file replaced
 * under its name (which Nix never does) is read as it was by the inode
 * that had it, never as the new file, until the id is let go.
 *
 * The table is written to the state region (state.h), so that a successor
 * adopts the ids and the counts instead of leaking the ids on the
 * connection and refusing opens of files open across the change: a
 * slot's id is cleared before its file changes and set after, so a
 * successor never reads a torn slot.
 *
 * Ids belong to the FUSE connection; the daemon never gives them back when
 * it stops (a successor may adopt them; the kernel drops them with the
 * connection). */
#ifndef BUNDLEFS_PASSTHROUGH_H
#define BUNDLEFS_PASSTHROUGH_H

#include "util.h"

#include <stdbool.h>
#include <stdint.h>

/* Whether this build can ask for passthrough (its libfuse has it), and
 * whether this process may register backing files (CAP_SYS_ADMIN). */
bool passthrough_built(void);
bool passthrough_permitted(void);

/* One slot of the table, as kept in the state region. */
struct pt_slot {
	_Atomic int32_t id;	/* 0: empty */
	_Atomic uint32_t opens; /* files open with it */
	uint64_t bdev, bino;
};

struct passthrough;

/* A table of `n` slots kept in `slots` (the state region's, or NULL for
 * memory of its own), registering files on the FUSE device `devfd`,
 * keeping at most `idle` ids with no open file. */
struct passthrough *passthrough_new(int devfd, struct pt_slot *slots, unsigned n, unsigned idle);
void passthrough_free(struct passthrough *p);

/* Takes over the ids a predecessor left in the slots. Call it before the
 * first passthrough_open, once the predecessor no longer writes them. */
void passthrough_adopt(struct passthrough *p);

/* How passthrough_open reaches the node's file: `open_file` returns a
 * descriptor of it (or -errno); `is_there` says whether the node's path
 * still names the inode (bdev, bino) (0, or -errno: -ESTALE when another
 * inode is there). */
struct pt_file {
	int (*open_file)(void *ctx);
	int (*is_there)(void *ctx);
	void *ctx;
};

/* Opens the file (bdev, bino) for passthrough: its backing id, registered
 * on a miss from the descriptor f->open_file returns, which is closed
 * after; -ESTALE when that descriptor is not of the file (bdev, bino).
 *
 * An id found under (bdev, bino) is given only once f->is_there says the
 * node's path still holds that inode: an inode number is reused once its
 * file is gone (deleted by a garbage collection, replaced by `nix-store
 * --optimise`), and a node the kernel still holds for the old file would
 * otherwise be given the id another node registered for the new one, in
 * another bundle's store path. While the path holds a live inode of that
 * number, no other file has it, so the id's file is that inode.
 *
 * Returns the id (> 0) and the open's handle in *fh, or -errno (then read
 * the file through the daemon). */
int32_t passthrough_open(struct passthrough *p, uint64_t bdev, uint64_t bino,
			 const struct pt_file *f, uint64_t *fh);
/* Handles of passthrough opens: the top bit (handles.c never sets it) and
 * the slot. */
#define PASSTHROUGH_FH ((uint64_t)1 << 63)

static inline bool passthrough_is_handle(uint64_t fh)
{
	return fh & PASSTHROUGH_FH;
}

/* Ends an open passthrough_open made (`fh` is its handle). */
void passthrough_release(struct passthrough *p, uint64_t fh);

struct passthrough_stats {
	uint64_t ids;	     /* registered now */
	uint64_t opens;	     /* OPENs answered with an id */
	uint64_t registered; /* ids made (misses) */
	uint64_t failed;     /* files that could not be passed through */
};
void passthrough_stats(struct passthrough *p, struct passthrough_stats *out);

#endif
