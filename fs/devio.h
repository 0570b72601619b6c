/* devio: the daemon's side of the /dev/fuse connection, through libfuse's
 * custom I/O hooks (fuse_session_custom_io), which see every request read
 * and every reply written.
 *
 * They set in the INIT reply what the libfuse this is built against may be
 * unable to ask for: FUSE_NO_EXPORT_SUPPORT (Linux 6.9, protocol 7.40),
 * which removes the mount's file-handle decoding, so open_by_handle_at
 * cannot reach nodes by guessing their ids. They keep the INIT exchange in
 * the state region (state.h), and let a successor make libfuse accept a
 * connection whose INIT was answered long ago (devio_inject_init).
 * Everything else passes through unchanged, splicing included. */
#ifndef BUNDLEFS_DEVIO_H
#define BUNDLEFS_DEVIO_H

#include "util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct fuse_session;
struct state;

struct devio {
	atomic_uint_fast64_t init_unique; /* the INIT request's id, once read */
	bool no_export;			  /* set FUSE_NO_EXPORT_SUPPORT in the reply */
	struct state *state;		  /* where the INIT exchange is kept, or NULL */
	uint8_t init_in[512];		  /* the INIT request's argument, until answered */
	size_t init_in_len;
	/* Called once the INIT reply is written: the mount serves. */
	void (*on_init)(void *ctx);
	void *on_init_ctx;
	/* A successor's injected INIT: its reply is kept, not written. */
	bool injecting;
	uint8_t injected[512];
	size_t injected_len;
};

/* Puts the hooks between `se` and the device `fd` (the session's own for
 * a mount it made, or a connection taken over). `d` must be the session's
 * userdata's devio, and live as long. Returns 0 or -errno. */
int devio_attach(struct fuse_session *se, struct devio *d, int fd);

/* Gives libfuse the INIT request of a connection already answered (from
 * the state region); its reply is swallowed and must equal the one sent
 * then (same protocol, flags and sizes), or this successor cannot serve
 * the connection: -EPROTO. Returns 0 or -errno. */
errint_t devio_inject_init(struct fuse_session *se, struct devio *d);

/* Whether the request this thread is handling is one the kernel sent
 * again (FUSE_NOTIFY_RESEND after a takeover): a predecessor may have
 * acted on it already and died before answering. libfuse handles a
 * request in the thread that read it. */
bool devio_resent(void);

#endif
