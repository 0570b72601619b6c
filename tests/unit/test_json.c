/* Unit tests for json: the strict, position-tracking reader. */
#include "json.h"
#include "unit.h"

static struct json *parse(const char *s, struct json_error *e)
{
	static struct arena a;
	return json_parse(&a, s, strlen(s), 1, 1, 8, e);
}

static void values(void)
{
	struct json_error e;
	struct json *j =
	    parse("{\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\"],\n"
		  " \"b\": {}}",
		  &e);
	CHECK(j && j->type == JSON_OBJECT && j->n == 2);
	struct json *a = json_get(j, "a");
	CHECK(a && a->type == JSON_ARRAY && a->n == 6);
	CHECK(a->items[0]->num == 1);
	CHECK(a->items[1]->num == -2500);
	CHECK_INT(a->items[2]->type, JSON_TRUE);
	CHECK_INT(a->items[3]->type, JSON_FALSE);
	CHECK_INT(a->items[4]->type, JSON_NULL);
	CHECK_STR(a->items[5]->str, "x\xc3\xa9\xf0\x9f\x98\x80\n");
	struct json *b = json_get(j, "b");
	CHECK(b && b->type == JSON_OBJECT && b->n == 0);
	CHECK_INT(b->line, 2);
	CHECK_INT(b->col, 7);
	CHECK_INT(j->members[1].line, 2);
	CHECK_INT(j->members[1].col, 2);
}

static void error_positions(void)
{
	struct json_error e;
	CHECK(!parse("{\"a\": 1,\n \"b\": }", &e));
	CHECK_INT(e.line, 2);
	CHECK_INT(e.col, 7);
	CHECK(!parse("{\"a\": 1, \"a\": 2}", &e));
	CHECK(strstr(e.msg, "duplicate key \"a\"") != NULL);
	CHECK_INT(e.col, 10);
	CHECK(!parse("[[[[[[[[[1]]]]]]]]]", &e));
	CHECK(strstr(e.msg, "nesting deeper than 8") != NULL);
	CHECK_INT(e.col, 9);
	CHECK(!parse("\"\\u0000\"", &e));
	CHECK(strstr(e.msg, "NUL") != NULL);
	CHECK(!parse("\"\\ud800\"", &e));
	CHECK(!parse("\"a\tb\"", &e));
	CHECK(!parse("[1,]", &e));
	CHECK(!parse("01", &e));
	CHECK(!parse("{} x", &e));
	CHECK(strstr(e.msg, "after the JSON value") != NULL);
	CHECK(!parse("\"open", &e));
	CHECK(!parse("", &e));
	CHECK(!parse("tru", &e));
}

/* Numbers keep their text (2^64-1 is not a double); a value written back
 * reads the same; equality ignores the order of members only. */
static void write_and_compare(void)
{
	struct json_error e;
	const char *text = "{\"n\":[18446744073709551615,-0,1.5e3],\"s\":\"a\\\"\\n\\u0001\u00e9\","
			   "\"o\":{\"t\":true,\"f\":false,\"z\":null}}";
	struct json *j = parse(text, &e);
	CHECK(j != NULL);
	if (!j)
		return;
	CHECK_STR(json_get(j, "n")->items[0]->raw, "18446744073709551615");
	struct buf b = {0};
	json_put_value(&b, j);
	CHECK_STR(b.data, text);
	struct json *again = parse(b.data, &e);
	CHECK(json_equal(j, again));
	buf_free(&b);
	CHECK(json_equal(parse("{\"a\":1,\"b\":[2]}", &e), parse("{\"b\":[2],\"a\":1}", &e)));
	CHECK(!json_equal(parse("[1,2]", &e), parse("[2,1]", &e)));
	CHECK(!json_equal(parse("{\"a\":1}", &e), parse("{\"a\":1,\"b\":1}", &e)));
	CHECK(!json_equal(parse("{\"a\":1}", &e), parse("{\"b\":1}", &e)));
	CHECK(!json_equal(parse("1", &e), parse("2", &e)));
	CHECK(!json_equal(parse("1", &e), NULL));
	CHECK(json_equal(NULL, NULL));
}

UNIT_MAIN(CASE(values), CASE(error_positions), CASE(write_and_compare))
