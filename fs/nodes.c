/* nodes: id table, name and identity maps, lookup counting. */
#include "nodes.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 15) /* 134M nodes */

static void no_hold(struct bstate *b)
{
}

void nodes_init(struct nodes *t, const struct nodes_owner *owner)
{
	memset(t, 0, sizeof(*t));
	t->owner = owner ? *owner : (struct nodes_owner){no_hold, no_hold};
	pthread_mutex_init(&t->lock, NULL);
	t->chunks = xcalloc(MAX_CHUNKS, sizeof(*t->chunks));
	t->next = NODES_ROOT_ID;
}

void nodes_destroy(struct nodes *t)
{
	for (size_t c = 0; c < MAX_CHUNKS && t->chunks[c]; c++) {
		for (size_t i = 0; i < CHUNK_SIZE; i++) {
			struct node *n = t->chunks[c][i];
			if (n) {
				if (n->bundle)
					t->owner.release(n->bundle);
				free(n->key);
				free(n->rel);
				free(n);
			}
		}
		free(t->chunks[c]);
	}
	free(t->chunks);
	free(t->free_ids);
	strmap_free(&t->children);
	strmap_free(&t->shared);
	pthread_mutex_destroy(&t->lock);
}

struct node *nodes_get(struct nodes *t, node_id id)
{
	size_t c = id >> CHUNK_BITS;
	if (c >= MAX_CHUNKS)
		return NULL;
	struct node **chunk = __atomic_load_n(&t->chunks[c], __ATOMIC_ACQUIRE);
	if (!chunk)
		return NULL;
	return __atomic_load_n(&chunk[id & (CHUNK_SIZE - 1)], __ATOMIC_ACQUIRE);
}

/* Called with the lock held. */
static void slot_set(struct nodes *t, node_id id, struct node *n)
{
	size_t c = id >> CHUNK_BITS;
	if (!t->chunks[c])
		__atomic_store_n(&t->chunks[c], xcalloc(CHUNK_SIZE, sizeof(struct node *)),
				 __ATOMIC_RELEASE);
	__atomic_store_n(&t->chunks[c][id & (CHUNK_SIZE - 1)], n, __ATOMIC_RELEASE);
}

static struct node *alloc_node(struct nodes *t, const struct node *proto)
{
	struct node *n = xmalloc(sizeof(*n));
	*n = *proto;
	n->nlookup = 0;
	n->pins = 0;
	n->key = NULL;
	n->rel = proto->rel ? xstrdup(proto->rel) : NULL;
	if (t->nfree) {
		n->id = t->free_ids[--t->nfree];
	} else {
		if ((t->next >> CHUNK_BITS) >= MAX_CHUNKS) {
			fputs("bundlefs: inode table full\n", stderr);
			abort();
		}
		n->id = t->next++;
	}
	/* A reused id gets a new generation, so the kernel never confuses
	 * the new node with the one it replaced. */
	n->gen = t->next_gen++;
	n->attr.blksize = n->attr.blksize ? n->attr.blksize : 4096;
	if (n->bundle)
		t->owner.hold(n->bundle);
	slot_set(t, n->id, n);
	t->live++;
	return n;
}

struct node *nodes_root(struct nodes *t, const struct node *proto)
{
	pthread_mutex_lock(&t->lock);
	struct node *n = alloc_node(t, proto);
	n->shared = false;
	n->parent = NULL;
	n->nlookup = 1; /* the kernel never forgets the root; nor do we */
	pthread_mutex_unlock(&t->lock);
	return n;
}

static char *child_key(const struct node *parent, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	char *k = xmalloc(sizeof(parent->id) + nl);
	memcpy(k, &parent->id, sizeof(parent->id));
	memcpy(k + sizeof(parent->id), name, nl);
	*len = sizeof(parent->id) + nl;
	return k;
}

/* ---- the journal (see nodes.h); all called with the lock held ---------- */

static void journal_snapshot(struct nodes *t);

static bool node_add_record(struct nodes *t, const struct node *n, uint64_t count)
{
	const char *name = n->shared ? (n->rel ? n->rel : "") : n->key + sizeof(node_id);
	size_t len = n->shared ? strlen(name) : n->keylen - sizeof(node_id);
	return t->journal.add(t->journal.ctx, n, name, len, count);
}

static void journal_add(struct nodes *t, const struct node *n)
{
	if (t->journal.add && !node_add_record(t, n, 1))
		journal_snapshot(t); /* (the table already has the node) */
}

static void journal_lookup(struct nodes *t, node_id id, uint64_t count)
{
	if (t->journal.lookup && !t->journal.lookup(t->journal.ctx, id, count))
		journal_snapshot(t);
}

static void journal_forget(struct nodes *t, node_id id, uint64_t count)
{
	if (t->journal.forget && !t->journal.forget(t->journal.ctx, id, count))
		journal_snapshot(t);
}

static void snapshot_record(struct nodes *t, const struct node *n)
{
	if (!node_add_record(t, n, n->nlookup)) {
		fputs("bundlefs: the node table no longer fits its journal\n", stderr);
		abort();
	}
}

/* Every live node but the root, with its count, each after its parent
 * (a replay makes a child under its parent): ids are reused, so a child
 * may have a lower id than its parent. */
static void journal_snapshot(struct nodes *t)
{
	t->journal.snapshot_begin(t->journal.ctx);
	uint8_t *written = xcalloc(t->next / 8 + 1, 1);
#define WRITTEN(id) (written[(id) / 8] & (1u << ((id) % 8)))
	const struct node **chain = NULL;
	size_t nchain = 0, chain_cap = 0;
	for (size_t c = 0; c < MAX_CHUNKS && t->chunks[c]; c++)
		for (size_t i = 0; i < CHUNK_SIZE; i++) {
			const struct node *n = t->chunks[c][i];
			if (!n || n->id == NODES_ROOT_ID || WRITTEN(n->id))
				continue;
			/* The node and its ancestors not yet written, top down. */
			nchain = 0;
			for (const struct node *a = n;
			     a && a->id != NODES_ROOT_ID && !WRITTEN(a->id); a = a->parent) {
				GROW(chain, nchain, chain_cap);
				chain[nchain++] = a;
			}
			while (nchain) {
				const struct node *a = chain[--nchain];
				snapshot_record(t, a);
				written[a->id / 8] |= (uint8_t)(1u << (a->id % 8));
			}
		}
#undef WRITTEN
	free(chain);
	free(written);
	t->journal.snapshot_end(t->journal.ctx);
}

void nodes_set_journal(struct nodes *t, const struct nodes_journal *j)
{
	pthread_mutex_lock(&t->lock);
	t->journal = *j;
	journal_snapshot(t);
	pthread_mutex_unlock(&t->lock);
}

struct node *nodes_lookup_child(struct nodes *t, struct node *parent, const char *name)
{
	size_t nl = strlen(name);
	char stackkey[sizeof(node_id) + 256];
	char *k = nl <= 255 ? stackkey : xmalloc(sizeof(node_id) + nl);
	memcpy(k, &parent->id, sizeof(parent->id));
	memcpy(k + sizeof(parent->id), name, nl);
	pthread_mutex_lock(&t->lock);
	struct node *n = strmap_get(&t->children, k, sizeof(parent->id) + nl);
	if (n) {
		n->nlookup++;
		journal_lookup(t, n->id, 1);
	}
	pthread_mutex_unlock(&t->lock);
	if (k != stackkey)
		free(k);
	return n;
}

/* Is the shared node `n` still the file `proto` was made from? The same
 * (dev, ino) may name another file once the first is deleted and its
 * inode number reused: the change time tells them apart (a new file gets a
 * new one), with the size, mode and modification time for good measure. */
static bool same_file(const struct node *n, const struct node *proto)
{
	const struct nattr *a = &n->attr, *b = &proto->attr;
	return a->ctime == b->ctime && a->ctime_ns == b->ctime_ns && a->size == b->size &&
	       a->mode == b->mode && a->mtime == b->mtime && a->mtime_ns == b->mtime_ns;
}

/* The key of a shared node: its file (dev, ino) in one store path (the
 * hash part of the first component of its path below the store). Files
 * of several store paths that are one inode (hard links `nix-store
 * --optimise` made) are not one node: each keeps a path in its own store
 * path, so that a store path deleted takes only its own nodes' paths
 * away, never those of the bundles whose closures keep theirs. */
static char *shared_key(const struct node *proto, size_t *kl)
{
	const char *rel = proto->rel ? proto->rel : "";
	size_t comp = strcspn(rel, "/");
	if (comp > 32)
		comp = 32;
	uint64_t id[2] = {proto->bdev, proto->bino};
	char *key = xmalloc(sizeof(id) + comp);
	memcpy(key, id, sizeof(id));
	memcpy(key + sizeof(id), rel, comp);
	*kl = sizeof(id) + comp;
	return key;
}

struct node *nodes_add(struct nodes *t, struct node *parent, const char *name,
		       const struct node *proto)
{
	size_t kl;
	char *key;
	struct strmap *map;
	if (proto->shared) {
		key = shared_key(proto, &kl);
		map = &t->shared;
	} else {
		key = child_key(parent, name, &kl);
		map = &t->children;
	}
	pthread_mutex_lock(&t->lock);
	struct node *n = strmap_get(map, key, kl);
	if (n && (proto->shared ? !same_file(n, proto) : n->bundle != proto->bundle)) {
		/* The old node stays while the kernel holds it, but no new
		 * lookup finds it: it names a file that is gone. */
		strmap_del(map, n->key, n->keylen);
		n->in_map = false;
		n = NULL;
	}
	if (n) {
		free(key);
		n->nlookup++;
		journal_lookup(t, n->id, 1);
	} else {
		n = alloc_node(t, proto);
		n->key = key;
		n->keylen = kl;
		n->in_map = true;
		strmap_put(map, key, kl, n);
		if (!proto->shared) {
			n->parent = parent;
			parent->pins++;
		} else {
			n->parent = NULL;
		}
		n->nlookup++;
		journal_add(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct node *nodes_restore(struct nodes *t, node_id id, uint32_t gen, struct node *parent,
			   const char *name, const struct node *proto, uint64_t nlookup,
			   bool hidden)
{
	size_t kl;
	char *key;
	struct strmap *map;
	if (proto->shared) {
		key = shared_key(proto, &kl);
		map = &t->shared;
	} else {
		key = child_key(parent, name, &kl);
		map = &t->children;
	}
	pthread_mutex_lock(&t->lock);
	struct node *n = xmalloc(sizeof(*n));
	*n = *proto;
	n->id = id;
	n->gen = gen;
	n->nlookup = nlookup;
	n->pins = 0;
	n->rel = proto->rel ? xstrdup(proto->rel) : NULL;
	n->key = key;
	n->keylen = kl;
	n->attr.blksize = n->attr.blksize ? n->attr.blksize : 4096;
	if (n->bundle)
		t->owner.hold(n->bundle);
	/* Restored in the kernel's order of making them: a later node under
	 * the same key is the one a lookup finds now. */
	if (!hidden) {
		struct node *old = strmap_del(map, key, kl);
		if (old)
			old->in_map = false;
		strmap_put(map, key, kl, n);
	}
	n->in_map = !hidden;
	n->parent = proto->shared ? NULL : parent;
	if (n->parent)
		n->parent->pins++;
	slot_set(t, id, n);
	t->live++;
	if (id >= t->next)
		t->next = id + 1;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void nodes_restored(struct nodes *t, uint32_t max_gen)
{
	pthread_mutex_lock(&t->lock);
	for (node_id id = t->next; id-- > NODES_ROOT_ID + 1;)
		if (!nodes_get(t, id)) {
			GROW(t->free_ids, t->nfree, t->free_cap);
			t->free_ids[t->nfree++] = id;
		}
	if (t->next_gen <= max_gen)
		t->next_gen = max_gen + 1;
	pthread_mutex_unlock(&t->lock);
}

/* The child `name` of `parent` by the children map, taken out of it when
 * `unmap`; its id, or 0. */
static node_id child(struct nodes *t, struct node *parent, const char *name, bool unmap)
{
	size_t kl;
	char *k = child_key(parent, name, &kl);
	pthread_mutex_lock(&t->lock);
	struct node *n = unmap ? strmap_del(&t->children, k, kl) : strmap_get(&t->children, k, kl);
	node_id id = n ? n->id : 0;
	if (n && unmap)
		n->in_map = false;
	pthread_mutex_unlock(&t->lock);
	free(k);
	return id;
}

node_id nodes_child_id(struct nodes *t, struct node *parent, const char *name)
{
	return child(t, parent, name, false);
}

bool nodes_unmap_child(struct nodes *t, struct node *parent, const char *name)
{
	return child(t, parent, name, true) != 0;
}

void nodes_forget(struct nodes *t, node_id id, uint64_t count)
{
	struct bstate *one[16], **released = one;
	size_t nreleased = 0, cap = ARRAY_SIZE(one);
	pthread_mutex_lock(&t->lock);
	struct node *n = nodes_get(t, id);
	if (!n) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	n->nlookup = n->nlookup > count ? n->nlookup - count : 0;
	journal_forget(t, id, count);
	while (n && n->id != NODES_ROOT_ID && n->nlookup == 0 && n->pins == 0) {
		struct node *parent = n->parent;
		if (n->in_map)
			strmap_del(n->shared ? &t->shared : &t->children, n->key, n->keylen);
		slot_set(t, n->id, NULL);
		GROW(t->free_ids, t->nfree, t->free_cap);
		t->free_ids[t->nfree++] = n->id;
		t->live--;
		/* Bundles are given back outside the lock (that may free a
		 * closure and remove GC roots). */
		if (n->bundle) {
			if (nreleased == cap) {
				cap *= 2;
				released =
				    released == one
					? memcpy(xmalloc(cap * sizeof(*released)), one, sizeof(one))
					: xreallocarray(released, cap, sizeof(*released));
			}
			released[nreleased++] = n->bundle;
		}
		free(n->key);
		free(n->rel);
		free(n);
		n = parent;
		if (n)
			n->pins--;
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < nreleased; i++)
		t->owner.release(released[i]);
	if (released != one)
		free(released);
}
