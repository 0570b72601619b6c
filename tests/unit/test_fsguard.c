/* Unit tests for fsguard_links: the places a path's walk depends on, for
 * the links and files of a scratch directory. */
#include "fsguard.h"
#include "unit.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[] = "/tmp/bfs-fsguard-XXXXXX";

/* Each place as "DIR/NAME" (DIR relative to top), "@" after a link. */
static void on_place(void *ctx, int dirfd, const char *name, bool link)
{
	struct buf *b = ctx;
	char proc[64], dir[PATH_MAX];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
	ssize_t n = readlink(proc, dir, sizeof(dir) - 1);
	dir[n < 0 ? 0 : n] = 0;
	size_t tl = strlen(top);
	const char *rel = strncmp(dir, top, tl) ? dir : dir[tl] ? dir + tl + 1 : ".";
	buf_addf(b, "%s%s/%s%s", b->len ? " " : "", rel, name, link ? "@" : "");
}

static void expect(const char *path, int rc, const char *places)
{
	struct buf b = {0};
	char full[PATH_MAX];
	snprintf(full, sizeof(full), "%s/%s", top, path);
	buf_adds(&b, "");
	CHECK_INT(fsguard_links(full, on_place, &b), rc);
	CHECK_STR(b.data, places);
	buf_free(&b);
}

static void mk(const char *what, const char *path, const char *target)
{
	char full[PATH_MAX];
	snprintf(full, sizeof(full), "%s/%s", top, path);
	if (!strcmp(what, "dir"))
		CHECK_INT(mkdir(full, 0755), 0);
	else if (!strcmp(what, "file"))
		CHECK_INT(close(creat(full, 0644)), 0);
	else
		CHECK_INT(symlink(target, full), 0);
}

static void links(void)
{
	CHECK(mkdtemp(top) != NULL);
	mk("dir", "gen1", NULL);
	mk("file", "gen1/spec.json", NULL);
	mk("dir", "gen2", NULL);
	mk("file", "gen2/spec.json", NULL);
	/* nix-build's result */
	mk("link", "result", "gen1");
	/* a profile: p -> p-2-link -> TOP/gen2 */
	char abs[PATH_MAX];
	snprintf(abs, sizeof(abs), "%s/gen2", top);
	mk("link", "p-2-link", abs);
	mk("link", "p", "p-2-link");
	/* a link in a middle component, and a link to the file itself */
	mk("dir", "etc", NULL);
	mk("link", "etc/bundles", "../gen1");
	mk("link", "gen2/current.json", "spec.json");
	mk("link", "loop", "loop");

	expect("gen1/spec.json", 0, "gen1/spec.json");
	expect("result/spec.json", 0, "./result@ gen1/spec.json");
	expect("p/spec.json", 0, "./p@ ./p-2-link@ gen2/spec.json");
	expect("etc/bundles/spec.json", 0, "etc/bundles@ gen1/spec.json");
	expect("p/current.json", 0, "./p@ ./p-2-link@ gen2/current.json@ gen2/spec.json");
	/* Missing: where it would appear. */
	expect("result/none.json", -ENOENT, "./result@ gen1/none.json");
	expect("none/spec.json", -ENOENT, "./none");
	expect("loop/spec.json", -ELOOP,
	       "./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ "
	       "./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ "
	       "./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ "
	       "./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ ./loop@ "
	       "./loop@");

	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	CHECK_INT(system(cmd), 0);
}

UNIT_MAIN(CASE(links))
