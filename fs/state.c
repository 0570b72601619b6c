/* state: the memfd a successor takes over. */
#include "state.h"
#include "bundle.h"
#include "log.h"
#include "mounts.h"
#include "strmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "BFSSTATE"

/* The region: a header, two areas for the bundles document, two halves
 * of the journal, the passthrough slots. */
#define HEADER_SIZE  (64u << 10)
#define BUNDLES_SIZE (64ull << 20)
#define HALF_SIZE    (256ull << 20)
#define PT_OFFSET    (HEADER_SIZE + 2 * BUNDLES_SIZE + 2 * HALF_SIZE)
#define REGION_SIZE  (PT_OFFSET + STATE_PT_SLOTS * sizeof(struct pt_slot))

struct header {
	char magic[8];
	uint32_t format;
	uint32_t init_in_len, init_out_len;
	uint8_t init_in[512], init_out[512];
	uint64_t mnt_id;
	uint32_t major, minor;
	char mountpoint[4096];
	char spec[4096];
	char gcroots[4096];
	double mounted;
	_Atomic uint32_t failovers, upgrades;
	char cwd[4096];
	uint32_t args_len; /* NUL-separated arguments, in args */
	char args[32768];
	/* which bundles area and journal half is current, and how much of
	 * each is written: published with release stores */
	_Atomic uint32_t bundles_area;
	_Atomic uint64_t bundles_len[2];
	_Atomic uint32_t half;
	_Atomic uint64_t end[2];
	/* (Last: a region an older daemon wrote has 0 here, "unknown".) */
	uint64_t mnt_unique;
};

struct state {
	int fd;
	uint8_t *base;
	struct header *h;
	uint32_t writing; /* the half being written (a snapshot writes the other) */
	/* How far the current half may grow before the next snapshot: a few
	 * times the last snapshot, so that the journal's memory stays a
	 * small multiple of the live nodes' (each snapshot costing as much
	 * as the records since the last one). */
	uint64_t limit;
};

/* The least a half may grow to before a snapshot (a snapshot then
 * costs one in this many bytes written). */
#define JOURNAL_MIN (4ull << 20)

static uint64_t journal_limit(uint64_t snapshot)
{
	uint64_t l = 3 * snapshot;
	if (l < JOURNAL_MIN)
		l = JOURNAL_MIN;
	return l < HALF_SIZE ? l : HALF_SIZE;
}

/* Gives the memory of [off, off + len) of the region back: what was
 * written there is read no more. */
static void release(struct state *s, uint64_t off, uint64_t len)
{
	if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) <
	    0)
		log_debug("failover state: cannot release %llu bytes: %s", (unsigned long long)len,
			  strerror(errno));
}

/* One journal record. */
enum { J_ADD = 1, J_LOOKUP, J_FORGET };
#define J_SHARED 1

struct jrec {
	uint32_t len; /* of the whole record, a multiple of 8 */
	uint16_t type, flags;
	uint32_t gen, mode;
	uint64_t id, parent, count, serial;
	uint64_t bdev, bino; /* backing entries: the file it was */
	uint8_t kind, pad[7];
	char name[]; /* NUL-terminated */
};

_Static_assert(sizeof(struct header) <= HEADER_SIZE, "state header too large");

static uint8_t *half_base(const struct state *s, uint32_t half)
{
	return s->base + HEADER_SIZE + 2 * BUNDLES_SIZE + half * HALF_SIZE;
}

static errint_t map(int fd, struct state **out)
{
	void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	struct state *s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->base = p;
	s->h = p;
	*out = s;
	return 0;
}

errint_t state_create(struct state **out)
{
	int fd = memfd_create("bundlefs-state", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)REGION_SIZE) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	errint_t e = map(fd, out);
	if (e < 0) {
		close(fd);
		return e;
	}
	struct header *h = (*out)->h;
	memcpy(h->magic, MAGIC, 8);
	h->format = STATE_FORMAT;
	(*out)->limit = journal_limit(0);
	return 0;
}

errint_t state_peek_format(int fd, uint32_t *format)
{
	struct header h;
	ssize_t n = pread(fd, &h, offsetof(struct header, init_in_len), 0);
	if (n != (ssize_t)offsetof(struct header, init_in_len) || memcmp(h.magic, MAGIC, 8))
		return -EPROTO;
	*format = h.format;
	return 0;
}

void state_peek_mountpoint(int fd, char *buf, size_t size)
{
	size_t n = size < sizeof(((struct header *)0)->mountpoint)
		       ? size
		       : sizeof(((struct header *)0)->mountpoint);
	ssize_t r = pread(fd, buf, n, offsetof(struct header, mountpoint));
	if (r <= 0)
		r = 0;
	buf[(size_t)r < n ? (size_t)r : n - 1] = 0;
}

errint_t state_open(int fd, struct state **out, uint32_t *format)
{
	errint_t e = state_peek_format(fd, format);
	if (e < 0)
		return e;
	if (*format != STATE_FORMAT)
		return -EPROTO;
	e = map(fd, out);
	if (e == 0) {
		struct state *st = *out;
		st->writing = atomic_load(&st->h->half);
		st->limit = journal_limit(atomic_load(&st->h->end[st->writing]));
	}
	return e;
}

void state_close(struct state *s)
{
	if (!s)
		return;
	munmap(s->base, REGION_SIZE);
	close(s->fd);
	free(s);
}

int state_fd(const struct state *s)
{
	return s->fd;
}

void state_set_init(struct state *s, const void *in, size_t inlen, const void *out, size_t outlen)
{
	struct header *h = s->h;
	h->init_in_len = (uint32_t)(inlen < sizeof(h->init_in) ? inlen : sizeof(h->init_in));
	memcpy(h->init_in, in, h->init_in_len);
	h->init_out_len = (uint32_t)(outlen < sizeof(h->init_out) ? outlen : sizeof(h->init_out));
	memcpy(h->init_out, out, h->init_out_len);
}

struct pt_slot *state_passthrough(struct state *s)
{
	return (struct pt_slot *)(s->base + PT_OFFSET);
}

bool state_init(const struct state *s, const void **in, size_t *inlen, const void **out,
		size_t *outlen)
{
	const struct header *h = s->h;
	*in = h->init_in;
	*inlen = h->init_in_len;
	*out = h->init_out;
	*outlen = h->init_out_len;
	return h->init_in_len && h->init_out_len;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

void state_set_mount(struct state *s, const struct mountid *id, const struct mount_paths *p)
{
	struct header *h = s->h;
	h->mnt_id = id->id;
	h->major = id->major;
	h->minor = id->minor;
	h->mnt_unique = id->unique;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	h->mounted = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	copy_str(h->mountpoint, sizeof(h->mountpoint), p->mountpoint);
	copy_str(h->spec, sizeof(h->spec), p->spec);
	copy_str(h->gcroots, sizeof(h->gcroots), p->gcroots);
}

void state_mount(const struct state *s, struct mountid *id, struct mount_paths *p)
{
	const struct header *h = s->h;
	*id = (struct mountid){h->mnt_id, h->major, h->minor, h->mnt_unique};
	*p = (struct mount_paths){h->mountpoint, h->spec, h->gcroots[0] ? h->gcroots : NULL};
}

void state_set_args(struct state *s, int argc, char **argv, const char *cwd)
{
	struct header *h = s->h;
	copy_str(h->cwd, sizeof(h->cwd), cwd);
	size_t n = 0;
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;
		if (n + l > sizeof(h->args))
			break;
		memcpy(h->args + n, argv[i], l);
		n += l;
	}
	h->args_len = (uint32_t)n;
}

int state_args(const struct state *s, char ***argv, const char **cwd)
{
	const struct header *h = s->h;
	*cwd = h->cwd[0] ? h->cwd : "/";
	int argc = 0;
	for (uint32_t i = 0; i < h->args_len; i++)
		argc += h->args[i] == 0;
	char **v = xmalloc((size_t)(argc + 1) * sizeof(*v) + h->args_len);
	char *text = (char *)(v + argc + 1);
	memcpy(text, h->args, h->args_len);
	for (int i = 0; i < argc; i++) {
		v[i] = text;
		text += strlen(text) + 1;
	}
	v[argc] = NULL;
	*argv = v;
	return argc;
}

void state_history(const struct state *s, struct state_history *out)
{
	const struct header *h = s->h;
	*out = (struct state_history){h->mounted, atomic_load(&h->failovers),
				      atomic_load(&h->upgrades)};
}

void state_count_takeover(struct state *s, bool upgrade)
{
	atomic_fetch_add(upgrade ? &s->h->upgrades : &s->h->failovers, 1);
}

/* The document goes to the area not current, written through the memfd
 * (not the mapping: no page of it is faulted in here), then published. */
void state_set_bundles(struct state *s, const struct iovec *iov, size_t n)
{
	struct header *h = s->h;
	uint32_t area = 1 - atomic_load(&h->bundles_area);
	off_t at = (off_t)(HEADER_SIZE + area * BUNDLES_SIZE);
	uint64_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += iov[i].iov_len;
	/* A document too large is not written: a successor then refuses it. */
	for (size_t i = 0; i < n && len <= BUNDLES_SIZE; i++) {
		const char *p = iov[i].iov_base;
		for (size_t left = iov[i].iov_len; left;) {
			ssize_t w = pwrite(s->fd, p, left, at);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				log_warning("failover state: %s: a successor would not find the "
					    "bundles",
					    strerror(w < 0 ? errno : ENOSPC));
				len = 0;
				goto publish;
			}
			p += w;
			at += w;
			left -= (size_t)w;
		}
	}
	if (len > BUNDLES_SIZE)
		len = 0;
publish:
	atomic_store_explicit(&h->bundles_len[area], len, memory_order_release);
	atomic_store_explicit(&h->bundles_area, area, memory_order_release);
	release(s, HEADER_SIZE + (1 - area) * BUNDLES_SIZE, BUNDLES_SIZE);
}

void state_save_bundles(struct state *s, const struct bundle_env *env,
			const struct bundles *current, uint64_t generation, double loaded)
{
	if (!s)
		return;
	struct bundles_doc doc;
	bundles_document(env, current, generation, loaded, &doc);
	state_set_bundles(s, doc.iov, doc.n);
	bundles_doc_free(&doc);
}

const char *state_bundles(const struct state *s, size_t *len)
{
	const struct header *h = s->h;
	uint32_t area = atomic_load_explicit(&h->bundles_area, memory_order_acquire);
	*len = atomic_load_explicit(&h->bundles_len[area], memory_order_acquire);
	return (const char *)s->base + HEADER_SIZE + area * BUNDLES_SIZE;
}

/* ---- the journal --------------------------------------------------------- */

/* Appends a record to the half being written; false when it is full.
 * Callers are serialized by the node table's lock. */
static bool append(struct state *s, const struct jrec *r, const char *name, size_t namelen)
{
	struct header *h = s->h;
	uint32_t half = s->writing;
	uint64_t end = atomic_load_explicit(&h->end[half], memory_order_relaxed);
	size_t len = (sizeof(*r) + namelen + 1 + 7) & ~(size_t)7;
	if (end + len > s->limit)
		return false;
	uint8_t *p = half_base(s, half) + end;
	memcpy(p, r, sizeof(*r));
	((struct jrec *)p)->len = (uint32_t)len;
	if (namelen)
		memcpy(p + sizeof(*r), name, namelen);
	p[sizeof(*r) + namelen] = 0;
	/* Published once whole: a record cut short by a crash is not read. */
	atomic_store_explicit(&h->end[half], end + len, memory_order_release);
	return true;
}

static bool j_add(void *ctx, const struct node *n, const char *name, size_t namelen, uint64_t count)
{
	struct jrec r = {.type = J_ADD,
			 .flags = n->shared ? J_SHARED : 0,
			 .gen = n->gen,
			 .mode = n->attr.mode,
			 .id = n->id,
			 .parent = n->parent ? n->parent->id : 0,
			 .count = count,
			 .serial = n->bundle ? bundle_serial(n->bundle) : 0,
			 .bdev = n->bdev,
			 .bino = n->bino,
			 .kind = n->kind};
	return append(ctx, &r, name, namelen);
}

static bool j_count(void *ctx, uint16_t type, node_id id, uint64_t n)
{
	struct jrec r = {.type = type, .id = id, .count = n};
	return append(ctx, &r, NULL, 0);
}

static bool j_lookup(void *ctx, node_id id, uint64_t n)
{
	return j_count(ctx, J_LOOKUP, id, n);
}

static bool j_forget(void *ctx, node_id id, uint64_t n)
{
	return j_count(ctx, J_FORGET, id, n);
}

/* A snapshot is written to the other half, which then becomes current. */
static void j_snapshot_begin(void *ctx)
{
	struct state *s = ctx;
	s->writing = 1 - atomic_load(&s->h->half);
	atomic_store(&s->h->end[s->writing], 0);
	s->limit = HALF_SIZE;
}

static void j_snapshot_end(void *ctx)
{
	struct state *s = ctx;
	uint32_t old = atomic_load(&s->h->half);
	atomic_store_explicit(&s->h->half, s->writing, memory_order_release);
	s->limit = journal_limit(atomic_load(&s->h->end[s->writing]));
	/* The old half is read by no one now (a successor reads the
	 * current one): its pages go back. */
	if (old != s->writing)
		release(s, (uint64_t)(half_base(s, old) - s->base), HALF_SIZE);
}

void state_journal(struct state *s, struct nodes_journal *j)
{
	*j = (struct nodes_journal){.add = j_add,
				    .lookup = j_lookup,
				    .forget = j_forget,
				    .snapshot_begin = j_snapshot_begin,
				    .snapshot_end = j_snapshot_end,
				    .ctx = s};
}

/* ---- replay ---------------------------------------------------------------- */

struct lnode {
	struct jnode n;
	uint64_t pins;
	bool alive, emitted;
};

struct replay {
	struct strmap byid; /* 8-byte id -> struct lnode */
	struct arena a;
};

static struct lnode *lfind(struct replay *r, node_id id)
{
	return strmap_get(&r->byid, (const char *)&id, sizeof(id));
}

/* The node table's rule: a node goes when the kernel holds no lookup on
 * it and no child names it as parent; then its parent may go. */
static void lrelease(struct replay *r, struct lnode *n)
{
	while (n && n->alive && n->n.id != NODES_ROOT_ID && n->n.nlookup == 0 && n->pins == 0) {
		n->alive = false;
		strmap_del(&r->byid, (const char *)&n->n.id, sizeof(n->n.id));
		struct lnode *p = n->n.parent ? lfind(r, n->n.parent) : NULL;
		if (p && p->pins)
			p->pins--;
		n = p;
	}
}

static void apply(struct replay *r, const struct jrec *j, uint32_t *max_gen)
{
	struct lnode *n = lfind(r, j->id);
	switch (j->type) {
	case J_ADD: {
		if (n && n->alive) /* a snapshot of a half written on a half: never */
			break;
		n = arena_alloc(&r->a, sizeof(*n));
		n->n = (struct jnode){.id = j->id,
				      .parent = (j->flags & J_SHARED) ? 0 : j->parent,
				      .gen = j->gen,
				      .mode = j->mode,
				      .kind = j->kind,
				      .shared = (j->flags & J_SHARED) != 0,
				      .nlookup = j->count,
				      .serial = j->serial,
				      .bdev = j->bdev,
				      .bino = j->bino,
				      .name = arena_strdup(&r->a, j->name)};
		n->alive = true;
		strmap_put(&r->byid, (const char *)&n->n.id, sizeof(n->n.id), n);
		struct lnode *p = n->n.parent ? lfind(r, n->n.parent) : NULL;
		if (p)
			p->pins++;
		if (j->gen > *max_gen)
			*max_gen = j->gen;
		break;
	}
	case J_LOOKUP:
		if (n)
			n->n.nlookup += j->count;
		break;
	case J_FORGET:
		if (n) {
			n->n.nlookup = n->n.nlookup > j->count ? n->n.nlookup - j->count : 0;
			lrelease(r, n);
		}
		break;
	}
}

static void emit(struct replay *r, struct lnode *n, void (*fn)(void *, const struct jnode *),
		 void *ctx, unsigned depth)
{
	if (n->emitted || depth > 100000)
		return;
	struct lnode *p = n->n.parent ? lfind(r, n->n.parent) : NULL;
	if (p)
		emit(r, p, fn, ctx, depth + 1);
	n->emitted = true;
	fn(ctx, &n->n);
}

errint_t state_replay(const struct state *s, void (*fn)(void *ctx, const struct jnode *n),
		      void *ctx, uint32_t *max_gen)
{
	const struct header *h = s->h;
	uint32_t half = atomic_load_explicit(&h->half, memory_order_acquire);
	uint64_t end = atomic_load_explicit(&h->end[half], memory_order_acquire);
	const uint8_t *p = half_base(s, half), *stop = p + end;
	struct replay r = {0};
	*max_gen = 0;
	errint_t rc = 0;
	while (p < stop) {
		const struct jrec *j = (const struct jrec *)p;
		if (j->len < sizeof(*j) || p + j->len > stop) {
			rc = -EPROTO;
			break;
		}
		apply(&r, j, max_gen);
		p += j->len;
	}
	/* Parents first; shared nodes have none. */
	for (size_t i = 0; rc == 0 && i < r.byid.cap; i++) {
		struct lnode *n = r.byid.slots[i].key ? r.byid.slots[i].val : NULL;
		if (n)
			emit(&r, n, fn, ctx, 0);
	}
	strmap_free(&r.byid);
	arena_free(&r.a);
	return rc;
}
