/* spec: parses spec.conf (INI-like, one section per bundle) and the same
 * schema written as JSON, into struct spec. Every problem is reported as
 * FILE:LINE: (JSON: FILE:LINE:COLUMN:) and parsing goes on to find the
 * next one, so that a user sees all of them at once. */
#include "spec.h"
#include "fsguard.h"
#include "json.h"
#include "ocicfg.h"
#include "ocischema.h"
#include "strmap.h"
#include "words.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.gen.h"

const char *const spec_data_names[] = {"", "fuse", "native", "bind"};

/* The keys of a bundle, as nix/keys.json lists them (see `keys` below for
 * their names, types and forms). */
/* clang-format off */
enum key {
#define KEY_ENUM(c, json, conf, type, form, check, repeat, required) K_##c,
	BUNDLEFS_KEYS(KEY_ENUM)
#undef KEY_ENUM
	NKEYS
};
/* clang-format on */

/* The bundle being read: its lists grow here (the arrays kept for the
 * next bundle), then move into the arena when it is complete. */
struct draft {
	struct bundle *b;
	unsigned seen[NKEYS]; /* the line of each key (0: not yet) */
	bool unreadable_line; /* a line we could not read may have held args */
	unsigned errors;      /* the parser's count when it began */
	struct spec_mount *mounts;
	size_t mounts_cap;
	const char **env;
	size_t env_cap;
	struct strmap env_keys; /* NAME -> its item, once there are many */
};

/* A bundle's name as a sort key: most names differ in their first 8
 * bytes, which compare as one number. */
struct name_key {
	uint64_t head; /* the first 8 bytes, big-endian, NUL-padded */
	const char *name;
	size_t i;  /* where it was read */
	bool more; /* it is longer than 8 bytes */
};

static int cmp_key_name(const struct name_key *x, const struct name_key *y)
{
	if (x->head != y->head)
		return x->head < y->head ? -1 : 1;
	/* (The same head: both end in it, or neither does.) */
	return x->more ? strcmp(x->name + 8, y->name + 8) : 0;
}

/* Sorts k[0..n) by name, stably (duplicates stay in the order read),
 * through tmp[0..n): insertion sort of short runs, then merges. */
static void sort_keys(struct name_key *k, struct name_key *tmp, size_t n)
{
	enum { RUN = 16 };
	for (size_t lo = 0; lo < n; lo += RUN) {
		size_t hi = lo + RUN < n ? lo + RUN : n;
		for (size_t i = lo + 1; i < hi; i++) {
			struct name_key x = k[i];
			size_t j = i;
			for (; j > lo && cmp_key_name(&x, &k[j - 1]) < 0; j--)
				k[j] = k[j - 1];
			k[j] = x;
		}
	}
	struct name_key *src = k, *dst = tmp;
	for (size_t w = RUN; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t a = lo, b = mid, o = lo;
			while (a < mid && b < hi)
				dst[o++] = cmp_key_name(&src[b], &src[a]) < 0 ? src[b++] : src[a++];
			while (a < mid)
				dst[o++] = src[a++];
			while (b < hi)
				dst[o++] = src[b++];
		}
		struct name_key *t = src;
		src = dst;
		dst = t;
	}
	if (src != k)
		memcpy(k, src, n * sizeof(*k));
}

struct parser {
	struct spec *sp;
	const struct store *st;
	struct diags *d;
	const char *file;
	struct bundle *bundles; /* in the order read, until finish sorts them */
	struct name_key *keys;	/* theirs */
	size_t n, cap;
	bool sorted; /* so far, the names are in order */
	struct draft cur;
	/* A spec.conf line's value in its JSON form: gone with the line. */
	struct arena scratch;
	bool failed;
	unsigned errors; /* reported so far */
	/* Where a message is: in which bundle, in which of its keys (the name
	 * in the spec's syntax), or NULL. */
	const char *bundle, *key;
	bool json;
};

__attribute__((format(printf, 4, 5))) static void err_at(struct parser *p, unsigned line,
							 unsigned col, const char *fmt, ...)
{
	char msg[512], where[400] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A JSON spec written by Nix is one line: the bundle and the key are
	 * what tell where. */
	if (p->bundle)
		snprintf(where, sizeof(where), "bundle \"%s\": %s%s", p->bundle,
			 p->key ? p->key : "", p->key ? ": " : "");
	if (col)
		diag_add(p->d, "%s:%u:%u: %s%s", p->file, line, col, where, msg);
	else
		diag_add(p->d, "%s:%u: %s%s", p->file, line, where, msg);
	p->failed = true;
	p->errors++;
}

bool spec_valid_name(const char *name, size_t n)
{
	if (n < 1 || n > SPEC_NAME_MAX)
		return false;
	if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	if (n == strlen(SPEC_RESERVED_NAME) && !memcmp(name, SPEC_RESERVED_NAME, n))
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
		return "bad bundle name: use 1 to 255 of A-Z a-z 0-9 . _ + -, not . or .. "
		       "or " SPEC_RESERVED_NAME " (which the mount uses itself)";
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

/* The one rule for a path in the container's root that the rootfs makes
 * (a mount destination, the cwd): absolute and normalized, so that the
 * entry the layout adds is the one config.json names and no `..` climbs
 * anywhere. "/" is normalized; callers that cannot take it say so. Returns
 * NULL, or what is wrong with `path` (saying the path, not what it is). */
static const char *check_root_path(const char *path, char *why, size_t wl)
{
	if (path[0] != '/') {
		snprintf(why, wl, "\"%.200s\" is not an absolute path", path);
		return why;
	}
	if (strlen(path) >= 4096) {
		snprintf(why, wl, "\"%.60s...\" is longer than 4095 bytes", path);
		return why;
	}
	if (!strcmp(path, "/"))
		return NULL;
	for (const char *c = path; *c;) {
		const char *e = strchr(c + 1, '/');
		size_t n = e ? (size_t)(e - c - 1) : strlen(c + 1);
		if (n == 0 || (n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.')) {
			snprintf(why, wl,
				 "\"%.200s\" is not normalized (empty, . or .. component, or "
				 "trailing /)",
				 path);
			return why;
		}
		if (n > 255) {
			snprintf(why, wl, "\"%.60s...\" has a component longer than 255 bytes",
				 path);
			return why;
		}
		if (!e)
			break;
		c = e;
	}
	return NULL;
}

static const char *check_dest(const struct store *st, const char *dest, char *why, size_t wl)
{
	char rule[300];
	if (!strcmp(dest, "/")) {
		snprintf(why, wl, "destination may not be /");
		return why;
	}
	if (check_root_path(dest, rule, sizeof(rule))) {
		snprintf(why, wl, "destination %s", rule);
		return why;
	}
	if (store_in_dir(st, dest)) {
		snprintf(why, wl, "destination \"%.200s\" is inside the store directory %s", dest,
			 st->dir);
		return why;
	}
	/* A mount on /nix would hide the closure the rootfs serves. */
	size_t total = strlen(dest);
	if (!strncmp(st->dir, dest, total) && st->dir[total] == '/') {
		snprintf(why, wl,
			 "destination \"%.200s\" covers the store directory %s, which holds "
			 "the closure",
			 dest, st->dir);
		return why;
	}
	return NULL;
}

/* The cwd: the layout makes it a directory of the rootfs (see layout.h),
 * so it follows the rule of mount destinations. In the store directory
 * the rootfs has only the closure: a cwd in a store path is left to the
 * closure (the runtime refuses it if the closure has no such directory),
 * anything else there could never exist. */
static const char *check_cwd(const struct store *st, const char *cwd, char *why, size_t wl)
{
	if (check_root_path(cwd, why, wl))
		return why;
	size_t dl = strlen(st->dir);
	if (store_in_dir(st, cwd) && cwd[dl]) {
		const char *base = cwd + dl + 1, *e = strchr(base, '/');
		if (!store_valid_base(base, e ? (size_t)(e - base) : strlen(base))) {
			snprintf(why, wl,
				 "\"%.200s\" is in the store directory %s but not in a store path: "
				 "there the rootfs holds only the closure",
				 cwd, st->dir);
			return why;
		}
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

/* check "word": no whitespace or control characters (it may be empty). */
static const char *check_word(const char *w, char *why, size_t wl)
{
	for (const char *c = w; *c; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			snprintf(why, wl, "\"%.100s\" contains whitespace or control characters",
				 w);
			return why;
		}
	}
	return NULL;
}

static const char *check_args(const char *const *args, size_t n)
{
	if (n == 0)
		return "is empty: it needs at least the program to run";
	if (!args[0][0])
		return "the program (its first word) is empty";
	return NULL;
}

static const char *check_options(const char *const *opts, char *why, size_t wl)
{
	for (size_t i = 0; opts && opts[i]; i++) {
		if (!*opts[i]) {
			snprintf(why, wl, "empty option");
			return why;
		}
		if (strchr(opts[i], ',')) {
			snprintf(why, wl, "option \"%.100s\" contains a comma", opts[i]);
			return why;
		}
	}
	return NULL;
}

/* Room for n bundles, known before they are read: the array is then
 * made once, its pages faulted in at once. */
static void reserve_bundles(struct parser *p, size_t n)
{
	if (n <= p->cap)
		return;
	p->bundles = xreallocarray(p->bundles, n, sizeof(*p->bundles));
	p->keys = xreallocarray(p->keys, n, sizeof(*p->keys));
	p->cap = n;
	if (n * sizeof(*p->bundles) >= PREFAULT_MIN) {
		prefault(p->bundles + p->n, (n - p->n) * sizeof(*p->bundles));
		prefault(p->keys + p->n, (n - p->n) * sizeof(*p->keys));
	}
}

/* Starts the next bundle (the one before is complete). */
static struct draft *new_draft(struct parser *p, const char *name, unsigned line)
{
	if (p->n == p->cap)
		reserve_bundles(p, p->cap ? 2 * p->cap : 8);
	struct bundle *b = &p->bundles[p->n];
	*b = (struct bundle){.name = arena_strdup(&p->sp->arena, name),
			     .line = line,
			     .os = SPEC_DEFAULT_OS,
			     .arch = SPEC_DEFAULT_ARCH};
	uint64_t head = 0;
	size_t j = 0;
	for (; j < 8 && name[j]; j++)
		head |= (uint64_t)(unsigned char)name[j] << (56 - 8 * j);
	struct name_key *k = &p->keys[p->n];
	*k = (struct name_key){head, b->name, p->n, j == 8 && name[8]};
	if (p->n && cmp_key_name(k - 1, k) >= 0)
		p->sorted = false;
	p->n++;
	struct draft *dr = &p->cur;
	dr->b = b;
	memset(dr->seen, 0, sizeof(dr->seen));
	dr->unreadable_line = false;
	dr->errors = p->errors;
	return dr;
}

static void add_mount(struct draft *dr, const struct spec_mount *m)
{
	GROW(dr->mounts, dr->b->nmounts, dr->mounts_cap);
	dr->mounts[dr->b->nmounts++] = *m;
}

/* Sorts the bundles by name, reporting duplicate names. A spec already in
 * order (no duplicates then) needs nothing; else the keys are sorted and
 * the bundles moved once, in place. */
static void sort_bundles(struct parser *p)
{
	size_t n = p->n;
	struct name_key *k = p->keys;
	if (p->sorted)
		return;
	struct name_key *tmp = xreallocarray(NULL, n, sizeof(*tmp));
	if (n * sizeof(*tmp) >= PREFAULT_MIN)
		prefault(tmp, n * sizeof(*tmp));
	sort_keys(k, tmp, n);
	free(tmp);
	for (size_t i = 1; i < n; i++) {
		if (!cmp_key_name(&k[i - 1], &k[i]))
			err_at(p, p->bundles[k[i].i].line, 0,
			       "duplicate bundle \"%s\" (first at line %u)", k[i].name,
			       p->bundles[k[i - 1].i].line);
	}
	/* Position j takes the bundle read at k[j].i: each cycle of that
	 * permutation is followed once, with one bundle aside. */
	for (size_t j = 0; j < n; j++) {
		if (k[j].i == j)
			continue;
		struct bundle aside = p->bundles[j];
		size_t at = j;
		while (k[at].i != j) {
			size_t from = k[at].i;
			p->bundles[at] = p->bundles[from];
			k[at].i = at;
			at = from;
		}
		p->bundles[at] = aside;
		k[at].i = at;
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
	size_t n = dr->b->nmounts;
	if (n < 2)
		return;
	const struct spec_mount **s = xreallocarray(NULL, n, sizeof(*s));
	for (size_t i = 0; i < n; i++)
		s[i] = &dr->mounts[i];
	qsort(s, n, sizeof(*s), cmp_mount_ptr);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(s[i]->dest, s[i - 1]->dest))
			err_at(p, s[i]->line, 0,
			       "duplicate destination \"%.200s\" (first at line %u)", s[i]->dest,
			       s[i - 1]->line);
	free(s);
}

static void finish(struct parser *p)
{
	struct spec *sp = p->sp;
	sort_bundles(p);
	sp->n = p->n;
	sp->bundles = p->bundles;
	p->bundles = NULL;
	free(p->keys);
	free(p->cur.mounts);
	free(p->cur.env);
	arena_free(&p->scratch);
}

/* ---- keys: one handler per key, for both syntaxes ---------------------- */

/* A spec.conf value is first read into the value the JSON syntax has for
 * the same key (words become an array of strings, "true" a boolean, a
 * mount line a one-member object), positioned at its line with column 0
 * so that messages say FILE:LINE as they should for spec.conf. Then one
 * handler per key checks and stores it, whichever syntax it came from. */

/* What a key's value is in JSON (and Nix). */
enum type {
	T_STRINGS, /* an array of strings */
	T_BOOL,
	T_STRING,
	T_MOUNTS, /* an object of destination to {type, source, options} */
	T_OBJECT,
};

enum form {
	F_ARGS,	  /* words, or a JSON array of strings */
	F_BOOL,	  /* true or false */
	F_STRING, /* the value as it is */
	F_FILE,	  /* one word: an absolute file name */
	F_WORDS,  /* words */
	F_MOUNT,  /* DESTINATION TYPE SOURCE [OPTION,OPTION...] */
	F_ITEM,	  /* the value as it is, one item of a list (a repeated key) */
	F_JSON,	  /* one JSON value */
};

/* The rule a value of the right type must also pass (keys.json names it,
 * and nix/bundlefs.nix has the same). */
enum check {
	CHK_NONE,
	CHK_ARGS,
	CHK_WORD,
	CHK_MOUNTS,
	CHK_FILE,
	CHK_STORE_PATHS,
	CHK_ENUM,
	CHK_ENV,
	CHK_CWD,
	CHK_HOSTNAME,
	CHK_USER,
	CHK_CAPABILITIES,
	CHK_RLIMITS,
	CHK_STRING_MAP,
	CHK_SYSCTL,
	CHK_ABS_PATHS,
	CHK_OCI,
};

static const struct keydef {
	const char *json, *conf; /* the key's name in each syntax */
	unsigned char json_len, conf_len;
	enum type type;
	enum form form; /* how a spec.conf value is read */
	enum check check;
	bool repeat;   /* spec.conf: one line per item */
	bool required; /* every bundle has it */
} keys[NKEYS] = {
/* clang-format off */
#define KEY_DEF(c, json, conf, type, form, check, repeat, required)                                \
	[K_##c] = {json, conf, sizeof(json) - 1, sizeof(conf) - 1, T_##type, F_##form,            \
		   CHK_##check, repeat, required},
	BUNDLEFS_KEYS(KEY_DEF)
#undef KEY_DEF
    /* clang-format on */
};

/* The values an enum takes (NULL-terminated), in the order keys.json
 * lists them. */
static const char *const *const key_values[NKEYS] = {
#define KEY_VALUES(c, ...) [K_##c] = (const char *const[]){__VA_ARGS__, NULL},
    BUNDLEFS_KEY_VALUES(KEY_VALUES)
#undef KEY_VALUES
};

static enum key key_lookup(const char *k, size_t n, bool json)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct keydef *kd = &keys[i];
		if (json ? kd->json_len == n && !memcmp(kd->json, k, n)
			 : kd->conf_len == n && !memcmp(kd->conf, k, n))
			return (enum key)i;
	}
	return NKEYS;
}

static void unknown_key(struct parser *p, unsigned line, unsigned col, const char *k, size_t n,
			bool json)
{
	struct buf known = {0};
	for (size_t i = 0; i < NKEYS; i++)
		buf_addf(&known, "%s%s", i ? ", " : "", json ? keys[i].json : keys[i].conf);
	err_at(p, line, col, "unknown key \"%.*s\" (known: %s)", (int)(n > 100 ? 100 : n), k,
	       known.data);
	buf_free(&known);
}

static const char *const *json_strings(struct parser *p, const struct json *arr, const char *what,
				       size_t *n)
{
	if (arr->type != JSON_ARRAY) {
		err_at(p, arr->line, arr->col, "%s%sexpected an array of strings, not %s",
		       what ? what : "", what ? ": " : "", json_type_name(arr->type));
		return NULL;
	}
	const char **v = arena_alloc(&p->sp->arena, (arr->n + 1) * sizeof(*v));
	for (size_t i = 0; i < arr->n; i++) {
		if (arr->items[i]->type != JSON_STRING) {
			err_at(p, arr->items[i]->line, arr->items[i]->col,
			       "%s%sexpected a string, not %s", what ? what : "", what ? ": " : "",
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
		err_at(p, v->line, v->col, "%s%sexpected %s %s, not %s", what ? what : "",
		       what ? ": " : "", t == JSON_ARRAY || t == JSON_OBJECT ? "an" : "a",
		       json_type_name(t), json_type_name(v->type));
	return ok;
}

/* A problem of the mount at `dest`: its message starts with the
 * destination, and the member's name when there is one. (Formatted only
 * here: specs have thousands of mounts.) */
__attribute__((format(printf, 6, 7))) static void mount_err(struct parser *p, const char *dest,
							    const char *member, unsigned line,
							    unsigned col, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err_at(p, line, col, "\"%.200s\": %s%s%s", dest, member ? member : "", member ? ": " : "",
	       msg);
}

static bool mount_want(struct parser *p, const char *dest, const char *member, const struct json *v,
		       enum json_type t, const char *what)
{
	if (v->type == t)
		return true;
	mount_err(p, dest, member, v->line, v->col, "expected %s, not %s", what,
		  json_type_name(v->type));
	return false;
}

/* One mount: `mm` is DESTINATION: {type, source, options}. */
static void apply_mount(struct parser *p, struct draft *dr, const struct json_member *mm)
{
	char why[400];
	const struct json *o = mm->val;
	const char *dest = mm->key;
	const char *e = check_dest(p->st, dest, why, sizeof(why));
	if (e) {
		err_at(p, mm->line, mm->col, "%s", e);
		return;
	}
	if (!mount_want(p, dest, NULL, o, JSON_OBJECT, "an object"))
		return;
	struct spec_mount m = {.dest = dest, .line = mm->line};
	for (size_t i = 0; i < o->n; i++) {
		const struct json_member *f = &o->members[i];
		const struct json *v = f->val;
		if (!strcmp(f->key, "type") || !strcmp(f->key, "source")) {
			if (!mount_want(p, dest, f->key, v, JSON_STRING, "a string"))
				return;
			e = *v->str ? NULL : "may not be empty";
			if (f->key[0] == 't') {
				e = e ? e : check_word(v->str, why, sizeof(why));
				m.type = v->str;
			} else {
				m.source = v->str;
			}
			if (e) {
				mount_err(p, dest, f->key, v->line, v->col, "%s", e);
				return;
			}
		} else if (!strcmp(f->key, "options")) {
			if (v->type == JSON_NULL)
				continue;
			if (!mount_want(p, dest, f->key, v, JSON_ARRAY, "an array of strings"))
				return;
			const char **opts = arena_alloc(&p->sp->arena, (v->n + 1) * sizeof(*opts));
			for (size_t j = 0; j < v->n; j++) {
				if (!mount_want(p, dest, f->key, v->items[j], JSON_STRING,
						"a string"))
					return;
				opts[j] = v->items[j]->str;
			}
			m.options = opts;
			if ((e = check_options(m.options, why, sizeof(why)))) {
				mount_err(p, dest, NULL, v->line, v->col, "%s", e);
				return;
			}
		} else {
			mount_err(p, dest, NULL, f->line, f->col,
				  "unknown member \"%.100s\" (known: type, source, options)",
				  f->key);
			return;
		}
	}
	if (!m.type || !m.source) {
		mount_err(p, dest, NULL, o->line, o->col, "needs %s",
			  !m.type ? "a type" : "a source");
		return;
	}
	add_mount(dr, &m);
}

/* Is the variable of `item` (its name `klen` bytes) set already? Else it
 * is noted as set: a bundle may set thousands. */
static bool env_set_twice(struct draft *dr, const char *item, size_t klen)
{
	enum { FEW = 8 };
	size_t n = dr->b->nenv;
	if (n < FEW) {
		for (size_t j = 0; j < n; j++)
			if (!strncmp(dr->env[j], item, klen + 1))
				return true;
		return false;
	}
	if (!dr->env_keys.n) {
		for (size_t j = 0; j < n; j++)
			strmap_put(&dr->env_keys, dr->env[j],
				   (size_t)(strchr(dr->env[j], '=') - dr->env[j]),
				   (void *)dr->env[j]);
	}
	return strmap_put(&dr->env_keys, item, klen, (void *)item) != item;
}

/* env: NAME=VALUE, NAME a name a shell could set; each NAME once. */
static void apply_env(struct parser *p, struct draft *dr, const struct json *v,
		      const char *const *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct json *item = v->items[i];
		const char *eq = strchr(a[i], '=');
		size_t klen = eq ? (size_t)(eq - a[i]) : 0;
		bool ok = klen > 0 && !(a[i][0] >= '0' && a[i][0] <= '9');
		for (size_t j = 0; ok && j < klen; j++) {
			char c = a[i][j];
			ok = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     (c >= '0' && c <= '9');
		}
		if (!ok) {
			err_at(
			    p, item->line, item->col,
			    "expected NAME=VALUE (NAME: letters, digits and _, not starting with "
			    "a digit), not \"%.100s\"",
			    a[i]);
			return;
		}
		if (env_set_twice(dr, a[i], klen)) {
			err_at(p, item->line, item->col, "%.*s is set twice", (int)klen, a[i]);
			return;
		}
		GROW(dr->env, dr->b->nenv, dr->env_cap);
		dr->env[dr->b->nenv++] = a[i];
	}
}

static bool parse_id(const char **s, uint32_t *out)
{
	char *end;
	if (**s < '0' || **s > '9')
		return false;
	errno = 0;
	unsigned long v = strtoul(*s, &end, 10);
	if (errno || v > 0xfffffffeUL)
		return false;
	*out = (uint32_t)v;
	*s = end;
	return true;
}

/* user: UID:GID[,GID...] (numbers: names would need the container's
 * passwd file). */
static void apply_user(struct parser *p, struct draft *dr, const struct json *v)
{
	const char *s = v->str;
	uint32_t uid, gid, g;
	/* (s stays inside the string, whatever it holds.) */
	bool ok = parse_id(&s, &uid) && *s == ':' && (s++, parse_id(&s, &gid));
	size_t n = 0;
	for (const char *c = s; *c; c++)
		n += *c == ',';
	uint32_t *gids = arena_alloc(&p->sp->arena, (n ? n : 1) * sizeof(*gids));
	size_t k = 0;
	while (ok && *s == ',') {
		s++;
		ok = parse_id(&s, &g);
		gids[k++] = g;
	}
	if (!ok || *s) {
		err_at(p, v->line, v->col,
		       "expected UID:GID or UID:GID,GID,... (numbers), not \"%.100s\"", v->str);
		return;
	}
	dr->b->user = v->str;
	dr->b->uid = uid;
	dr->b->gid = gid;
	dr->b->gids = gids;
	dr->b->ngids = k;
}

/* hostname: a host name as runtimes set it, checked as RFC 1123 names
 * are, less the per-label rules. */
static const char *check_hostname(const char *h, char *why, size_t wl)
{
	size_t n = strlen(h);
	bool ok = n >= 1 && n <= 64 && h[0] != '-' && h[0] != '.';
	for (const char *c = h; ok && *c; c++)
		ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		     (*c >= '0' && *c <= '9') || *c == '-' || *c == '.';
	if (ok)
		return NULL;
	snprintf(why, wl,
		 "expected 1 to 64 letters, digits, '-' and '.', not starting with '-' or '.', "
		 "not \"%.100s\"",
		 h);
	return why;
}

/* ---- the checks of config.json's settings ------------------------------- */

/* check "capabilities": {add: [NAME...], drop: [NAME...]}, each NAME a
 * Linux capability or ALL. The set is runc spec's default, less all of it
 * when drop has ALL, plus add (everything for ALL), less drop's names. A
 * name both added and dropped says two things: refused. */
static bool check_capabilities(struct parser *p, const struct json *v, uint64_t *set)
{
	const uint64_t all = (UINT64_C(1) << OCICFG_NCAPS) - 1;
	uint64_t sets[2] = {0, 0}; /* add, drop; bit OCICFG_NCAPS: ALL */
	static const char *const members[] = {"add", "drop"};
	for (size_t i = 0; i < v->n; i++) {
		const struct json_member *m = &v->members[i];
		int which = !strcmp(m->key, "add") ? 0 : !strcmp(m->key, "drop") ? 1 : -1;
		if (which < 0) {
			err_at(p, m->line, m->col, "unknown member \"%.100s\" (known: add, drop)",
			       m->key);
			return false;
		}
		size_t n;
		const char *const *names = json_strings(p, m->val, members[which], &n);
		if (!names)
			return false;
		for (size_t j = 0; j < n; j++) {
			int c = 0;
			if (!strcmp(names[j], "ALL"))
				c = OCICFG_NCAPS;
			else
				while (c < OCICFG_NCAPS && strcmp(names[j], ocicfg_cap_names[c]))
					c++;
			const struct json *it = m->val->items[j];
			if (c == OCICFG_NCAPS && strcmp(names[j], "ALL")) {
				err_at(p, it->line, it->col,
				       "%s: \"%.100s\" is not a Linux capability (CAP_CHOWN ... "
				       "CAP_CHECKPOINT_RESTORE) nor ALL",
				       members[which], names[j]);
				return false;
			}
			if (sets[!which] >> c & 1) {
				err_at(p, it->line, it->col, "\"%s\" is both added and dropped",
				       names[j]);
				return false;
			}
			sets[which] |= UINT64_C(1) << c;
		}
	}
	uint64_t add = sets[0] >> OCICFG_NCAPS & 1 ? all : sets[0];
	uint64_t base = sets[1] >> OCICFG_NCAPS & 1 ? 0 : ocicfg_default_caps();
	*set = (base | add) & ~(sets[1] & all);
	return true;
}

/* A JSON number that is an integer from 0 to 2^64-1, as written. */
static bool json_u64(const struct json *v, uint64_t *out)
{
	if (v->type != JSON_NUMBER || strspn(v->raw, "0123456789") != strlen(v->raw))
		return false;
	errno = 0;
	unsigned long long x = strtoull(v->raw, NULL, 10);
	*out = x;
	return errno == 0;
}

static void bad_u64(struct parser *p, const struct json *v, const char *name, const char *what)
{
	struct buf b = {0};
	if (v->type == JSON_NUMBER)
		buf_adds(&b, v->raw);
	else
		buf_adds(&b, json_type_name(v->type));
	err_at(p, v->line, v->col,
	       "%s: %sexpected an integer from 0 to 18446744073709551615, not %s", name, what,
	       b.data);
	buf_free(&b);
}

/* check "rlimits": {RLIMIT_NAME: N or {soft, hard}}, NAME a Linux resource
 * limit, each number an integer from 0 to 2^64-1, soft <= hard. */
static bool check_rlimits(struct parser *p, const struct json *v)
{
	for (size_t i = 0; i < v->n; i++) {
		const struct json_member *m = &v->members[i];
		const struct json *l = m->val;
		size_t k = 0;
		while (k < OCICFG_NRLIMITS && strcmp(m->key, ocicfg_rlimit_names[k]))
			k++;
		if (k == OCICFG_NRLIMITS) {
			err_at(p, m->line, m->col,
			       "\"%.100s\" is not a Linux resource limit (RLIMIT_AS ... "
			       "RLIMIT_STACK)",
			       m->key);
			return false;
		}
		uint64_t soft, hard;
		if (l->type == JSON_NUMBER) {
			if (!json_u64(l, &soft)) {
				bad_u64(p, l, m->key, "");
				return false;
			}
			continue;
		}
		if (l->type != JSON_OBJECT) {
			err_at(p, l->line, l->col, "%s: expected a number or {soft, hard}, not %s",
			       m->key, json_type_name(l->type));
			return false;
		}
		for (size_t j = 0; j < l->n; j++) {
			const struct json_member *f = &l->members[j];
			bool is_soft = !strcmp(f->key, "soft");
			if (!is_soft && strcmp(f->key, "hard")) {
				err_at(p, f->line, f->col,
				       "%s: unknown member \"%.100s\" (known: soft, hard)", m->key,
				       f->key);
				return false;
			}
			if (!json_u64(f->val, is_soft ? &soft : &hard)) {
				bad_u64(p, f->val, m->key, is_soft ? "soft: " : "hard: ");
				return false;
			}
		}
		const struct json *js = json_get(l, "soft"), *jh = json_get(l, "hard");
		if (!js || !jh) {
			err_at(p, l->line, l->col, "%s: needs soft and hard", m->key);
			return false;
		}
		if (soft > hard) {
			err_at(p, js->line, js->col, "%s: soft %s is above hard %s", m->key,
			       js->raw, jh->raw);
			return false;
		}
	}
	return true;
}

/* check "string-map": {NAME: STRING}, NAME not empty. */
static bool check_string_map(struct parser *p, const struct json *v)
{
	for (size_t i = 0; i < v->n; i++) {
		const struct json_member *m = &v->members[i];
		if (!*m->key) {
			err_at(p, m->line, m->col, "a name may not be empty");
			return false;
		}
		if (m->val->type != JSON_STRING) {
			err_at(p, m->val->line, m->val->col,
			       "\"%.100s\": expected a string, not %s", m->key,
			       json_type_name(m->val->type));
			return false;
		}
	}
	return true;
}

/* check "sysctl": a string map whose names are kernel parameters: parts of
 * a-z 0-9 _ -, at least two, joined by . or /. */
static bool check_sysctl(struct parser *p, const struct json *v)
{
	if (!check_string_map(p, v))
		return false;
	for (size_t i = 0; i < v->n; i++) {
		const struct json_member *m = &v->members[i];
		const char *c = m->key;
		size_t parts = 0, len = 0;
		bool ok = true;
		for (;; c++) {
			if (*c == '.' || *c == '/' || !*c) {
				ok = ok && len > 0;
				parts++;
				len = 0;
				if (!*c)
					break;
			} else {
				ok = ok && ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
					    *c == '_' || *c == '-');
				len++;
			}
		}
		if (!ok || parts < 2) {
			err_at(
			    p, m->line, m->col,
			    "\"%.100s\" is not a kernel parameter: parts of a-z 0-9 _ -, at least "
			    "two, joined by . or /",
			    m->key);
			return false;
		}
	}
	return true;
}

/* check "abs-paths": absolute, normalized paths (the rule of cwd). */
static bool check_abs_paths(struct parser *p, const struct json *v, const char *const *a, size_t n)
{
	char why[400];
	for (size_t i = 0; i < n; i++) {
		if (check_root_path(a[i], why, sizeof(why))) {
			err_at(p, v->items[i]->line, v->items[i]->col, "%s", why);
			return false;
		}
	}
	return true;
}

/* check "oci", once the bundle is complete: config.json with the patch
 * must be valid against the runtime-spec schema (where the build has it;
 * see ocischema.h). buildContainer's own document is not (its "options":
 * null), so the patch is tried on the valid one. */
static void check_oci(struct parser *p, const struct bundle *b)
{
	struct bundle v = *b;
	v.buildcontainer = false;
	struct ociopts o = {.uid = geteuid(), .gid = getegid()};
	size_t len;
	char *text = ocicfg_render(&v, &o, &len);
	/* (Parsed again: numbers beyond a double's precision are written as
	 * they were given, which the schema checks as numbers.) */
	cJSON *doc = cJSON_ParseWithLength(text, len);
	char why[400];
	if (!doc)
		abort(); /* ocicfg writes JSON; only allocation fails */
	if (ocischema_check(doc, why, sizeof(why)) < 0)
		err_at(p, b->extra->oci_line, b->extra->oci_col,
		       "config.json with this patch is not valid OCI: at %s", why);
	cJSON_Delete(doc);
	free(text);
}

/* Is `v` the type key `k` takes? Reports it if not. Arrays of strings
 * come out in *a, *n (in the arena, NULL-terminated). */
static bool check_type(struct parser *p, enum key k, const struct json *v, const char *const **a,
		       size_t *n)
{
	switch (keys[k].type) {
	case T_STRINGS:
		return (*a = json_strings(p, v, NULL, n)) != NULL;
	case T_BOOL:
		return json_want(p, v, JSON_TRUE, NULL);
	case T_STRING:
		return json_want(p, v, JSON_STRING, NULL);
	case T_MOUNTS:
	case T_OBJECT:
		return json_want(p, v, JSON_OBJECT, NULL);
	}
	return false;
}

/* The index of `s` among the values of enum key `k`, or -1 after
 * reporting that it is none of them. */
static int check_enum(struct parser *p, enum key k, const struct json *v)
{
	const char *const *vals = key_values[k];
	for (int i = 0; vals[i]; i++)
		if (!strcmp(v->str, vals[i]))
			return i;
	struct buf want = {0};
	for (size_t i = 0; vals[i]; i++)
		buf_addf(&want, "%s%s", !i ? "" : vals[i + 1] ? ", " : " or ", vals[i]);
	err_at(p, v->line, v->col, "expected %s, not \"%.100s\"", want.data, v->str);
	buf_free(&want);
	return -1;
}

/* The bundle's extra settings, made when it has the first. */
static struct spec_extra *extra(struct parser *p, struct bundle *b)
{
	if (!b->extra)
		b->extra = arena_alloc(&p->sp->arena, sizeof(*b->extra));
	return b->extra;
}

const struct spec_extra *spec_extra(const struct bundle *b)
{
	static const struct spec_extra none;
	return b->extra ? b->extra : &none;
}

static void apply(struct parser *p, struct draft *dr, enum key k, const struct json *v)
{
	char why[400];
	const char *e;
	const char *const *a = NULL;
	size_t n = 0;
	uint64_t caps = 0;
	struct bundle *b = dr->b;
	if (!check_type(p, k, v, &a, &n))
		return;
	switch (keys[k].check) {
	case CHK_NONE:
		break;
	case CHK_ARGS:
		if ((e = check_args(a, n))) {
			err_at(p, v->line, v->col, "%s", e);
			return;
		}
		break;
	case CHK_WORD:
		if ((e = check_word(v->str, why, sizeof(why)))) {
			err_at(p, v->line, v->col, "%s", e);
			return;
		}
		break;
	case CHK_MOUNTS:
		/* (Each mount is checked on its own; the good ones are kept.) */
		for (size_t j = 0; j < v->n; j++)
			apply_mount(p, dr, &v->members[j]);
		return;
	case CHK_FILE:
		if (v->str[0] != '/') {
			err_at(p, v->line, v->col,
			       "expected one absolute file name, not \"%.100s\"", v->str);
			return;
		}
		break;
	case CHK_STORE_PATHS:
		for (size_t j = 0; j < n; j++) {
			if ((e = check_store_path(p->st, a[j], why, sizeof(why)))) {
				err_at(p, v->items[j]->line, v->items[j]->col, "%s", e);
				return;
			}
		}
		break;
	case CHK_ENUM:
		if (check_enum(p, k, v) < 0)
			return;
		break;
	case CHK_ENV:
		apply_env(p, dr, v, a, n);
		return;
	case CHK_CWD:
		if ((e = check_cwd(p->st, v->str, why, sizeof(why)))) {
			err_at(p, v->line, v->col, "%s", e);
			return;
		}
		break;
	case CHK_HOSTNAME:
		if ((e = check_hostname(v->str, why, sizeof(why)))) {
			err_at(p, v->line, v->col, "%s", e);
			return;
		}
		break;
	case CHK_USER:
		apply_user(p, dr, v);
		return;
	case CHK_CAPABILITIES:
		if (!check_capabilities(p, v, &caps))
			return;
		break;
	case CHK_RLIMITS:
		if (!check_rlimits(p, v))
			return;
		break;
	case CHK_STRING_MAP:
		if (!check_string_map(p, v))
			return;
		break;
	case CHK_SYSCTL:
		if (!check_sysctl(p, v))
			return;
		break;
	case CHK_ABS_PATHS:
		if (!check_abs_paths(p, v, a, n))
			return;
		break;
	case CHK_OCI:
		/* (Checked with the whole bundle: see end_bundle.) */
		break;
	}
	/* Checked: kept in the bundle. */
	switch (k) {
	case K_ARGS:
		b->args = a;
		b->nargs = n;
		b->args_line = v->line;
		break;
	case K_READONLY:
		b->readonly = v->type == JSON_TRUE;
		break;
	case K_OS:
		b->os = v->str;
		break;
	case K_ARCH:
		b->arch = v->str;
		break;
	case K_CLOSURE:
		b->closure = v->str;
		b->closure_line = v->line;
		break;
	case K_PATHS:
		b->paths = a;
		b->npaths = n;
		b->paths_line = v->line;
		break;
	case K_COMPAT:
		b->buildcontainer = !strcmp(v->str, "buildcontainer");
		break;
	case K_CWD:
		b->cwd = v->str;
		break;
	case K_HOSTNAME:
		b->hostname = v->str;
		break;
	case K_TERMINAL:
		b->terminal = v->type == JSON_TRUE;
		break;
	case K_DATA:
		for (int j = SPEC_DATA_FUSE; j <= SPEC_DATA_BIND; j++)
			if (!strcmp(v->str, spec_data_names[j]))
				b->data = (enum spec_data)j;
		break;
	case K_CAPABILITIES:
		extra(p, b)->capabilities = v;
		b->extra->caps = caps;
		break;
	case K_RLIMITS:
		extra(p, b)->rlimits = v;
		break;
	case K_NO_NEW_PRIVILEGES:
		extra(p, b)->no_new_privileges = v->type == JSON_TRUE ? SPEC_YES : SPEC_NO;
		break;
	case K_ANNOTATIONS:
		extra(p, b)->annotations = v;
		break;
	case K_SYSCTL:
		extra(p, b)->sysctl = v;
		break;
	case K_MASKED_PATHS:
		extra(p, b)->masked_paths = a;
		break;
	case K_READONLY_PATHS:
		extra(p, b)->readonly_paths = a;
		break;
	case K_ROOTLESS:
		extra(p, b)->rootless = v->type == JSON_TRUE ? SPEC_YES : SPEC_NO;
		break;
	case K_OCI:
		extra(p, b)->oci = v;
		b->extra->oci_line = v->line;
		b->extra->oci_col = v->col;
		break;
	case K_MOUNT:
	case K_ENV:
	case K_USER:
	case NKEYS:
		break; /* (stored as they were checked) */
	}
}

/* Every bundle must say what to run. Its lists move into the arena. */
static void end_bundle(struct parser *p, struct draft *dr, unsigned line, unsigned col)
{
	struct bundle *b = dr->b;
	p->bundle = b->name;
	for (size_t k = 0; k < NKEYS; k++) {
		p->key = p->json ? keys[k].json : keys[k].conf;
		if (keys[k].required && !dr->seen[k] && !dr->unreadable_line)
			err_at(p, line, col, "missing (every bundle has one)");
	}
	p->key = p->json ? keys[K_MOUNT].json : keys[K_MOUNT].conf;
	check_duplicate_mounts(p, dr);
	p->bundle = p->key = NULL;
	p->sp->any_writable |= !b->readonly;
	p->sp->data_used |= 1u << b->data;
	struct spec_mount *m = arena_alloc_raw(&p->sp->arena, b->nmounts * sizeof(*m));
	if (b->nmounts)
		memcpy(m, dr->mounts, b->nmounts * sizeof(*m));
	b->mounts = m;
	if (b->nenv) {
		const char **env = arena_alloc_raw(&p->sp->arena, (b->nenv + 1) * sizeof(*env));
		memcpy(env, dr->env, b->nenv * sizeof(*env));
		env[b->nenv] = NULL;
		b->env = env;
	}
	strmap_free(&dr->env_keys);
	/* A bundle without problems renders: its patch's result is checked. */
	if (b->extra && b->extra->oci && b->args && p->errors == dr->errors) {
		p->bundle = b->name;
		p->key = p->json ? keys[K_OCI].json : keys[K_OCI].conf;
		check_oci(p, b);
		p->bundle = p->key = NULL;
	}
}

/* ---- spec.conf ---------------------------------------------------------- */

static struct json *jnew(struct parser *p, enum json_type t, unsigned line)
{
	struct json *j = arena_alloc(&p->scratch, sizeof(*j));
	j->type = t;
	j->line = line;
	return j;
}

static struct json *jstr(struct parser *p, const char *s, unsigned line)
{
	struct json *j = jnew(p, JSON_STRING, line);
	j->str = s;
	return j;
}

static struct json *jstrings(struct parser *p, char **w, size_t n, unsigned line)
{
	struct json *j = jnew(p, JSON_ARRAY, line);
	j->n = n;
	j->items = arena_alloc_raw(&p->scratch, (n ? n : 1) * sizeof(*j->items));
	for (size_t i = 0; i < n; i++)
		j->items[i] = jstr(p, w[i], line);
	return j;
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

/* A mount line as the JSON form's {DESTINATION: {type, source, options}}. */
static struct json *conf_mount(struct parser *p, const char *val, unsigned line, unsigned col)
{
	char **w;
	int n = split(p, val, line, col, &w);
	if (n < 0)
		return NULL;
	if (n < 3 || n > 4) {
		err_at(p, line, 0,
		       "expected DESTINATION TYPE SOURCE [OPTION,OPTION...], got %d word%s", n,
		       n == 1 ? "" : "s");
		return NULL;
	}
	struct json *o = jnew(p, JSON_OBJECT, line);
	o->n = n == 4 ? 3 : 2;
	o->members = arena_alloc_raw(&p->scratch, o->n * sizeof(*o->members));
	o->members[0] = (struct json_member){"type", line, 0, jstr(p, w[1], line)};
	o->members[1] = (struct json_member){"source", line, 0, jstr(p, w[2], line)};
	if (n == 4) {
		size_t k = 1;
		for (const char *c = w[3]; *c; c++)
			k += *c == ',';
		char **opts = arena_alloc_raw(&p->scratch, k * sizeof(*opts));
		const char *s = w[3];
		for (size_t i = 0; i < k; i++) {
			const char *comma = strchr(s, ',');
			size_t len = comma ? (size_t)(comma - s) : strlen(s);
			opts[i] = arena_strndup(&p->sp->arena, s, len);
			s = comma ? comma + 1 : s + len;
		}
		o->members[2] =
		    (struct json_member){"options", line, 0, jstrings(p, opts, k, line)};
	}
	struct json *top = jnew(p, JSON_OBJECT, line);
	top->n = 1;
	top->members = arena_alloc_raw(&p->scratch, sizeof(*top->members));
	top->members[0] = (struct json_member){w[0], line, 0, o};
	return top;
}

/* Reads a spec.conf value into its JSON form, or NULL after an error. */
static struct json *conf_read(struct parser *p, enum key k, const char *val, unsigned line,
			      unsigned col)
{
	char **w;
	int n;
	switch (keys[k].form) {
	case F_ARGS:
	case F_WORDS:
		/* (Words never start with [: a path, a program, an option.) */
		if (val[0] == '[') {
			struct json_error je;
			struct json *j = json_parse(&p->sp->arena, val, strlen(val), line, col,
						    SPEC_MAX_DEPTH, &je);
			if (!j) {
				err_at(p, je.line, je.col, "%s", je.msg);
				return NULL;
			}
			if (j->type != JSON_ARRAY) {
				err_at(p, line, col, "expected a JSON array of strings");
				return NULL;
			}
			j->col = 0;
			return j;
		}
		n = split(p, val, line, col, &w);
		return n < 0 ? NULL : jstrings(p, w, (size_t)n, line);
	case F_BOOL:
		if (!strcmp(val, "true") || !strcmp(val, "false"))
			return jnew(p, val[0] == 't' ? JSON_TRUE : JSON_FALSE, line);
		err_at(p, line, 0, "expected true or false, not \"%.100s\"", val);
		return NULL;
	case F_STRING:
		return jstr(p, arena_strdup(&p->sp->arena, val), line);
	case F_ITEM: {
		char *one = arena_strdup(&p->sp->arena, val);
		return jstrings(p, &one, 1, line);
	}
	case F_FILE:
		n = split(p, val, line, col, &w);
		if (n < 0)
			return NULL;
		if (n != 1) {
			err_at(p, line, 0, "expected one absolute file name");
			return NULL;
		}
		return jstr(p, w[0], line);
	case F_MOUNT:
		return conf_mount(p, val, line, col);
	case F_JSON: {
		/* Kept with the bundle: it may hold what config.json gets. */
		struct json_error je;
		struct json *j =
		    json_parse(&p->sp->arena, val, strlen(val), line, col, SPEC_MAX_DEPTH, &je);
		if (!j)
			err_at(p, je.line, je.col, "%s", je.msg);
		else
			j->col = 0; /* (the value is the line's: FILE:LINE) */
		return j;
	}
	}
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* At most how many sections: lines whose first non-blank is '['. */
static size_t count_headers(const char *text, size_t len)
{
	size_t n = 0;
	const char *end = text + len;
	for (const char *c = text; (c = memchr(c, '[', (size_t)(end - c))); c++) {
		const char *b = c;
		while (b > text && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		n += b == text || b[-1] == '\n';
	}
	return n;
}

static void parse_conf(struct parser *p, const char *text, size_t len)
{
	struct draft *cur = &p->cur;
	bool have_cur = false;
	bool bad_header = false; /* keys after a rejected header are not news */
	unsigned line = 0;
	const char *s = text, *end = text + len;
	char *lbuf = NULL;
	size_t lcap = 0;
	reserve_bundles(p, count_headers(text, len));

	while (s < end) {
		line++;
		arena_reset(&p->scratch);
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		size_t ll = (size_t)(le - s);
		const char *next = nl ? nl + 1 : end;

		if (ll > SPEC_MAX_LINE) {
			err_at(p, line, 0, "line is longer than %u KiB", SPEC_MAX_LINE >> 10);
			if (have_cur)
				cur->unreadable_line = true;
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
				cur->unreadable_line = true;
			s = next;
			continue;
		}
		if (ll + 1 > lcap) {
			lcap = ll + 1 > 2 * lcap ? ll + 1 : 2 * lcap;
			lbuf = xrealloc(lbuf, lcap);
		}
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
				end_bundle(p, cur, cur->b->line, 0);
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
			new_draft(p, name, line);
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
		enum key k = key_lookup(t, (size_t)(ke - t), false);
		p->bundle = have_cur ? cur->b->name : NULL;
		if (k == NKEYS) {
			unknown_key(p, line, 0, t, (size_t)(ke - t), false);
			p->bundle = NULL;
			continue;
		}
		if (!have_cur) {
			if (!bad_header)
				err_at(p, line, 0, "\"%s\" outside of a [bundle] section",
				       keys[k].conf);
			continue;
		}
		p->key = keys[k].conf;
		if (cur->seen[k] && !keys[k].repeat) {
			err_at(p, line, 0, "duplicate key (first at line %u)", cur->seen[k]);
		} else {
			cur->seen[k] = line;
			/* (A string may be empty: `os =` is os "".) */
			bool none = !*val && keys[k].form != F_STRING;
			struct json *v =
			    none ? NULL : conf_read(p, k, val, line, (unsigned)(val - lbuf) + 1);
			if (none)
				err_at(p, line, 0, "no value");
			else if (v)
				apply(p, cur, k, v);
		}
		p->bundle = p->key = NULL;
	}
	if (have_cur)
		end_bundle(p, cur, cur->b->line, 0);
	free(lbuf);
}

/* ---- JSON --------------------------------------------------------------- */

static void json_bundle(struct parser *p, const struct json_member *bm)
{
	if (check_name(bm->key)) {
		bad_name(p, bm->line, bm->col, bm->key);
		return;
	}
	const struct json *o = bm->val;
	p->bundle = bm->key;
	if (!json_want(p, o, JSON_OBJECT, NULL)) {
		p->bundle = NULL;
		return;
	}
	struct draft *dr = new_draft(p, bm->key, bm->line);
	for (size_t i = 0; i < o->n; i++) {
		const struct json_member *f = &o->members[i];
		enum key k = key_lookup(f->key, strlen(f->key), true);
		p->key = NULL;
		if (k == NKEYS) {
			unknown_key(p, f->line, f->col, f->key, strlen(f->key), true);
			continue;
		}
		p->key = keys[k].json;
		dr->seen[k] = f->line;
		apply(p, dr, k, f->val);
	}
	p->key = NULL;
	end_bundle(p, dr, o->line, o->col);
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
	reserve_bundles(p, root->n);
	for (size_t i = 0; i < root->n; i++)
		json_bundle(p, &root->members[i]);
}

/* ---- entry points ------------------------------------------------------- */

int spec_parse(struct spec *sp, const char *file, const char *text, size_t len,
	       const struct store *st, struct diags *d)
{
	memset(sp, 0, sizeof(*sp));
	struct parser p = {.sp = sp, .st = st, .d = d, .sorted = true};
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
	sp->json = p.json = i < len && text[i] == '{';
	if (p.json)
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
	char *text, *mnt = NULL;
	size_t len;
	memset(sp, 0, sizeof(*sp));
	int fd = fsguard_open(file, O_RDONLY | O_NONBLOCK | O_NOCTTY, &mnt);
	if (fd < 0 && errno == EXDEV) {
		diag_add(d,
			 "%s: on the bundlefs mount %s: a spec may not be read from a bundlefs "
			 "mount",
			 file, mnt);
		free(mnt);
		return -1;
	}
	if (fd < 0 || read_fd(fd, SPEC_MAX_SIZE, &text, &len) < 0) {
		if (errno == EFBIG)
			diag_add(d, "%s:1: the spec is larger than the %u MiB allowed", file,
				 SPEC_MAX_SIZE >> 20);
		else
			diag_add(d, "%s: %s", file, read_error(errno));
		return -1;
	}
	int r = spec_parse(sp, file, text, len, st, d);
	if (r == 0) {
		sp->text = text;
		sp->len = len;
	} else {
		free(text);
	}
	return r;
}

void spec_free(struct spec *sp)
{
	free(sp->bundles);
	free(sp->text);
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

void spec_bundle_warnings(const struct spec *sp, const struct bundle *b, struct diags *d)
{
	if (b->buildcontainer && b->nmounts)
		diag_add(d,
			 "%s:%u: warning: bundle \"%s\": %s: compat = buildcontainer drops them "
			 "from config.json, as buildContainer drops its mounts argument",
			 sp->file, b->mounts[0].line, b->name, sp->json ? "mounts" : "mount");
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool strv_eq(const char *const *a, const char *const *b)
{
	if (!a || !b)
		return a == b;
	for (; *a && *b; a++, b++)
		if (strcmp(*a, *b))
			return false;
	return !*a && !*b;
}

bool spec_bundle_equal(const struct bundle *a, const struct bundle *b)
{
	if (strcmp(a->name, b->name) || !strv_eq(a->args, b->args) || a->readonly != b->readonly ||
	    !str_eq(a->os, b->os) || !str_eq(a->arch, b->arch) || !str_eq(a->closure, b->closure) ||
	    !strv_eq(a->paths, b->paths) || a->nmounts != b->nmounts ||
	    a->buildcontainer != b->buildcontainer || !strv_eq(a->env, b->env) ||
	    !str_eq(a->cwd, b->cwd) || !str_eq(a->hostname, b->hostname) ||
	    !str_eq(a->user, b->user) || a->terminal != b->terminal || a->data != b->data)
		return false;
	const struct spec_extra *ea = spec_extra(a), *eb = spec_extra(b);
	if (!json_equal(ea->capabilities, eb->capabilities) ||
	    !json_equal(ea->rlimits, eb->rlimits) ||
	    ea->no_new_privileges != eb->no_new_privileges ||
	    !json_equal(ea->annotations, eb->annotations) || !json_equal(ea->sysctl, eb->sysctl) ||
	    !strv_eq(ea->masked_paths, eb->masked_paths) ||
	    !strv_eq(ea->readonly_paths, eb->readonly_paths) || ea->rootless != eb->rootless ||
	    !json_equal(ea->oci, eb->oci))
		return false;
	for (size_t i = 0; i < a->nmounts; i++) {
		const struct spec_mount *x = &a->mounts[i], *y = &b->mounts[i];
		if (strcmp(x->dest, y->dest) || strcmp(x->type, y->type) ||
		    strcmp(x->source, y->source) || !strv_eq(x->options, y->options))
			return false;
	}
	return true;
}

static void put_strv(struct buf *b, const char *key, const char *const *v)
{
	buf_addf(b, ",\"%s\":[", key);
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			buf_addc(b, ',');
		json_put_string(b, v[i]);
	}
	buf_addc(b, ']');
}

static void put_str(struct buf *b, const char *key, const char *v)
{
	buf_addf(b, ",\"%s\":", key);
	json_put_string(b, v);
}

static void put_json(struct buf *b, const char *key, const struct json *v)
{
	if (!v)
		return;
	buf_addf(b, ",\"%s\":", key);
	json_put_value(b, v);
}

static void put_opt(struct buf *b, const char *key, enum spec_opt v)
{
	if (v != SPEC_ABSENT)
		buf_addf(b, ",\"%s\":%s", key, v == SPEC_YES ? "true" : "false");
}

char *spec_bundle_json(const struct bundle *b)
{
	/* (Written by hand: a successor's state holds one per bundle, and
	 * specs hold thousands.) */
	struct buf o = {0};
	buf_addc(&o, '{');
	json_put_string(&o, b->name);
	buf_adds(&o, ":{\"readonly\":");
	buf_adds(&o, b->readonly ? "true" : "false");
	put_strv(&o, "args", b->args);
	put_str(&o, "os", b->os);
	put_str(&o, "arch", b->arch);
	if (b->nmounts) {
		buf_adds(&o, ",\"mounts\":{");
		for (size_t i = 0; i < b->nmounts; i++) {
			const struct spec_mount *m = &b->mounts[i];
			if (i)
				buf_addc(&o, ',');
			json_put_string(&o, m->dest);
			buf_adds(&o, ":{\"type\":");
			json_put_string(&o, m->type);
			put_str(&o, "source", m->source);
			if (m->options)
				put_strv(&o, "options", m->options);
			buf_addc(&o, '}');
		}
		buf_addc(&o, '}');
	}
	if (b->closure)
		put_str(&o, "closure", b->closure);
	if (b->npaths)
		put_strv(&o, "paths", b->paths);
	if (b->buildcontainer)
		put_str(&o, "compat", "buildcontainer");
	if (b->nenv)
		put_strv(&o, "env", b->env);
	if (b->cwd)
		put_str(&o, "cwd", b->cwd);
	if (b->hostname)
		put_str(&o, "hostname", b->hostname);
	if (b->user)
		put_str(&o, "user", b->user);
	if (b->terminal)
		buf_adds(&o, ",\"terminal\":true");
	if (b->data != SPEC_DATA_DEFAULT)
		put_str(&o, "data", spec_data_names[b->data]);
	const struct spec_extra *x = spec_extra(b);
	put_json(&o, "capabilities", x->capabilities);
	put_json(&o, "rlimits", x->rlimits);
	put_opt(&o, "noNewPrivileges", x->no_new_privileges);
	put_json(&o, "annotations", x->annotations);
	put_json(&o, "sysctl", x->sysctl);
	if (x->masked_paths)
		put_strv(&o, "maskedPaths", x->masked_paths);
	if (x->readonly_paths)
		put_strv(&o, "readonlyPaths", x->readonly_paths);
	put_opt(&o, "rootless", x->rootless);
	put_json(&o, "oci", x->oci);
	buf_adds(&o, "}}");
	return o.data;
}
