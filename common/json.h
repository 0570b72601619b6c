/* json: a strict JSON reader that remembers where every value and key
 * came from, so that spec errors can say FILE:LINE:COLUMN. It rejects
 * duplicate object keys, NUL characters and nesting beyond a limit, which
 * general-purpose readers accept silently. (config.json is written with
 * cJSON; see ocicfg.c.) */
#ifndef BUNDLEFS_JSON_H
#define BUNDLEFS_JSON_H

#include "util.h"

enum json_type {
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT
};

struct json;
struct json_member {
	const char *key;
	unsigned line, col;
	struct json *val;
};
struct json {
	enum json_type type;
	unsigned line, col; /* 1-based position of the value's first byte */
	const char *str;    /* JSON_STRING */
	double num;	    /* JSON_NUMBER */
	const char *raw;    /* JSON_NUMBER: as written (exact, where num is not) */
	size_t n;	    /* items or members */
	struct json **items;
	struct json_member *members;
};

struct json_error {
	unsigned line, col;
	char msg[160];
};

/* Parses `len` bytes of `text`, which start at line/col `line0`/`col0` of
 * their file. Everything is allocated in `a`. Returns the value, or NULL
 * with `e` filled in. */
struct json *json_parse(struct arena *a, const char *text, size_t len, unsigned line0,
			unsigned col0, unsigned max_depth, struct json_error *e);

const char *json_type_name(enum json_type t);
/* Appends `s` to `b` as a JSON string (quoted, escaped). */
struct buf;
void json_put_string(struct buf *b, const char *s);
struct json *json_get(const struct json *obj, const char *key);
/* Appends `v` to `b` as compact JSON: members in the order read, numbers
 * as written. */
void json_put_value(struct buf *b, const struct json *v);
/* Are a and b the same value? Objects compare as sets of members (keys
 * are unique), numbers by the value they write. */
bool json_equal(const struct json *a, const struct json *b);

#endif
