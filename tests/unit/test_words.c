/* Unit tests for words: shell-like splitting of spec values. */
#include "unit.h"
#include "words.h"

static int split(const char *s, char ***w, const char **err, size_t *col)
{
	static struct arena a;
	return words_split(&a, s, w, err, col);
}

static void plain_words(void)
{
	char **w;
	const char *e;
	size_t col;
	CHECK_INT(split("  /bin/hello  --greeting\thi ", &w, &e, &col), 3);
	CHECK_STR(w[0], "/bin/hello");
	CHECK_STR(w[1], "--greeting");
	CHECK_STR(w[2], "hi");
	CHECK(w[3] == NULL);
	CHECK_INT(split("", &w, &e, &col), 0);
	CHECK(w[0] == NULL);
}

static void quotes_and_escapes(void)
{
	char **w;
	const char *e;
	size_t col;
	CHECK_INT(split("a\"b c\"d 'e \"f' \"\" '' x\\ y \"\\\"\\\\\\$\\n\"", &w, &e, &col), 6);
	CHECK_STR(w[0], "ab cd");
	CHECK_STR(w[1], "e \"f");
	CHECK_STR(w[2], "");
	CHECK_STR(w[3], "");
	CHECK_STR(w[4], "x y");
	/* inside double quotes a backslash escapes only " \ $ ` */
	CHECK_STR(w[5], "\"\\$\\n");
}

static void errors(void)
{
	char **w;
	const char *e = NULL;
	size_t col = 99;
	CHECK_INT(split("ok \"open", &w, &e, &col), -1);
	CHECK_STR(e, "unterminated double quote");
	CHECK_INT(col, 3);
	CHECK_INT(split("a 'b", &w, &e, &col), -1);
	CHECK_STR(e, "unterminated single quote");
	CHECK_INT(col, 2);
	CHECK_INT(split("a\\", &w, &e, &col), -1);
	CHECK_STR(e, "backslash at end of value");
	CHECK_INT(col, 1);
}

UNIT_MAIN(CASE(plain_words), CASE(quotes_and_escapes), CASE(errors))
