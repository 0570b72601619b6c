/* Unit tests for sets of bundles: states set up on first use, and the
 * document a successor restores them from (the same versions, serials,
 * specs and lines). */
#include "bundle.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

static struct store st;
static struct gcroots gc;

static struct bundle_env env_new(void)
{
	if (!st.dir) {
		char *err;
		store_init(&st);
		store_finish(&st, &err);
		gcroots_init(&gc);
	}
	return (struct bundle_env){.st = &st,
				   .resolver = resolver_new(&st),
				   .gcroots = &gc,
				   .registry = bundle_registry_new()};
}

static void env_free(struct bundle_env *e)
{
	bundle_registry_free(e->registry);
	resolver_free(e->resolver);
}

/* Reads `text` as the spec file would be. */
static struct spec load(const char *text)
{
	char path[] = "/tmp/test_bundles.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write_full(fd, text, strlen(text)) == 0);
	close(fd);
	struct spec sp;
	struct diags d = {0};
	CHECK_INT(spec_load(&sp, path, &st, &d), 0);
	diag_print(&d, stderr, "unexpected: ");
	diag_clear(&d);
	unlink(path);
	return sp;
}

/* The document, whole, as a successor finds it. */
static char *document(const struct bundle_env *e, const struct bundles *cur, size_t *len)
{
	struct bundles_doc doc;
	bundles_document(e, cur, 7, 1.5, &doc);
	struct buf b = {0};
	for (size_t i = 0; i < doc.n; i++)
		buf_add(&b, doc.iov[i].iov_base, doc.iov[i].iov_len);
	bundles_doc_free(&doc);
	*len = b.len;
	return b.data;
}

/* `b` and `r` are the same version: serial, spec, lines. */
static void same(struct bstate *b, struct bstate *r)
{
	const struct bundle *x = bundle_spec(b), *y = bundle_spec(r);
	CHECK_INT(bundle_serial(b), bundle_serial(r));
	CHECK(spec_bundle_equal(x, y));
	CHECK_INT(x->line, y->line);
	CHECK_INT(x->args_line, y->args_line);
}

/* Restores the document of `cur` with another registry, and checks that
 * the set and every serial in `live` come back as they were. */
static void round_trip(const struct bundle_env *e, const struct bundles *cur, const uint64_t *live,
		       size_t nlive, size_t retired)
{
	size_t len;
	char *doc = document(e, cur, &len);
	struct bundle_env e2 = env_new();
	struct bundles *set;
	struct bundle_hold *hold;
	uint64_t gen;
	double loaded;
	CHECK_INT(bundles_restore(doc, len, &e2, &set, &gen, &loaded, &hold), 0);
	free(doc);
	CHECK_INT(gen, 7);
	CHECK(loaded == 1.5);
	CHECK_INT(bundles_count(set), bundles_count(cur));
	for (size_t i = 0; i < bundles_count(set); i++)
		same(bundles_at(cur, i), bundles_at(set, i));
	for (size_t i = 0; i < nlive; i++) {
		struct bstate *b = bundles_by_serial(e, live[i]),
			      *r = bundles_by_serial(&e2, live[i]);
		CHECK(b && r);
		if (b && r)
			same(b, r);
		bundle_put(b);
		bundle_put(r);
	}
	uint64_t *serials;
	CHECK_INT(bundles_hold_retired(hold, set, &serials), retired);
	free(serials);
	bundles_hold_free(hold);
	bundles_put(set);
	env_free(&e2);
}

/* A spec of n bundles, written out of name order. */
static char *spec_text(size_t n, const char *args)
{
	struct buf b = {0};
	for (size_t i = n; i-- > 0;)
		buf_addf(&b, "[b%zu]\nargs = /bin/%s %zu\n", i, args, i);
	return b.data;
}

static void first_set_is_lazy(void)
{
	struct bundle_env e = env_new();
	char *text = spec_text(100, "x");
	struct spec sp = load(text);
	free(text);
	struct bundles *set = bundles_new(&sp, &e, NULL);
	CHECK_INT(bundles_count(set), 100);
	/* Serials in name order; nothing set up to say so. */
	CHECK_STR(bundles_spec_at(set, 0)->name, "b0");
	CHECK_STR(bundles_spec_at(set, 2)->name, "b10");
	CHECK_INT(bundles_serial_at(set, 2), 3);
	CHECK_STR(bundles_state_at(set, 2), "unresolved");
	struct bstate *b = bundles_find(set, "b10");
	CHECK(b == bundles_at(set, 2));
	CHECK_INT(bundle_serial(b), 3);
	CHECK_STR(bundle_name(b), "b10");
	CHECK(bundles_find(set, "nope") == NULL);
	/* By serial, one never used. */
	struct bstate *c = bundles_by_serial(&e, 100);
	CHECK(c == bundles_at(set, 99));
	CHECK(bundles_by_serial(&e, 101) == NULL);
	/* A reference outlives the set; the rest go with it. */
	bundles_put(set);
	CHECK_STR(bundle_name(c), "b99");
	CHECK(bundles_by_serial(&e, 3) == NULL);
	struct bstate *again = bundles_by_serial(&e, 100);
	CHECK(again == c);
	bundle_put(again);
	bundle_put(c);
	CHECK(bundles_by_serial(&e, 100) == NULL);
	env_free(&e);
}

/* What the bundles ask for, together, without a look at each. */
static void any_asked(void)
{
	struct bundle_env e = env_new();
	struct spec sp = load("[a]\nargs = /a\nreadonly = true\ndata = fuse\n"
			      "[b]\nargs = /b\nreadonly = true\n");
	struct bundles *set = bundles_new(&sp, &e, NULL);
	CHECK(!bundles_any(set, 0));
	CHECK(!bundles_any(set, 1u << SPEC_DATA_NATIVE));
	CHECK(bundles_any(set, 1u << SPEC_DATA_DEFAULT));
	CHECK(bundles_any(set, 1u << SPEC_DATA_FUSE));
	CHECK_STR(bundles_state_at(set, 0), "unresolved");
	sp = load("[a]\nargs = /a\nreadonly = true\ndata = fuse\n[b]\nargs = /b\n");
	struct bundles *next = bundles_new(&sp, &e, set);
	bundles_put(set);
	CHECK(bundles_any(next, 0));
	bundles_put(next);
	env_free(&e);
}

static void document_at_start(void)
{
	struct bundle_env e = env_new();
	char *text = spec_text(50, "y");
	struct spec sp = load(text);
	free(text);
	struct bundles *set = bundles_new(&sp, &e, NULL);
	bundle_put(bundle_get(bundles_at(set, 7))); /* one set up, the rest not */
	size_t len;
	char *doc = document(&e, set, &len);
	/* A line, then the spec's own bytes. */
	const char *nl = memchr(doc, '\n', len);
	CHECK(nl && strstr(doc, "\"runs\":[[0,0,50,1]]") && strstr(doc, "\"current\":[[1,50]]"));
	CHECK(nl && !memcmp(nl + 1, "[b49]\n", 6));
	free(doc);
	uint64_t live[] = {1, 8, 50};
	round_trip(&e, set, live, 3, 0);
	bundles_put(set);
	env_free(&e);
}

static void document_after_reloads(void)
{
	struct bundle_env e = env_new();
	char *text = spec_text(40, "z");
	struct spec sp = load(text);
	free(text);
	struct bundles *one = bundles_new(&sp, &e, NULL);
	/* A container still uses b5 and b6, which the reload changes. */
	struct bstate *b5 = bundle_get(bundles_find(one, "b5"));
	struct bstate *b6 = bundle_get(bundles_find(one, "b6"));
	sp = load("[b1]\nargs = /bin/z 1\n[b5]\nargs = /bin/changed\n[b6]\nargs = /bin/z 6\n"
		  "readonly = true\n[new]\nargs = /bin/new\n");
	struct bundles *two = bundles_new(&sp, &e, one);
	CHECK(bundles_find(two, "b1") == bundles_find(one, "b1"));
	CHECK(bundles_find(two, "b5") != b5);
	bundles_put(one);
	CHECK_INT(bundle_serial(bundles_find(two, "new")), 43);
	/* Versions: b1 (spec one), b5 and b6 (retired, spec one), and b5, b6,
	 * new (spec two): spec one has under half its bundles live, so all
	 * go one by one. */
	size_t len;
	char *doc = document(&e, two, &len);
	CHECK(strstr(doc, "\"runs\":[[0,1,3,41]],\"versions\":[{\"serial\":2,") != NULL);
	free(doc);
	uint64_t live[] = {bundle_serial(bundles_find(two, "b1")),
			   bundle_serial(b5),
			   bundle_serial(b6),
			   41,
			   42,
			   43};
	round_trip(&e, two, live, 6, 2);
	/* Another reload keeping every bundle of two: its spec goes whole. */
	sp = load("[b1]\nargs = /bin/z 1\n[b5]\nargs = /bin/changed\n[b6]\nargs = /bin/z 6\n"
		  "readonly = true\n[new]\nargs = /bin/new\n[more]\nargs = /bin/more\n");
	struct bundles *three = bundles_new(&sp, &e, two);
	bundles_put(two);
	doc = document(&e, three, &len);
	CHECK(strstr(doc, "\"runs\":[[0,1,3,41]]") != NULL);
	free(doc);
	uint64_t live3[] = {41, 42, 43, 44, bundle_serial(b5)};
	round_trip(&e, three, live3, 5, 2);
	bundle_put(b5);
	bundle_put(b6);
	bundles_put(three);
	env_free(&e);
}

/* A reload that changes one bundle: the first spec still goes whole, its
 * versions two runs around the one gone, the new version as JSON. */
static void document_with_a_gap(void)
{
	struct bundle_env e = env_new();
	struct buf b[2] = {{0}};
	for (int i = 0; i < 10; i++)
		for (int k = 0; k < 2; k++)
			buf_addf(&b[k], "[b%d]\nargs = /bin/b %d\n", i, k && i == 3 ? 33 : i);
	struct spec sp = load(b[0].data);
	struct bundles *one = bundles_new(&sp, &e, NULL);
	sp = load(b[1].data);
	buf_free(&b[0]);
	buf_free(&b[1]);
	struct bundles *two = bundles_new(&sp, &e, one);
	bundles_put(one);
	size_t len;
	char *doc = document(&e, two, &len);
	CHECK(strstr(doc, "\"runs\":[[0,0,3,1],[0,4,6,5]],\"versions\":[{\"serial\":11,") != NULL);
	CHECK(strstr(doc, "\"current\":[[1,3],[11,1],[5,6]]") != NULL);
	free(doc);
	uint64_t live[] = {1, 3, 5, 10, 11};
	round_trip(&e, two, live, 5, 0);
	CHECK(bundles_by_serial(&e, 4) == NULL);
	bundles_put(two);
	env_free(&e);
}

/* A document a successor cannot read is refused, not half restored. */
static void bad_documents(void)
{
	struct bundle_env e = env_new();
	static const char *const bad[] = {
	    "",
	    "{}\n",
	    "{\"generation\":1,\"next_serial\":1,\"specs\":[{\"file\":\"/s\",\"length\":99}],"
	    "\"runs\":[],\"versions\":[],\"current\":[]}\n[a]\nargs = /x\n",
	    "{\"generation\":1,\"next_serial\":1,\"specs\":[{\"file\":\"/s\",\"length\":14}],"
	    "\"runs\":[[0,0,2,1]],\"versions\":[],\"current\":[]}\n[a]\nargs = /x\n",
	    "{\"generation\":1,\"next_serial\":1,\"specs\":[{\"file\":\"/s\",\"length\":14}],"
	    "\"runs\":[[0,0,1,1]],\"versions\":[],\"current\":[[2,1]]}\n[a]\nargs = /x\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bundles *set;
		struct bundle_hold *hold;
		uint64_t gen;
		double loaded;
		CHECK_INT(bundles_restore(bad[i], strlen(bad[i]), &e, &set, &gen, &loaded, &hold),
			  -EPROTO);
	}
	env_free(&e);
}

UNIT_MAIN(CASE(first_set_is_lazy), CASE(any_asked), CASE(document_at_start),
	  CASE(document_after_reloads), CASE(document_with_a_gap), CASE(bad_documents))
