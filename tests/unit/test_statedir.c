/* Unit tests for statedir: mount points escaped into one name and back,
 * and a bundle's generations, in a scratch directory. */
#include "statedir.h"
#include "unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void round_trip(void)
{
	static const char *const paths[] = {
	    "/", "/mnt/bundles", "/a-b/c d", "/x/%2F/y", "/é/ü", "/mnt//x", "/tmp/pytest-1/t0/mnt"};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		char *e = statedir_escape(paths[i]);
		CHECK(!strchr(e, '/'));
		char *back = statedir_unescape(e);
		CHECK_STR(back, paths[i]);
		free(back);
		free(e);
	}
	char *e = statedir_escape("/mnt/bundles");
	CHECK_STR(e, "mnt-bundles");
	free(e);
	e = statedir_escape("/a-b");
	CHECK_STR(e, "a%2Db");
	free(e);
	/* Names escape never writes are not mount points. */
	CHECK(statedir_unescape("a b") == NULL);
	CHECK(statedir_unescape("%41") == NULL); /* "A" is written plain */
	CHECK(statedir_unescape("%2") == NULL);
	CHECK(statedir_unescape(".x%") == NULL);
}

static void generations(void)
{
	char tmpl[] = "/tmp/statedir-XXXXXX";
	CHECK(mkdtemp(tmpl) != NULL);
	char *dir = statedir_bundle(tmpl, "/mnt/b", "web");
	CHECK_INT(statedir_current(dir), -1);
	CHECK_INT(statedir_make(dir, 0), 0);
	CHECK_INT(statedir_current(dir), 0);
	CHECK_INT(statedir_make(dir, 2), 0);
	CHECK_INT(statedir_make(dir, 10), 0);
	char *junk = xasprintf("%s/upper.01", dir);
	CHECK_INT(mkdir(junk, 0755), 0);
	unsigned *gens;
	size_t n = statedir_generations(dir, &gens);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_INT(gens[0], 0);
		CHECK_INT(gens[1], 2);
		CHECK_INT(gens[2], 10); /* by number, not by name */
	}
	free(gens);
	char *upper = statedir_upper(dir, 2), *file = xasprintf("%s/f", upper);
	FILE *f = fopen(file, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("data", f);
		fclose(f);
	}
	CHECK(statedir_bytes(upper) > 0);
	CHECK_INT(statedir_remove(dir, 2), 0);
	CHECK(access(upper, F_OK) < 0);
	CHECK_INT(statedir_current(dir), 10);
	rmdir(junk);
	statedir_remove(dir, 0);
	statedir_remove(dir, 10);
	CHECK_INT(rmdir(dir), 0);
	free(file);
	free(upper);
	free(junk);
	free(dir);
	char *top = xasprintf("%s/mnt-b", tmpl);
	rmdir(top);
	free(top);
	CHECK_INT(rmdir(tmpl), 0);
}

UNIT_MAIN(CASE(round_trip), CASE(generations))
