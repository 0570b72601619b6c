/* narinfo: what a binary cache says about one store path.
 *
 * A binary cache (a substituter) serves, for each store path it has,
 * `<hash>.narinfo`: lines of `Key: value` naming the path, its archive
 * (URL, compression, sizes, hashes), its references and its signatures:
 *
 *   StorePath: /nix/store/<hash>-<name>
 *   URL: nar/<filehash>.nar.xz
 *   Compression: xz
 *   NarHash: sha256:<base32>
 *   NarSize: 123456
 *   References: <hash>-<name> <hash>-<name> ...
 *   Sig: <key name>:<base64 signature>
 *
 * The references are what makes a closure known before any byte of it is
 * local. Nothing here fetches or trusts: this is the parser, pure, for
 * the closure resolver and the fuzzer. */
#ifndef BUNDLEFS_NARINFO_H
#define BUNDLEFS_NARINFO_H

#include "store.h"
#include "util.h"

#include <stdint.h>

struct narinfo {
	const char *base; /* StorePath's base name "<hash>-<name>" */
	const char *url, *compression, *nar_hash, *file_hash, *deriver, *ca;
	uint64_t nar_size, file_size;
	const char **refs; /* References, base names, as listed */
	size_t nrefs;
	const char **sigs; /* each "<key name>:<base64>" */
	size_t nsigs;
};

/* Parses `text` (len bytes) into *ni, with every string in `a`. `name`
 * says where the text came from, for messages. Unknown keys are ignored,
 * as Nix does. Returns 0, or -1 with a message "NAME:LINE: what is wrong"
 * in *err (malloc'ed). StorePath, URL, NarHash and NarSize are required;
 * StorePath and every reference must be store paths of `st`. */
int narinfo_parse(struct narinfo *ni, const char *text, size_t len, const struct store *st,
		  const char *name, struct arena *a, char **err);

/* The string Nix signs for a path: "1;<path>;<narhash>;<narsize>;<refs>"
 * with full paths, references comma-separated (malloc'ed). */
char *narinfo_fingerprint(const struct narinfo *ni, const struct store *st);

#endif
