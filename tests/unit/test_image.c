/* Unit tests for image: the key of a closure's image, and the cache of
 * images in a directory, on a scratch store (tests/test_native.py mounts
 * images and compares what they serve). */
#include "image.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* A scratch store with one path holding a file, and its closure. */
struct scratch {
	char dir[64];
	struct store st;
	struct closure c;
	const char *base[1];
	struct stat sts[1];
};

static void scratch_init(struct scratch *s)
{
	snprintf(s->dir, sizeof(s->dir), "/tmp/bfs-image-XXXXXX");
	CHECK(mkdtemp(s->dir) != NULL);
	s->base[0] = "00000000000000000000000000000000-p";
	char *p = xasprintf("%s/%s", s->dir, s->base[0]);
	CHECK_INT(mkdir(p, 0755), 0);
	char *f = xasprintf("%s/f", p);
	int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, "data", 4) == 4);
	close(fd);
	CHECK_INT(lstat(p, &s->sts[0]), 0);
	free(f);
	free(p);
	store_init(&s->st);
	free(s->st.real);
	s->st.real = xstrdup(s->dir);
	s->st.fd = open(s->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	s->c = (struct closure){.base = s->base, .st = s->sts, .n = 1, .ndirs = 1};
}

static void scratch_fini(struct scratch *s)
{
	char *cmd = xasprintf("rm -rf %s", s->dir);
	CHECK_INT(system(cmd), 0);
	free(cmd);
	store_free(&s->st);
}

static void keys(void)
{
	struct scratch s;
	scratch_init(&s);
	char a[IMAGE_KEY_LEN], b[IMAGE_KEY_LEN];
	image_key(&s.st, &s.c, a);
	image_key(&s.st, &s.c, b);
	CHECK_STR(a, b);
	CHECK_INT(strlen(a), IMAGE_KEY_LEN - 1);
	/* The same name made again is another path: another key. */
	s.sts[0].st_ctim.tv_nsec ^= 1;
	image_key(&s.st, &s.c, b);
	CHECK(strcmp(a, b) != 0);
	s.sts[0].st_ctim.tv_nsec ^= 1;
	s.sts[0].st_ino++;
	image_key(&s.st, &s.c, b);
	CHECK(strcmp(a, b) != 0);
	scratch_fini(&s);
}

static void cached(void)
{
	struct scratch s;
	scratch_init(&s);
	char *dir = xasprintf("%s/images", s.dir), *path = NULL, *msg = NULL;
	struct image_stats st;
	errint_t e = image_ensure(&s.st, &s.c, dir, &path, &st, &msg);
	if (!image_built_in()) {
		CHECK_INT(e, -ENOTSUP);
		CHECK(msg && strstr(msg, "libcomposefs"));
		free(msg);
	} else {
		CHECK_INT(e, 0);
		CHECK(st.built && st.entries == 2 && st.bytes > 0);
		char *again = NULL;
		CHECK_INT(image_ensure(&s.st, &s.c, dir, &again, &st, &msg), 0);
		CHECK(!st.built);
		CHECK_STR(again, path);
		free(again);
		/* An absent path is no image: it is reported, nothing is left. */
		s.sts[0].st_mode = 0;
		s.sts[0].st_ino++;
		free(path);
		path = NULL;
		CHECK_INT(image_ensure(&s.st, &s.c, dir, &path, &st, &msg), -EAGAIN);
		CHECK(msg && strstr(msg, "not in the store yet"));
		free(msg);
		char *ls = xasprintf("test $(ls -A %s | wc -l) = 1", dir);
		CHECK_INT(system(ls), 0);
		free(ls);
	}
	free(path);
	free(dir);
	scratch_fini(&s);
}

UNIT_MAIN(CASE(keys), CASE(cached))
