/* hcache: refcounted LRU of handles keyed by node id and generation. */
#include "hcache.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>

struct entry {
	fuse_ino_t ino;
	uint32_t gen;
	void *obj; /* NULL: empty */
	unsigned refs;
	uint64_t used;
};

struct hcache {
	pthread_mutex_t lock;
	unsigned size;
	uint64_t tick;
	void *(*make)(void *ctx, struct node *n, int *err);
	void (*destroy)(void *obj);
	void *ctx;
	struct entry e[];
};

struct hcache *hcache_new(unsigned size, void *(*make)(void *ctx, struct node *n, int *err),
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
		if (c->e[i].obj && c->e[i].ino == n->ino && c->e[i].gen == n->gen)
			return (int)i;
	return -1;
}

static void *take_locked(struct hcache *c, int i, int *slot)
{
	c->e[i].refs++;
	c->e[i].used = ++c->tick;
	*slot = i;
	return c->e[i].obj;
}

void *hcache_get(struct hcache *c, struct node *n, int *slot, int *err)
{
	pthread_mutex_lock(&c->lock);
	int i = find_locked(c, n);
	if (i >= 0) {
		void *obj = take_locked(c, i, slot);
		pthread_mutex_unlock(&c->lock);
		return obj;
	}
	pthread_mutex_unlock(&c->lock);

	/* Built without the lock: it does I/O. */
	void *obj = c->make(c->ctx, n, err);
	if (!obj)
		return NULL;

	pthread_mutex_lock(&c->lock);
	i = find_locked(c, n);
	if (i >= 0) { /* built meanwhile by another request */
		void *theirs = take_locked(c, i, slot);
		pthread_mutex_unlock(&c->lock);
		c->destroy(obj);
		return theirs;
	}
	int victim = -1;
	for (i = 0; i < (int)c->size; i++) {
		if (!c->e[i].obj) {
			victim = i;
			break;
		}
		if (c->e[i].refs == 0 && (victim < 0 || c->e[i].used < c->e[victim].used))
			victim = i;
	}
	if (victim < 0) {
		/* every slot is in use: this handle serves one request */
		pthread_mutex_unlock(&c->lock);
		*slot = -1;
		return obj;
	}
	void *old = c->e[victim].obj;
	c->e[victim] = (struct entry){n->ino, n->gen, obj, 1, ++c->tick};
	*slot = victim;
	pthread_mutex_unlock(&c->lock);
	if (old)
		c->destroy(old);
	return obj;
}

void hcache_put(struct hcache *c, int slot, void *obj)
{
	if (slot < 0) {
		c->destroy(obj);
		return;
	}
	pthread_mutex_lock(&c->lock);
	c->e[slot].refs--;
	pthread_mutex_unlock(&c->lock);
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
