/* libFuzzer target for the spec parser (both syntaxes): any input must
 * parse or be rejected with messages, without crashing, leaking or
 * tripping the sanitizers. Built with -DBUNDLEFS_FUZZ=ON (clang). */
#include "ocicfg.h"
#include "spec.h"

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
	struct spec sp;
	struct diags d = {0};
	if (spec_parse(&sp, "fuzz.conf", (const char *)data, size, &st, &d) == 0) {
		/* Whatever parses must also render. */
		for (size_t i = 0; i < sp.n; i++) {
			struct ociopts o = {.uid = 1000, .gid = 100}; /* (rootless too) */
			size_t len;
			free(ocicfg_render(&sp.bundles[i], &o, &len));
		}
		spec_free(&sp);
	} else if (d.n == 0) {
		abort(); /* a rejection must say why */
	}
	diag_clear(&d);
	return 0;
}
