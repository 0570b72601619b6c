/* options: bundlefs's command line, as a user types it and as mount(8)
 * gives it through mount.fuse3 (`bundlefs SPEC MOUNTPOINT -o OPTIONS`, for
 * `mount -t fuse.bundlefs` and fstab lines). */
#ifndef BUNDLEFS_OPTIONS_H
#define BUNDLEFS_OPTIONS_H

#include "spec.h"
#include "store.h"
#include "util.h"

#include <stdbool.h>

/* Where writable roots keep their changes unless --state-dir says (for a
 * daemon that is not root: $XDG_STATE_HOME/bundlefs, else
 * ~/.local/state/bundlefs). */
#define DEFAULT_STATE_DIR "/var/lib/bundlefs"
/* Where writable roots are mounted, one directory per mount point (for a
 * daemon that is not root: $XDG_RUNTIME_DIR/bundlefs). */
#define DEFAULT_RUN_DIR "/run/bundlefs"

struct options {
	const char *mountpoint, *spec;
	const char *gcroots;   /* NULL: the default; "none": none */
	const char *log;       /* --log FILE, or NULL */
	const char *state_dir; /* writable roots' changes (overlay.h), absolute */
	const char *run_dir;   /* where writable roots are mounted (overlay.h), absolute */
	struct buf fuse_opts;  /* ",opt,opt" for libfuse */
	struct arena strings;  /* values taken from -o lists */
	/* state_dir or run_dir is a default taken from the environment (a
	 * daemon that is not root: $XDG_STATE_HOME, $XDG_RUNTIME_DIR) */
	bool dirs_from_env;
	bool foreground, debug, single, no_openat2, watch, mount_rw, no_passthrough;
	bool verbose; /* debug lines are logged (log.h); -d implies it */
	unsigned threads;
	unsigned pt_files; /* passthrough.h: the table's size */
	/* realise.h: caches besides Nix's own, none at all, prefetch, the
	 * stall that fails a realisation (seconds; 0: Nix's own) */
	const char **substituters;
	size_t nsubstituters, subcap;
	bool no_substitute;
	/* --data: the data path of bundles whose spec does not say (spec.h):
	 * native (the default; the FUSE tree where it cannot be) or fuse. */
	enum spec_data data;
	unsigned prefetch, stall_timeout;
	/* Set by the caller: arguments parsed once already, by a daemon whose
	 * mount is now up. Nothing is looked at on the file system (stat of
	 * a mount point nobody serves yet would never return), and which of
	 * MOUNTPOINT and SPEC comes first is not worked out: the caller
	 * knows them. */
	bool reparse;
};

/* Parses argv into `o` and the store settings into `st`. Returns -1 to go
 * on, else the status to exit with (after --help, --version or a usage
 * error, which it reports). */
int options_parse(int argc, char **argv, struct options *o, struct store *st);
void options_free(struct options *o);

#endif
