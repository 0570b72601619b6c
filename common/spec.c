/* spec: parses spec.conf (INI-like, one section per bundle) and the same
 * schema written as JSON, into struct spec. Every problem is reported as
 * FILE:LINE: (JSON: FILE:LINE:COLUMN:) and parsing goes on to find the
 * next one, so that a user sees all of them at once. */
#include "spec.h"
#include "json.h"
#include "words.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A bundle while it is being read: lists grow here, then move into the
 * arena when the bundle is complete. */
struct draft {
	struct bundle b;
	bool seen_args, seen_readonly, seen_os, seen_arch, seen_closure, seen_paths;
	bool unreadable_line; /* a line we could not read may have held args */
	struct spec_mount *mounts;
	size_t cap;
};

struct parser {
	struct spec *sp;
	const struct store *st;
	struct diags *d;
	const char *file;
	struct draft *drafts;
	size_t n, cap;
	bool failed;
};

__attribute__((format(printf, 4, 5))) static void err_at(struct parser *p, unsigned line,
							 unsigned col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (col)
		diag_add(p->d, "%s:%u:%u: %s", p->file, line, col, msg);
	else
		diag_add(p->d, "%s:%u: %s", p->file, line, msg);
	p->failed = true;
}

bool spec_valid_name(const char *name, size_t n)
{
	if (n < 1 || n > SPEC_NAME_MAX)
		return false;
	if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

/* Shared checks, so that both syntaxes say the same thing. Each returns
 * NULL when fine, else what is wrong. */

static const char *check_name(const char *name)
{
	if (!spec_valid_name(name, strlen(name)))
		return "bad bundle name: use 1 to 255 of A-Z a-z 0-9 . _ + -, not . or ..";
	return NULL;
}

/* Reports a bad bundle name at line/col. */
static void bad_name(struct parser *p, unsigned line, unsigned col, const char *name)
{
	if (strlen(name) > SPEC_NAME_MAX)
		err_at(p, line, col, "bundle name is longer than %d bytes", SPEC_NAME_MAX);
	else
		err_at(p, line, col, "\"%s\": %s", name, check_name(name));
}

static const char *check_dest(const struct store *st, const char *dest, char *why, size_t wl)
{
	if (dest[0] != '/') {
		snprintf(why, wl, "mount destination \"%.200s\" is not an absolute path", dest);
		return why;
	}
	if (!strcmp(dest, "/")) {
		snprintf(why, wl, "mount destination may not be /");
		return why;
	}
	size_t total = strlen(dest);
	if (total >= 4096) {
		snprintf(why, wl, "mount destination is longer than 4095 bytes");
		return why;
	}
	for (const char *c = dest; *c;) {
		const char *e = strchr(c + 1, '/');
		size_t n = e ? (size_t)(e - c - 1) : strlen(c + 1);
		if (n == 0 || (n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.')) {
			snprintf(why, wl,
				 "mount destination \"%.200s\" is not normalized (empty, . or .. "
				 "component, or trailing /)",
				 dest);
			return why;
		}
		if (n > 255) {
			snprintf(why, wl,
				 "mount destination has a component longer than 255 bytes");
			return why;
		}
		if (!e)
			break;
		c = e;
	}
	size_t dl = strlen(st->dir);
	if (!strncmp(dest, st->dir, dl) && (dest[dl] == '/' || !dest[dl])) {
		snprintf(why, wl, "mount destination \"%.200s\" is inside the store directory %s",
			 dest, st->dir);
		return why;
	}
	return NULL;
}

static const char *check_store_path(const struct store *st, const char *path, char *why, size_t wl)
{
	if (!store_path_base(st, path)) {
		snprintf(why, wl, "\"%.300s\" is not a store path (%s/<32-char hash>-<name>)", path,
			 st->dir);
		return why;
	}
	return NULL;
}

static const char *check_word(const char *what, const char *w, char *why, size_t wl)
{
	if (!*w) {
		snprintf(why, wl, "%s may not be empty", what);
		return why;
	}
	for (const char *c = w; *c; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			snprintf(why, wl, "%s \"%.100s\" contains whitespace or control characters",
				 what, w);
			return why;
		}
	}
	return NULL;
}

static const char *check_args(const char *const *args, size_t n)
{
	if (n == 0)
		return "args is empty: it needs at least the program to run";
	if (!args[0][0])
		return "the program (first word of args) is empty";
	return NULL;
}

static const char *check_options(const char *const *opts, char *why, size_t wl)
{
	for (size_t i = 0; opts && opts[i]; i++) {
		if (!*opts[i]) {
			snprintf(why, wl, "empty mount option");
			return why;
		}
		if (strchr(opts[i], ',')) {
			snprintf(why, wl, "mount option \"%.100s\" contains a comma", opts[i]);
			return why;
		}
	}
	return NULL;
}

static struct draft *new_draft(struct parser *p, const char *name, unsigned line)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->drafts = xreallocarray(p->drafts, p->cap, sizeof(*p->drafts));
	}
	struct draft *dr = &p->drafts[p->n++];
	memset(dr, 0, sizeof(*dr));
	dr->b.name = arena_strdup(&p->sp->arena, name);
	dr->b.line = line;
	dr->b.os = SPEC_DEFAULT_OS;
	dr->b.arch = SPEC_DEFAULT_ARCH;
	return dr;
}

static void add_mount(struct draft *dr, const struct spec_mount *m)
{
	if (dr->b.nmounts == dr->cap) {
		dr->cap = dr->cap ? dr->cap * 2 : 4;
		dr->mounts = xreallocarray(dr->mounts, dr->cap, sizeof(*dr->mounts));
	}
	dr->mounts[dr->b.nmounts++] = *m;
}

static int cmp_draft_name(const void *a, const void *b)
{
	return strcmp(((const struct draft *)a)->b.name, ((const struct draft *)b)->b.name);
}

/* Duplicate bundle names and duplicate mount destinations are found by
 * sorting, which stays fast for specs with thousands of bundles. */
static void check_duplicate_bundles(struct parser *p)
{
	if (p->n < 2)
		return;
	qsort(p->drafts, p->n, sizeof(*p->drafts), cmp_draft_name);
	for (size_t i = 1; i < p->n; i++) {
		struct draft *a = &p->drafts[i - 1], *b = &p->drafts[i];
		if (!strcmp(a->b.name, b->b.name)) {
			struct draft *later = a->b.line > b->b.line ? a : b;
			struct draft *first = later == a ? b : a;
			err_at(p, later->b.line, 0, "duplicate bundle \"%s\" (first at line %u)",
			       later->b.name, first->b.line);
		}
	}
}

static int cmp_mount_ptr(const void *a, const void *b)
{
	const struct spec_mount *x = *(const struct spec_mount *const *)a;
	const struct spec_mount *y = *(const struct spec_mount *const *)b;
	int c = strcmp(x->dest, y->dest);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* (JSON objects cannot repeat a destination: the reader rejects duplicate
 * keys.) */
static void check_duplicate_mounts(struct parser *p, struct draft *dr)
{
	size_t n = dr->b.nmounts;
	if (n < 2)
		return;
	const struct spec_mount **s = xreallocarray(NULL, n, sizeof(*s));
	for (size_t i = 0; i < n; i++)
		s[i] = &dr->mounts[i];
	qsort(s, n, sizeof(*s), cmp_mount_ptr);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(s[i]->dest, s[i - 1]->dest))
			err_at(p, s[i]->line, 0,
			       "duplicate mount destination \"%.200s\" (first at line %u)",
			       s[i]->dest, s[i - 1]->line);
	free(s);
}

static void finish(struct parser *p)
{
	struct spec *sp = p->sp;
	check_duplicate_bundles(p);
	sp->n = p->n;
	sp->bundles = arena_alloc(&sp->arena, p->n * sizeof(*sp->bundles));
	for (size_t i = 0; i < p->n; i++) {
		struct draft *dr = &p->drafts[i];
		struct spec_mount *m = arena_alloc(&sp->arena, dr->b.nmounts * sizeof(*m));
		if (dr->b.nmounts)
			memcpy(m, dr->mounts, dr->b.nmounts * sizeof(*m));
		dr->b.mounts = m;
		free(dr->mounts);
		sp->bundles[i] = dr->b;
	}
	free(p->drafts);
	p->drafts = NULL;
}

/* ---- spec.conf ---------------------------------------------------------- */

enum key { K_ARGS, K_READONLY, K_OS, K_ARCH, K_MOUNT, K_CLOSURE, K_PATHS, K_UNKNOWN };
static const char *const key_names[] = {"args",	 "readonly", "os",   "arch",
					"mount", "closure",  "paths"};

static enum key key_lookup(const char *k, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(key_names); i++)
		if (strlen(key_names[i]) == n && !memcmp(key_names[i], k, n))
			return (enum key)i;
	return K_UNKNOWN;
}

static bool *seen_flag(struct draft *dr, enum key k)
{
	switch (k) {
	case K_ARGS:
		return &dr->seen_args;
	case K_READONLY:
		return &dr->seen_readonly;
	case K_OS:
		return &dr->seen_os;
	case K_ARCH:
		return &dr->seen_arch;
	case K_CLOSURE:
		return &dr->seen_closure;
	case K_PATHS:
		return &dr->seen_paths;
	default:
		return NULL;
	}
}

/* Splits a value into words, reporting quoting errors at their column. */
static int split(struct parser *p, const char *val, unsigned line, unsigned col, char ***w)
{
	const char *e;
	size_t ecol;
	int n = words_split(&p->sp->arena, val, w, &e, &ecol);
	if (n < 0)
		err_at(p, line, col + (unsigned)ecol, "%s", e);
	return n;
}

static void conf_args(struct parser *p, struct draft *dr, const char *val, unsigned line,
		      unsigned col)
{
	const char **args;
	size_t n;
	if (val[0] == '[') {
		struct json_error je;
		struct json *j =
		    json_parse(&p->sp->arena, val, strlen(val), line, col, SPEC_MAX_DEPTH, &je);
		if (!j) {
			err_at(p, je.line, je.col, "args: %s", je.msg);
			return;
		}
		if (j->type != JSON_ARRAY) {
			err_at(p, line, col, "args: expected a JSON array of strings");
			return;
		}
		n = j->n;
		args = arena_alloc(&p->sp->arena, (n + 1) * sizeof(*args));
		for (size_t i = 0; i < n; i++) {
			if (j->items[i]->type != JSON_STRING) {
				err_at(p, j->items[i]->line, j->items[i]->col,
				       "args: expected a string, not %s",
				       json_type_name(j->items[i]->type));
				return;
			}
			args[i] = j->items[i]->str;
		}
	} else {
		char **w;
		int r = split(p, val, line, col, &w);
		if (r < 0)
			return;
		n = (size_t)r;
		args = (const char **)w;
	}
	const char *why = check_args(args, n);
	if (why) {
		err_at(p, line, 0, "%s", why);
		return;
	}
	dr->b.args = args;
	dr->b.nargs = n;
	dr->b.args_line = line;
}

static void conf_mount(struct parser *p, struct draft *dr, const char *val, unsigned line,
		       unsigned col)
{
	char **w, why[400];
	int n = split(p, val, line, col, &w);
	if (n < 0)
		return;
	if (n < 3 || n > 4) {
		err_at(p, line, 0,
		       "mount needs DESTINATION TYPE SOURCE [OPTION,OPTION...], got %d word%s", n,
		       n == 1 ? "" : "s");
		return;
	}
	struct spec_mount m = {.dest = w[0], .type = w[1], .source = w[2], .line = line};
	const char *e = check_dest(p->st, m.dest, why, sizeof(why));
	if (!e)
		e = check_word("mount type", m.type, why, sizeof(why));
	if (!e && !*m.source)
		e = "mount source may not be empty";
	if (!e && n == 4) {
		char **opts;
		size_t k = 1;
		for (const char *c = w[3]; *c; c++)
			k += *c == ',';
		opts = arena_alloc(&p->sp->arena, (k + 1) * sizeof(*opts));
		const char *s = w[3];
		for (size_t i = 0; i < k; i++) {
			const char *comma = strchr(s, ',');
			size_t len = comma ? (size_t)(comma - s) : strlen(s);
			opts[i] = arena_strndup(&p->sp->arena, s, len);
			s = comma ? comma + 1 : s + len;
		}
		m.options = (const char *const *)opts;
		e = check_options(m.options, why, sizeof(why));
	}
	if (e) {
		err_at(p, line, 0, "%s", e);
		return;
	}
	add_mount(dr, &m);
}

static void conf_value(struct parser *p, struct draft *dr, enum key k, const char *val,
		       unsigned line, unsigned col)
{
	char why[400];
	char **w;
	int n;
	switch (k) {
	case K_ARGS:
		conf_args(p, dr, val, line, col);
		break;
	case K_READONLY:
		if (!strcmp(val, "true"))
			dr->b.readonly = true;
		else if (!strcmp(val, "false"))
			dr->b.readonly = false;
		else
			err_at(p, line, 0, "readonly: expected true or false, not \"%.100s\"", val);
		break;
	case K_OS:
	case K_ARCH: {
		const char *e = check_word(key_names[k], val, why, sizeof(why));
		if (e)
			err_at(p, line, 0, "%s", e);
		else if (k == K_OS)
			dr->b.os = arena_strdup(&p->sp->arena, val);
		else
			dr->b.arch = arena_strdup(&p->sp->arena, val);
		break;
	}
	case K_MOUNT:
		conf_mount(p, dr, val, line, col);
		break;
	case K_CLOSURE:
		n = split(p, val, line, col, &w);
		if (n < 0)
			break;
		if (n != 1 || w[0][0] != '/') {
			err_at(p, line, 0, "closure: expected one absolute file name");
			break;
		}
		dr->b.closure = w[0];
		dr->b.closure_line = line;
		break;
	case K_PATHS:
		n = split(p, val, line, col, &w);
		if (n < 0)
			break;
		if (n == 0) {
			err_at(p, line, 0, "paths: expected one or more store paths");
			break;
		}
		for (int i = 0; i < n; i++) {
			const char *e = check_store_path(p->st, w[i], why, sizeof(why));
			if (e) {
				err_at(p, line, 0, "paths: %s", e);
				return;
			}
		}
		dr->b.paths = (const char *const *)w;
		dr->b.npaths = (size_t)n;
		dr->b.paths_line = line;
		break;
	case K_UNKNOWN:
		break;
	}
}

static void conf_end_bundle(struct parser *p, struct draft *dr)
{
	if (!dr->seen_args && !dr->unreadable_line)
		err_at(p, dr->b.line, 0, "bundle \"%s\" has no args", dr->b.name);
	check_duplicate_mounts(p, dr);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static void parse_conf(struct parser *p, const char *text, size_t len)
{
	struct draft *cur = NULL;
	size_t cur_idx = 0;
	bool have_cur = false;
	bool bad_header = false; /* keys after a rejected header are not news */
	unsigned line = 0;
	const char *s = text, *end = text + len;
	char *lbuf = NULL;

	while (s < end) {
		line++;
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		size_t ll = (size_t)(le - s);
		const char *next = nl ? nl + 1 : end;

		if (ll > SPEC_MAX_LINE) {
			err_at(p, line, 0, "line is longer than %u KiB", SPEC_MAX_LINE >> 10);
			if (have_cur)
				p->drafts[cur_idx].unreadable_line = true;
			s = next;
			continue;
		}
		if (ll && s[ll - 1] == '\r') {
			err_at(p, line, 0,
			       "CRLF line ending: save the spec with LF (Unix) line "
			       "endings");
			break; /* every further line would say the same */
		}
		size_t ok = utf8_valid_prefix(s, ll);
		if (ok < ll) {
			err_at(p, line, (unsigned)ok + 1, "%s",
			       s[ok] ? "invalid UTF-8" : "NUL byte");
			if (have_cur)
				p->drafts[cur_idx].unreadable_line = true;
			s = next;
			continue;
		}
		lbuf = xrealloc(lbuf, ll + 1);
		memcpy(lbuf, s, ll);
		lbuf[ll] = 0;
		s = next;

		char *t = lbuf;
		while (is_space(*t))
			t++;
		char *te = t + strlen(t);
		while (te > t && is_space(te[-1]))
			*--te = 0;
		if (!*t || *t == '#')
			continue;

		if (*t == '[') {
			if (have_cur)
				conf_end_bundle(p, &p->drafts[cur_idx]);
			have_cur = false;
			bad_header = true;
			if (te[-1] != ']' || te - t < 2) {
				err_at(p, line, 0, "section header must look like [name]");
				continue;
			}
			te[-1] = 0;
			const char *name = t + 1;
			if (check_name(name)) {
				bad_name(p, line, 0, name);
				continue;
			}
			cur = new_draft(p, name, line);
			cur_idx = p->n - 1;
			have_cur = true;
			bad_header = false;
			continue;
		}

		char *eq = strchr(t, '=');
		if (!eq) {
			err_at(p, line, 0, "expected \"key = value\" or a [bundle] header");
			continue;
		}
		char *ke = eq;
		while (ke > t && is_space(ke[-1]))
			ke--;
		char *val = eq + 1;
		while (is_space(*val))
			val++;
		enum key k = key_lookup(t, (size_t)(ke - t));
		if (k == K_UNKNOWN) {
			err_at(p, line, 0,
			       "unknown key \"%.*s\" (known: args, readonly, os, arch, "
			       "mount, closure, paths)",
			       (int)(ke - t > 100 ? 100 : ke - t), t);
			continue;
		}
		if (!have_cur) {
			if (!bad_header)
				err_at(p, line, 0, "\"%s\" outside of a [bundle] section",
				       key_names[k]);
			continue;
		}
		cur = &p->drafts[cur_idx];
		bool *seen = seen_flag(cur, k);
		if (seen && *seen) {
			err_at(p, line, 0, "duplicate key \"%s\" in bundle \"%s\"", key_names[k],
			       cur->b.name);
			continue;
		}
		if (seen)
			*seen = true;
		if (!*val) {
			err_at(p, line, 0, "%s has no value", key_names[k]);
			continue;
		}
		conf_value(p, cur, k, val, line, (unsigned)(val - lbuf) + 1);
	}
	if (have_cur)
		conf_end_bundle(p, &p->drafts[cur_idx]);
	free(lbuf);
}

/* ---- JSON --------------------------------------------------------------- */

static const char *const *json_strings(struct parser *p, const struct json *arr, const char *what,
				       size_t *n)
{
	if (arr->type != JSON_ARRAY) {
		err_at(p, arr->line, arr->col, "%s: expected an array of strings, not %s", what,
		       json_type_name(arr->type));
		return NULL;
	}
	const char **v = arena_alloc(&p->sp->arena, (arr->n + 1) * sizeof(*v));
	for (size_t i = 0; i < arr->n; i++) {
		if (arr->items[i]->type != JSON_STRING) {
			err_at(p, arr->items[i]->line, arr->items[i]->col,
			       "%s: expected a string, not %s", what,
			       json_type_name(arr->items[i]->type));
			return NULL;
		}
		v[i] = arr->items[i]->str;
	}
	*n = arr->n;
	return v;
}

static bool json_want(struct parser *p, const struct json *v, enum json_type t, const char *what)
{
	bool ok = v->type == t || (t == JSON_TRUE && v->type == JSON_FALSE);
	if (!ok)
		err_at(p, v->line, v->col, "%s: expected %s %s, not %s", what,
		       t == JSON_ARRAY || t == JSON_OBJECT ? "an" : "a", json_type_name(t),
		       json_type_name(v->type));
	return ok;
}

static void json_mount(struct parser *p, struct draft *dr, const struct json_member *mm)
{
	char why[400];
	const struct json *o = mm->val;
	if (!json_want(p, o, JSON_OBJECT, "mount"))
		return;
	struct spec_mount m = {.dest = mm->key, .line = mm->line};
	const char *e = check_dest(p->st, m.dest, why, sizeof(why));
	if (e) {
		err_at(p, mm->line, mm->col, "%s", e);
		return;
	}
	for (size_t i = 0; i < o->n; i++) {
		const struct json_member *f = &o->members[i];
		const struct json *v = f->val;
		if (!strcmp(f->key, "type") || !strcmp(f->key, "source")) {
			if (!json_want(p, v, JSON_STRING, f->key))
				return;
			if (f->key[0] == 't') {
				e = check_word("mount type", v->str, why, sizeof(why));
				m.type = v->str;
			} else {
				e = *v->str ? NULL : "mount source may not be empty";
				m.source = v->str;
			}
			if (e) {
				err_at(p, v->line, v->col, "%s", e);
				return;
			}
		} else if (!strcmp(f->key, "options")) {
			size_t n;
			if (v->type == JSON_NULL)
				continue;
			m.options = json_strings(p, v, "options", &n);
			if (!m.options)
				return;
			e = check_options(m.options, why, sizeof(why));
			if (e) {
				err_at(p, v->line, v->col, "%s", e);
				return;
			}
		} else {
			err_at(p, f->line, f->col,
			       "unknown mount key \"%.100s\" (known: type, source, options)",
			       f->key);
			return;
		}
	}
	if (!m.type || !m.source) {
		err_at(p, o->line, o->col, "mount \"%.200s\" needs %s", m.dest,
		       !m.type ? "a type" : "a source");
		return;
	}
	add_mount(dr, &m);
}

static void json_bundle(struct parser *p, const struct json_member *bm)
{
	char why[400];
	const char *e;
	if (check_name(bm->key)) {
		bad_name(p, bm->line, bm->col, bm->key);
		return;
	}
	const struct json *o = bm->val;
	if (!json_want(p, o, JSON_OBJECT, bm->key))
		return;
	struct draft *dr = new_draft(p, bm->key, bm->line);
	for (size_t i = 0; i < o->n; i++) {
		const struct json_member *f = &o->members[i];
		const struct json *v = f->val;
		enum key k = key_lookup(f->key, strlen(f->key));
		if (!strcmp(f->key, "mounts")) {
			if (!json_want(p, v, JSON_OBJECT, "mounts"))
				continue;
			for (size_t j = 0; j < v->n; j++)
				json_mount(p, dr, &v->members[j]);
			continue;
		}
		if (k == K_UNKNOWN || k == K_MOUNT) {
			err_at(p, f->line, f->col,
			       "unknown key \"%.100s\" (known: args, readonly, os, arch, mounts, "
			       "closure, paths)",
			       f->key);
			continue;
		}
		switch (k) {
		case K_ARGS: {
			size_t n;
			dr->seen_args = true;
			const char *const *a = json_strings(p, v, "args", &n);
			if (!a)
				break;
			e = check_args(a, n);
			if (e) {
				err_at(p, v->line, v->col, "%s", e);
				break;
			}
			dr->b.args = a;
			dr->b.nargs = n;
			dr->b.args_line = v->line;
			break;
		}
		case K_READONLY:
			if (json_want(p, v, JSON_TRUE, "readonly"))
				dr->b.readonly = v->type == JSON_TRUE;
			break;
		case K_OS:
		case K_ARCH:
			if (!json_want(p, v, JSON_STRING, key_names[k]))
				break;
			e = check_word(key_names[k], v->str, why, sizeof(why));
			if (e)
				err_at(p, v->line, v->col, "%s", e);
			else if (k == K_OS)
				dr->b.os = v->str;
			else
				dr->b.arch = v->str;
			break;
		case K_CLOSURE:
			if (!json_want(p, v, JSON_STRING, "closure"))
				break;
			if (v->str[0] != '/') {
				err_at(p, v->line, v->col,
				       "closure: expected an absolute file name");
				break;
			}
			dr->b.closure = v->str;
			dr->b.closure_line = v->line;
			break;
		case K_PATHS: {
			size_t n;
			const char *const *a = json_strings(p, v, "paths", &n);
			if (!a)
				break;
			for (size_t j = 0; j < n; j++) {
				e = check_store_path(p->st, a[j], why, sizeof(why));
				if (e) {
					err_at(p, v->items[j]->line, v->items[j]->col, "paths: %s",
					       e);
					a = NULL;
					break;
				}
			}
			if (a) {
				dr->b.paths = a;
				dr->b.npaths = n;
				dr->b.paths_line = v->line;
			}
			break;
		}
		default:
			break;
		}
	}
	if (!dr->seen_args)
		err_at(p, o->line, o->col, "bundle \"%s\" has no args", bm->key);
}

static void parse_json_spec(struct parser *p, const char *text, size_t len)
{
	struct json_error je;
	size_t ok = utf8_valid_prefix(text, len);
	if (ok < len) {
		unsigned line = 1, col = 1;
		for (size_t i = 0; i < ok; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		err_at(p, line, col, "%s", text[ok] ? "invalid UTF-8" : "NUL byte");
		return;
	}
	struct json *root = json_parse(&p->sp->arena, text, len, 1, 1, SPEC_MAX_DEPTH, &je);
	if (!root) {
		err_at(p, je.line, je.col, "%s", je.msg);
		return;
	}
	if (!json_want(p, root, JSON_OBJECT, "spec"))
		return;
	for (size_t i = 0; i < root->n; i++)
		json_bundle(p, &root->members[i]);
}

/* ---- entry points ------------------------------------------------------- */

int spec_parse(struct spec *sp, const char *file, const char *text, size_t len,
	       const struct store *st, struct diags *d)
{
	memset(sp, 0, sizeof(*sp));
	struct parser p = {.sp = sp, .st = st, .d = d};
	sp->file = p.file = arena_strdup(&sp->arena, file);

	if (len > SPEC_MAX_SIZE) {
		err_at(&p, 1, 0, "the spec is %zu bytes, more than the %u MiB allowed", len,
		       SPEC_MAX_SIZE >> 20);
		goto out;
	}
	/* A UTF-8 byte order mark is harmless; editors on some systems add it. */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
		text += 3;
		len -= 3;
	}
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	if (i < len && text[i] == '{')
		parse_json_spec(&p, text, len);
	else
		parse_conf(&p, text, len);
out:
	finish(&p);
	if (p.failed) {
		spec_free(sp);
		return -1;
	}
	return 0;
}

int spec_load(struct spec *sp, const char *file, const struct store *st, struct diags *d)
{
	char *text;
	size_t len;
	memset(sp, 0, sizeof(*sp));
	if (read_file(file, SPEC_MAX_SIZE, &text, &len) < 0) {
		if (errno == EFBIG)
			diag_add(d, "%s:1: the spec is larger than the %u MiB allowed", file,
				 SPEC_MAX_SIZE >> 20);
		else
			diag_add(d, "%s: %s", file, strerror(errno));
		return -1;
	}
	int r = spec_parse(sp, file, text, len, st, d);
	free(text);
	return r;
}

void spec_free(struct spec *sp)
{
	arena_free(&sp->arena);
	memset(sp, 0, sizeof(*sp));
}

static int cmp_name_bundle(const void *key, const void *b)
{
	return strcmp(key, ((const struct bundle *)b)->name);
}

const struct bundle *spec_find(const struct spec *sp, const char *name)
{
	return bsearch(name, sp->bundles, sp->n, sizeof(*sp->bundles), cmp_name_bundle);
}
