/* strmap: an open-addressing hash map from byte strings to pointers,
 * hashed with XXH3. Keys are not copied: they must outlive the map. */
#ifndef BUNDLEFS_STRMAP_H
#define BUNDLEFS_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
	const char *key;
	size_t len;
	uint64_t hash;
	void *val;
};

struct strmap {
	struct strmap_slot *slots;
	size_t cap, n; /* cap is a power of two */
};

uint64_t strmap_hash(const char *key, size_t len);
/* Makes room for `more` keys, so that adding them rehashes nothing. */
void strmap_reserve(struct strmap *m, size_t more);
/* Returns the value stored for key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key, size_t len);
/* Stores key -> val unless key is present; returns the value that is now
 * stored (the old one when the key was present). */
void *strmap_put(struct strmap *m, const char *key, size_t len, void *val);
/* Removes key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key, size_t len);
void strmap_free(struct strmap *m);

#endif
