/* statedir: generations of writable roots in the state directory. */
#include "statedir.h"
#include "mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool plain(unsigned char u)
{
	return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
	       u == '.' || u == '_';
}

char *statedir_escape(const char *path)
{
	struct buf b = {0};
	if (!path[1]) {
		buf_addc(&b, '-');
		return b.data;
	}
	for (const char *c = path + 1; *c; c++) {
		unsigned char u = (unsigned char)*c;
		if (u == '/')
			buf_addc(&b, '-');
		else if (plain(u))
			buf_addc(&b, (char)u);
		else
			buf_addf(&b, "%%%02X", u);
	}
	return b.data;
}

static int hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

char *statedir_unescape(const char *name)
{
	if (!strcmp(name, "-"))
		return xstrdup("/");
	struct buf b = {0};
	buf_addc(&b, '/');
	for (const char *c = name; *c; c++) {
		if (*c == '-') {
			buf_addc(&b, '/');
		} else if (*c == '%' && hex(c[1]) >= 0 && hex(c[2]) >= 0 &&
			   !plain((unsigned char)(hex(c[1]) * 16 + hex(c[2])))) {
			buf_addc(&b, (char)(hex(c[1]) * 16 + hex(c[2])));
			c += 2;
		} else if (plain((unsigned char)*c)) {
			buf_addc(&b, *c);
		} else {
			buf_free(&b);
			return NULL;
		}
	}
	/* (Only what escape writes: it would have written this back.) */
	char *again = statedir_escape(b.data);
	bool same = !strcmp(again, name);
	free(again);
	if (!same) {
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

char *statedir_bundle(const char *state_dir, const char *mountpoint, const char *name)
{
	char *esc = statedir_escape(mountpoint);
	char *dir = xasprintf("%s/%s/%s", state_dir, esc, name);
	free(esc);
	return dir;
}

/* "upper" is generation 0, "upper.N" generation N (no leading zeros). */
static bool generation_of(const char *name, unsigned *gen)
{
	if (strncmp(name, "upper", 5))
		return false;
	if (!name[5]) {
		*gen = 0;
		return true;
	}
	if (name[5] != '.' || name[6] < '1' || name[6] > '9')
		return false;
	char *end;
	unsigned long n = strtoul(name + 6, &end, 10);
	if (*end || n > 1000000000)
		return false;
	*gen = (unsigned)n;
	return true;
}

static int by_number(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

size_t statedir_generations(const char *bundle_dir, unsigned **gens)
{
	*gens = NULL;
	DIR *d = opendir(bundle_dir);
	if (!d)
		return 0;
	size_t n = 0, cap = 0;
	struct dirent *de;
	unsigned g;
	while ((de = readdir(d)))
		if (generation_of(de->d_name, &g)) {
			GROW(*gens, n, cap);
			(*gens)[n++] = g;
		}
	closedir(d);
	if (n)
		qsort(*gens, n, sizeof(**gens), by_number);
	return n;
}

long statedir_current(const char *bundle_dir)
{
	unsigned *gens;
	size_t n = statedir_generations(bundle_dir, &gens);
	long cur = n ? (long)gens[n - 1] : -1;
	free(gens);
	return cur;
}

static char *named(const char *bundle_dir, const char *what, unsigned gen)
{
	return gen ? xasprintf("%s/%s.%u", bundle_dir, what, gen)
		   : xasprintf("%s/%s", bundle_dir, what);
}

char *statedir_upper(const char *bundle_dir, unsigned gen)
{
	return named(bundle_dir, "upper", gen);
}

char *statedir_work(const char *bundle_dir, unsigned gen)
{
	return named(bundle_dir, "work", gen);
}

errint_t statedir_make(const char *bundle_dir, unsigned gen)
{
	cleanup_free char *upper = statedir_upper(bundle_dir, gen);
	cleanup_free char *work = statedir_work(bundle_dir, gen);
	errint_t e = mkdir_p(upper, 0755);
	return e < 0 ? e : mkdir_p(work, 0700);
}

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

errint_t statedir_remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (nftw(path, remove_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return errno ? -errno : -EIO;
	return 0;
}

errint_t statedir_remove(const char *bundle_dir, unsigned gen)
{
	cleanup_free char *upper = statedir_upper(bundle_dir, gen);
	cleanup_free char *work = statedir_work(bundle_dir, gen);
	errint_t e = statedir_remove_tree(upper);
	errint_t w = statedir_remove_tree(work);
	return e < 0 ? e : w;
}

/* The blocks below directory `fd` (which it closes), on its device. */
static uint64_t bytes_below(int fd, dev_t dev, int depth)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	uint64_t sum = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		sum += (uint64_t)st.st_blocks * 512;
		int sub;
		if (S_ISDIR(st.st_mode) && depth < 256 &&
		    (sub = openat(dirfd(d), de->d_name,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
			sum += bytes_below(sub, dev, depth + 1);
	}
	closedir(d);
	return sum;
}

uint64_t statedir_bytes(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return 0;
	}
	return (uint64_t)st.st_blocks * 512 + bytes_below(fd, st.st_dev, 0);
}

errint_t statedir_prune(const char *bundle_dir, bool keep_current, bool dry_run, const char *except,
			statedir_report_fn *report, void *ctx)
{
	unsigned *gens;
	size_t n = statedir_generations(bundle_dir, &gens);
	errint_t rc = 0;
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *upper = statedir_upper(bundle_dir, gens[i]);
		const char *kept = keep_current && i == n - 1		  ? "the current one"
				   : mounts_overlay_in_use(upper, except) ? "in use"
									  : NULL;
		uint64_t bytes = statedir_bytes(upper);
		report(ctx, upper, bytes, kept);
		errint_t e = kept || dry_run ? 0 : statedir_remove(bundle_dir, gens[i]);
		if (e < 0 && !rc)
			rc = e;
	}
	free(gens);
	/* (Fails, harmlessly, unless it is empty.) */
	if (!dry_run)
		rmdir(bundle_dir);
	return rc;
}

char *statedir_images(const char *state_dir)
{
	return xasprintf("%s/@images", state_dir);
}

errint_t statedir_prune_images(const char *state_dir, bool dry_run, statedir_report_fn *report,
			       void *ctx)
{
	cleanup_free char *dir = statedir_images(state_dir);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct mounts_all all;
	bool known = mounts_all_read(&all) == 0;
	errint_t rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		/* (Only images: not what a build is writing.) */
		if (de->d_name[0] == '.' || n < 7 || strcmp(de->d_name + n - 6, ".erofs"))
			continue;
		cleanup_free char *path = xasprintf("%s/%s", dir, de->d_name);
		struct stat st;
		uint64_t bytes = lstat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
		const char *kept = !known ? "cannot tell whether it is in use"
				   : mounts_all_image(&all, path) ? "in use"
								  : NULL;
		report(ctx, path, bytes, kept);
		if (!kept && !dry_run && unlink(path) < 0 && !rc)
			rc = -errno;
	}
	closedir(d);
	if (known)
		mounts_all_free(&all);
	if (!dry_run)
		rmdir(dir);
	return rc;
}
