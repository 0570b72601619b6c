/* util: allocation, arena, buffers, diagnostics, bounded file reads. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static void oom(void)
{
	fputs("bundlefs: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xreallocarray(void *p, size_t n, size_t m)
{
	if (m && n > SIZE_MAX / m)
		oom();
	return xrealloc(p, n * m);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	return s;
}

void *xgrow(void *p, size_t *cap, size_t size)
{
	*cap = *cap ? *cap * 2 : 8;
	return xreallocarray(p, *cap, size);
}

void prefault(void *p, size_t n)
{
	uintptr_t page = (uintptr_t)getpagesize();
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), e = ((uintptr_t)p + n) & ~(page - 1);
	/* (Before Linux 5.14 this fails: the pages come one fault at a time.) */
	if (e > a)
		madvise((void *)a, e - a, MADV_POPULATE_WRITE);
}

void cleanup_freep(void *p)
{
	free(*(void **)p);
}

void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

/* Chunks start small (a daemon holds thousands of small arenas: one per
 * bundle's closure and layout) and double up to a limit. */
#define ARENA_FIRST 512
#define ARENA_MAX   65536

/* n bytes at `align` (a power of two, at most that of max_align_t). */
static void *arena_take(struct arena *a, size_t n, size_t align)
{
	struct arena_chunk *c = a->head;
	size_t at = c ? (c->used + align - 1) & ~(align - 1) : 0;
	if (!c || at > c->cap || c->cap - at < n) {
		size_t cap = c ? (c->cap * 2 < ARENA_MAX ? c->cap * 2 : ARENA_MAX) : ARENA_FIRST;
		if (c && n > cap) {
			/* A block of its own, below the chunk still being filled. */
			struct arena_chunk *big = xmalloc(sizeof(*big) + n);
			if (n >= PREFAULT_MIN)
				prefault(big, sizeof(*big) + n);
			big->used = big->cap = n;
			big->next = c->next;
			c->next = big;
			return big->data;
		}
		if (cap < n)
			cap = n;
		c = xmalloc(sizeof(*c) + cap);
		if (cap >= ARENA_MAX)
			prefault(c, sizeof(*c) + cap);
		c->used = 0;
		c->cap = cap;
		c->next = a->head;
		a->head = c;
		at = 0;
	}
	c->used = at + n;
	return (char *)c->data + at;
}

void *arena_alloc(struct arena *a, size_t n)
{
	return memset(arena_take(a, n, sizeof(max_align_t)), 0, n);
}

void *arena_alloc_raw(struct arena *a, size_t n)
{
	return arena_take(a, n, sizeof(max_align_t));
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_take(a, n + 1, 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void arena_reset(struct arena *a)
{
	if (!a->head)
		return;
	struct arena_chunk *keep = a->head;
	a->head = keep->next;
	arena_free(a);
	keep->next = NULL;
	keep->used = 0;
	a->head = keep;
}

void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_chunk *next = a->head->next;
		free(a->head);
		a->head = next;
	}
}

static void buf_grow(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	buf_grow(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	buf_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	b->len += (size_t)n;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void diag_vadd_about(struct diags *d, enum diag_about about, const char *fmt, va_list ap)
{
	if (d->n >= DIAG_MAX) {
		d->dropped++;
		return;
	}
	GROW(d->msg, d->n, d->cap);
	GROW(d->about, d->n, d->about_cap);
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	d->about[d->n] = (unsigned char)about;
	d->msg[d->n++] = s;
}

void diag_vadd(struct diags *d, const char *fmt, va_list ap)
{
	diag_vadd_about(d, DIAG_GENERAL, fmt, ap);
}

void diag_add(struct diags *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(d, fmt, ap);
	va_end(ap);
}

void diag_print(const struct diags *d, FILE *f, const char *prefix)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(f, "%s%s\n", prefix ? prefix : "", d->msg[i]);
	if (d->dropped)
		fprintf(f, "%s... and %zu more errors\n", prefix ? prefix : "", d->dropped);
}

void diag_clear(struct diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->msg[i]);
	free(d->msg);
	free(d->about);
	memset(d, 0, sizeof(*d));
}

int read_file(const char *path, size_t limit, char **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	return read_fd(fd, limit, data, len);
}

const char *read_error(int e)
{
	return e == EINVAL ? "not a regular file" : strerror(e);
}

int read_fd(int fd, size_t limit, char **data, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((uint64_t)st.st_size > limit) {
		errno = EFBIG;
		goto fail;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *p = xmalloc(cap + 1);
	if (cap >= PREFAULT_MIN)
		prefault(p, cap);
	for (;;) {
		if (n == cap) {
			/* The file grew while we read it. */
			if (cap > limit) {
				free(p);
				errno = EFBIG;
				goto fail;
			}
			cap *= 2;
			p = xrealloc(p, cap + 1);
		}
		ssize_t r = read(fd, p + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(p);
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > limit) {
		free(p);
		errno = EFBIG;
		goto fail;
	}
	close(fd);
	p[n] = 0;
	*data = p;
	*len = n;
	return 0;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

size_t utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		if (c == 0)
			return i;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		unsigned min;
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			min = 0x10000;
		} else {
			return i;
		}
		if (n - i <= k)
			return i;
		unsigned cp = c & (0x3f >> k);
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += k + 1;
	}
	return n;
}

int read_stream(int fd, size_t limit, struct buf *out)
{
	char chunk[4096];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (out->len < limit)
			buf_add(out, chunk,
				(size_t)n < limit - out->len ? (size_t)n : limit - out->len);
	}
	buf_addc(out, 0);
	out->len--;
	return 0;
}

errint_t mkdir_p(char *path, unsigned mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = mkdir(path, 0755);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int write_full(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}
