/* hcache: refcounted LRU of handles keyed by node id and generation. */
#include "hcache.h"

#include <pthread.h>
#include <stdlib.h>

struct entry {
	node_id id;
	uint32_t gen;
	void *obj; /* NULL: empty */
	unsigned refs;
	uint64_t used;
};

struct hcache {
	pthread_mutex_t lock;
	unsigned size;
	uint64_t tick;
	errint_t (*make)(void *ctx, struct node *n, void **out);
	void (*destroy)(void *obj);
	void *ctx;
	struct entry e[];
};

struct hcache *hcache_new(unsigned size, errint_t (*make)(void *ctx, struct node *n, void **out),
			  void (*destroy)(void *obj), void *ctx)
{
	struct hcache *c = xcalloc(1, sizeof(*c) + size * sizeof(c->e[0]));
	pthread_mutex_init(&c->lock, NULL);
	c->size = size;
	c->make = make;
	c->destroy = destroy;
	c->ctx = ctx;
	return c;
}

static int find_locked(struct hcache *c, const struct node *n)
{
	for (unsigned i = 0; i < c->size; i++)
		if (c->e[i].obj && c->e[i].id == n->id && c->e[i].gen == n->gen)
			return (int)i;
	return -1;
}

static void take_locked(struct hcache *c, int i, struct hcache_ref *ref)
{
	c->e[i].refs++;
	c->e[i].used = ++c->tick;
	*ref = (struct hcache_ref){c->e[i].obj, c, i};
}

/* The least recently used entry not in use, or -1. */
static int victim_locked(struct hcache *c)
{
	int v = -1;
	for (int i = 0; i < (int)c->size; i++)
		if (c->e[i].obj && c->e[i].refs == 0 && (v < 0 || c->e[i].used < c->e[v].used))
			v = i;
	return v;
}

static int empty_locked(struct hcache *c)
{
	for (int i = 0; i < (int)c->size; i++)
		if (!c->e[i].obj)
			return i;
	return -1;
}

errint_t hcache_get(struct hcache *c, struct node *n, struct hcache_ref *ref)
{
	pthread_mutex_lock(&c->lock);
	int i = find_locked(c, n);
	if (i >= 0) {
		take_locked(c, i, ref);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	/* A full cache lets go of its oldest handle before a new one is
	 * made, so that it never holds more descriptors than its size. */
	void *old = NULL;
	if (empty_locked(c) < 0 && (i = victim_locked(c)) >= 0) {
		old = c->e[i].obj;
		c->e[i].obj = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (old)
		c->destroy(old);

	/* Built without the lock: it does I/O. */
	void *obj;
	errint_t e = c->make(c->ctx, n, &obj);
	if (e < 0)
		return e;

	pthread_mutex_lock(&c->lock);
	i = find_locked(c, n);
	if (i >= 0) { /* built meanwhile by another request */
		take_locked(c, i, ref);
		pthread_mutex_unlock(&c->lock);
		c->destroy(obj);
		return 0;
	}
	if ((i = empty_locked(c)) < 0 && (i = victim_locked(c)) >= 0) {
		old = c->e[i].obj;
		c->e[i].obj = NULL;
	} else {
		old = NULL;
	}
	if (i < 0) {
		/* every slot is in use: this handle serves one request */
		pthread_mutex_unlock(&c->lock);
		*ref = (struct hcache_ref){obj, c, -1};
		return 0;
	}
	c->e[i] = (struct entry){n->id, n->gen, obj, 0, 0};
	take_locked(c, i, ref);
	pthread_mutex_unlock(&c->lock);
	if (old)
		c->destroy(old);
	return 0;
}

void hcache_put(struct hcache_ref *ref)
{
	struct hcache *c = ref->cache;
	if (ref->slot < 0) {
		c->destroy(ref->obj);
		return;
	}
	pthread_mutex_lock(&c->lock);
	c->e[ref->slot].refs--;
	pthread_mutex_unlock(&c->lock);
}

unsigned hcache_trim(struct hcache *c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->size; i++) {
		pthread_mutex_lock(&c->lock);
		void *obj = NULL;
		if (c->e[i].obj && c->e[i].refs == 0) {
			obj = c->e[i].obj;
			c->e[i].obj = NULL;
		}
		pthread_mutex_unlock(&c->lock);
		if (obj) {
			c->destroy(obj);
			n++;
		}
	}
	return n;
}

void hcache_free(struct hcache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->size; i++)
		if (c->e[i].obj)
			c->destroy(c->e[i].obj);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
