/* Unit tests for store: store path syntax and reference discovery. */
#include "store.h"
#include "unit.h"

#define H "0123456789abcdfghijklmnpqrsvwxyz"

static void base_names(void)
{
	CHECK(store_valid_base(H "-hello-2.12", strlen(H "-hello-2.12")));
	CHECK(store_valid_base(H "-a+b_c?d=e.f", strlen(H "-a+b_c?d=e.f")));
	CHECK(!store_valid_base(H "-", strlen(H "-")));
	CHECK(!store_valid_base(H "hello", strlen(H "hello")));
	CHECK(!store_valid_base("e123456789abcdfghijklmnpqrsvwxyz-x", 34)); /* 'e' is not base-32 */
	CHECK(!store_valid_base(H "-a/b", strlen(H "-a/b")));
	CHECK(!store_valid_base(H "-a b", strlen(H "-a b")));
	CHECK(!store_valid_base(H "-.", strlen(H "-.")));
	CHECK(!store_valid_base(H "-..", strlen(H "-..")));
	char longname[STORE_HASH_LEN + 1 + STORE_NAME_MAX + 2];
	memset(longname, 'x', sizeof(longname));
	memcpy(longname, H "-", STORE_HASH_LEN + 1);
	CHECK(store_valid_base(longname, STORE_HASH_LEN + 1 + STORE_NAME_MAX));
	CHECK(!store_valid_base(longname, STORE_HASH_LEN + 1 + STORE_NAME_MAX + 1));
}

static void paths(void)
{
	struct store st;
	store_init(&st);
	CHECK_STR(store_path_base(&st, "/nix/store/" H "-x"), H "-x");
	CHECK(!store_path_base(&st, "/nix/store/" H "-x/bin"));
	CHECK(!store_path_base(&st, "/nix/storex/" H "-x"));
	CHECK(!store_path_base(&st, "/nix/store"));
	store_free(&st);
}

static char found[8][300];
static int nfound;
static void collect(void *ctx, const char *base, size_t n)
{
	snprintf(found[nfound++], sizeof(found[0]), "%.*s", (int)n, base);
}

static void find_refs(void)
{
	struct store st;
	store_init(&st);
	nfound = 0;
	store_find_refs(&st,
			"PATH=/nix/store/" H "-bash-5.2/bin:/nix/store/" H "-core/bin "
			"/nix/store/short-x /nix/store/" H "x /nix/storeless",
			collect, NULL);
	CHECK_INT(nfound, 2);
	CHECK_STR(found[0], H "-bash-5.2");
	CHECK_STR(found[1], H "-core");
	store_free(&st);
}

static void options(void)
{
	struct store st;
	char *err = NULL;
	store_init(&st);
	CHECK_INT(store_option(&st, "--store-dir", "/x/store/", &err), 1);
	CHECK_STR(st.dir, "/x/store");
	CHECK_INT(store_option(&st, "--real-store", "/tmp/r/nix/store", &err), 1);
	CHECK_INT(store_finish(&st, &err), 0);
	CHECK_STR(st.db, "/tmp/r/nix/var/nix/db/db.sqlite");
	CHECK_INT(store_option(&st, "--store-dir", "relative", &err), -1);
	free(err);
	err = NULL;
	CHECK_INT(store_option(&st, "--store-dir", "/a/../b", &err), -1);
	free(err);
	err = NULL;
	CHECK_INT(store_option(&st, "--db", "none", &err), 1);
	CHECK(st.db == NULL);
	CHECK_INT(store_option(&st, "--other", "x", &err), 0);
	store_free(&st);
}

UNIT_MAIN(CASE(base_names), CASE(paths), CASE(find_refs), CASE(options))
