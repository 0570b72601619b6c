/* materialize: write a bundle as a plain directory, by copying. */
#ifndef BUNDLEFS_MATERIALIZE_H
#define BUNDLEFS_MATERIALIZE_H

#include "closure.h"
#include "spec.h"
#include "store.h"

/* Creates `dir` (which must not exist) holding config.json and rootfs/
 * for bundle `b` of spec `file`. On failure removes what it created and
 * returns -1 with a message in *err. */
int materialize(struct store *st, const struct bundle *b, const char *file, const struct closure *c,
		const char *dir, char **err);

#endif
