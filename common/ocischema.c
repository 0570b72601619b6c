/* ocischema: the OCI runtime-spec's JSON schema, applied to a config.json
 * in C. The schema files are compiled into the library as text (CMake
 * generates ocischema-data.c from the Debian package's files) and turned
 * on the first call into a graph of nodes, one per schema object reached
 * from config-schema.json, $refs followed across the files.
 *
 * Only the draft-04 keywords those files use are implemented (plus the
 * annotations, which check nothing). Any other keyword, or a form of a
 * known one that is not handled (items as an array, a regex construct
 * without a POSIX translation, another $schema), fails the compilation with
 * its location, rather than being skipped: a newer schema must not pass
 * for applied with some of its rules silently dropped. The build runs that
 * compilation once (common/ocischema-selfcheck.c).
 *
 * Numbers: cJSON holds every JSON number as a double. "integer" is a
 * number without a fractional part (draft-06's rule: cJSON cannot tell
 * 1.0 from 1), and the limits are compared as doubles too, so that beyond
 * 2^53 neighbouring integers are one: the uint64 maximum
 * 18446744073709551615 (RLIM_INFINITY in an rlimit) passes as it must, but
 * so does 18446744073709551616, both read as 2^64; int64's limits likewise.
 * Only a value past a limit by less than a double's precision there is
 * let through.
 *
 * Patterns are ECMA 262 regular expressions; the schema's are simple, and
 * are translated to POSIX extended ones (regcomp), byte for byte: "." is any
 * byte but \n and \r (ECMA also excludes U+2028 and U+2029, which are not
 * single bytes), \d \w \s are their ASCII classes, "$" is the end of the
 * string (REG_NEWLINE is not set). A construct with no faithful
 * translation (lookaround, back references, \b, non-ASCII in a class) is
 * refused when the schema is compiled. */
#include "ocischema.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The compiled-in files, the root first (none without the schema). */
extern const struct ocischema_file ocischema_embedded[];
extern const size_t ocischema_nembedded;

#define DRAFT4 "http://json-schema.org/draft-04/schema#"

enum {
	T_ARRAY = 1 << 0,
	T_BOOLEAN = 1 << 1,
	T_INTEGER = 1 << 2,
	T_NULL = 1 << 3,
	T_NUMBER = 1 << 4,
	T_OBJECT = 1 << 5,
	T_STRING = 1 << 6,
};
static const char *const type_names[] = {"array",  "boolean", "integer", "null",
					 "number", "object",  "string"};
static const char *const type_phrases[] = {"an array", "a boolean", "an integer", "null",
					   "a number", "an object", "a string"};

struct node;
struct prop {
	const char *name; /* in the parsed schema */
	struct node *schema;
};
struct pprop {
	const char *src;
	regex_t re;
	struct node *schema;
};

struct node {
	int file;
	const char *file_name;
	char *ptr;	  /* where it is: file_name#ptr */
	struct node *ref; /* $ref: the other keywords do not apply (draft-04) */
	unsigned types;	  /* 0: any */
	const cJSON *enumv;
	const char *pattern_src;
	regex_t *pattern;
	bool has_min, has_max, has_min_items;
	double min, max, min_items;
	struct prop *props;
	size_t nprops;
	struct pprop *pprops;
	size_t npprops;
	bool no_additional;
	struct node *additional;
	const char **required;
	size_t nrequired;
	struct node *items;
	struct node **all_of, **any_of;
	size_t nall_of, nany_of;
};

struct schema {
	const struct ocischema_file *files;
	size_t nfiles;
	cJSON **docs;
	struct node **nodes;
	size_t nnodes, cap;
	struct node *root;
	bool failed;
	char err[512];
};

/* -- compiling --------------------------------------------------------- */

static bool schema_fail(struct schema *s, int file, const char *ptr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool schema_fail(struct schema *s, int file, const char *ptr, const char *fmt, ...)
{
	if (s->failed)
		return false;
	s->failed = true;
	int n = snprintf(s->err, sizeof(s->err), "schema: %s#%s: ", s->files[file].name, ptr);
	if (n < 0 || (size_t)n >= sizeof(s->err))
		return false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err + n, sizeof(s->err) - n, fmt, ap);
	va_end(ap);
	return false;
}

/* ptr + "/" + key, escaped as RFC 6901 says. */
static char *ptr_join(const char *ptr, const char *key)
{
	struct buf b = {0};
	buf_adds(&b, ptr);
	buf_addc(&b, '/');
	for (const char *k = key; *k; k++) {
		if (*k == '~')
			buf_adds(&b, "~0");
		else if (*k == '/')
			buf_adds(&b, "~1");
		else
			buf_addc(&b, *k);
	}
	return b.data;
}

/* The value at a JSON pointer (as a URI fragment: the schema's pointers
 * need no percent-decoding, which is refused), or NULL. */
static const cJSON *ptr_get(const cJSON *j, const char *ptr)
{
	const char *p = ptr;
	while (*p && j) {
		if (*p != '/')
			return NULL;
		const char *end = strchrnul(++p, '/');
		char tok[end - p + 1];
		size_t n = 0;
		for (const char *q = p; q < end; q++) {
			if (*q == '%')
				return NULL;
			if (*q == '~') {
				if (q + 1 == end || (q[1] != '0' && q[1] != '1'))
					return NULL;
				tok[n++] = *++q == '0' ? '~' : '/';
			} else {
				tok[n++] = *q;
			}
		}
		tok[n] = 0;
		if (cJSON_IsObject(j)) {
			j = cJSON_GetObjectItemCaseSensitive(j, tok);
		} else if (cJSON_IsArray(j)) {
			if (!n || strspn(tok, "0123456789") != n || (tok[0] == '0' && n > 1))
				return NULL;
			j = cJSON_GetArrayItem(j, atoi(tok));
		} else {
			return NULL;
		}
		p = end;
	}
	return j;
}

/* ECMA 262 regular expressions to POSIX extended ones. */

static const char ere_special[] = "^$\\.*+?()[]{}|";

static void ere_literal(struct buf *o, unsigned char c)
{
	if (strchr(ere_special, c))
		buf_addc(o, '\\');
	buf_addc(o, (char)c);
}

/* The members of \d \w \s (lower case), or NULL. */
static const char *class_escape(char c)
{
	switch (c) {
	case 'd':
		return "0123456789";
	case 'w':
		return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
	case 's':
		/* (ECMA's \s also has Unicode's spaces, which bytes cannot) */
		return " \t\n\v\f\r";
	}
	return NULL;
}

/* The byte a character escape stands for (\n, \x41, \u0041, \/...), or -1
 * with *what set. `p` is past the backslash, and is moved past the escape. */
static int char_escape(const char **p, bool in_class, const char **what)
{
	unsigned char c = (unsigned char)*(*p)++;
	switch (c) {
	case 'n':
		return '\n';
	case 't':
		return '\t';
	case 'r':
		return '\r';
	case 'f':
		return '\f';
	case 'v':
		return '\v';
	case 'b':
		if (in_class)
			return '\b';
		*what = "\\b (a word boundary)";
		return -1;
	case 'x':
	case 'u': {
		size_t digits = c == 'x' ? 2 : 4;
		char hex[5] = {0};
		for (size_t i = 0; i < digits; i++) {
			if (!isxdigit((unsigned char)(*p)[i])) {
				*what = "a \\x or \\u escape without its hex digits";
				return -1;
			}
			hex[i] = (*p)[i];
		}
		long v = strtol(hex, NULL, 16);
		if (v < 1 || v > 0x7f) {
			*what = "a \\x or \\u escape of NUL or of a non-ASCII character";
			return -1;
		}
		*p += digits;
		return (int)v;
	}
	}
	if (c && c < 0x80 && !isalnum(c) && c != '_')
		return c; /* an identity escape: \. \/ \- ... */
	*what = c ? "an escape with no POSIX translation (\\B, \\c, \\k, \\p, \\1...)"
		  : "a backslash at the end";
	return -1;
}

/* [...] from `p` (past the "["), moved past its "]"; appended to `o` as a
 * POSIX bracket expression of single ASCII bytes (no ranges: their meaning
 * would depend on the locale's collation). */
static bool ere_class(const char **p, struct buf *o, const char **what)
{
	bool neg = **p == '^';
	if (neg)
		(*p)++;
	if (**p == ']') {
		*what = "an empty class ([] or [^])";
		return false;
	}
	bool set[128] = {false};
	while (**p != ']') {
		int lo = -1, hi = -1;
		for (int end = 0; end < 2; end++) {
			unsigned char c = (unsigned char)*(*p)++;
			int v;
			if (!c) {
				*what = "a [ without its ]";
				return false;
			}
			if (c >= 0x80) {
				*what = "a non-ASCII character in a class";
				return false;
			}
			if (c == '\\') {
				const char *cls = class_escape(**p);
				if (cls) {
					if (end) {
						*what = "a range that ends in a class escape";
						return false;
					}
					(*p)++;
					for (; *cls; cls++)
						set[(unsigned char)*cls] = true;
					break;
				}
				if (class_escape((char)tolower((unsigned char)**p))) {
					*what = "\\D, \\W or \\S in a class";
					return false;
				}
				if ((v = char_escape(p, true, what)) < 0)
					return false;
			} else {
				v = c;
			}
			if (!end) {
				lo = hi = v;
				if (**p != '-' || (*p)[1] == ']' || !(*p)[1])
					break;
				(*p)++;
			} else {
				hi = v;
			}
		}
		if (lo < 0)
			continue; /* a class escape */
		if (hi < lo) {
			*what = "a range out of order";
			return false;
		}
		for (int c = lo; c <= hi; c++)
			set[c] = true;
	}
	(*p)++;
	set[0] = false;
	/* "]" first, "[" late (never before . : =), "^" not first, "-" last */
	struct buf m = {0};
	if (set[']'])
		buf_addc(&m, ']');
	for (int c = 1; c < 128; c++)
		if (set[c] && !strchr("]-^[", c))
			buf_addc(&m, (char)c);
	if (set['['])
		buf_addc(&m, '[');
	if (set['^'] && !m.len && !neg && !set['-']) {
		buf_adds(o, "\\^"); /* [\^] */
		buf_free(&m);
		return true;
	}
	if (set['^'] && !m.len && set['-']) {
		buf_adds(&m, "-^");
	} else {
		if (set['^'])
			buf_addc(&m, '^');
		if (set['-'])
			buf_addc(&m, '-');
	}
	buf_addc(o, '[');
	if (neg)
		buf_addc(o, '^');
	buf_adds(o, m.data);
	buf_addc(o, ']');
	buf_free(&m);
	return true;
}

/* {n}, {n,}, {n,m} at `p` (at the "{"): its length, or 0 if it is none. */
static size_t quantifier_len(const char *p)
{
	const char *q = p + 1;
	size_t d = strspn(q, "0123456789");
	if (!d)
		return 0;
	q += d;
	if (*q == ',')
		q += 1 + strspn(q + 1, "0123456789");
	return *q == '}' ? (size_t)(q + 1 - p) : 0;
}

static bool ecma_to_ere(const char *src, struct buf *o, const char **what)
{
	const char *p = src;
	bool atom = false; /* a quantifier may follow */
	bool quantified = false;
	while (*p) {
		unsigned char c = (unsigned char)*p++;
		if (quantified && c == '?') {
			/* lazy: which match is found changes, not whether */
			quantified = false;
			continue;
		}
		quantified = false;
		switch (c) {
		case '\\': {
			const char *cls = class_escape((char)tolower((unsigned char)*p));
			if (cls) {
				buf_addc(o, '[');
				if (isupper((unsigned char)*p))
					buf_addc(o, '^');
				buf_adds(o, cls);
				buf_addc(o, ']');
				p++;
			} else {
				int v = char_escape(&p, false, what);
				if (v < 0)
					return false;
				ere_literal(o, (unsigned char)v);
			}
			atom = true;
			break;
		}
		case '.':
			buf_adds(o, "[^\n\r]");
			atom = true;
			break;
		case '[':
			if (!ere_class(&p, o, what))
				return false;
			atom = true;
			break;
		case '(':
			if (*p == '?') {
				if (p[1] != ':') {
					*what = "a lookaround or named group";
					return false;
				}
				p += 2; /* nothing is captured anyway */
			}
			buf_addc(o, '(');
			atom = false;
			break;
		case ')':
			buf_addc(o, ')');
			atom = true;
			break;
		case '*':
		case '+':
		case '?':
		case '{': {
			size_t n = c == '{' ? quantifier_len(p - 1) : 1;
			if (!n) { /* a "{" that starts no quantifier is itself */
				buf_adds(o, "\\{");
				atom = true;
				break;
			}
			if (!atom) {
				*what = "a quantifier with nothing to repeat";
				return false;
			}
			buf_add(o, p - 1, n);
			p += n - 1;
			atom = false;
			quantified = true;
			break;
		}
		case '}':
			buf_adds(o, "[}]");
			atom = true;
			break;
		case ']':
			buf_adds(o, "[]]");
			atom = true;
			break;
		case '|':
		case '^':
		case '$':
			buf_addc(o, (char)c);
			atom = false;
			break;
		default:
			if (c >= 0x80) {
				/* one character, whole under a quantifier */
				buf_addc(o, '(');
				buf_addc(o, (char)c);
				while ((*p & 0xc0) == 0x80)
					buf_addc(o, *p++);
				buf_addc(o, ')');
			} else {
				ere_literal(o, c);
			}
			atom = true;
		}
	}
	return true;
}

static bool compile_regex(struct schema *s, const struct node *n, const char *where,
			  const char *src, regex_t *re)
{
	struct buf ere = {0};
	const char *what = NULL;
	buf_adds(&ere, "");
	if (!ecma_to_ere(src, &ere, &what)) {
		buf_free(&ere);
		return schema_fail(s, n->file, where, "pattern %s: %s", src, what);
	}
	int rc = regcomp(re, ere.data, REG_EXTENDED | REG_NOSUB);
	buf_free(&ere);
	if (rc) {
		char msg[128];
		regerror(rc, re, msg, sizeof(msg));
		return schema_fail(s, n->file, where, "pattern %s: %s", src, msg);
	}
	return true;
}

static struct node *node_at(struct schema *s, int file, const char *ptr, const struct node *from);

static struct node *subschema(struct schema *s, struct node *n, const char *kw, const char *key)
{
	cleanup_free char *p = ptr_join(n->ptr, kw);
	if (!key)
		return node_at(s, n->file, p, n);
	cleanup_free char *q = ptr_join(p, key);
	return node_at(s, n->file, q, n);
}

static bool is_annotation(const char *k)
{
	return !strcmp(k, "description") || !strcmp(k, "title") || !strcmp(k, "default") ||
	       !strcmp(k, "definitions");
}

/* The keywords compile_keyword handles. */
static bool is_known(const char *k)
{
	static const char *const known[] = {"$schema",
					    "type",
					    "enum",
					    "pattern",
					    "minimum",
					    "maximum",
					    "minItems",
					    "required",
					    "properties",
					    "patternProperties",
					    "additionalProperties",
					    "items",
					    "allOf",
					    "anyOf"};
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (!strcmp(k, known[i]))
			return true;
	return is_annotation(k);
}

static bool resolve_ref(struct schema *s, struct node *n, const cJSON *v)
{
	if (!cJSON_IsString(v))
		return schema_fail(s, n->file, n->ptr, "$ref is not a string");
	const char *ref = v->valuestring;
	const char *hash = strchrnul(ref, '#');
	int file = n->file;
	if (hash > ref) {
		file = -1;
		for (size_t i = 0; i < s->nfiles; i++)
			if (strlen(s->files[i].name) == (size_t)(hash - ref) &&
			    !strncmp(s->files[i].name, ref, hash - ref))
				file = (int)i;
		if (file < 0)
			return schema_fail(s, n->file, n->ptr, "$ref %s: no such schema file", ref);
	}
	const char *frag = *hash ? hash + 1 : "";
	if (*frag && *frag != '/')
		return schema_fail(s, n->file, n->ptr, "$ref %s: not a JSON pointer", ref);
	n->ref = node_at(s, file, frag, n);
	return n->ref != NULL;
}

static bool compile_nodes(struct schema *s, struct node *n, const cJSON *v, const char *kw,
			  struct node ***out, size_t *nout)
{
	if (!cJSON_IsArray(v) || !cJSON_GetArraySize(v))
		return schema_fail(s, n->file, n->ptr, "%s is not a non-empty array", kw);
	*nout = (size_t)cJSON_GetArraySize(v);
	*out = xcalloc(*nout, sizeof(**out));
	for (size_t i = 0; i < *nout; i++) {
		char idx[24];
		snprintf(idx, sizeof(idx), "%zu", i);
		if (!((*out)[i] = subschema(s, n, kw, idx)))
			return false;
	}
	return true;
}

static bool compile_keyword(struct schema *s, struct node *n, const cJSON *v)
{
	const char *k = v->string;
	if (!strcmp(k, "$schema")) {
		if (!cJSON_IsString(v) || strcmp(v->valuestring, DRAFT4))
			return schema_fail(s, n->file, n->ptr, "$schema is not " DRAFT4);
	} else if (is_annotation(k)) {
		/* checks nothing; definitions are compiled when referred to */
	} else if (!strcmp(k, "type")) {
		const cJSON *t = v;
		if (cJSON_IsArray(v) && !(t = v->child))
			return schema_fail(s, n->file, n->ptr, "type is an empty array");
		for (; t; t = cJSON_IsArray(v) ? t->next : NULL) {
			size_t i = 0;
			while (i < ARRAY_SIZE(type_names) &&
			       !(cJSON_IsString(t) && !strcmp(t->valuestring, type_names[i])))
				i++;
			if (i == ARRAY_SIZE(type_names))
				return schema_fail(s, n->file, n->ptr, "type names no JSON type");
			n->types |= 1u << i;
		}
	} else if (!strcmp(k, "enum")) {
		if (!cJSON_IsArray(v) || !cJSON_GetArraySize(v))
			return schema_fail(s, n->file, n->ptr, "enum is not a non-empty array");
		n->enumv = v;
	} else if (!strcmp(k, "pattern")) {
		if (!cJSON_IsString(v))
			return schema_fail(s, n->file, n->ptr, "pattern is not a string");
		n->pattern_src = v->valuestring;
		n->pattern = xmalloc(sizeof(*n->pattern));
		if (!compile_regex(s, n, n->ptr, v->valuestring, n->pattern)) {
			free(n->pattern);
			n->pattern = NULL;
			return false;
		}
	} else if (!strcmp(k, "minimum") || !strcmp(k, "maximum")) {
		if (!cJSON_IsNumber(v))
			return schema_fail(s, n->file, n->ptr, "%s is not a number", k);
		bool min = k[1] == 'i';
		*(min ? &n->has_min : &n->has_max) = true;
		*(min ? &n->min : &n->max) = v->valuedouble;
	} else if (!strcmp(k, "minItems")) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
		    v->valuedouble != floor(v->valuedouble))
			return schema_fail(s, n->file, n->ptr, "minItems is not a count");
		n->has_min_items = true;
		n->min_items = v->valuedouble;
	} else if (!strcmp(k, "required")) {
		if (!cJSON_IsArray(v) || !cJSON_GetArraySize(v))
			return schema_fail(s, n->file, n->ptr, "required is not a non-empty array");
		n->required = xcalloc((size_t)cJSON_GetArraySize(v), sizeof(*n->required));
		for (const cJSON *r = v->child; r; r = r->next) {
			if (!cJSON_IsString(r))
				return schema_fail(s, n->file, n->ptr,
						   "required holds a non-string");
			n->required[n->nrequired++] = r->valuestring;
		}
	} else if (!strcmp(k, "properties") || !strcmp(k, "patternProperties")) {
		if (!cJSON_IsObject(v))
			return schema_fail(s, n->file, n->ptr, "%s is not an object", k);
		bool pat = k[0] == 'p' && k[1] == 'a';
		size_t count = (size_t)cJSON_GetArraySize(v);
		if (pat)
			n->pprops = xcalloc(count, sizeof(*n->pprops));
		else
			n->props = xcalloc(count, sizeof(*n->props));
		for (const cJSON *m = v->child; m; m = m->next) {
			struct node *sub = subschema(s, n, k, m->string);
			if (!sub)
				return false;
			if (!pat) {
				n->props[n->nprops++] = (struct prop){m->string, sub};
				continue;
			}
			struct pprop *pp = &n->pprops[n->npprops];
			cleanup_free char *where = ptr_join(n->ptr, k);
			if (!compile_regex(s, n, where, m->string, &pp->re))
				return false;
			pp->src = m->string;
			pp->schema = sub;
			n->npprops++;
		}
	} else if (!strcmp(k, "additionalProperties")) {
		if (cJSON_IsBool(v))
			n->no_additional = cJSON_IsFalse(v);
		else if (!cJSON_IsObject(v))
			return schema_fail(s, n->file, n->ptr,
					   "additionalProperties is not a schema");
		else if (!(n->additional = subschema(s, n, k, NULL)))
			return false;
	} else if (!strcmp(k, "items")) {
		if (!cJSON_IsObject(v))
			return schema_fail(
			    s, n->file, n->ptr,
			    "items is not one schema (arrays of them are not supported)");
		if (!(n->items = subschema(s, n, k, NULL)))
			return false;
	} else if (!strcmp(k, "allOf")) {
		return compile_nodes(s, n, v, k, &n->all_of, &n->nall_of);
	} else if (!strcmp(k, "anyOf")) {
		return compile_nodes(s, n, v, k, &n->any_of, &n->nany_of);
	} else {
		return schema_fail(s, n->file, n->ptr, "keyword \"%s\" is not supported", k);
	}
	return true;
}

static bool compile_node(struct schema *s, struct node *n, const cJSON *j)
{
	for (const cJSON *a = j->child; a; a = a->next)
		for (const cJSON *b = a->next; b; b = b->next)
			if (!strcmp(a->string, b->string))
				return schema_fail(s, n->file, n->ptr, "\"%s\" twice", a->string);
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "$ref");
	if (ref) {
		/* The others do not apply beside a $ref, but must be known: an
		 * unknown one may mean the schema expects them to. */
		for (const cJSON *v = j->child; v; v = v->next)
			if (v != ref && !is_known(v->string))
				return schema_fail(s, n->file, n->ptr,
						   "keyword \"%s\" is not supported", v->string);
		return resolve_ref(s, n, ref);
	}
	for (const cJSON *v = j->child; v; v = v->next)
		if (!compile_keyword(s, n, v))
			return false;
	return true;
}

static struct node *node_at(struct schema *s, int file, const char *ptr, const struct node *from)
{
	for (size_t i = 0; i < s->nnodes; i++)
		if (s->nodes[i]->file == file && !strcmp(s->nodes[i]->ptr, ptr))
			return s->nodes[i];
	const cJSON *j = ptr_get(s->docs[file], ptr);
	if (!cJSON_IsObject(j)) {
		if (from)
			schema_fail(s, from->file, from->ptr, "%s#%s is %s", s->files[file].name,
				    ptr, j ? "not a schema" : "not there");
		else
			schema_fail(s, file, ptr, "not a schema");
		return NULL;
	}
	struct node *n = xcalloc(1, sizeof(*n));
	n->file = file;
	n->file_name = s->files[file].name;
	n->ptr = xstrdup(ptr);
	GROW(s->nodes, s->nnodes, s->cap);
	s->nodes[s->nnodes++] = n;
	return compile_node(s, n, j) ? n : NULL;
}

static void schema_free(struct schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nnodes; i++) {
		struct node *n = s->nodes[i];
		if (n->pattern) {
			regfree(n->pattern);
			free(n->pattern);
		}
		for (size_t k = 0; k < n->npprops; k++)
			if (n->pprops[k].src)
				regfree(&n->pprops[k].re);
		free(n->ptr);
		free(n->props);
		free(n->pprops);
		free(n->required);
		free(n->all_of);
		free(n->any_of);
		free(n);
	}
	free(s->nodes);
	for (size_t i = 0; i < s->nfiles; i++)
		cJSON_Delete(s->docs[i]);
	free(s->docs);
	free(s);
}

/* The compiled schema, or NULL with the reason in err. */
static struct schema *schema_compile(const struct ocischema_file *files, size_t n, char *err,
				     size_t el)
{
	struct schema *s = xcalloc(1, sizeof(*s));
	s->files = files;
	s->nfiles = n;
	s->docs = xcalloc(n, sizeof(*s->docs));
	for (size_t i = 0; i < n && !s->failed; i++) {
		const char *end = NULL;
		s->docs[i] = cJSON_ParseWithLengthOpts(files[i].text, files[i].len, &end, false);
		if (!s->docs[i])
			schema_fail(s, (int)i, "", "not JSON (at byte %td)",
				    end ? end - files[i].text : (ptrdiff_t)0);
	}
	if (!n)
		snprintf(s->err, sizeof(s->err), "schema: no files");
	else if (!s->failed)
		s->root = node_at(s, 0, "", NULL);
	if (!s->root) {
		snprintf(err, el, "%s", s->err);
		schema_free(s);
		return NULL;
	}
	return s;
}

/* -- checking ---------------------------------------------------------- */

/* One step down from the document: a member's key, or an item's index. */
struct step {
	const char *key;
	size_t index;
};

struct vctx {
	struct step *path; /* where the value being checked is */
	size_t depth, cap;
	bool quiet; /* (inside anyOf: whether it matches, not why) */
	char *why;
	size_t wl;
};

static void add_text(struct buf *b, const char *s, size_t max);

/* The violation, as "JSON-POINTER: what", in why. The pointer is written
 * here, not kept up to date on the way down, which would cost more than
 * the checks. */
static bool violation(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool violation(struct vctx *v, const char *fmt, ...)
{
	if (v->quiet || !v->wl)
		return false;
	struct buf ptr = {0};
	buf_adds(&ptr, v->depth ? "" : "(root)");
	for (size_t i = 0; i < v->depth; i++) {
		buf_addc(&ptr, '/');
		if (!v->path[i].key) {
			buf_addf(&ptr, "%zu", v->path[i].index);
			continue;
		}
		struct buf k = {0};
		buf_adds(&k, "");
		add_text(&k, v->path[i].key, 256);
		for (const char *c = k.data; *c; c++) {
			if (*c == '~')
				buf_adds(&ptr, "~0");
			else if (*c == '/')
				buf_adds(&ptr, "~1");
			else
				buf_addc(&ptr, *c);
		}
		buf_free(&k);
	}
	int n = snprintf(v->why, v->wl, "%s: ", ptr.data);
	buf_free(&ptr);
	if (n >= 0 && (size_t)n < v->wl) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(v->why + n, v->wl - n, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* Text from a document for a message: control bytes as \xNN (messages go
 * to logs), long strings cut. */
static void add_text(struct buf *b, const char *s, size_t max)
{
	size_t i = 0;
	for (; s[i] && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			buf_addf(b, "\\x%02x", c);
		else
			buf_addc(b, (char)c);
	}
	if (s[i])
		buf_adds(b, "...");
}

static void add_number(struct buf *b, double d)
{
	if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
		buf_addf(b, "%.0f", d);
		return;
	}
	char t[40];
	snprintf(t, sizeof(t), "%.15g", d);
	if (strtod(t, NULL) != d)
		snprintf(t, sizeof(t), "%.17g", d);
	buf_adds(b, t);
}

/* A value, as a message shows it. */
static void add_value(struct buf *b, const cJSON *j)
{
	if (cJSON_IsString(j)) {
		buf_addc(b, '"');
		add_text(b, j->valuestring, 64);
		buf_addc(b, '"');
	} else if (cJSON_IsNumber(j)) {
		add_number(b, j->valuedouble);
	} else if (cJSON_IsBool(j)) {
		buf_adds(b, cJSON_IsTrue(j) ? "true" : "false");
	} else if (cJSON_IsNull(j)) {
		buf_adds(b, "null");
	} else if (cJSON_IsArray(j)) {
		buf_adds(b, "an array");
	} else if (cJSON_IsObject(j)) {
		buf_adds(b, "an object");
	} else {
		buf_adds(b, "a value cJSON did not parse");
	}
}

static unsigned types_of(const cJSON *j)
{
	if (cJSON_IsString(j))
		return T_STRING;
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		return T_NUMBER | (isfinite(d) && d == floor(d) ? T_INTEGER : 0);
	}
	if (cJSON_IsBool(j))
		return T_BOOLEAN;
	if (cJSON_IsNull(j))
		return T_NULL;
	if (cJSON_IsArray(j))
		return T_ARRAY;
	if (cJSON_IsObject(j))
		return T_OBJECT;
	return 0; /* cJSON_Raw, or no value */
}

static bool check(const struct node *n, const cJSON *j, struct vctx *v, int hops);

/* Descends into a member (key) or an item (index). */
static bool check_at(const struct node *n, const cJSON *j, struct vctx *v, const char *key,
		     size_t index)
{
	GROW(v->path, v->depth, v->cap);
	v->path[v->depth++] = (struct step){key, index};
	bool ok = check(n, j, v, 0);
	v->depth--;
	return ok;
}

static bool check_object(const struct node *n, const cJSON *j, struct vctx *v)
{
	for (size_t i = 0; i < n->nrequired; i++)
		if (!cJSON_GetObjectItemCaseSensitive(j, n->required[i])) {
			struct buf t = {0};
			buf_adds(&t, "");
			add_text(&t, n->required[i], 64);
			violation(v, "required property \"%s\" missing", t.data);
			buf_free(&t);
			return false;
		}
	for (const cJSON *m = j->child; m; m = m->next) {
		bool matched = false;
		for (size_t i = 0; i < n->nprops; i++)
			if (!strcmp(n->props[i].name, m->string)) {
				matched = true;
				if (!check_at(n->props[i].schema, m, v, m->string, 0))
					return false;
			}
		for (size_t i = 0; i < n->npprops; i++)
			if (!regexec(&n->pprops[i].re, m->string, 0, NULL, 0)) {
				matched = true;
				if (!check_at(n->pprops[i].schema, m, v, m->string, 0))
					return false;
			}
		if (matched)
			continue;
		if (n->no_additional) {
			struct buf t = {0};
			buf_adds(&t, "");
			add_text(&t, m->string, 64);
			violation(v, "property \"%s\" is not allowed", t.data);
			buf_free(&t);
			return false;
		}
		if (n->additional && !check_at(n->additional, m, v, m->string, 0))
			return false;
	}
	return true;
}

static bool check_any_of(const struct node *n, const cJSON *j, struct vctx *v, int hops)
{
	bool quiet = v->quiet;
	v->quiet = true;
	for (size_t i = 0; i < n->nany_of; i++)
		if (check(n->any_of[i], j, v, hops + 1)) {
			v->quiet = quiet;
			return true;
		}
	v->quiet = quiet;
	if (n->nany_of == 1) /* the one alternative's own reason */
		return check(n->any_of[0], j, v, hops + 1);
	struct buf t = {0};
	add_value(&t, j);
	violation(v, "%s matches none of the %zu schemas of anyOf", t.data, n->nany_of);
	buf_free(&t);
	return false;
}

static bool check(const struct node *n, const cJSON *j, struct vctx *v, int hops)
{
	if (hops > 64)
		return violation(v, "the schema loops at %s#%s", n->file_name, n->ptr);
	if (n->ref)
		return check(n->ref, j, v, hops + 1);
	unsigned t = types_of(j);
	struct buf m = {0};
	bool ok = true;
	if (n->types && !(t & n->types)) {
		add_value(&m, j);
		buf_adds(&m, " is not ");
		const char *sep = "";
		for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
			if (n->types & (1u << i)) {
				buf_addf(&m, "%s%s", sep, type_phrases[i]);
				sep = " or ";
			}
		ok = violation(v, "%s", m.data);
		goto out;
	}
	if (n->enumv) {
		const cJSON *e = n->enumv->child;
		while (e && !cJSON_Compare(e, j, true))
			e = e->next;
		if (!e) {
			add_value(&m, j);
			buf_adds(&m, " is not one of ");
			for (e = n->enumv->child; e; e = e->next) {
				add_value(&m, e);
				if (e->next)
					buf_adds(&m, ", ");
			}
			ok = violation(v, "%s", m.data);
			goto out;
		}
	}
	if (t & T_STRING && n->pattern) {
		int rc = regexec(n->pattern, j->valuestring, 0, NULL, 0);
		if (rc) {
			add_value(&m, j);
			ok = violation(v, "%s %s %s", m.data,
				       rc == REG_NOMATCH ? "does not match"
							 : "cannot be matched with",
				       n->pattern_src);
			goto out;
		}
	}
	if (t & T_NUMBER &&
	    ((n->has_min && j->valuedouble < n->min) || (n->has_max && j->valuedouble > n->max))) {
		bool low = n->has_min && j->valuedouble < n->min;
		add_value(&m, j);
		buf_addf(&m, " is %s than the %s ", low ? "less" : "greater",
			 low ? "minimum" : "maximum");
		add_number(&m, low ? n->min : n->max);
		ok = violation(v, "%s", m.data);
		goto out;
	}
	if (t & T_ARRAY) {
		size_t count = n->has_min_items ? (size_t)cJSON_GetArraySize(j) : 0;
		if (n->has_min_items && (double)count < n->min_items) {
			ok = violation(v, "%zu items, fewer than the minimum %.0f", count,
				       n->min_items);
			goto out;
		}
		size_t i = 0;
		for (const cJSON *item = j->child; n->items && item; item = item->next, i++)
			if (!check_at(n->items, item, v, NULL, i)) {
				ok = false;
				goto out;
			}
	}
	if (t & T_OBJECT && !check_object(n, j, v)) {
		ok = false;
		goto out;
	}
	for (size_t i = 0; i < n->nall_of; i++)
		if (!check(n->all_of[i], j, v, hops + 1)) {
			ok = false;
			goto out;
		}
	if (n->nany_of)
		ok = check_any_of(n, j, v, hops);
out:
	buf_free(&m);
	return ok;
}

static int validate(const struct schema *s, const cJSON *doc, char *why, size_t wl)
{
	struct vctx v = {.why = why, .wl = wl};
	if (wl)
		why[0] = 0;
	if (!doc) {
		violation(&v, "no document");
		return -1;
	}
	bool ok = check(s->root, doc, &v, 0);
	free(v.path);
	return ok ? 0 : -1;
}

int ocischema_check_files(const struct ocischema_file *files, size_t n, const cJSON *doc, char *why,
			  size_t wl)
{
	char err[512];
	struct schema *s = schema_compile(files, n, err, sizeof(err));
	if (!s) {
		if (wl)
			snprintf(why, wl, "%s", err);
		return -1;
	}
	int rc = validate(s, doc, why, wl);
	schema_free(s);
	return rc;
}

/* The compiled-in schema, compiled by the first call and kept. */
static pthread_once_t embedded_once = PTHREAD_ONCE_INIT;
static struct schema *embedded;
static char embedded_err[512];

static void compile_embedded(void)
{
	embedded = schema_compile(ocischema_embedded, ocischema_nembedded, embedded_err,
				  sizeof(embedded_err));
}

bool ocischema_available(void)
{
	return ocischema_nembedded > 0;
}

int ocischema_check(const cJSON *doc, char *why, size_t wl)
{
	if (wl)
		why[0] = 0;
	if (!ocischema_available())
		return 0;
	pthread_once(&embedded_once, compile_embedded);
	if (!embedded) {
		if (wl)
			snprintf(why, wl, "%s", embedded_err);
		return -1;
	}
	return validate(embedded, doc, why, wl);
}
