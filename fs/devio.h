/* devio: the daemon's side of the /dev/fuse connection, through libfuse's
 * custom I/O hooks (fuse_session_custom_io), which see every request read
 * and every reply written.
 *
 * They set in the INIT reply what the libfuse this is built against may be
 * unable to ask for: FUSE_NO_EXPORT_SUPPORT (Linux 6.9, protocol 7.40),
 * which removes the mount's file-handle decoding, so open_by_handle_at
 * cannot reach nodes by guessing their ids. Everything else passes through
 * unchanged, splicing included. */
#ifndef BUNDLEFS_DEVIO_H
#define BUNDLEFS_DEVIO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct fuse_session;

struct devio {
	atomic_uint_fast64_t init_unique; /* the INIT request's id, once read */
	bool no_export;			  /* set FUSE_NO_EXPORT_SUPPORT in the reply */
	atomic_bool export_off;		  /* ...and it was */
	/* Called once the INIT reply is written: the mount serves. */
	void (*on_init)(void *ctx);
	void *on_init_ctx;
};

/* Puts the hooks between `se` (mounted, not yet looping) and its device.
 * `d` must be the session's userdata's devio, and live as long. Returns 0
 * or -errno. */
int devio_attach(struct fuse_session *se, struct devio *d);

#endif
