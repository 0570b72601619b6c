/* passthrough: the backing ids of store files. */
#include "passthrough.h"
#include "log.h"
#include "strmap.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The device's ioctls (linux/fuse.h from 6.9 on; Debian 12's headers are
 * older). */
#ifndef FUSE_DEV_IOC_BACKING_OPEN
struct fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FUSE_DEV_IOC_BACKING_OPEN  _IOW(229, 1, struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
#endif

bool passthrough_built(void)
{
#ifdef FUSE_CAP_PASSTHROUGH
	return true;
#else
	return false;
#endif
}

bool passthrough_permitted(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN);
}

struct passthrough {
	pthread_mutex_t lock;
	int devfd;
	struct pt_slot *slots;
	bool own_slots;
	uint8_t *used;	     /* per slot: opened since the clock hand passed */
	unsigned n, hand;    /* slots; the clock hand */
	unsigned hi;	     /* slots from here on were never used */
	unsigned live, idle; /* slots with an id; of those, with no open file */
	unsigned idle_max;
	struct strmap map; /* (bdev, bino) -> slot + 1 */
	atomic_bool off;   /* the store cannot be passed through at all */
	_Atomic uint64_t opens, registered, failed;
};

struct pt_key {
	uint64_t bdev, bino;
};
_Static_assert(offsetof(struct pt_slot, bino) == offsetof(struct pt_slot, bdev) + 8,
	       "a slot's key is (bdev, bino), contiguous");

struct passthrough *passthrough_new(int devfd, struct pt_slot *slots, unsigned n, unsigned idle_max)
{
	struct passthrough *p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->devfd = devfd;
	p->n = n;
	p->idle_max = idle_max < n ? idle_max : n;
	p->own_slots = !slots;
	p->slots = slots ? slots : xcalloc(n, sizeof(*slots));
	p->used = xcalloc(n, 1);
	return p;
}

void passthrough_free(struct passthrough *p)
{
	if (!p)
		return;
	strmap_free(&p->map);
	if (p->own_slots)
		free(p->slots);
	free(p->used);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* The map's key of a slot: its (bdev, bino), in the slot itself (the map
 * does not copy keys; a slot's key is removed before it changes). */
static void map_put(struct passthrough *p, unsigned slot)
{
	strmap_put(&p->map, (const char *)&p->slots[slot].bdev, sizeof(struct pt_key),
		   (void *)(uintptr_t)(slot + 1));
}

static uint32_t opens_of(struct passthrough *p, unsigned i)
{
	return atomic_load_explicit(&p->slots[i].opens, memory_order_relaxed);
}

/* Gives slot i's id back to the kernel. Under the lock. */
static void let_go(struct passthrough *p, unsigned i)
{
	struct pt_slot *s = &p->slots[i];
	uint32_t id = (uint32_t)atomic_load_explicit(&s->id, memory_order_relaxed);
	struct pt_key k = {s->bdev, s->bino};
	strmap_del(&p->map, (const char *)&k, sizeof(k));
	/* Cleared first: a successor never adopts an id given back. */
	atomic_store_explicit(&s->id, 0, memory_order_release);
	ioctl(p->devfd, FUSE_DEV_IOC_BACKING_CLOSE, &id);
	p->live--;
	p->idle--;
}

/* With `empty`, an empty slot if there is one (the lowest, so that the
 * slots in use stay below `hi` and the clock walks only those). Else the
 * next slot the clock hand finds idle and not opened since it last
 * passed, which is let go; -1 if none. Under the lock. */
static int clock_sweep(struct passthrough *p, bool empty)
{
	if (empty && p->live < p->n) {
		for (unsigned i = 0; i < p->hi; i++)
			if (atomic_load_explicit(&p->slots[i].id, memory_order_relaxed) <= 0)
				return (int)i;
		if (p->hi < p->n)
			return (int)p->hi++;
	}
	for (unsigned tries = 0; p->hi && tries < 2 * p->hi; tries++) {
		unsigned i = p->hand % p->hi;
		p->hand = (i + 1) % p->hi;
		if (atomic_load_explicit(&p->slots[i].id, memory_order_relaxed) <= 0)
			continue;
		if (opens_of(p, i))
			continue;
		if (p->used[i]) {
			p->used[i] = 0;
			continue;
		}
		let_go(p, i);
		return (int)i;
	}
	return -1;
}

void passthrough_adopt(struct passthrough *p)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->n; i++) {
		if (atomic_load_explicit(&p->slots[i].id, memory_order_acquire) > 0) {
			p->hi = i + 1;
			map_put(p, i);
			p->live++;
			p->idle += !opens_of(p, i);
		}
	}
	while (p->idle > p->idle_max && clock_sweep(p, false) >= 0)
		;
	pthread_mutex_unlock(&p->lock);
	if (p->live)
		log_info("passthrough: %u backing files taken over", p->live);
}

/* The slot of (bdev, bino), or -1. Under the lock. */
static int find(struct passthrough *p, uint64_t bdev, uint64_t bino)
{
	struct pt_key k = {bdev, bino};
	uintptr_t v = (uintptr_t)strmap_get(&p->map, (const char *)&k, sizeof(k));
	return v ? (int)(v - 1) : -1;
}

/* Counts an open of `slot` and makes its handle. Under the lock. */
static int32_t opened(struct passthrough *p, int slot, uint64_t *fh)
{
	if (atomic_fetch_add_explicit(&p->slots[slot].opens, 1, memory_order_relaxed) == 0)
		p->idle--;
	p->used[slot] = 1;
	atomic_fetch_add_explicit(&p->opens, 1, memory_order_relaxed);
	*fh = PASSTHROUGH_FH | (uint64_t)slot;
	return atomic_load_explicit(&p->slots[slot].id, memory_order_relaxed);
}

int32_t passthrough_open(struct passthrough *p, uint64_t bdev, uint64_t bino,
			 const struct pt_file *f, uint64_t *fh)
{
	if (atomic_load_explicit(&p->off, memory_order_relaxed))
		return -EOPNOTSUPP;
	/* Checked before the table is: an id found after this is of a live
	 * inode (its id holds it) numbered bino, which is the one at the
	 * node's path. */
	int there = f->is_there(f->ctx);
	if (there < 0)
		return there;
	pthread_mutex_lock(&p->lock);
	int slot = find(p, bdev, bino);
	if (slot >= 0) {
		int32_t id = opened(p, slot, fh);
		pthread_mutex_unlock(&p->lock);
		return id;
	}
	pthread_mutex_unlock(&p->lock);

	int fd = f->open_file(f->ctx);
	if (fd < 0)
		return fd;
	/* Registered only under the file's own identity: a node may open
	 * another inode of the same content (after `nix-store --optimise`),
	 * and an id under a key that is not its file's would later be given
	 * to a new file that reuses the key's inode number. Such a node is
	 * read through the daemon. */
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_dev != bdev || (uint64_t)st.st_ino != bino) {
		close(fd);
		return -ESTALE;
	}
	struct fuse_backing_map map = {.fd = fd};
	int made = ioctl(p->devfd, FUSE_DEV_IOC_BACKING_OPEN, &map);
	int err = errno;
	close(fd);
	if (made <= 0) {
		atomic_fetch_add_explicit(&p->failed, 1, memory_order_relaxed);
		/* Not for a moment (memory, descriptors) but for good: the
		 * store is on a stacked filesystem, or the daemon may not. */
		if (made == 0 || err == ELOOP || err == EPERM || err == EOPNOTSUPP ||
		    err == ENOTTY || err == EINVAL) {
			if (!atomic_exchange(&p->off, true))
				log_warning(
				    "passthrough: the store's files cannot be passed through "
				    "(%s); reads go through the daemon",
				    made == 0 ? "no id" : strerror(err));
		}
		return made == 0 ? -EOPNOTSUPP : -err;
	}

	pthread_mutex_lock(&p->lock);
	int32_t give_back = 0, id;
	if ((slot = find(p, bdev, bino)) >= 0) {
		/* A concurrent open registered it first. */
		give_back = made;
		id = opened(p, slot, fh);
	} else if ((slot = clock_sweep(p, true)) < 0) {
		/* Every slot open: this file goes through the daemon. */
		give_back = made;
		id = -ENOSPC;
	} else {
		struct pt_slot *s = &p->slots[slot];
		s->bdev = bdev;
		s->bino = bino;
		atomic_store_explicit(&s->opens, 0, memory_order_relaxed);
		atomic_store_explicit(&s->id, made, memory_order_release);
		p->live++;
		p->idle++;
		map_put(p, (unsigned)slot);
		atomic_fetch_add_explicit(&p->registered, 1, memory_order_relaxed);
		id = opened(p, slot, fh);
	}
	pthread_mutex_unlock(&p->lock);
	if (give_back) {
		uint32_t gb = (uint32_t)give_back;
		ioctl(p->devfd, FUSE_DEV_IOC_BACKING_CLOSE, &gb);
	}
	return id;
}

void passthrough_release(struct passthrough *p, uint64_t fh)
{
	uint64_t slot = fh & ~PASSTHROUGH_FH;
	pthread_mutex_lock(&p->lock);
	/* (Never below zero, whatever a predecessor left: the caller does
	 * not count a RELEASE the kernel sent again.) */
	if (slot < p->n && atomic_load_explicit(&p->slots[slot].id, memory_order_relaxed) > 0 &&
	    opens_of(p, (unsigned)slot) &&
	    atomic_fetch_sub_explicit(&p->slots[slot].opens, 1, memory_order_relaxed) == 1) {
		p->idle++;
		while (p->idle > p->idle_max && clock_sweep(p, false) >= 0)
			;
	}
	pthread_mutex_unlock(&p->lock);
}

void passthrough_stats(struct passthrough *p, struct passthrough_stats *out)
{
	pthread_mutex_lock(&p->lock);
	out->ids = p->live;
	pthread_mutex_unlock(&p->lock);
	out->opens = atomic_load(&p->opens);
	out->registered = atomic_load(&p->registered);
	out->failed = atomic_load(&p->failed);
}
