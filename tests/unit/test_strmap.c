/* Unit tests for strmap, against a plain array as the model. */
#include "strmap.h"
#include "unit.h"

static void model(void)
{
	enum { N = 5000 };
	static char keys[N][16];
	static int present[N];
	struct strmap m = {0};
	unsigned seed = 12345;
	for (int i = 0; i < N; i++)
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
	for (int step = 0; step < 50000; step++) {
		seed = seed * 1103515245 + 12345;
		int k = (int)((seed >> 8) % N);
		if ((seed >> 4) & 1) {
			void *v = strmap_put(&m, keys[k], strlen(keys[k]), keys[k]);
			CHECK(v == keys[k]);
			present[k] = 1;
		} else {
			void *v = strmap_del(&m, keys[k], strlen(keys[k]));
			CHECK((v != NULL) == (present[k] != 0));
			present[k] = 0;
		}
	}
	size_t n = 0;
	for (int i = 0; i < N; i++) {
		void *v = strmap_get(&m, keys[i], strlen(keys[i]));
		CHECK((v != NULL) == (present[i] != 0));
		n += present[i];
	}
	CHECK_INT(m.n, n);
	strmap_free(&m);
}

UNIT_MAIN(CASE(model))
