/* devio: custom I/O on the FUSE device. */
#include "devio.h"
#include "bfs.h"
#include "state.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef FUSE_NO_EXPORT_SUPPORT
#define FUSE_NO_EXPORT_SUPPORT (1ULL << 38)
#endif

/* The hooks get the session's userdata: the mount. */
static struct devio *devio_of(void *userdata)
{
	return &((struct bfs *)userdata)->devio;
}

/* The id of an INIT a successor injects: no request of the kernel's has
 * it (the kernel's ids count up from 1; bit 63 marks a resent one). */
#define INJECTED_UNIQUE (1ULL << 62)
#define RESENT_UNIQUE	(1ULL << 63)

/* The request this thread read last was resent. */
static _Thread_local bool resent;

bool devio_resent(void)
{
	return resent;
}

static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	resent = false;
	if (n >= (ssize_t)sizeof(struct fuse_in_header)) {
		const struct fuse_in_header *h = buf;
		resent = (h->unique & RESENT_UNIQUE) != 0;
		if (h->opcode == FUSE_INIT) {
			struct devio *d = devio_of(userdata);
			size_t arg = (size_t)n - sizeof(*h);
			d->init_in_len = arg < sizeof(d->init_in) ? arg : sizeof(d->init_in);
			memcpy(d->init_in, (const char *)buf + sizeof(*h), d->init_in_len);
			atomic_store(&d->init_unique, h->unique);
		}
	}
	return n;
}

/* The reply's argument, flattened. */
static size_t flatten(const struct iovec *iov, int count, uint8_t *out, size_t size)
{
	size_t n = 0;
	for (int i = 1; i < count; i++) {
		size_t take = iov[i].iov_len < size - n ? iov[i].iov_len : size - n;
		memcpy(out + n, iov[i].iov_base, take);
		n += take;
	}
	return n;
}

/* The INIT reply, with the flags this libfuse could not ask for. */
static void patch_init(struct devio *d, struct iovec *iov, int count, struct fuse_init_out *copy)
{
	if (count < 2 || iov[1].iov_len < offsetof(struct fuse_init_out, unused))
		return;
	memcpy(copy, iov[1].iov_base,
	       iov[1].iov_len < sizeof(*copy) ? iov[1].iov_len : sizeof(*copy));
	if (d->no_export) {
		copy->flags |= FUSE_INIT_EXT;
		copy->flags2 |= (uint32_t)(FUSE_NO_EXPORT_SUPPORT >> 32);
	}
	iov[1].iov_base = copy;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct devio *d = devio_of(userdata);
	const struct fuse_out_header *h = iov[0].iov_base;
	struct fuse_init_out copy;
	if (iov[0].iov_len < sizeof(*h))
		return writev(fd, iov, count);
	if (d->injecting && h->unique == INJECTED_UNIQUE) {
		if (h->error == 0)
			patch_init(d, iov, count, &copy);
		d->injected_len =
		    h->error ? 0 : flatten(iov, count, d->injected, sizeof(d->injected));
		return (ssize_t)h->len; /* for libfuse, written */
	}
	uint64_t init = atomic_load(&d->init_unique);
	bool is_init = init && h->unique == init;
	if (is_init && h->error == 0)
		patch_init(d, iov, count, &copy);
	ssize_t n = writev(fd, iov, count);
	if (is_init && n >= 0 && h->error == 0) {
		if (d->state) {
			uint8_t out[512];
			size_t outlen = flatten(iov, count, out, sizeof(out));
			state_set_init(d->state, d->init_in, d->init_in_len, out, outlen);
		}
		if (d->on_init)
			d->on_init(d->on_init_ctx);
	}
	return n;
}

static ssize_t dev_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			       unsigned int flags, void *userdata)
{
	return splice(fdin, offin, fdout, offout, len, flags);
}

static ssize_t dev_splice_receive(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
				  unsigned int flags, void *userdata)
{
	return splice(fdin, offin, fdout, offout, len, flags);
}

errint_t devio_inject_init(struct fuse_session *se, struct devio *d)
{
	const void *in, *out;
	size_t inlen, outlen;
	if (!d->state || !state_init(d->state, &in, &inlen, &out, &outlen))
		return -EPROTO;
	size_t len = sizeof(struct fuse_in_header) + inlen;
	uint8_t *req = xcalloc(1, len);
	*(struct fuse_in_header *)req = (struct fuse_in_header){
	    .len = (uint32_t)len, .opcode = FUSE_INIT, .unique = INJECTED_UNIQUE};
	memcpy(req + sizeof(struct fuse_in_header), in, inlen);
	d->injecting = true;
	d->injected_len = 0;
	struct fuse_buf buf = {.size = len, .mem = req};
	fuse_session_process_buf(se, &buf);
	d->injecting = false;
	free(req);
	/* The same protocol, flags and sizes as the reply the kernel got:
	 * else this binary does not serve the connection as it was set up. */
	return d->injected_len == outlen && !memcmp(d->injected, out, outlen) ? 0 : -EPROTO;
}

int devio_attach(struct fuse_session *se, struct devio *d, int fd)
{
	static const struct fuse_custom_io io = {
	    .read = dev_read,
	    .writev = dev_writev,
	    .splice_send = dev_splice_send,
	    .splice_receive = dev_splice_receive,
	};
	atomic_init(&d->init_unique, 0);
	return fuse_session_custom_io(se, &io, fd) == 0 ? 0 : -EIO;
}
