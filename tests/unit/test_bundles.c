/* Unit tests for sets of bundles: states set up on first use. */
#include "bundle.h"
#include "unit.h"

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

UNIT_MAIN(CASE(first_set_is_lazy))
