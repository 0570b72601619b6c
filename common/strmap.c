/* strmap: linear probing with backward-shift deletion (no tombstones). */
#include "strmap.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t strmap_hash(const char *key, size_t len)
{
	return XXH3_64bits(key, len);
}

static struct strmap_slot *find(const struct strmap *m, const char *key, size_t len, uint64_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key)
			return s;
		if (s->hash == h && s->len == len && !memcmp(s->key, key, len))
			return s;
	}
}

/* Rehashes into `cap` slots (a power of two). */
static void resize(struct strmap *m, size_t cap)
{
	struct strmap old = *m;
	m->cap = cap;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			*find(m, old.slots[i].key, old.slots[i].len, old.slots[i].hash) =
			    old.slots[i];
	free(old.slots);
}

void strmap_reserve(struct strmap *m, size_t more)
{
	if (!more)
		return;
	size_t cap = m->cap ? m->cap : 16;
	while ((m->n + more) * 2 > cap)
		cap *= 2;
	if (cap != m->cap)
		resize(m, cap);
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
	if (!m->n)
		return NULL;
	struct strmap_slot *s = find(m, key, len, strmap_hash(key, len));
	return s->key ? s->val : NULL;
}

void *strmap_put(struct strmap *m, const char *key, size_t len, void *val)
{
	if ((m->n + 1) * 2 > m->cap)
		resize(m, m->cap ? m->cap * 2 : 16);
	uint64_t h = strmap_hash(key, len);
	struct strmap_slot *s = find(m, key, len, h);
	if (s->key)
		return s->val;
	*s = (struct strmap_slot){key, len, h, val};
	m->n++;
	return val;
}

void *strmap_del(struct strmap *m, const char *key, size_t len)
{
	if (!m->n)
		return NULL;
	struct strmap_slot *s = find(m, key, len, strmap_hash(key, len));
	if (!s->key)
		return NULL;
	void *val = s->val;
	size_t mask = m->cap - 1, i = (size_t)(s - m->slots), j = i;
	/* Shift later members of the probe run back into the hole. */
	for (;;) {
		j = (j + 1) & mask;
		if (!m->slots[j].key)
			break;
		size_t home = m->slots[j].hash & mask;
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	memset(&m->slots[i], 0, sizeof(m->slots[i]));
	m->n--;
	return val;
}

void strmap_free(struct strmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}
