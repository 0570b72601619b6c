/* unit: a minimal harness for the core library's unit tests. Each test
 * program lists its cases; `prog --list` names them, `prog NAME` runs one,
 * `prog` runs all. The pytest suite runs every case as its own test. */
#ifndef BUNDLEFS_UNIT_H
#define BUNDLEFS_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit_case {
	const char *name;
	void (*fn)(void);
};

static int unit_failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			unit_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!a_ || !b_ || strcmp(a_, b_)) {                                                \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,           \
				a_ ? a_ : "(null)", b_ ? b_ : "(null)");                           \
			unit_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (a_ != b_) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__,  \
				#a, a_, b_);                                                       \
			unit_failures++;                                                           \
		}                                                                                  \
	} while (0)

static inline int unit_main(int argc, char **argv, const struct unit_case *cases, size_t n)
{
	if (argc > 1 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			puts(cases[i].name);
		return 0;
	}
	int ran = 0;
	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name))
			continue;
		int before = unit_failures;
		cases[i].fn();
		ran++;
		fprintf(stderr, "%s %s\n", unit_failures == before ? "ok  " : "FAIL",
			cases[i].name);
	}
	if (!ran) {
		fprintf(stderr, "no test case named %s\n", argc > 1 ? argv[1] : "");
		return 2;
	}
	return unit_failures ? 1 : 0;
}

#define UNIT_MAIN(...)                                                                             \
	int main(int argc, char **argv)                                                            \
	{                                                                                          \
		static const struct unit_case cases[] = {__VA_ARGS__};                             \
		return unit_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));             \
	}
#define CASE(f)                                                                                    \
	{                                                                                          \
#f, f                                                                              \
	}

#endif
