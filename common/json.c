/* json: strict, position-tracking JSON reader for spec files. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

struct jp {
	struct arena *a;
	const char *s, *end;
	unsigned line, col;
	unsigned depth, max_depth;
	struct json_error *e;
};

static int fail(struct jp *p, const char *msg)
{
	p->e->line = p->line;
	p->e->col = p->col;
	snprintf(p->e->msg, sizeof(p->e->msg), "%s", msg);
	return -1;
}

static void adv(struct jp *p)
{
	if (*p->s == '\n') {
		p->line++;
		p->col = 1;
	} else if (((unsigned char)*p->s & 0xc0) != 0x80) {
		p->col++; /* columns count characters, not UTF-8 bytes */
	}
	p->s++;
}

static void skip_ws(struct jp *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		adv(p);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int read_hex4(struct jp *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		if (p->s >= p->end || hexval(*p->s) < 0)
			return fail(p, "bad \\u escape");
		v = v * 16 + (unsigned)hexval(*p->s);
		adv(p);
	}
	*out = v;
	return 0;
}

static void put_utf8(struct buf *b, unsigned cp)
{
	char o[4];
	size_t n;
	if (cp < 0x80) {
		o[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		o[0] = (char)(0xf0 | (cp >> 18));
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_add(b, o, n);
}

static int parse_string(struct jp *p, const char **out)
{
	struct buf b = {0};
	adv(p); /* opening quote */
	for (;;) {
		if (p->s >= p->end) {
			buf_free(&b);
			return fail(p, "unterminated string");
		}
		unsigned char c = (unsigned char)*p->s;
		if (c == '"') {
			adv(p);
			break;
		}
		if (c < 0x20) {
			buf_free(&b);
			return fail(p, "control character in string");
		}
		if (c != '\\') {
			buf_addc(&b, (char)c);
			adv(p);
			continue;
		}
		adv(p);
		if (p->s >= p->end) {
			buf_free(&b);
			return fail(p, "unterminated string");
		}
		char esc = *p->s;
		const char *simple = strchr("\"\\/bfnrt", esc);
		if (simple && esc) {
			static const char repl[] = "\"\\/\b\f\n\r\t";
			buf_addc(&b, repl[simple - "\"\\/bfnrt"]);
			adv(p);
			continue;
		}
		if (esc != 'u') {
			buf_free(&b);
			return fail(p, "bad escape in string");
		}
		adv(p);
		unsigned cp, lo;
		if (read_hex4(p, &cp) < 0)
			goto bad;
		if (cp >= 0xdc00 && cp <= 0xdfff) {
			fail(p, "unpaired surrogate in string");
			goto bad;
		}
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (p->end - p->s < 2 || p->s[0] != '\\' || p->s[1] != 'u') {
				fail(p, "unpaired surrogate in string");
				goto bad;
			}
			adv(p);
			adv(p);
			if (read_hex4(p, &lo) < 0)
				goto bad;
			if (lo < 0xdc00 || lo > 0xdfff) {
				fail(p, "unpaired surrogate in string");
				goto bad;
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		if (cp == 0) {
			fail(p, "NUL character in string");
			goto bad;
		}
		put_utf8(&b, cp);
	}
	*out = arena_strndup(p->a, b.data ? b.data : "", b.len);
	buf_free(&b);
	return 0;
bad:
	buf_free(&b);
	return -1;
}

static int parse_number(struct jp *p, struct json *v)
{
	const char *start = p->s;
	if (*p->s == '-')
		adv(p);
	if (p->s < p->end && *p->s == '0') {
		adv(p);
	} else if (p->s < p->end && *p->s >= '1' && *p->s <= '9') {
		while (p->s < p->end && *p->s >= '0' && *p->s <= '9')
			adv(p);
	} else {
		return fail(p, "bad number");
	}
	if (p->s < p->end && *p->s == '.') {
		adv(p);
		if (p->s >= p->end || *p->s < '0' || *p->s > '9')
			return fail(p, "bad number");
		while (p->s < p->end && *p->s >= '0' && *p->s <= '9')
			adv(p);
	}
	if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
		adv(p);
		if (p->s < p->end && (*p->s == '+' || *p->s == '-'))
			adv(p);
		if (p->s >= p->end || *p->s < '0' || *p->s > '9')
			return fail(p, "bad number");
		while (p->s < p->end && *p->s >= '0' && *p->s <= '9')
			adv(p);
	}
	v->raw = arena_strndup(p->a, start, (size_t)(p->s - start));
	v->num = strtod(v->raw, NULL);
	return 0;
}

static struct json *parse_value(struct jp *p);

static int parse_array(struct jp *p, struct json *v)
{
	struct json **items = NULL;
	size_t cap = 0;
	adv(p);
	skip_ws(p);
	if (p->s < p->end && *p->s == ']') {
		adv(p);
		return 0;
	}
	for (;;) {
		struct json *it = parse_value(p);
		if (!it)
			goto bad;
		GROW(items, v->n, cap);
		items[v->n++] = it;
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			adv(p);
			continue;
		}
		if (p->s < p->end && *p->s == ']') {
			adv(p);
			break;
		}
		fail(p, "expected ',' or ']'");
		goto bad;
	}
	v->items = arena_alloc(p->a, v->n * sizeof(*items));
	memcpy(v->items, items, v->n * sizeof(*items));
	free(items);
	return 0;
bad:
	free(items);
	return -1;
}

static int cmp_member(const void *x, const void *y)
{
	const struct json_member *a = *(struct json_member *const *)x;
	const struct json_member *b = *(struct json_member *const *)y;
	int c = strcmp(a->key, b->key);
	if (c)
		return c;
	return (a->line > b->line || (a->line == b->line && a->col > b->col)) ? 1 : -1;
}

/* Sorting keeps this O(n log n) for hostile objects with many keys. */
static int check_duplicates(struct jp *p, struct json *v)
{
	if (v->n < 2)
		return 0;
	struct json_member **s = xreallocarray(NULL, v->n, sizeof(*s));
	for (size_t i = 0; i < v->n; i++)
		s[i] = &v->members[i];
	qsort(s, v->n, sizeof(*s), cmp_member);
	int r = 0;
	for (size_t i = 1; i < v->n; i++) {
		if (!strcmp(s[i]->key, s[i - 1]->key)) {
			p->e->line = s[i]->line;
			p->e->col = s[i]->col;
			snprintf(p->e->msg, sizeof(p->e->msg),
				 "duplicate key \"%.100s\" (first at line %u)", s[i]->key,
				 s[i - 1]->line);
			r = -1;
			break;
		}
	}
	free(s);
	return r;
}

static int parse_object(struct jp *p, struct json *v)
{
	struct json_member *m = NULL;
	size_t cap = 0;
	adv(p);
	skip_ws(p);
	if (p->s < p->end && *p->s == '}') {
		adv(p);
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (p->s >= p->end || *p->s != '"') {
			fail(p, "expected a string key");
			goto bad;
		}
		struct json_member mem = {.line = p->line, .col = p->col};
		if (parse_string(p, &mem.key) < 0)
			goto bad;
		skip_ws(p);
		if (p->s >= p->end || *p->s != ':') {
			fail(p, "expected ':'");
			goto bad;
		}
		adv(p);
		mem.val = parse_value(p);
		if (!mem.val)
			goto bad;
		GROW(m, v->n, cap);
		m[v->n++] = mem;
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			adv(p);
			continue;
		}
		if (p->s < p->end && *p->s == '}') {
			adv(p);
			break;
		}
		fail(p, "expected ',' or '}'");
		goto bad;
	}
	v->members = arena_alloc(p->a, v->n * sizeof(*m));
	memcpy(v->members, m, v->n * sizeof(*m));
	free(m);
	return check_duplicates(p, v);
bad:
	free(m);
	return -1;
}

static bool match_word(struct jp *p, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		adv(p);
	return true;
}

static struct json *parse_value(struct jp *p)
{
	skip_ws(p);
	if (p->s >= p->end) {
		fail(p, "unexpected end of input");
		return NULL;
	}
	struct json *v = arena_alloc(p->a, sizeof(*v));
	v->line = p->line;
	v->col = p->col;
	int r = 0;
	switch (*p->s) {
	case '{':
	case '[':
		if (++p->depth > p->max_depth) {
			char msg[64];
			snprintf(msg, sizeof(msg), "nesting deeper than %u levels", p->max_depth);
			fail(p, msg);
			return NULL;
		}
		if (*p->s == '{') {
			v->type = JSON_OBJECT;
			r = parse_object(p, v);
		} else {
			v->type = JSON_ARRAY;
			r = parse_array(p, v);
		}
		p->depth--;
		break;
	case '"':
		v->type = JSON_STRING;
		r = parse_string(p, &v->str);
		break;
	case 't':
		v->type = JSON_TRUE;
		r = match_word(p, "true") ? 0 : fail(p, "unexpected character");
		break;
	case 'f':
		v->type = JSON_FALSE;
		r = match_word(p, "false") ? 0 : fail(p, "unexpected character");
		break;
	case 'n':
		v->type = JSON_NULL;
		r = match_word(p, "null") ? 0 : fail(p, "unexpected character");
		break;
	default:
		if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) {
			v->type = JSON_NUMBER;
			r = parse_number(p, v);
		} else {
			r = fail(p, "unexpected character");
		}
	}
	return r < 0 ? NULL : v;
}

struct json *json_parse(struct arena *a, const char *text, size_t len, unsigned line0,
			unsigned col0, unsigned max_depth, struct json_error *e)
{
	struct jp p = {.a = a,
		       .s = text,
		       .end = text + len,
		       .line = line0,
		       .col = col0,
		       .max_depth = max_depth,
		       .e = e};
	struct json *v = parse_value(&p);
	if (!v)
		return NULL;
	skip_ws(&p);
	if (p.s < p.end) {
		fail(&p, "unexpected text after the JSON value");
		return NULL;
	}
	return v;
}

const char *json_type_name(enum json_type t)
{
	static const char *names[] = {"null",	"boolean", "boolean", "number",
				      "string", "array",   "object"};
	return names[t];
}

struct json *json_get(const struct json *obj, const char *key)
{
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->members[i].key, key))
			return obj->members[i].val;
	return NULL;
}

void json_put_string(struct buf *b, const char *s)
{
	buf_addc(b, '"');
	while (*s) {
		/* Runs that need no escape are added at once. */
		size_t n = 0;
		while (s[n] && s[n] != '"' && s[n] != '\\' && (unsigned char)s[n] >= 0x20)
			n++;
		buf_add(b, s, n);
		s += n;
		if (!*s)
			break;
		unsigned char c = (unsigned char)*s++;
		if (c == '"' || c == '\\')
			buf_add(b, c == '"' ? "\\\"" : "\\\\", 2);
		else if (c == '\n')
			buf_add(b, "\\n", 2);
		else if (c == '\t')
			buf_add(b, "\\t", 2);
		else
			buf_addf(b, "\\u%04x", c);
	}
	buf_addc(b, '"');
}

void json_put_value(struct buf *b, const struct json *v)
{
	switch (v->type) {
	case JSON_NULL:
		buf_adds(b, "null");
		break;
	case JSON_FALSE:
		buf_adds(b, "false");
		break;
	case JSON_TRUE:
		buf_adds(b, "true");
		break;
	case JSON_NUMBER:
		buf_adds(b, v->raw);
		break;
	case JSON_STRING:
		json_put_string(b, v->str);
		break;
	case JSON_ARRAY:
		buf_addc(b, '[');
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				buf_addc(b, ',');
			json_put_value(b, v->items[i]);
		}
		buf_addc(b, ']');
		break;
	case JSON_OBJECT:
		buf_addc(b, '{');
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				buf_addc(b, ',');
			json_put_string(b, v->members[i].key);
			buf_addc(b, ':');
			json_put_value(b, v->members[i].val);
		}
		buf_addc(b, '}');
		break;
	}
}

bool json_equal(const struct json *a, const struct json *b)
{
	if (!a || !b)
		return a == b;
	if (a->type != b->type || a->n != b->n)
		return false;
	switch (a->type) {
	case JSON_NULL:
	case JSON_FALSE:
	case JSON_TRUE:
		return true;
	case JSON_NUMBER:
		return !strcmp(a->raw, b->raw);
	case JSON_STRING:
		return !strcmp(a->str, b->str);
	case JSON_ARRAY:
		for (size_t i = 0; i < a->n; i++)
			if (!json_equal(a->items[i], b->items[i]))
				return false;
		return true;
	case JSON_OBJECT:
		/* (Small objects: the quadratic search is fine.) */
		for (size_t i = 0; i < a->n; i++) {
			const struct json *o = json_get(b, a->members[i].key);
			if (!o || !json_equal(a->members[i].val, o))
				return false;
		}
		return true;
	}
	return false;
}
