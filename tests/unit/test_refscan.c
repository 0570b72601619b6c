/* Unit tests for the reference scanner, on a store made in a temporary
 * directory: hashes in names, link targets and contents, and hashes split
 * between two of the pieces a file is read in. */
#include "refscan.h"
#include "store.h"
#include "unit.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

/* Candidate hashes: digits and nix-base32 letters. */
#define HA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HC "cccccccccccccccccccccccccccccccc"
#define HD "dddddddddddddddddddddddddddddddd"
#define HF "ffffffffffffffffffffffffffffffff"
#define HG "gggggggggggggggggggggggggggggggg"
#define HX "11111111111111111111111111111111" /* not in the store */

static char dir[64];
static int storefd;

static void put(const char *rel, const char *data, size_t n)
{
	int fd = openat(storefd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, data, n) == (ssize_t)n);
	close(fd);
}

static int rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

struct found {
	char names[16][64];
	int n;
};

static void found(void *ctx, const char *base)
{
	struct found *f = ctx;
	if (f->n < 16)
		snprintf(f->names[f->n++], 64, "%s", base);
}

static bool has(const struct found *f, const char *base)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->names[i], base))
			return true;
	return false;
}

/* Scans HA-top of the store made by make_store, then removes the store. */
static void scan_top(struct found *f)
{
	struct strmap hashes = {0};
	struct arena a = {0};
	CHECK_INT(refscan_candidates(storefd, &hashes, &a), 0);
	char *err = NULL;
	CHECK_INT(refscan_path(storefd, HA "-top", &hashes, found, f, &err), 0);
	free(err);
	strmap_free(&hashes);
	arena_free(&a);
	close(storefd);
	nftw(dir, rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_store(void)
{
	strcpy(dir, "/tmp/bundlefs-refscan-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	storefd = open(dir, O_RDONLY | O_DIRECTORY);
	const char *dirs[] = {HA "-top", HB "-b", HC "-c", HD "-d", HF "-f", HG "-g"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		CHECK(mkdirat(storefd, dirs[i], 0755) == 0);
}

static void split_across_pieces(void)
{
	make_store();
	/* A file two pieces long: HB straddles the boundary by 10 bytes, HC
	 * ends exactly at it, HD starts exactly at it, HF straddles it by one
	 * byte on each side... of the second boundary, in a file three pieces
	 * long. HX is no store entry and must not be reported. */
	size_t n = 3 * REFSCAN_CHUNK;
	char *data = malloc(n);
	memset(data, '-', n);
	memcpy(data + REFSCAN_CHUNK - 10, HB, 32);
	memcpy(data + REFSCAN_CHUNK - 32 - 20, HC, 32);
	memcpy(data + REFSCAN_CHUNK + 40, HD, 32);
	memcpy(data + 2 * REFSCAN_CHUNK - 31, HF, 32);
	memcpy(data + 100, HX, 32);
	put(HA "-top/file", data, n);
	free(data);

	struct found f = {0};
	scan_top(&f);
	CHECK(has(&f, HB "-b"));
	CHECK(has(&f, HC "-c"));
	CHECK(has(&f, HD "-d"));
	CHECK(has(&f, HF "-f"));
	CHECK(!has(&f, HG "-g"));
	CHECK_INT(f.n, 4);
}

static void names_and_links(void)
{
	make_store();
	/* a file named after a hash, a symlink pointing at one, and a
	 * reference to itself (not reported) */
	put(HA "-top/" HG ".conf", "", 0);
	CHECK(symlinkat("/nix/store/" HB "-b/bin", storefd, HA "-top/link") == 0);
	put(HA "-top/self", "/nix/store/" HA "-top/x", strlen("/nix/store/" HA "-top/x"));
	CHECK(mkfifoat(storefd, HA "-top/fifo-" HC, 0644) == 0); /* not servable: not scanned */
	struct found f = {0};
	scan_top(&f);
	CHECK(has(&f, HG "-g"));
	CHECK(has(&f, HB "-b"));
	CHECK(!has(&f, HA "-top"));
	CHECK(!has(&f, HC "-c"));
	CHECK_INT(f.n, 2);
}

UNIT_MAIN(CASE(split_across_pieces), CASE(names_and_links))
