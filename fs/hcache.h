/* hcache: small, bounded caches of open handles (backing file descriptors,
 * directory listings, directory descriptors), least recently used first
 * out, keyed by node id and generation.
 *
 * On a read-only mount bundlefs answers the first OPEN and OPENDIR with
 * ENOSYS, after which the kernel opens files and directories without
 * asking, keeping their page cache and directory cache: an open, read or
 * listing of something cached costs no round trip to the daemon. Reads and
 * listings that miss the kernel's caches then arrive without a handle; they
 * take one from here, so a file read in many pieces is opened once, while
 * the daemon still holds nothing per node. Handles in use are reference
 * counted and never destroyed under their user.
 *
 * The cache holds objects of its user's type (void * here); its lock is a
 * leaf, never held while a handle is made or destroyed. */
#ifndef BUNDLEFS_HCACHE_H
#define BUNDLEFS_HCACHE_H

#include "nodes.h"
#include "util.h"

struct hcache;

/* A handle taken from a cache, to be given back with hcache_put. */
struct hcache_ref {
	void *obj;
	struct hcache *cache;
	int slot; /* -1: not kept in the cache; destroyed when given back */
};

/* make builds the handle of node n into *out (returns 0 or -errno);
 * destroy frees one. */
struct hcache *hcache_new(unsigned size, errint_t (*make)(void *ctx, struct node *n, void **out),
			  void (*destroy)(void *obj), void *ctx);
/* The handle of n, built on a miss. Returns 0 or -errno. */
errint_t hcache_get(struct hcache *c, struct node *n, struct hcache_ref *ref);
void hcache_put(struct hcache_ref *ref);
/* Destroys every handle not in use; returns how many. */
unsigned hcache_trim(struct hcache *c);
void hcache_free(struct hcache *c);

#endif
