/* words: shell-like splitting of a spec value into words. */
#ifndef BUNDLEFS_WORDS_H
#define BUNDLEFS_WORDS_H

#include "util.h"

/* Splits `s` into words as a POSIX shell would without expansions:
 * whitespace separates words, '...' is literal, "..." allows \" \\ \$ \`
 * escapes, and a backslash outside quotes escapes the next character.
 * Words are allocated in `a`. Returns the number of words, or -1 with a
 * message in `err` (a static string) and the offending column (0-based) in
 * `col`. */
int words_split(struct arena *a, const char *s, char ***words, const char **err, size_t *col);

#endif
