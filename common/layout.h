/* layout: the entries a bundle's rootfs has besides its store paths:
 * dev, proc and sys (as buildContainer creates them), a mount point for
 * every mount of config.json with its parents (so that runc can mount on
 * a read-only root): a directory, or an empty file for a bind mount of a
 * file, with the mode the mount's mode= option gives; the process's cwd,
 * a directory with its parents, unless it is in the store directory or
 * below a mount destination (which provide it); /etc/passwd and
 * /etc/group when the bundle names a user; and the store directory that
 * holds the closure (or, with data = bind, a mount point per store path). */
#ifndef BUNDLEFS_LAYOUT_H
#define BUNDLEFS_LAYOUT_H

#include "spec.h"
#include "store.h"

#include <stdbool.h>
#include <sys/types.h>

enum layout_kind {
	LAYOUT_DIR,
	LAYOUT_FILE, /* a file: the mount point of a file bind, or `data` */
};

struct layout_dir {
	const char *name; /* "" for the rootfs itself */
	enum layout_kind kind;
	mode_t mode;	  /* permission bits */
	const char *data; /* a file's contents (NULL: empty) */
	size_t len;
	struct layout_dir **kids; /* sorted by name */
	size_t nkids;
	bool is_store;	   /* the store directory: its entries are the closure */
	unsigned nsubdirs; /* kids that are directories */
};

struct layout {
	struct layout_dir *root;
	struct arena arena;
};

/* Builds the layout of `b` (from `file`, its spec, for messages), whose
 * closure is `c` (with data = bind, its store paths become mount points in
 * the store directory; without, the store directory serves them). Bind
 * mount sources are looked at now: a directory gets a directory, any other
 * file a file. Returns 0, or after adding "FILE:LINE: ..." to `d`: -EAGAIN
 * when a source is missing (it may appear), -EINVAL when it cannot be a
 * mount point. On failure `l` holds nothing. */
struct closure;
int layout_build(struct layout *l, const struct bundle *b, const char *file, const struct store *st,
		 const struct closure *c, struct diags *d);
void layout_free(struct layout *l);
/* Writes the skeleton below `ld` into the directory `dfd`: directories
 * with their modes, files with their contents (not the closure). Returns
 * 0, or -1 with *err (malloc'ed) naming the entry, below `where` (the
 * directory's path, for the message), that could not be made. */
int layout_write(const struct layout_dir *ld, int dfd, const char *where, char **err);
struct layout_dir *layout_child(const struct layout_dir *d, const char *name);

#endif
