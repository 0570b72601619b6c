/* util: small building blocks shared by every module: an arena for the
 * spec's many small strings, a growable byte buffer, collected diagnostics
 * and bounded whole-file reads. */
#ifndef BUNDLEFS_UTIL_H
#define BUNDLEFS_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Zero (or a non-negative result) on success, a negative errno on
 * failure: the one error convention inside the daemon, turned into a
 * positive errno only where a reply is sent. */
typedef int errint_t;

/* Scope-bound cleanup, so that error paths need no ladder of gotos. */
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_fd   __attribute__((cleanup(cleanup_closep)))
void cleanup_freep(void *p);
void cleanup_closep(int *fd);

/* Allocation failure is not a condition a filesystem daemon can report
 * usefully per request; these abort with a message instead of returning
 * NULL so that callers stay readable. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t n, size_t m);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Faults in the pages within p[0..n) at once, for memory about to be
 * written whole: one call instead of a page fault per page, which is what
 * large arrays and arenas cost most. Worth it from PREFAULT_MIN bytes. */
#define PREFAULT_MIN (64u << 10)
void prefault(void *p, size_t n);

/* Makes room for one more element at the end of array `v`, which holds
 * `n` of `cap` allocated: the one growth pattern (doubling). */
#define GROW(v, n, cap)                                                                            \
	do {                                                                                       \
		if ((n) >= (cap))                                                                  \
			(v) = xgrow((v), &(cap), sizeof(*(v)));                                    \
	} while (0)
void *xgrow(void *p, size_t *cap, size_t size);

/* An arena: everything a parsed spec owns is freed at once. arena_alloc's
 * memory is zeroed, arena_alloc_raw's is not (for what is written whole);
 * both are aligned for any type, strings are not. */
struct arena {
	struct arena_chunk *head;
};
void *arena_alloc(struct arena *a, size_t n);
void *arena_alloc_raw(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* Empties the arena for reuse, keeping its newest chunk. */
void arena_reset(struct arena *a);
void arena_free(struct arena *a);

/* A growable byte buffer, always NUL-terminated. */
struct buf {
	char *data;
	size_t len, cap;
};
void buf_add(struct buf *b, const void *p, size_t n);
void buf_addc(struct buf *b, char c);
void buf_adds(struct buf *b, const char *s);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* Diagnostics are collected, not printed where they arise, so that
 * `bundlectl check` can report every problem and the daemon can route them
 * to its log. Each message already carries its "FILE:LINE: " prefix. */
#define DIAG_MAX 200
/* What a message is about, where its reader tells them apart (the daemon
 * reports a problem with the binary caches as such): said where the
 * message is made, never guessed from its text. */
enum diag_about { DIAG_GENERAL, DIAG_CACHE };
struct diags {
	char **msg;
	unsigned char *about; /* each message's enum diag_about */
	size_t n, cap, about_cap;
	size_t dropped;
};
void diag_add(struct diags *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_vadd(struct diags *d, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void diag_vadd_about(struct diags *d, enum diag_about about, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void diag_print(const struct diags *d, FILE *f, const char *prefix);
void diag_clear(struct diags *d);

/* Reads a whole file of at most `limit` bytes. Returns 0, or -1 with errno
 * set (EFBIG when the file is larger than the limit). read_fd reads from
 * an open descriptor, which it closes. */
int read_file(const char *path, size_t limit, char **data, size_t *len);
int read_fd(int fd, size_t limit, char **data, size_t *len);
/* What their errno `e` means, in a message: strerror's words, but for a
 * file that is not a regular one (a FIFO, socket or device, which they
 * refuse with EINVAL) "not a regular file". */
const char *read_error(int e);
/* Reads a pipe or socket to its end, keeping its first `limit` bytes in
 * `out` (NUL-terminated). Does not close fd. Returns 0 or -1 (errno). */
int read_stream(int fd, size_t limit, struct buf *out);

/* Writes all of p[0..n) to fd (again after EINTR and short writes).
 * Returns 0, or -1 with errno set. */
int write_full(int fd, const void *p, size_t n);

/* Makes directory `path` with `mode`, and those above it that are missing
 * (0755), as `mkdir -p` does; `path` is modified and restored. Returns 0
 * (also when it exists) or -errno. */
errint_t mkdir_p(char *path, unsigned mode);

/* Does `s` (of length n) hold valid UTF-8 without NUL bytes? Returns the
 * offset of the first bad byte, or n. */
size_t utf8_valid_prefix(const char *s, size_t n);

#endif
