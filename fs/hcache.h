/* hcache: small, bounded caches of open handles (backing file descriptors,
 * directory listings), least recently used first out.
 *
 * On a read-only mount bundlefs answers the first OPEN and OPENDIR with
 * ENOSYS, after which the kernel opens files and directories without
 * asking, keeping their page cache and directory cache: an open, read or
 * listing of something cached costs no round trip to the daemon. Reads and
 * listings that miss the kernel's caches then arrive without a handle; they
 * take one from here, so a file read in many pieces is opened once, while
 * the daemon still holds nothing per node. Lookups in a store directory
 * likewise use a cached O_PATH descriptor of it: one fstatat instead of
 * resolving the whole path from the store again. Handles in use are
 * reference counted and never destroyed under their user. */
#ifndef BUNDLEFS_HCACHE_H
#define BUNDLEFS_HCACHE_H

#include "nodes.h"

struct hcache;

/* make builds the handle of node n (or returns NULL with *err set);
 * destroy frees one. */
struct hcache *hcache_new(unsigned size, void *(*make)(void *ctx, struct node *n, int *err),
			  void (*destroy)(void *obj), void *ctx);
/* The handle of n, built on a miss; NULL with *err on failure. Give it
 * back with hcache_put(c, slot, obj). */
void *hcache_get(struct hcache *c, struct node *n, int *slot, int *err);
void hcache_put(struct hcache *c, int slot, void *obj);
void hcache_free(struct hcache *c);

#endif
