/* gcroots: while a bundle is served, its closure is registered as Nix
 * garbage-collector roots, so that `nix-store --gc` cannot delete what a
 * container may still read. The roots are the bundle's roots (the store
 * paths its args and `paths` name): Nix keeps their whole closures. Each
 * daemon keeps its roots in <gcroots>/bundlefs/<pid>/ (one symlink per
 * store path) and removes them when it exits; roots of daemons that died
 * are removed by the next one to start. */
#ifndef BUNDLEFS_GCROOTS_H
#define BUNDLEFS_GCROOTS_H

#include "closure.h"
#include "store.h"

/* The default roots directory for a store: <state>/gcroots beside the
 * database, when it exists; else NULL. */
char *gcroots_default(const struct store *st);
/* Creates this daemon's directory. Returns 0 or -errno. */
int gcroots_init(const char *dir);
/* Registers store paths (base names). Returns 0 or -errno. */
int gcroots_add(const struct store *st, const char *const *bases, size_t n);
/* Removes this daemon's roots. */
void gcroots_fini(void);

#endif
