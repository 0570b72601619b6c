/* handles: opened handles and the caches for requests without one. */
#include "handles.h"
#include "bfs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void handle_free(struct handle *h)
{
	if (h->is_dir) {
		tree_closedir(&h->dir);
		pthread_mutex_destroy(&h->lock);
	} else if (h->file.fd >= 0) {
		close(h->file.fd);
	}
	free(h);
}

static errint_t handle_make(struct bfs *fs, struct node *n, bool dir, struct handle **out)
{
	struct handle *h = xcalloc(1, sizeof(*h));
	h->is_dir = dir;
	h->file.fd = -1;
	errint_t e = dir ? tree_opendir(fs, n, &h->dir) : tree_open(fs, n, &h->file);
	if (e < 0) {
		h->is_dir = false;
		handle_free(h);
		return e;
	}
	if (dir)
		pthread_mutex_init(&h->lock, NULL);
	*out = h;
	return 0;
}

static errint_t file_make(void *ctx, struct node *n, void **out)
{
	return handle_make(ctx, n, false, (struct handle **)out);
}

static errint_t dir_make(void *ctx, struct node *n, void **out)
{
	return handle_make(ctx, n, true, (struct handle **)out);
}

static void destroy(void *obj)
{
	handle_free(obj);
}

void handles_init(struct bfs *fs, unsigned files, unsigned dirs)
{
	struct handles *hs = &fs->handles;
	hs->files = hcache_new(files, file_make, destroy, fs);
	hs->dirs = hcache_new(dirs, dir_make, destroy, fs);
	pthread_mutex_init(&hs->lock, NULL);
	/* Different in every daemon (never 0: no handle), without the top
	 * bit, which marks passthrough's handles (passthrough.c). */
	while (!hs->epoch) {
		if (getrandom(&hs->epoch, sizeof(hs->epoch), 0) != sizeof(hs->epoch))
			hs->epoch = (uint32_t)getpid() ^ (uint32_t)time(NULL);
		hs->epoch &= 0x7fffffffu;
	}
}

void handles_fini(struct bfs *fs)
{
	struct handles *hs = &fs->handles;
	hcache_free(hs->files);
	hcache_free(hs->dirs);
	for (uint32_t i = 0; i < hs->nslots; i++)
		if (hs->slots[i])
			handle_free(hs->slots[i]);
	free(hs->slots);
	free(hs->free);
	pthread_mutex_destroy(&hs->lock);
}

/* The slot of an opened handle `fh`, when this daemon opened it. */
static bool slot_of(const struct handles *hs, uint64_t fh, uint32_t *slot)
{
	uint32_t i = (uint32_t)fh - 1;
	if ((uint32_t)(fh >> 32) != hs->epoch || (uint32_t)fh == 0)
		return false;
	*slot = i;
	return true;
}

static struct handle *opened(struct handles *hs, uint64_t fh)
{
	uint32_t i;
	struct handle *h = NULL;
	if (!slot_of(hs, fh, &i))
		return NULL;
	pthread_mutex_lock(&hs->lock);
	if (i < hs->nslots)
		h = hs->slots[i];
	pthread_mutex_unlock(&hs->lock);
	return h;
}

static errint_t borrow(struct handles *hs, struct hcache *c, struct node *n, uint64_t fh,
		       struct hold *out)
{
	memset(out, 0, sizeof(*out));
	/* (A predecessor's handle: as if there were none.) */
	if (fh && (out->h = opened(hs, fh)))
		return 0;
	errint_t e = hcache_get(c, n, &out->ref);
	if (e < 0)
		return e;
	out->h = out->ref.obj;
	return 0;
}

errint_t handles_file(struct bfs *fs, struct node *n, uint64_t fh, struct hold *out)
{
	return borrow(&fs->handles, fs->handles.files, n, fh, out);
}

errint_t handles_readdir(struct bfs *fs, struct node *n, uint64_t fh, off_t off, tree_emit_fn *emit,
			 void *ctx)
{
	struct hold hold;
	errint_t e = borrow(&fs->handles, fs->handles.dirs, n, fh, &hold);
	if (e < 0)
		return e;
	pthread_mutex_lock(&hold.h->lock);
	e = tree_readdir(fs, n, &hold.h->dir, off, emit, ctx);
	pthread_mutex_unlock(&hold.h->lock);
	handles_put(&hold);
	return e;
}

void handles_trim(struct bfs *fs)
{
	hcache_trim(fs->handles.files);
	hcache_trim(fs->handles.dirs);
}

void handles_put(struct hold *hold)
{
	if (hold->ref.cache)
		hcache_put(&hold->ref);
}

errint_t handles_open(struct bfs *fs, struct node *n, bool dir, uint64_t *fh)
{
	struct handles *hs = &fs->handles;
	struct handle *h;
	errint_t e = handle_make(fs, n, dir, &h);
	if (e < 0)
		return e;
	pthread_mutex_lock(&hs->lock);
	uint32_t i;
	if (hs->nfree) {
		i = hs->free[--hs->nfree];
	} else {
		if (hs->nslots == hs->cap) {
			hs->cap = hs->cap ? 2 * hs->cap : 64;
			hs->slots = xreallocarray(hs->slots, hs->cap, sizeof(*hs->slots));
			hs->free = xreallocarray(hs->free, hs->cap, sizeof(*hs->free));
		}
		i = hs->nslots++;
	}
	hs->slots[i] = h;
	pthread_mutex_unlock(&hs->lock);
	*fh = (uint64_t)hs->epoch << 32 | (i + 1);
	return 0;
}

void handles_release(struct bfs *fs, uint64_t fh)
{
	struct handles *hs = &fs->handles;
	uint32_t i;
	struct handle *h = NULL;
	if (!slot_of(hs, fh, &i))
		return;
	pthread_mutex_lock(&hs->lock);
	if (i < hs->nslots && (h = hs->slots[i])) {
		hs->slots[i] = NULL;
		hs->free[hs->nfree++] = i;
	}
	pthread_mutex_unlock(&hs->lock);
	if (h)
		handle_free(h);
}
