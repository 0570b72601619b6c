/* tree: the virtual tree a mount serves, and its one owner.
 *
 *   MOUNTPOINT/                 NK_ROOT    lists the bundles
 *     NAME/                     NK_BUNDLE
 *       config.json             NK_CONFIG  rendered on first access
 *       rootfs/                 NK_VDIR    the layout's root
 *         dev/ proc/ sys/ ...   NK_VDIR    layout directories
 *         nix/store/            NK_VDIR    is_store: its entries are the closure
 *           <hash>-<name>/      NK_BDIR    a store path's directory
 *             bin/app           NK_BFILE   a store file or symlink (shared)
 *
 * Which names exist in a directory, what their attributes are, what a
 * listing holds and where a file's bytes come from are decided here, by
 * one table of operations per kind; the FUSE handlers only ask. A new kind
 * of entry is a new row in that table. */
#ifndef BUNDLEFS_TREE_H
#define BUNDLEFS_TREE_H

#include "nodes.h"
#include "util.h"

#include <dirent.h>

struct bfs;

enum node_kind { NK_ROOT, NK_BUNDLE, NK_CONFIG, NK_VDIR, NK_BDIR, NK_BFILE, NK_COUNT };

/* One entry of a listing. */
struct dent {
	const char *name;
	unsigned char type; /* DT_* */
};

/* A directory's entries, taken at once: offsets are indexes into it, so
 * they stay valid for the life of the listing. */
struct listing {
	struct dent *v;
	size_t n, cap;
	struct arena names;
	DIR *dir; /* backing directories: kept open for lookups relative to it */
};
void listing_free(struct listing *l);

/* Where a file's bytes come from: a backing descriptor, or memory that
 * lives as long as the node's bundle. */
struct content {
	int fd; /* >= 0: read from it; else data/len */
	const char *data;
	size_t len;
};

/* Creates the root node and the tree's caches. */
void tree_init(struct bfs *fs);
void tree_fini(struct bfs *fs);

/* Looks `name` up in directory `dir` and takes a lookup on the node found.
 * `dirfd`, when >= 0, is a descriptor of dir's backing directory to look
 * up relative to. Returns 0 with *out set, -ENOENT for a name that does not
 * exist (the kernel may cache that), or another -errno. */
errint_t tree_lookup(struct bfs *fs, struct node *dir, const char *name, int dirfd,
		     struct node **out);

/* Fills `l` with the entries of directory `dir` (without . and ..). */
errint_t tree_list(struct bfs *fs, struct node *dir, struct listing *l);

/* Opens the bytes of regular file `n`. Returns 0 or -errno. */
errint_t tree_open(struct bfs *fs, struct node *n, struct content *c);

/* An O_PATH descriptor of backing directory `n`, for lookups in it.
 * Returns the fd or -errno. */
errint_t tree_open_dirpath(struct bfs *fs, struct node *n);

/* The target of symlink `n`. Returns its length or -errno. */
ssize_t tree_readlink(struct bfs *fs, struct node *n, char *buf, size_t size);

#endif
