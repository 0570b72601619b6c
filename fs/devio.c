/* devio: custom I/O on the FUSE device. */
#include "devio.h"
#include "bfs.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include <errno.h>
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

static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	if (n >= (ssize_t)sizeof(struct fuse_in_header)) {
		const struct fuse_in_header *h = buf;
		if (h->opcode == FUSE_INIT)
			atomic_store(&devio_of(userdata)->init_unique, h->unique);
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
		atomic_store(&d->export_off, true);
	}
	iov[1].iov_base = copy;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct devio *d = devio_of(userdata);
	const struct fuse_out_header *h = iov[0].iov_base;
	struct fuse_init_out copy;
	uint64_t init = atomic_load(&d->init_unique);
	bool is_init = init && iov[0].iov_len >= sizeof(*h) && h->unique == init;
	if (is_init && h->error == 0)
		patch_init(d, iov, count, &copy);
	ssize_t n = writev(fd, iov, count);
	if (is_init && n >= 0 && d->on_init)
		d->on_init(d->on_init_ctx);
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

int devio_attach(struct fuse_session *se, struct devio *d)
{
	static const struct fuse_custom_io io = {
	    .read = dev_read,
	    .writev = dev_writev,
	    .splice_send = dev_splice_send,
	    .splice_receive = dev_splice_receive,
	};
	atomic_init(&d->init_unique, 0);
	atomic_init(&d->export_off, false);
	return fuse_session_custom_io(se, &io, fuse_session_fd(se)) == 0 ? 0 : -EIO;
}
