/* nodes: the daemon's inode table.
 *
 * Every inode the kernel knows is a node in memory, found by its id (the
 * FUSE node id, also reported as st_ino) through a chunked table that never
 * moves, so getattr and read need no lock. No file descriptor is held per
 * node: backing entries are reopened by their path relative to the store.
 *
 * Directories and virtual entries have exactly one parent and are found by
 * (parent id, name). Backing files and symlinks are shared: the same store
 * inode reached through any bundle or any hard link is one node, so the
 * kernel keeps one page cache for it. A node lives while the kernel holds
 * lookups on it or a child still names it as parent. */
#ifndef BUNDLEFS_NODES_H
#define BUNDLEFS_NODES_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "layout.h"
#include "strmap.h"

enum node_kind {
	NK_ROOT,   /* the mount point: lists bundles */
	NK_BUNDLE, /* <name>/: config.json and rootfs */
	NK_CONFIG, /* <name>/config.json */
	NK_VDIR,   /* a rootfs skeleton directory (rootfs itself, dev, nix/store...) */
	NK_BDIR,   /* a directory of a store path */
	NK_BFILE,  /* a regular file or symlink of a store path (shared) */
};

/* The attributes served for a node, copied from the backing entry or
 * synthesized; compact, since a closure can have 100k nodes. */
struct nattr {
	uint64_t size, blocks;
	uint32_t mode, nlink, uid, gid, blksize;
	int64_t atime, mtime, ctime;
	uint32_t atime_ns, mtime_ns, ctime_ns;
};

struct node {
	fuse_ino_t ino;
	uint64_t nlookup; /* lookups the kernel holds */
	uint32_t pins;	  /* children that name this node as parent */
	uint32_t gen;
	uint8_t kind;
	uint32_t bundle;	       /* index of its bundle (not ROOT, BFILE) */
	struct node *parent;	       /* not ROOT, BFILE */
	const struct layout_dir *ldir; /* NK_VDIR */
	char *key;		       /* map key: (parent id, name) or (dev, ino) */
	size_t keylen;
	char *rel;	     /* NK_BDIR, NK_BFILE: path below the real store */
	uint64_t bdev, bino; /* NK_BDIR, NK_BFILE: backing identity */
	struct nattr attr;
};

struct nodes {
	pthread_mutex_t lock;
	struct node ***chunks; /* fixed array of chunk pointers */
	fuse_ino_t next;       /* next never-used id */
	fuse_ino_t *free_ids;
	size_t nfree, free_cap;
	uint32_t next_gen;
	struct strmap children; /* (parent id, name) -> node */
	struct strmap shared;	/* (dev, ino) -> NK_BFILE node */
	size_t live;
};

void nodes_init(struct nodes *t);
void nodes_destroy(struct nodes *t);

/* The node with id `ino`, or NULL. Lock-free: valid while the kernel holds
 * a lookup on it, which it does for every id it sends. */
struct node *nodes_get(struct nodes *t, fuse_ino_t ino);

/* Creates the root node (id FUSE_ROOT_ID) with the given attributes. */
struct node *nodes_root(struct nodes *t, const struct nattr *a);

/* Finds the child `name` of `parent` (a directory-like node) and takes a
 * lookup on it, or returns NULL. */
struct node *nodes_lookup_child(struct nodes *t, struct node *parent, const char *name);

/* Adds a child of `parent` named `name` built from `proto` (kind, bundle,
 * ldir, rel, bdev/bino, attr), or, when a racing lookup added it first,
 * returns that one; either way with one more lookup taken. For NK_BFILE
 * the node is shared by backing identity and not linked to `parent`. */
struct node *nodes_add(struct nodes *t, struct node *parent, const char *name,
		       const struct node *proto);

/* Drops n lookups; frees the node (and unpinned ancestors) when none are
 * left. */
void nodes_forget(struct nodes *t, fuse_ino_t ino, uint64_t n);

#endif
