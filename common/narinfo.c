/* narinfo: parses a binary cache's description of one store path. */
#include "narinfo.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define NARINFO_REFS_MAX 65536

__attribute__((format(printf, 4, 5))) static int bad(char **err, const char *name, unsigned line,
						     const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*err = line ? xasprintf("%s:%u: %s", name, line, msg) : xasprintf("%s: %s", name, msg);
	return -1;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Splits a References value (space-separated base names). */
static int parse_refs(struct narinfo *ni, char *v, const char *name, unsigned line, struct arena *a,
		      char **err)
{
	size_t n = 0, cap = 0;
	const char **refs = NULL;
	for (char *s = v; *s;) {
		if (*s == ' ') {
			s++;
			continue;
		}
		char *e = strchr(s, ' ');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (!store_valid_base(s, len)) {
			free(refs);
			return bad(err, name, line, "reference \"%.*s\" is not a store path name",
				   (int)(len > 200 ? 200 : len), s);
		}
		if (n == NARINFO_REFS_MAX) {
			free(refs);
			return bad(err, name, line, "more than %u references", NARINFO_REFS_MAX);
		}
		GROW(refs, n, cap);
		refs[n++] = arena_strndup(a, s, len);
		s += len;
	}
	ni->refs = arena_alloc(a, (n + 1) * sizeof(*ni->refs));
	if (n)
		memcpy(ni->refs, refs, n * sizeof(*refs));
	ni->nrefs = n;
	free(refs);
	return 0;
}

int narinfo_parse(struct narinfo *ni, const char *text, size_t len, const struct store *st,
		  const char *name, struct arena *a, char **err)
{
	memset(ni, 0, sizeof(*ni));
	*err = NULL;
	if (memchr(text, 0, len))
		return bad(err, name, 0, "contains a NUL byte");
	char *copy = xstrndup(text, len);
	size_t nsigs = 0, sigcap = 0;
	const char **sigs = NULL;
	bool have_refs = false, have_size = false;
	unsigned line = 0;
	int rc = 0;
	for (char *s = copy, *e; *s && rc == 0; s = e) {
		line++;
		e = strchr(s, '\n');
		if (e)
			*e++ = 0;
		else
			e = s + strlen(s);
		if (!*s)
			continue;
		char *colon = strstr(s, ": ");
		if (!colon) {
			rc = bad(err, name, line, "expected \"Key: value\"");
			break;
		}
		*colon = 0;
		char *v = colon + 2;
		const char **field = NULL;
		if (!strcmp(s, "StorePath")) {
			const char *base = store_path_base(st, v);
			if (!base)
				rc = bad(err, name, line,
					 "StorePath \"%.200s\" is not a path in %s", v, st->dir);
			else
				ni->base = arena_strdup(a, base);
		} else if (!strcmp(s, "References")) {
			rc = parse_refs(ni, v, name, line, a, err);
			have_refs = true;
		} else if (!strcmp(s, "NarSize")) {
			if (!parse_u64(v, &ni->nar_size))
				rc = bad(err, name, line, "NarSize \"%.40s\" is not a number", v);
			have_size = true;
		} else if (!strcmp(s, "FileSize")) {
			if (!parse_u64(v, &ni->file_size))
				rc = bad(err, name, line, "FileSize \"%.40s\" is not a number", v);
		} else if (!strcmp(s, "Sig")) {
			GROW(sigs, nsigs, sigcap);
			sigs[nsigs++] = arena_strdup(a, v);
		} else if (!strcmp(s, "URL")) {
			field = &ni->url;
		} else if (!strcmp(s, "Compression")) {
			field = &ni->compression;
		} else if (!strcmp(s, "NarHash")) {
			field = &ni->nar_hash;
		} else if (!strcmp(s, "FileHash")) {
			field = &ni->file_hash;
		} else if (!strcmp(s, "Deriver")) {
			field = &ni->deriver;
		} else if (!strcmp(s, "CA")) {
			field = &ni->ca;
		}
		if (field)
			*field = arena_strdup(a, v);
	}
	free(copy);
	if (rc == 0) {
		if (!ni->base)
			rc = bad(err, name, 0, "no StorePath");
		else if (!ni->url)
			rc = bad(err, name, 0, "no URL");
		else if (!ni->nar_hash)
			rc = bad(err, name, 0, "no NarHash");
		else if (!have_size)
			rc = bad(err, name, 0, "no NarSize");
	}
	if (rc == 0 && !have_refs)
		ni->refs = arena_alloc(a, sizeof(*ni->refs));
	ni->sigs = arena_alloc(a, (nsigs + 1) * sizeof(*ni->sigs));
	if (nsigs)
		memcpy(ni->sigs, sigs, nsigs * sizeof(*sigs));
	ni->nsigs = nsigs;
	free(sigs);
	return rc;
}

char *narinfo_fingerprint(const struct narinfo *ni, const struct store *st)
{
	struct buf b = {0};
	buf_addf(&b, "1;%s/%s;%s;%" PRIu64 ";", st->dir, ni->base, ni->nar_hash, ni->nar_size);
	for (size_t i = 0; i < ni->nrefs; i++)
		buf_addf(&b, "%s%s/%s", i ? "," : "", st->dir, ni->refs[i]);
	buf_addc(&b, 0);
	return b.data;
}
