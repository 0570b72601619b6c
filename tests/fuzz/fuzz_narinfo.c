/* libFuzzer target for the narinfo parser: what a binary cache sends is
 * untrusted, and any input must parse or be rejected with a message,
 * without crashing, leaking or tripping the sanitizers. Built with
 * -DBUNDLEFS_FUZZ=ON (clang). */
#include "narinfo.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct store st;
	static int init;
	if (!init) {
		char *err;
		store_init(&st);
		store_finish(&st, &err);
		init = 1;
	}
	struct arena a = {0};
	struct narinfo ni;
	char *err = NULL;
	if (narinfo_parse(&ni, (const char *)data, size, &st, "fuzz.narinfo", &a, &err) == 0) {
		/* Whatever parses has what a closure needs, and a fingerprint. */
		if (!ni.base || !ni.url || !ni.nar_hash || (ni.nrefs && !ni.refs[ni.nrefs - 1]))
			abort();
		free(narinfo_fingerprint(&ni, &st));
	} else if (!err) {
		abort(); /* a rejection must say why */
	}
	free(err);
	arena_free(&a);
	return 0;
}
