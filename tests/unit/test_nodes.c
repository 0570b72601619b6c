/* Unit tests for the daemon's node table: lookup counting, parent pins,
 * shared nodes, and id reuse with a new generation. */
#include "nodes.h"
#include "unit.h"

static struct node dir_proto(void)
{
	return (struct node){.kind = 1, .attr = {.mode = S_IFDIR | 0755}};
}

static struct node file_proto(uint64_t dev, uint64_t ino)
{
	return (struct node){.kind = 2,
			     .shared = true,
			     .bdev = dev,
			     .bino = ino,
			     .rel = "p/f",
			     .attr = {.mode = S_IFREG | 0644}};
}

/* A fresh table and its root. */
static struct node *start(struct nodes *t)
{
	nodes_init(t, NULL);
	struct node rp = dir_proto();
	return nodes_root(t, &rp);
}

static void lookup_counts(void)
{
	struct nodes t;
	struct node *root = start(&t);
	CHECK_INT(root->id, NODES_ROOT_ID);
	CHECK(nodes_lookup_child(&t, root, "a") == NULL);
	struct node p = dir_proto();
	struct node *a = nodes_add(&t, root, "a", &p);
	CHECK_INT(a->nlookup, 1);
	CHECK(a->parent == root);
	CHECK_INT(root->pins, 1);
	/* found by (parent, name), one more lookup each time */
	CHECK(nodes_lookup_child(&t, root, "a") == a);
	CHECK(nodes_add(&t, root, "a", &p) == a); /* a racing add returns the first */
	CHECK_INT(a->nlookup, 3);
	node_id id = a->id;
	CHECK(nodes_get(&t, id) == a);
	nodes_forget(&t, id, 2);
	CHECK(nodes_get(&t, id) == a);
	nodes_forget(&t, id, 1);
	CHECK(nodes_get(&t, id) == NULL);
	CHECK_INT(root->pins, 0);
	/* the root is never freed */
	nodes_forget(&t, NODES_ROOT_ID, 100);
	CHECK(nodes_get(&t, NODES_ROOT_ID) == root);
	CHECK_INT(t.live, 1);
	nodes_destroy(&t);
}

static void pins_keep_parents(void)
{
	struct nodes t;
	struct node *root = start(&t);
	struct node p = dir_proto();
	struct node *a = nodes_add(&t, root, "a", &p);
	struct node *b = nodes_add(&t, a, "b", &p);
	struct node *c = nodes_add(&t, b, "c", &p);
	node_id ida = a->id, idb = b->id, idc = c->id;
	/* the kernel forgets a parent before its child: both stay */
	nodes_forget(&t, ida, 1);
	nodes_forget(&t, idb, 1);
	CHECK(nodes_get(&t, ida) == a && nodes_get(&t, idb) == b);
	CHECK_INT(a->pins, 1);
	/* the last child goes, and with it the unpinned ancestors */
	nodes_forget(&t, idc, 1);
	CHECK(nodes_get(&t, idc) == NULL);
	CHECK(nodes_get(&t, idb) == NULL);
	CHECK(nodes_get(&t, ida) == NULL);
	CHECK_INT(t.live, 1);
	/* forgetting an unknown id is harmless */
	nodes_forget(&t, idc, 1);
	nodes_forget(&t, 1u << 30, 1);
	nodes_destroy(&t);
}

static void shared_nodes(void)
{
	struct nodes t;
	struct node *root = start(&t);
	struct node p = dir_proto();
	struct node *a = nodes_add(&t, root, "a", &p);
	struct node *b = nodes_add(&t, root, "b", &p);
	struct node f = file_proto(7, 42);
	struct node *fa = nodes_add(&t, a, "x", &f);
	struct node *fb = nodes_add(&t, b, "y", &f);
	CHECK(fa == fb); /* one node per backing identity, whatever the name */
	CHECK(fa->parent == NULL);
	CHECK_INT(a->pins, 0);
	CHECK_INT(fa->nlookup, 2);
	CHECK(fa->rel != f.rel && !strcmp(fa->rel, "p/f")); /* copied */
	/* a shared node is not found by name */
	CHECK(nodes_lookup_child(&t, a, "x") == NULL);
	struct node g = file_proto(7, 43);
	CHECK(nodes_add(&t, a, "z", &g) != fa);
	/* The same inode in another store path (a hard link of optimise's)
	 * is a node of its own, with that store path's path. */
	struct node h = file_proto(7, 42);
	h.rel = "q/f";
	struct node *fh = nodes_add(&t, b, "w", &h);
	CHECK(fh != fa && !strcmp(fh->rel, "q/f"));
	CHECK(nodes_add(&t, a, "v", &h) == fh);
	nodes_destroy(&t);
}

static void reused_inode_is_a_new_node(void)
{
	struct nodes t;
	struct node *root = start(&t);
	struct node f = file_proto(7, 42);
	f.attr.size = 11;
	f.attr.ctime = 1000;
	struct node *old = nodes_add(&t, root, "secret", &f);
	/* the file is deleted, its inode number given to a new file */
	struct node g = file_proto(7, 42);
	g.attr.size = 5;
	g.attr.ctime = 2000;
	struct node *fresh = nodes_add(&t, root, "other", &g);
	CHECK(fresh != old);
	CHECK_INT(fresh->attr.size, 5);
	/* the old node lives while the kernel holds it, found by no one */
	CHECK(nodes_get(&t, old->id) == old);
	CHECK(nodes_add(&t, root, "again", &g) == fresh);
	node_id oid = old->id, fid = fresh->id;
	nodes_forget(&t, oid, 1); /* must not drop the new node's entry */
	CHECK(nodes_add(&t, root, "again", &g) == fresh);
	nodes_forget(&t, fid, 3);
	CHECK(nodes_get(&t, fid) == NULL);
	CHECK_INT(t.live, 1);
	nodes_destroy(&t);
}

static void ids_reused_with_new_generation(void)
{
	struct nodes t;
	struct node *root = start(&t);
	struct node p = dir_proto();
	struct node *a = nodes_add(&t, root, "a", &p);
	node_id id = a->id;
	uint32_t gen = a->gen;
	nodes_forget(&t, id, 1);
	struct node *b = nodes_add(&t, root, "b", &p);
	CHECK_INT(b->id, id);
	CHECK(b->gen != gen);
	/* many ids, across chunk boundaries */
	enum { N = 10000 };
	static node_id ids[N];
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		ids[i] = nodes_add(&t, root, name, &p)->id;
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		struct node *n = nodes_get(&t, ids[i]);
		CHECK(n && n->parent == root && n->id == ids[i]);
	}
	CHECK_INT(t.live, N + 2);
	for (int i = 0; i < N; i += 2)
		nodes_forget(&t, ids[i], 1);
	CHECK_INT(t.live, N / 2 + 2);
	CHECK_INT(root->pins, N / 2 + 1);
	nodes_destroy(&t);
}

/* A journal that records the order nodes are written in a snapshot. */
struct order {
	node_id ids[16], parents[16];
	int n;
};

static bool rec_add(void *ctx, const struct node *n, const char *name, size_t len, uint64_t c)
{
	struct order *o = ctx;
	if (o->n < 16) {
		o->ids[o->n] = n->id;
		o->parents[o->n++] = n->parent ? n->parent->id : 0;
	}
	return true;
}

static bool rec_count(void *ctx, node_id id, uint64_t n)
{
	return true;
}

static void rec_begin(void *ctx)
{
	((struct order *)ctx)->n = 0;
}

static void rec_end(void *ctx)
{
}

static void snapshot_writes_parents_first(void)
{
	/* A child gets a reused id lower than its parent's; a snapshot must
	 * still write the parent first, since a replay makes the child under
	 * it. */
	struct nodes t;
	struct node *root = start(&t);
	struct node p = dir_proto();
	struct node *x = nodes_add(&t, root, "x", &p);
	struct node *d = nodes_add(&t, root, "d", &p);
	node_id low = x->id;
	nodes_forget(&t, low, 1);
	struct node *c = nodes_add(&t, d, "c", &p);
	CHECK_INT(c->id, low);
	CHECK(c->id < d->id);
	struct order o = {0};
	struct nodes_journal j = {.add = rec_add,
				  .lookup = rec_count,
				  .forget = rec_count,
				  .snapshot_begin = rec_begin,
				  .snapshot_end = rec_end,
				  .ctx = &o};
	nodes_set_journal(&t, &j);
	CHECK_INT(o.n, 2);
	CHECK_INT(o.ids[0], d->id);
	CHECK_INT(o.ids[1], c->id);
	CHECK_INT(o.parents[1], d->id);
	nodes_destroy(&t);
}

UNIT_MAIN(CASE(lookup_counts), CASE(pins_keep_parents), CASE(shared_nodes),
	  CASE(reused_inode_is_a_new_node), CASE(ids_reused_with_new_generation),
	  CASE(snapshot_writes_parents_first))
