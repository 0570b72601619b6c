/* layout: the directories a bundle's rootfs has besides its store paths:
 * dev, proc and sys (as buildContainer creates them), every mount
 * destination of config.json with its parents (so that runc can mount on
 * a read-only root), and the store directory that holds the closure. */
#ifndef BUNDLEFS_LAYOUT_H
#define BUNDLEFS_LAYOUT_H

#include "spec.h"
#include "store.h"

#include <stdbool.h>

struct layout_dir {
	const char *name;	  /* "" for the rootfs itself */
	struct layout_dir **kids; /* sorted by name */
	size_t nkids;
	bool is_store;	   /* the store directory: its entries are the closure */
	unsigned nsubdirs; /* kids that are directories (all are) */
};

struct layout {
	struct layout_dir *root;
	struct arena arena;
};

void layout_build(struct layout *l, const struct bundle *b, const struct store *st);
void layout_free(struct layout *l);
struct layout_dir *layout_child(const struct layout_dir *d, const char *name);

#endif
