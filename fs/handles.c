/* handles: opened handles and the caches for requests without one. */
#include "handles.h"
#include "bfs.h"

#include <stdlib.h>
#include <string.h>
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
	hs->opened.prev = hs->opened.next = &hs->opened;
}

void handles_fini(struct bfs *fs)
{
	struct handles *hs = &fs->handles;
	hcache_free(hs->files);
	hcache_free(hs->dirs);
	while (hs->opened.next != &hs->opened) {
		struct handle *h = hs->opened.next;
		hs->opened.next = h->next;
		handle_free(h);
	}
	hs->opened.prev = &hs->opened;
	pthread_mutex_destroy(&hs->lock);
}

static struct handle *opened(uint64_t fh)
{
	return (struct handle *)(uintptr_t)fh;
}

static errint_t borrow(struct hcache *c, struct node *n, uint64_t fh, struct hold *out)
{
	memset(out, 0, sizeof(*out));
	if (fh) {
		out->h = opened(fh);
		return 0;
	}
	errint_t e = hcache_get(c, n, &out->ref);
	if (e < 0)
		return e;
	out->h = out->ref.obj;
	return 0;
}

errint_t handles_file(struct bfs *fs, struct node *n, uint64_t fh, struct hold *out)
{
	return borrow(fs->handles.files, n, fh, out);
}

errint_t handles_readdir(struct bfs *fs, struct node *n, uint64_t fh, off_t off, tree_emit_fn *emit,
			 void *ctx)
{
	struct hold hold;
	errint_t e = borrow(fs->handles.dirs, n, fh, &hold);
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
	h->next = hs->opened.next;
	h->prev = &hs->opened;
	hs->opened.next->prev = h;
	hs->opened.next = h;
	pthread_mutex_unlock(&hs->lock);
	*fh = (uint64_t)(uintptr_t)h;
	return 0;
}

void handles_release(struct bfs *fs, uint64_t fh)
{
	struct handle *h = opened(fh);
	if (!h)
		return;
	struct handles *hs = &fs->handles;
	pthread_mutex_lock(&hs->lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&hs->lock);
	handle_free(h);
}
