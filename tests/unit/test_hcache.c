/* Unit tests for the handle caches: hits, least-recently-used eviction,
 * handles in use never destroyed, a full cache, node generations. */
#include "hcache.h"
#include "unit.h"

struct obj {
	node_id id;
	uint32_t gen;
	int alive;
};

static int made, destroyed, fail_with;

static errint_t make(void *ctx, struct node *n, void **out)
{
	if (fail_with)
		return -fail_with;
	struct obj *o = calloc(1, sizeof(*o));
	o->id = n->id;
	o->gen = n->gen;
	o->alive = 1;
	made++;
	*out = o;
	return 0;
}

static void destroy(void *p)
{
	struct obj *o = p;
	CHECK_INT(o->alive, 1);
	o->alive = 0;
	destroyed++;
	free(o);
}

static struct node node(node_id id, uint32_t gen)
{
	return (struct node){.id = id, .gen = gen};
}

static void hits_and_eviction(void)
{
	made = destroyed = fail_with = 0;
	struct hcache *c = hcache_new(2, make, destroy, NULL);
	struct node a = node(10, 1), b = node(11, 1), d = node(12, 1);
	struct hcache_ref r1, r2;
	CHECK_INT(hcache_get(c, &a, &r1), 0);
	CHECK_INT(((struct obj *)r1.obj)->id, 10);
	hcache_put(&r1);
	CHECK_INT(hcache_get(c, &a, &r2), 0); /* a hit */
	CHECK(r2.obj == r1.obj);
	hcache_put(&r2);
	CHECK_INT(made, 1);
	CHECK_INT(hcache_get(c, &b, &r1), 0);
	hcache_put(&r1);
	CHECK_INT(hcache_get(c, &a, &r1), 0); /* a is now the most recent */
	hcache_put(&r1);
	CHECK_INT(hcache_get(c, &d, &r1), 0); /* evicts b, the least recent */
	hcache_put(&r1);
	CHECK_INT(destroyed, 1);
	CHECK_INT(hcache_get(c, &a, &r1), 0);
	hcache_put(&r1);
	CHECK_INT(made, 3);
	CHECK_INT(hcache_get(c, &b, &r1), 0); /* b again: made anew */
	hcache_put(&r1);
	CHECK_INT(made, 4);
	hcache_free(c);
	CHECK_INT(destroyed, made);
}

static void in_use_is_never_destroyed(void)
{
	made = destroyed = fail_with = 0;
	struct hcache *c = hcache_new(2, make, destroy, NULL);
	struct node a = node(1, 1), b = node(2, 1), d = node(3, 1);
	struct hcache_ref ra, rb, rd;
	CHECK_INT(hcache_get(c, &a, &ra), 0);
	CHECK_INT(hcache_get(c, &b, &rb), 0);
	/* both slots in use: d gets a handle of its own */
	CHECK_INT(hcache_get(c, &d, &rd), 0);
	CHECK_INT(rd.slot, -1);
	CHECK_INT(destroyed, 0);
	CHECK_INT(((struct obj *)ra.obj)->alive + ((struct obj *)rb.obj)->alive, 2);
	hcache_put(&rd); /* destroyed when given back */
	CHECK_INT(destroyed, 1);
	CHECK_INT(hcache_trim(c), 0); /* nothing unused to trim */
	hcache_put(&ra);
	CHECK_INT(hcache_trim(c), 1);
	CHECK_INT(((struct obj *)rb.obj)->alive, 1);
	hcache_put(&rb);
	hcache_free(c);
	CHECK_INT(destroyed, made);
}

static void generations_and_errors(void)
{
	made = destroyed = fail_with = 0;
	struct hcache *c = hcache_new(4, make, destroy, NULL);
	struct node old = node(5, 1), reused = node(5, 2);
	struct hcache_ref r;
	CHECK_INT(hcache_get(c, &old, &r), 0);
	hcache_put(&r);
	/* the same id with a new generation is another node */
	CHECK_INT(hcache_get(c, &reused, &r), 0);
	CHECK_INT(((struct obj *)r.obj)->gen, 2);
	hcache_put(&r);
	CHECK_INT(made, 2);
	fail_with = 24; /* EMFILE */
	struct node x = node(6, 1);
	CHECK_INT(hcache_get(c, &x, &r), -24);
	fail_with = 0;
	hcache_free(c);
	CHECK_INT(destroyed, made);
}

UNIT_MAIN(CASE(hits_and_eviction), CASE(in_use_is_never_destroyed), CASE(generations_and_errors))
