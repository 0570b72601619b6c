/* nodes: the daemon's inode table.
 *
 * Every inode the kernel knows is a node in memory, found by its id (the
 * FUSE node id, also reported as st_ino) through a chunked table that never
 * moves, so getattr and read need no lock. No file descriptor is held per
 * node: backing entries are reopened by their path relative to the store.
 *
 * A node is found either by (parent id, name), for directories and
 * synthesized entries, which have exactly one parent; or, when it is
 * `shared`, by the identity of its backing entry (dev, ino) in its store
 * path, so that the same store file reached through any bundle or any hard
 * link within its store path is one node and the kernel keeps one page
 * cache for it; but only while it is the same file: an inode number reused
 * by a new file gets a new node. One inode in two store paths (hard links
 * made by `nix-store --optimise`) is two nodes, each with a path in its
 * own store path, so that deleting one store path never takes a file away
 * from a bundle whose closure has the other. A node lives while the
 * kernel holds lookups on it or a child still names it as parent; its id
 * is then reused with a new generation.
 *
 * This table knows nothing of FUSE or of what the kinds of nodes mean
 * (tree.h does); it is unit-tested on its own. Its lock is a leaf: held
 * for map and counter updates only, never across I/O or another lock. */
#ifndef BUNDLEFS_NODES_H
#define BUNDLEFS_NODES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "layout.h"
#include "strmap.h"

typedef uint64_t node_id;
#define NODES_ROOT_ID ((node_id)1)

struct bstate;

/* The attributes served for a node, copied from the backing entry or
 * synthesized; compact, since a closure can have 100k nodes. */
struct nattr {
	uint64_t size, blocks;
	uint32_t mode, nlink, uid, gid, blksize;
	int64_t atime, mtime, ctime;
	uint32_t atime_ns, mtime_ns, ctime_ns;
};

struct node {
	node_id id;
	uint64_t nlookup; /* lookups the kernel holds */
	uint32_t pins;	  /* children that name this node as parent */
	uint32_t gen;
	uint8_t kind;		       /* the tree's enum node_kind; opaque here */
	bool shared;		       /* found by (bdev, bino) and store path, not by
					  parent and name */
	bool in_map;		       /* still found by its key (a shared node whose file
					  is gone is not) */
	struct bstate *bundle;	       /* its bundle, if any */
	struct node *parent;	       /* not for the root and shared nodes */
	const struct layout_dir *ldir; /* skeleton directories */
	char *key;		       /* map key: (parent id, name) or (dev, ino) */
	size_t keylen;
	char *rel;	     /* backing entries: path below the real store */
	uint64_t bdev, bino; /* backing entries: identity */
	struct nattr attr;
};

/* What the table does with the bundle a node is made from: takes a
 * reference when the node is made, gives it back (after unlocking) when
 * the node is freed. */
struct nodes_owner {
	void (*hold)(struct bstate *b);
	void (*release)(struct bstate *b);
};

/* Where the table records what it tells the kernel, so that a successor
 * can take the table over (state.h): written under the table's lock,
 * before the kernel hears of the node or the count. A write that does not
 * fit returns false; the table then writes a snapshot of every live node
 * in its place (snapshot_begin, add with each node's count, snapshot_end).
 * `name` is the node's name in its parent, or for a shared node its path
 * below the store. */
struct nodes_journal {
	bool (*add)(void *ctx, const struct node *n, const char *name, size_t namelen,
		    uint64_t count);
	bool (*lookup)(void *ctx, node_id id, uint64_t n);
	bool (*forget)(void *ctx, node_id id, uint64_t n);
	void (*snapshot_begin)(void *ctx);
	void (*snapshot_end)(void *ctx);
	void *ctx;
};

struct nodes {
	pthread_mutex_t lock;
	struct nodes_owner owner;
	struct nodes_journal journal; /* all NULL: none */
	struct node ***chunks;	      /* fixed array of chunk pointers */
	node_id next;		      /* next never-used id */
	node_id *free_ids;
	size_t nfree, free_cap;
	uint32_t next_gen;
	struct strmap children; /* (parent id, name) -> node */
	struct strmap shared;	/* (dev, ino, store path) -> shared node */
	size_t live;
};

void nodes_init(struct nodes *t, const struct nodes_owner *owner);
void nodes_destroy(struct nodes *t);

/* The node with id `id`, or NULL. Lock-free: valid while the kernel holds
 * a lookup on it, which it does for every id it sends. */
struct node *nodes_get(struct nodes *t, node_id id);

/* Creates the root node (id NODES_ROOT_ID, never freed) from `proto`. */
struct node *nodes_root(struct nodes *t, const struct node *proto);

/* Finds the child `name` of `parent` (by parent and name, so never a
 * shared node) and takes a lookup on it, or returns NULL. */
struct node *nodes_lookup_child(struct nodes *t, struct node *parent, const char *name);

/* Adds a child of `parent` named `name` built from `proto` (kind, shared,
 * bundle, ldir, rel, bdev/bino, attr), or, when a racing lookup added it
 * first, returns that one; either way with one more lookup taken. A shared
 * node is keyed by (bdev, bino) and the store path of `rel`, and not linked
 * to `parent`. A node found
 * under the name but made from another bundle (a reload changed what the
 * name means) is replaced: it lives on for the kernel, found by no one. */
struct node *nodes_add(struct nodes *t, struct node *parent, const char *name,
		       const struct node *proto);

/* The id of the child `name` of `parent` (taking no lookup), or 0. */
node_id nodes_child_id(struct nodes *t, struct node *parent, const char *name);

/* Makes the child `name` of `parent` found by no new lookup (it lives on
 * while the kernel holds it). Returns whether there was one. */
bool nodes_unmap_child(struct nodes *t, struct node *parent, const char *name);

/* From now on, records everything in `j`, starting with a snapshot of
 * what the table holds. */
void nodes_set_journal(struct nodes *t, const struct nodes_journal *j);

/* A successor restores a node the kernel holds, with its id, generation
 * and lookups, made from `proto` (as nodes_add makes one) as a child of
 * `parent` named `name` (for a shared node, `name` is ignored); found by
 * later lookups unless `hidden`. Call nodes_restored once every node is
 * back. */
struct node *nodes_restore(struct nodes *t, node_id id, uint32_t gen, struct node *parent,
			   const char *name, const struct node *proto, uint64_t nlookup,
			   bool hidden);
/* Ids not restored are free; generations go on above `max_gen`. */
void nodes_restored(struct nodes *t, uint32_t max_gen);

/* Drops n lookups; frees the node (and unpinned ancestors) when none are
 * left. */
void nodes_forget(struct nodes *t, node_id id, uint64_t n);

#endif
