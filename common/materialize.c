/* materialize: writes a bundle to disk by copying, as buildContainer does:
 * config.json, the rootfs skeleton, and every store path of the closure
 * copied with its modes, times, symlinks and hard links. It is the export
 * path for tools that need a plain directory, and the baseline that the
 * benchmark measures bundlefs against. */
#include "materialize.h"
#include "layout.h"
#include "ocicfg.h"
#include "strmap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mat {
	struct buf path;     /* destination path, for messages */
	struct strmap links; /* "dev:ino" of multiply linked files -> first copy */
	struct arena arena;
	char *err;
	char *iobuf;
	bool root;
};

enum { IOBUF = 1 << 17 };

__attribute__((format(printf, 2, 3))) static int fail(struct mat *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!m->err && vasprintf(&m->err, fmt, ap) < 0)
		m->err = NULL;
	va_end(ap);
	return -1;
}

static int copy_times_owner(struct mat *m, int dirfd, const char *name, const struct stat *st)
{
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	if (m->root && fchownat(dirfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(m, "%s: chown: %s", m->path.data, strerror(errno));
	if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(m, "%s: %s", m->path.data, strerror(errno));
	return 0;
}

static int copy_file(struct mat *m, int sdir, int ddir, const char *name, const struct stat *st)
{
	if (st->st_nlink > 1) {
		char key[64];
		int kl = snprintf(key, sizeof(key), "%llx:%llx", (unsigned long long)st->st_dev,
				  (unsigned long long)st->st_ino);
		const char *first = strmap_get(&m->links, key, (size_t)kl);
		if (first) {
			if (linkat(AT_FDCWD, first, ddir, name, 0) < 0)
				return fail(m, "%s: link: %s", m->path.data, strerror(errno));
			return 0;
		}
		char *k = arena_strndup(&m->arena, key, (size_t)kl);
		strmap_put(&m->links, k, (size_t)kl, arena_strdup(&m->arena, m->path.data));
	}
	int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (in < 0)
		return fail(m, "%s: %s", m->path.data, strerror(errno));
	int out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return fail(m, "%s: %s", m->path.data, strerror(errno));
	}
	int rc = 0;
	for (;;) {
		ssize_t r = read(in, m->iobuf, IOBUF);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = fail(m, "%s: read: %s", m->path.data, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, m->iobuf + off, (size_t)(r - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = fail(m, "%s: write: %s", m->path.data, strerror(errno));
				break;
			}
			off += w;
		}
		if (rc)
			break;
	}
	close(in);
	/* With the mode bundlefs serves. */
	if (rc == 0 && fchmod(out, store_served_mode(st->st_mode) & 07777) < 0)
		rc = fail(m, "%s: chmod: %s", m->path.data, strerror(errno));
	if (close(out) < 0 && rc == 0)
		rc = fail(m, "%s: close: %s", m->path.data, strerror(errno));
	return rc ? rc : copy_times_owner(m, ddir, name, st);
}

static int copy_entry(struct mat *m, int sdir, int ddir, const char *name, unsigned depth);

static int copy_dir(struct mat *m, int sdir, int ddir, const char *name, const struct stat *st,
		    unsigned depth)
{
	if (depth > 4096)
		return fail(m, "%s: too deep", m->path.data);
	/* Filled while writable, given its real mode afterwards: store
	 * directories are read-only. */
	if (mkdirat(ddir, name, 0700) < 0)
		return fail(m, "%s: %s", m->path.data, strerror(errno));
	int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0)
		return fail(m, "%s: %s", m->path.data, strerror(errno));
	int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0) {
		close(s);
		return fail(m, "%s: %s", m->path.data, strerror(errno));
	}
	DIR *dir = fdopendir(s);
	if (!dir) {
		close(s);
		close(d);
		return fail(m, "%s: %s", m->path.data, strerror(errno));
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (errno = 0, de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = copy_entry(m, dirfd(dir), d, de->d_name, depth + 1);
	}
	if (rc == 0 && errno)
		rc = fail(m, "%s: %s", m->path.data, strerror(errno));
	closedir(dir);
	if (rc == 0 && fchmod(d, st->st_mode & 07777) < 0)
		rc = fail(m, "%s: chmod: %s", m->path.data, strerror(errno));
	close(d);
	return rc ? rc : copy_times_owner(m, ddir, name, st);
}

static int copy_entry(struct mat *m, int sdir, int ddir, const char *name, unsigned depth)
{
	size_t plen = m->path.len;
	buf_addc(&m->path, '/');
	buf_adds(&m->path, name);
	struct stat st;
	int rc;
	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = fail(m, "%s: %s", m->path.data, strerror(errno));
	} else if (!store_servable(st.st_mode)) {
		rc = 0; /* bundlefs does not show it either */
	} else if (S_ISDIR(st.st_mode)) {
		rc = copy_dir(m, sdir, ddir, name, &st, depth);
	} else if (S_ISREG(st.st_mode)) {
		rc = copy_file(m, sdir, ddir, name, &st);
	} else {
		char target[4097];
		ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
		if (n < 0) {
			rc = fail(m, "%s: %s", m->path.data, strerror(errno));
		} else {
			target[n] = 0;
			rc = symlinkat(target, ddir, name) < 0
				 ? fail(m, "%s: %s", m->path.data, strerror(errno))
				 : copy_times_owner(m, ddir, name, &st);
		}
	}
	m->path.len = plen;
	m->path.data[plen] = 0;
	return rc;
}

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static int make_writable_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_D || flag == FTW_DNR)
		chmod(path, 0700);
	return 0;
}

int materialize(struct store *st, const struct bundle *b, const char *file, const struct closure *c,
		const char *dir, char **err)
{
	struct mat m = {.root = geteuid() == 0};
	int dfd = -1, storefd = -1, rc = -1;
	bool created = false;

	if (store_open(st) < 0) {
		fail(&m, "store %s: %s", st->real, strerror(st->fd_errno));
		goto out;
	}
	if (mkdir(dir, 0755) < 0) {
		fail(&m, "%s: %s", dir, strerror(errno));
		goto out;
	}
	created = true;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		fail(&m, "%s: %s", dir, strerror(errno));
		goto out;
	}
	size_t len;
	/* (A copy: no binds. Its owner is the caller.) */
	struct ociopts opts = {.uid = geteuid(), .gid = getegid()};
	char *cfg = ocicfg_render(b, &opts, &len);
	int cfd = openat(dfd, "config.json", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (cfd < 0 || write_full(cfd, cfg, len) < 0 || close(cfd) < 0) {
		free(cfg);
		fail(&m, "%s/config.json: %s", dir, strerror(errno));
		goto out;
	}
	free(cfg);

	struct layout l;
	struct diags d = {0};
	if (layout_build(&l, b, file, st, NULL, &d) < 0) {
		fail(&m, "%s", d.n ? d.msg[0] : "the rootfs layout cannot be built");
		diag_clear(&d);
		goto out;
	}
	buf_adds(&m.path, dir);
	buf_adds(&m.path, "/rootfs");
	if (mkdirat(dfd, "rootfs", 0755) < 0) {
		layout_free(&l);
		fail(&m, "%s: %s", m.path.data, strerror(errno));
		goto out;
	}
	int rfd = openat(dfd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char *lerr = NULL;
	if (rfd < 0)
		rc = fail(&m, "%s: %s", m.path.data, strerror(errno));
	else if ((rc = layout_write(l.root, rfd, m.path.data, &lerr)) < 0)
		rc = fail(&m, "%s", lerr);
	else if ((storefd = openat(rfd, st->dir + 1,
				   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		rc = fail(&m, "%s%s: %s", m.path.data, st->dir, strerror(errno));
	free(lerr);
	if (rfd >= 0)
		close(rfd);
	layout_free(&l);
	if (rc)
		goto out;

	m.iobuf = xmalloc(IOBUF);
	m.path.len = 0;
	buf_addf(&m.path, "%s/rootfs%s", dir, st->dir);
	for (size_t i = 0; i < c->n && rc == 0; i++)
		rc = copy_entry(&m, st->fd, storefd, c->base[i], 0);
out:
	if (rc && created) {
		/* Leave nothing half-done behind. */
		nftw(dir, make_writable_cb, 64, FTW_PHYS);
		nftw(dir, remove_cb, 64, FTW_PHYS | FTW_DEPTH);
	}
	if (rc)
		*err = m.err ? m.err : xstrdup("materialize failed");
	else
		free(m.err);
	if (dfd >= 0)
		close(dfd);
	if (storefd >= 0)
		close(storefd);
	free(m.iobuf);
	buf_free(&m.path);
	strmap_free(&m.links);
	arena_free(&m.arena);
	return rc ? -1 : 0;
}
