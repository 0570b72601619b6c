/* test_erofs: the mechanism of kernel-native roots, proved on this machine.
 * libcomposefs writes an EROFS image that holds only the metadata of a
 * closure below nix/store/ (tree, modes, owners, mtimes, sizes, symlink
 * targets); each regular file of size > 0 points at its data with
 * overlayfs' metacopy and redirect xattrs. The image is mounted file-backed
 * (Linux >= 6.12: no loop device) and stacked on the store, a data-only
 * lower layer (Linux >= 6.5), in a read-only overlay that must then equal
 * the store entry by entry. The other case changes a scratch data layer
 * under a mounted root, as a store changes under a running container.
 *
 * Needs root and the test closures (tests/fixtures/nixfix.py builds them
 * offline). The closure is $BUNDLEFS_EROFS_FIXTURE, `app` unless set; with
 * `realistic` the case's numbers (entries, image size, times) are worth
 * reading: it prints them. */
#include "unit.h"

#include <libcomposefs/lcfs-writer.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE "/nix/store"

/* What composefs asks for: metacopy=on (a lower file may take its data
 * from another layer) and redirect_dir=on (redirects are followed). With a
 * data-only layer, Linux 6.18 follows the image's redirects without them
 * too (even with metacopy=off), but its defaults come from the kernel's
 * configuration and module parameters; saying so does not depend on them. */
#define OVERLAY_OPTIONS "metacopy=on,redirect_dir=on"

/* A root being assembled in a scratch directory: the image, its erofs
 * mount (detached once the overlay holds it) and the overlay. */
struct root {
	char dir[64];
	char image[96], meta[96], mnt[96];
	size_t entries;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((format(printf, 2, 3))) static void differ(const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", path);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	unit_failures++;
}

/* The image's node for one entry, from what lstat says of it. A regular
 * file of size > 0 gets its path below the data layer as payload, which
 * the writer stores as trusted.overlay.redirect ("/" + payload) beside an
 * empty trusted.overlay.metacopy. Setting those xattrs directly would not
 * do: the writer escapes every trusted.overlay.* xattr it is given (to
 * trusted.overlay.overlay.*), which the overlay shows as a plain xattr.
 * An empty file needs no data, so it gets neither. */
static struct lcfs_node_s *image_node(const struct stat *st, const char *target,
				      const char *data_path)
{
	struct lcfs_node_s *node = lcfs_node_new();
	if (!node)
		return NULL;
	struct timespec mtime = st->st_mtim;
	if (lcfs_node_try_set_mode(node, st->st_mode) < 0)
		goto fail;
	lcfs_node_set_uid(node, st->st_uid);
	lcfs_node_set_gid(node, st->st_gid);
	lcfs_node_set_mtime(node, &mtime);
	if (S_ISREG(st->st_mode)) {
		lcfs_node_set_size(node, st->st_size);
		if (st->st_size > 0 && lcfs_node_set_payload(node, data_path) < 0)
			goto fail;
	} else if (S_ISLNK(st->st_mode) && lcfs_node_set_symlink_payload(node, target) < 0) {
		goto fail;
	}
	return node;
fail:
	lcfs_node_unref(node);
	return NULL;
}

/* Adds NAME, an entry of directory DIRFD, below PARENT, and all that it
 * holds if it is a directory. REL is its path below the data layer (a
 * PATH_MAX buffer, extended and restored on the way down). Returns 0 or
 * -errno. */
static int image_add(struct lcfs_node_s *parent, int dirfd, const char *name, char *rel,
		     size_t *entries)
{
	struct stat st;
	char target[PATH_MAX] = "";
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = 0;
	} else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		return -EINVAL; /* (a store holds nothing else) */
	}
	struct lcfs_node_s *node = image_node(&st, target, rel);
	if (!node)
		return -errno;
	if (lcfs_node_add_child(parent, node, name) < 0) {
		int err = errno;
		lcfs_node_unref(node);
		return -err;
	}
	(*entries)++;
	if (!S_ISDIR(st.st_mode))
		return 0;

	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return -err;
	}
	size_t len = strlen(rel);
	int rc = 0;
	struct dirent *de;
	while (!rc && (errno = 0, de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (len + 1 + strlen(de->d_name) >= PATH_MAX) {
			rc = -ENAMETOOLONG;
			break;
		}
		sprintf(rel + len, "/%s", de->d_name);
		rc = image_add(node, fd, de->d_name, rel, entries);
		rel[len] = 0;
	}
	if (!rc && !de && errno)
		rc = -errno;
	closedir(dir);
	return rc;
}

static struct lcfs_node_s *image_dir(struct lcfs_node_s *parent, const char *name, mode_t mode)
{
	struct lcfs_node_s *node = lcfs_node_new();
	CHECK(node != NULL);
	lcfs_node_set_mode(node, S_IFDIR | mode);
	if (parent)
		CHECK_INT(lcfs_node_add_child(parent, node, name), 0);
	return node;
}

static ssize_t write_file(void *file, void *buf, size_t count)
{
	return fwrite(buf, 1, count, file);
}

/* Writes r->image: the store paths NAMES of the data layer DATA below
 * nix/store/. */
static void image_build(struct root *r, const char *data, char **names, size_t n)
{
	double t0 = now_ms();
	struct stat st;
	CHECK_INT(stat(data, &st), 0);
	struct lcfs_node_s *top = image_dir(NULL, NULL, 0755);
	struct lcfs_node_s *store = image_dir(image_dir(top, "nix", 0755), "store", 0);
	lcfs_node_set_mode(store, st.st_mode);
	lcfs_node_set_gid(store, st.st_gid);

	int datafd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(datafd >= 0);
	r->entries = 0;
	for (size_t i = 0; i < n; i++) {
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "%s", names[i]);
		int rc = image_add(store, datafd, names[i], rel, &r->entries);
		if (rc)
			fprintf(stderr, "%s/%s: %s\n", data, rel, strerror(-rc));
		CHECK_INT(rc, 0);
	}
	close(datafd);
	double t1 = now_ms();

	FILE *f = fopen(r->image, "we");
	if (!f) {
		differ(r->image, "fopen: %s", strerror(errno));
		lcfs_node_unref(top);
		return;
	}
	struct lcfs_write_options_s options = {
	    .format = LCFS_FORMAT_EROFS,
	    .version = LCFS_DEFAULT_VERSION_MIN,
	    .max_version = LCFS_DEFAULT_VERSION_MAX,
	    .file = f,
	    .file_write_cb = write_file,
	};
	CHECK_INT(lcfs_write_to(top, &options), 0);
	CHECK_INT(fclose(f), 0);
	lcfs_node_unref(top);
	double t2 = now_ms();

	CHECK_INT(stat(r->image, &st), 0);
	fprintf(stderr,
		"%zu store paths, %zu entries: walked in %.1f ms, image written in %.1f ms, "
		"%lld bytes\n",
		n, r->entries, t1 - t0, t2 - t1, (long long)st.st_size);
}

static void root_init(struct root *r)
{
	snprintf(r->dir, sizeof(r->dir), "/tmp/bfs-erofs-XXXXXX");
	CHECK(mkdtemp(r->dir) != NULL);
	snprintf(r->image, sizeof(r->image), "%s/root.erofs", r->dir);
	snprintf(r->meta, sizeof(r->meta), "%s/meta", r->dir);
	snprintf(r->mnt, sizeof(r->mnt), "%s/root", r->dir);
	CHECK_INT(mkdir(r->meta, 0700), 0);
	CHECK_INT(mkdir(r->mnt, 0755), 0);
}

/* Mounts the image file itself (no loop device), stacks it on the data
 * layer DATA, and lets go of the image's own mount, which the overlay
 * keeps as a layer. */
static bool root_mount(struct root *r, const char *data)
{
	if (mount(r->image, r->meta, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0) {
		differ(r->image, "mount -t erofs: %s", strerror(errno));
		return false;
	}
	char opts[512];
	snprintf(opts, sizeof(opts), "%s,lowerdir=%s::%s", OVERLAY_OPTIONS, r->meta, data);
	bool ok = mount("bundlefs", r->mnt, "overlay", MS_RDONLY | MS_NODEV | MS_NOSUID, opts) == 0;
	if (!ok)
		differ(r->mnt, "mount -t overlay -o %s: %s", opts, strerror(errno));
	CHECK_INT(umount2(r->meta, MNT_DETACH), 0);
	return ok;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void root_fini(struct root *r, bool mounted)
{
	if (mounted)
		CHECK_INT(umount(r->mnt), 0);
	CHECK_INT(nftw(r->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* The names in DIR but . and .., sorted; -1 on error (*names NULL). */
static int scan(const char *dir, struct dirent ***names)
{
	int n = scandir(dir, names, NULL, alphasort);
	if (n < 0) {
		*names = NULL;
		differ(dir, "scandir: %s", strerror(errno));
	}
	int kept = 0;
	for (int i = 0; i < n; i++) {
		const char *name = (*names)[i]->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			free((*names)[i]);
		else
			(*names)[kept++] = (*names)[i];
	}
	return n < 0 ? n : kept;
}

/* Whether the directory DIR holds exactly the names NAMES (sorted). */
static void check_names(const char *dir, const char *const *names, size_t n)
{
	struct dirent **got;
	int k = scan(dir, &got);
	if (k != (int)n)
		differ(dir, "%d entries, expected %zu", k, n);
	for (int i = 0; i < k; i++) {
		if (i < (int)n && strcmp(got[i]->d_name, names[i]))
			differ(dir, "entry %d is %s, expected %s", i, got[i]->d_name, names[i]);
		free(got[i]);
	}
	free(got);
}

static void same_bytes(const char *a, const char *b)
{
	int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
	if (fa < 0 || fb < 0) {
		differ(b, "open: %s", strerror(errno));
	} else {
		static char ba[1 << 16], bb[1 << 16];
		for (;;) {
			ssize_t na = read(fa, ba, sizeof(ba)), nb = read(fb, bb, sizeof(bb));
			if (na != nb || (na > 0 && memcmp(ba, bb, na))) {
				differ(b, "bytes differ from %s's", a);
				break;
			}
			if (na <= 0)
				break;
		}
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
}

/* Fails the case for every way the root's entry B differs from the
 * store's entry A, or what they hold if they are directories; counts the
 * entries compared. (st_nlink differs where the store is optimised: each
 * of the image's files is its own inode.) */
static void compare(const char *a, const char *b, size_t *entries)
{
	struct stat sa, sb;
	if (lstat(a, &sa) < 0 || lstat(b, &sb) < 0) {
		differ(b, "lstat: %s", strerror(errno));
		return;
	}
	(*entries)++;
	if (sa.st_mode != sb.st_mode)
		differ(b, "mode %o, the store's %o", sb.st_mode, sa.st_mode);
	if (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid)
		differ(b, "owner %d:%d, the store's %d:%d", sb.st_uid, sb.st_gid, sa.st_uid,
		       sa.st_gid);
	if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
		differ(b, "mtime %lld, the store's %lld", (long long)sb.st_mtim.tv_sec,
		       (long long)sa.st_mtim.tv_sec);
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
		return;
	if (S_ISLNK(sa.st_mode)) {
		char ta[PATH_MAX], tb[PATH_MAX];
		ssize_t na = readlink(a, ta, sizeof(ta)), nb = readlink(b, tb, sizeof(tb));
		if (na != nb || na < 0 || memcmp(ta, tb, na))
			differ(b, "symlink target differs from %s's", a);
	} else if (S_ISREG(sa.st_mode)) {
		if (sa.st_size != sb.st_size)
			differ(b, "size %lld, the store's %lld", (long long)sb.st_size,
			       (long long)sa.st_size);
		else
			same_bytes(a, b);
	} else if (S_ISDIR(sa.st_mode)) {
		struct dirent **na, **nb;
		int ka = scan(a, &na), kb = scan(b, &nb);
		if (ka != kb)
			differ(b, "%d entries, the store's %d", kb, ka);
		for (int i = 0; i < ka; i++) {
			if (i < kb && !strcmp(na[i]->d_name, nb[i]->d_name)) {
				char ca[PATH_MAX], cb[PATH_MAX];
				snprintf(ca, sizeof(ca), "%s/%s", a, na[i]->d_name);
				snprintf(cb, sizeof(cb), "%s/%s", b, na[i]->d_name);
				compare(ca, cb, entries);
			} else if (i < kb) {
				differ(b, "entry %d is %s, the store's %s", i, nb[i]->d_name,
				       na[i]->d_name);
			}
			free(na[i]);
		}
		for (int i = 0; i < kb; i++)
			free(nb[i]);
		free(na);
		free(nb);
	}
}

/* The closure of the fixture, as names in the store, sorted. */
static size_t fixture_closure(char **names, size_t max)
{
	const char *attr = getenv("BUNDLEFS_EROFS_FIXTURE");
	if (!attr || !*attr)
		attr = "app";
	if (strspn(attr, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(attr)) {
		differ("BUNDLEFS_EROFS_FIXTURE", "not a fixture name: %s", attr);
		return 0;
	}
	char cmd[PATH_MAX];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/fixtures/nixfix.py %s --closure",
		 BUNDLEFS_SOURCE_DIR, attr);
	FILE *p = popen(cmd, "re");
	CHECK(p != NULL);
	size_t n = 0;
	char line[PATH_MAX];
	while (p && fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, STORE "/", strlen(STORE "/")) || n == max) {
			differ(cmd, "unexpected line %s", line);
			continue;
		}
		names[n++] = strdup(line + strlen(STORE "/"));
	}
	CHECK_INT(p ? pclose(p) : -1, 0);
	CHECK(n > 0);
	fprintf(stderr, "fixture %s: ", attr);
	return n;
}

/* A root of the fixture's closure equals the store, entry by entry, and
 * holds nothing else. */
static void closure_mirrored(void)
{
	char *names[256];
	size_t n = fixture_closure(names, 256);
	struct root r;
	root_init(&r);
	image_build(&r, STORE, names, n);
	double t0 = now_ms();
	bool mounted = root_mount(&r, STORE);
	fprintf(stderr, "mounted in %.1f ms; ", now_ms() - t0);
	if (mounted) {
		/* (the mount holds the image: its file may go) */
		CHECK_INT(unlink(r.image), 0);
		/* (the writer's 256 whiteouts 00..ff in the image's root are hidden) */
		check_names(r.mnt, (const char *const[]){"nix"}, 1);
		char store[128];
		snprintf(store, sizeof(store), "%s%s", r.mnt, STORE);
		check_names(store, (const char *const *)names, n);
		t0 = now_ms();
		size_t entries = 0;
		for (size_t i = 0; i < n; i++) {
			char a[PATH_MAX], b[PATH_MAX];
			snprintf(a, sizeof(a), "%s/%s", STORE, names[i]);
			snprintf(b, sizeof(b), "%s%s/%s", r.mnt, STORE, names[i]);
			compare(a, b, &entries);
		}
		CHECK_INT(entries, r.entries);
		fprintf(stderr, "compared %zu entries in %.1f ms\n", entries, now_ms() - t0);
	}
	root_fini(&r, mounted);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

/* Writes DIR/NAME, mode 0644 whatever the umask. */
static void put(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "we");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		CHECK_INT(fchmod(fileno(f), 0644), 0);
		CHECK_INT(fclose(f), 0);
	}
}

static int slurp(const char *dir, const char *name, char *out, size_t size)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	ssize_t n = read(fd, out, size - 1);
	int err = n < 0 ? errno : 0;
	out[n < 0 ? 0 : n] = 0;
	close(fd);
	return err;
}

/* What a mounted root does when its data layer changes under it. Metadata
 * is the image's; data is looked up by path at a file's first open. */
static void data_layer_changes(void)
{
	struct root r;
	root_init(&r);
	char data[128], pkg[160], links[160], mnt[256], path[PATH_MAX], got[64];
	snprintf(data, sizeof(data), "%s/data", r.dir);
	snprintf(pkg, sizeof(pkg), "%s/pkg", data);
	snprintf(links, sizeof(links), "%s/.links", data);
	CHECK_INT(mkdir(data, 0755), 0);
	CHECK_INT(mkdir(pkg, 0755), 0);
	CHECK_INT(mkdir(links, 0755), 0);
	put(pkg, "kept", "kept\n");
	put(pkg, "gone", "gone\n");
	put(pkg, "opened", "opened\n");
	put(pkg, "linked", "same\n");
	put(pkg, "grown", "short\n");
	put(pkg, "empty", "");
	put(links, "same", "same\n");
	char *names[] = {"pkg"};
	image_build(&r, data, names, 1);
	if (!root_mount(&r, data)) {
		root_fini(&r, false);
		return;
	}
	snprintf(mnt, sizeof(mnt), "%s/nix/store/pkg", r.mnt);

	CHECK_INT(slurp(mnt, "empty", got, sizeof(got)), 0);
	CHECK_STR(got, "");

	/* Gone from the data layer: the entry stays (the image's) and opening
	 * it fails; a file open before reads on. (Opening it again finds the
	 * data the overlay looked up once for as long as the kernel caches
	 * the overlay's inode, and fails after.) */
	snprintf(path, sizeof(path), "%s/opened", mnt);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	snprintf(path, sizeof(path), "%s/gone", pkg);
	CHECK_INT(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/opened", pkg);
	CHECK_INT(unlink(path), 0);
	struct stat st;
	snprintf(path, sizeof(path), "%s/gone", mnt);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_size, 5);
	CHECK_INT(slurp(mnt, "gone", got, sizeof(got)), ENOENT);
	CHECK_INT(pread(fd, got, sizeof(got) - 1, 0), 7);
	got[7] = 0;
	CHECK_STR(got, "opened\n");
	close(fd);

	/* Replaced by a hard link to identical bytes (nix-store --optimise):
	 * the redirect names a path, whatever inode is there. */
	snprintf(path, sizeof(path), "%s/linked.tmp", pkg);
	char same[PATH_MAX];
	snprintf(same, sizeof(same), "%s/same", links);
	CHECK_INT(link(same, path), 0);
	char dest[PATH_MAX];
	snprintf(dest, sizeof(dest), "%s/linked", pkg);
	CHECK_INT(rename(path, dest), 0);
	CHECK_INT(slurp(mnt, "linked", got, sizeof(got)), 0);
	CHECK_STR(got, "same\n");

	/* Metadata is the image's: a mode changed under it does not show,
	 * nor does a size; reads go to the data file as it is. */
	CHECK_INT(chmod(dest, 0700), 0);
	snprintf(path, sizeof(path), "%s/linked", mnt);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode, S_IFREG | 0644);
	put(pkg, "grown", "longer now\n");
	snprintf(path, sizeof(path), "%s/grown", mnt);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_size, 6);
	CHECK_INT(slurp(mnt, "grown", got, sizeof(got)), 0);
	CHECK_STR(got, "longer now\n");

	CHECK_INT(slurp(mnt, "kept", got, sizeof(got)), 0);
	CHECK_STR(got, "kept\n");
	root_fini(&r, true);
}

UNIT_MAIN(CASE(closure_mirrored), CASE(data_layer_changes))
