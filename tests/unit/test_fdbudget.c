/* Unit tests of fdbudget: the descriptor limit shared out among the
 * workers, the control socket's clients and the handle caches. */
#include "fdbudget.h"
#include "unit.h"

#include <errno.h>

/* What a plan can hold at once. */
static unsigned spent(const struct fdbudget *b)
{
	return FDBUDGET_HELD + b->threads * FDBUDGET_PER_WORKER + b->clients + b->tree + b->files +
	       b->dirs;
}

/* Every limit from none to a large one, for every thread count asked: a
 * plan never spends more than the limit, and refuses only below the
 * least. */
static void never_more_than_the_limit(void)
{
	for (unsigned want = 1; want <= 64; want++) {
		for (unsigned limit = 0; limit <= 4096; limit++) {
			struct fdbudget b;
			errint_t e = fdbudget_plan(limit, want, &b);
			if (limit < fdbudget_min()) {
				CHECK_INT(e, -EMFILE);
				continue;
			}
			CHECK_INT(e, 0);
			CHECK(spent(&b) <= limit);
			CHECK(b.threads >= 1 && b.threads <= want);
			CHECK(b.clients >= FDBUDGET_CLIENTS_MIN &&
			      b.clients <= FDBUDGET_CLIENTS_MAX);
			CHECK(b.tree + b.files + b.dirs >= FDBUDGET_CACHES_MIN);
			if (unit_failures)
				return;
		}
	}
}

/* Workers come first: each that fits serves, and all do once the limit
 * has room for them. */
static void workers_first(void)
{
	struct fdbudget b;
	CHECK_INT(fdbudget_plan(fdbudget_min(), 8, &b), 0);
	CHECK_INT(b.threads, 1);
	CHECK_INT(fdbudget_plan(fdbudget_min() + 7 * FDBUDGET_PER_WORKER - 1, 8, &b), 0);
	CHECK_INT(b.threads, 7);
	CHECK_INT(fdbudget_plan(fdbudget_min() + 7 * FDBUDGET_PER_WORKER, 8, &b), 0);
	CHECK_INT(b.threads, 8);
	/* (The rest goes to the clients and caches, up to their ceilings.) */
	CHECK_INT(fdbudget_plan(1u << 20, 8, &b), 0);
	CHECK_INT(b.threads, 8);
	CHECK_INT(b.clients, FDBUDGET_CLIENTS_MAX);
	CHECK_INT(b.files, 64);
	CHECK_INT(b.tree, 64);
	CHECK_INT(b.dirs, 64);
	CHECK_INT(b.limit, 1u << 20);
}

UNIT_MAIN(CASE(never_more_than_the_limit), CASE(workers_first))
