/* fdbudget: sharing the descriptor limit out. */
#include "fdbudget.h"

#include <errno.h>

_Static_assert(FDBUDGET_MIN == 38, "--help, bundlefs(1) and the docs say 38");

static unsigned clamp(unsigned x, unsigned lo, unsigned hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

unsigned fdbudget_min(void)
{
	return FDBUDGET_MIN;
}

errint_t fdbudget_plan(unsigned limit, unsigned threads, struct fdbudget *out)
{
	*out = (struct fdbudget){.limit = limit};
	if (limit < fdbudget_min())
		return -EMFILE;
	unsigned spare = limit - FDBUDGET_HELD;
	/* Workers first: each one that fits serves readers in parallel; the
	 * caches only save reopening. */
	unsigned room = (spare - FDBUDGET_CLIENTS_MIN - FDBUDGET_CACHES_MIN) / FDBUDGET_PER_WORKER;
	out->threads = clamp(threads, 1, room);
	unsigned rest = spare - out->threads * FDBUDGET_PER_WORKER;
	/* Control clients are short-lived: a few suffice to keep one
	 * client that sends nothing from holding others up. */
	out->clients = clamp(rest / 8, FDBUDGET_CLIENTS_MIN, FDBUDGET_CLIENTS_MAX);
	unsigned caches = rest - out->clients;
	out->tree = clamp(caches / 4, 2, 64);
	out->files = clamp(caches / 2, 4, 64);
	out->dirs = clamp(caches / 4, 2, 64);
	return 0;
}
