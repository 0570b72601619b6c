/* tree: the virtual tree a mount serves, and its one owner.
 *
 *   MOUNTPOINT/                 NK_ROOT     lists the bundles' names
 *     NAME -> .bundlefs/7       NK_LINK     the bundle's current version
 *     .bundlefs/                NK_VERSIONS the versions (found, not listed)
 *       7/                      NK_BUNDLE   one version of one bundle
 *         config.json           NK_CONFIG   rendered on first access
 *         rootfs/               NK_VDIR     the layout's root
 *           dev/ proc/ sys/ ... NK_VDIR     layout directories
 *           etc/passwd          NK_VFILE    layout files (and file mount points)
 *           nix/store/          NK_VDIR     is_store: its entries are the closure
 *             <hash>-<name>/    NK_BDIR     a store path's directory
 *               bin/app         NK_BFILE    a store file or symlink (shared)
 *
 * Which names exist in a directory, what their attributes are, what a
 * listing holds and where a file's bytes come from are decided here, by
 * one table of operations per kind; the FUSE handlers only ask. A new kind
 * of entry is a new row in that table. */
#ifndef BUNDLEFS_TREE_H
#define BUNDLEFS_TREE_H

#include "nodes.h"
#include "spec.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>

struct bfs;

enum node_kind {
	NK_ROOT,
	NK_LINK,
	NK_VERSIONS,
	NK_BUNDLE,
	NK_CONFIG,
	NK_VDIR,
	NK_BDIR,
	NK_BFILE,
	NK_DEAD,  /* restored by a successor, but no longer there */
	NK_VFILE, /* (the values are in the state region: new kinds go last) */
	NK_COUNT
};

/* A node that answers nothing but ESTALE. */
static inline bool tree_is_dead(const struct node *n)
{
	return n->kind == NK_DEAD;
}

/* The directory of bundle versions, a name no bundle may have. */
#define VERSIONS_DIR SPEC_RESERVED_NAME

/* A directory being read. A backing directory is read through a stream
 * of its own, and the offsets a reader resumes at are the backing
 * filesystem's (its d_off cookies): a read costs what it returns, however
 * large the directory, and nothing is copied. A virtual directory needs no
 * stream; its offsets are indexes. */
struct dirstream {
	DIR *dir; /* NULL for virtual directories */
	off_t at; /* the offset of the entry the stream reads next */
	/* An entry read but not taken (the reader was full): handed out
	 * first when the next read starts at its offset, so that a reader
	 * going on where it stopped costs no seek. */
	bool pending;
	char *pname;
	unsigned char ptype;
	off_t pat, pnext;
};

/* Called for each entry read, "." and ".." included: its name, its type
 * (DT_*), the offset of the entry after it, and a descriptor of the
 * directory to look names up relative to (or -1). Returns false to stop
 * (the reader is full); that entry is read again at its own offset. */
typedef bool tree_emit_fn(void *ctx, const char *name, unsigned char type, off_t next, int dirfd);

/* Where a file's bytes come from: a backing descriptor, or memory that
 * lives as long as the node's bundle. */
struct content {
	int fd; /* >= 0: read from it; else data/len */
	const char *data;
	size_t len;
};

/* Creates the root node and the tree's cache of at most `dirpaths`
 * directory descriptors (for lookups). */
void tree_init(struct bfs *fs, unsigned dirpaths);
void tree_fini(struct bfs *fs);
/* Closes the cached descriptors not in use. */
void tree_trim(struct bfs *fs);

/* A lookup or listing in `dir` and its reply are consistent with the set
 * of bundles: a reload, which changes the root's children, waits for
 * those in the root to end (tree_enter returns whether it had to lock). */
bool tree_enter(struct bfs *fs, const struct node *dir);
void tree_leave(struct bfs *fs, bool entered);

/* After a reload replaced the set `old` by fs->bundles (with the write
 * lock held): every name added, removed or given another bundle is made
 * to be looked up anew. Returns those names (malloc'ed), whose entries the
 * kernel must forget once the lock is released. */
struct bundles;
size_t tree_reloaded(struct bfs *fs, const struct bundles *old, struct node *root, char ***names);

/* A successor restores node `j` (state.h) the way it was made: found
 * again under its parent by its name (or, shared, by its path below the
 * store), with the id, generation and lookups it had; one that cannot be
 * found again is restored dead. */
struct jnode;
void tree_restore_node(struct bfs *fs, const struct jnode *j);

/* What a lookup of a closure's store path that is not here yet returns
 * (closure.h, realise.h): realise it, then look it up again. */
#define TREE_NOT_LOCAL (-EREMOTE)

/* Looks `name` up in directory `dir` and takes a lookup on the node found.
 * `dirfd`, when >= 0, is a descriptor of dir's backing directory to look
 * up relative to. Returns 0 with *out set, -ENOENT for a name that does not
 * exist (the kernel may cache that), TREE_NOT_LOCAL, or another -errno. */
errint_t tree_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
		     struct node **out);

/* Opens directory `dir` for reading into `ds`; tree_closedir closes it. */
errint_t tree_opendir(struct bfs *fs, struct node *dir, struct dirstream *ds);
void tree_closedir(struct dirstream *ds);

/* Reads `dir` through `ds` from offset `off` (0: the start). Reads of one
 * stream must not overlap. Returns 0 or -errno. */
errint_t tree_readdir(struct bfs *fs, struct node *dir, struct dirstream *ds, off_t off,
		      tree_emit_fn *emit, void *ctx);

/* Whether `n` is a regular file of the store (whose bytes tree_open opens
 * as a descriptor of that file), not one bundlefs makes up. */
bool tree_is_store_file(const struct node *n);
/* Whether store file `n`'s path still names the very inode it was looked
 * up as (device and inode number; not an equal replacement, unlike
 * tree_open). Returns 0, -ESTALE when another entry is there, or -errno
 * (-ENOENT when none is). */
errint_t tree_is_there(struct bfs *fs, const struct node *n);

/* Opens the bytes of regular file `n`. Returns 0 or -errno. */
errint_t tree_open(struct bfs *fs, struct node *n, struct content *c);

/* An O_PATH descriptor of backing directory `n`, for lookups in it.
 * Returns the fd or -errno. */
errint_t tree_open_dirpath(struct bfs *fs, struct node *n);

/* The target of symlink `n`. Returns its length or -errno. */
ssize_t tree_readlink(struct bfs *fs, struct node *n, char *buf, size_t size);

#endif
