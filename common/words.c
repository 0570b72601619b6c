/* words: shell-like word splitting for spec values. */
#include "words.h"

#include <stdlib.h>
#include <string.h>

int words_split(struct arena *a, const char *s, char ***words, const char **err, size_t *col)
{
	struct buf w = {0};
	char **v = NULL;
	size_t n = 0, cap = 0;
	const char *p = s;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		buf_reset(&w);
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
				buf_add(&w, p + 1, (size_t)(end - p - 1));
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
						buf_addc(&w, p[1]);
						p += 2;
						continue;
					}
					buf_addc(&w, *p++);
				}
			} else if (*p == '\\') {
				if (!p[1]) {
					*err = "backslash at end of value";
					*col = (size_t)(p - s);
					goto fail;
				}
				buf_addc(&w, p[1]);
				p += 2;
			} else {
				buf_addc(&w, *p++);
			}
		}
		GROW(v, n, cap);
		v[n++] = arena_strndup(a, w.data ? w.data : "", w.len);
	}
	char **out = arena_alloc(a, (n + 1) * sizeof(*out));
	if (n)
		memcpy(out, v, n * sizeof(*out));
	out[n] = NULL;
	*words = out;
	free(v);
	buf_free(&w);
	return (int)n;
fail:
	free(v);
	buf_free(&w);
	return -1;
}
