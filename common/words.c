/* words: shell-like word splitting for spec values. */
#include "words.h"

#include <stdlib.h>
#include <string.h>

int words_split(struct arena *a, const char *s, char ***words, const char **err, size_t *col)
{
	/* Unquoted, a word is no longer than written, and words are apart:
	 * all of them with their NULs fit in strlen(s) + 1 bytes, one block. */
	char *out = arena_alloc_raw(a, strlen(s) + 1), *o = out;
	size_t first[16], *at = first, n = 0, cap = ARRAY_SIZE(first);
	const char *p = s;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n == cap) {
			size_t *more = xreallocarray(NULL, cap * 2, sizeof(*more));
			memcpy(more, at, n * sizeof(*more));
			if (at != first)
				free(at);
			at = more;
			cap *= 2;
		}
		at[n++] = (size_t)(o - out);
		/* A word may be an empty quoted string, so track that one began. */
		while (*p && *p != ' ' && *p != '\t') {
			const char *start = p;
			if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');
				if (!end) {
					*err = "unterminated single quote";
					*col = (size_t)(start - s);
					goto fail;
				}
				memcpy(o, p + 1, (size_t)(end - p - 1));
				o += end - p - 1;
				p = end + 1;
			} else if (*p == '"') {
				p++;
				for (;;) {
					if (!*p) {
						*err = "unterminated double quote";
						*col = (size_t)(start - s);
						goto fail;
					}
					if (*p == '"') {
						p++;
						break;
					}
					if (*p == '\\' && p[1] && strchr("\"\\$`", p[1])) {
						*o++ = p[1];
						p += 2;
						continue;
					}
					*o++ = *p++;
				}
			} else if (*p == '\\') {
				if (!p[1]) {
					*err = "backslash at end of value";
					*col = (size_t)(p - s);
					goto fail;
				}
				*o++ = p[1];
				p += 2;
			} else {
				/* A run of plain characters at once. */
				size_t k = strcspn(p, " \t'\"\\");
				memcpy(o, p, k);
				o += k;
				p += k;
			}
		}
		*o++ = 0;
	}
	char **v = arena_alloc_raw(a, (n + 1) * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = out + at[i];
	v[n] = NULL;
	*words = v;
	if (at != first)
		free(at);
	return (int)n;
fail:
	if (at != first)
		free(at);
	return -1;
}
