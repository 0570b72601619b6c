/* Unit tests for ocicfg. The expected documents are what Nix's
 * builtins.toJSON makes of nixpkgs ociTools.buildContainer's attribute set
 * (evaluated with nix-instantiate; see tests/test_config.py for the live
 * comparison), not output of this code. */
#include "ocicfg.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define SYS_MOUNTS_AFTER_DEV                                                                       \
	"{\"destination\":\"/dev/"                                                                 \
	"mqueue\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"],\"source\":"                       \
	"\"mqueue\",\"type\":\"mqueue\"},{\"destination\":\"/dev/pts\",\"options\":[\"nosuid\","   \
	"\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=755\",\"gid=5\"],\"source\":"         \
	"\"devpts\","                                                                              \
	"\"type\":\"devpts\"},{\"destination\":\"/dev/shm\",\"options\":[\"nosuid\",\"noexec\","   \
	"\"nodev\",\"mode=1777\",\"size=65536k\"],\"source\":\"shm\",\"type\":\"tmpfs\"},{"        \
	"\"destination\":\"/proc\",\"options\":null,\"source\":\"proc\",\"type\":\"proc\"},{"      \
	"\"destination\":\"/"                                                                      \
	"sys\",\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"],\"source\":"                   \
	"\"sysfs\",\"type\":\"sysfs\"},{\"destination\":\"/sys/fs/"                                \
	"cgroup\",\"options\":[\"nosuid\","                                                        \
	"\"noexec\",\"nodev\",\"relatime\",\"ro\"],\"source\":\"cgroup\",\"type\":\"cgroup\"}"
#define NAMESPACES                                                                                 \
	"{\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":"         \
	"\"mount\"},"                                                                              \
	"{\"type\":\"ipc\"},{\"type\":\"uts\"}]},"

static const char expected_default[] = NAMESPACES
    "\"mounts\":[{\"destination\":\"/dev\",\"options\":[\"nosuid\",\"strictatime\","
    "\"mode=755\",\"size=65536k\"],\"source\":\"tmpfs\",\"type\":\"tmpfs\"}," SYS_MOUNTS_AFTER_DEV
    "],\"ociVersion\":\"1.0.0\",\"platform\":{\"arch\":\"x86_64\",\"os\":"
    "\"linux\"},\"process\":{\"args\":[\"/nix/store/00000000000000000000000000000000-x/bin/x\"],"
    "\"cwd\":\"/\",\"user\":{\"gid\":0,\"uid\":0}},\"root\":{\"path\":\"rootfs\",\"readonly\":"
    "false}}";

static void buildcontainer_default(void)
{
	const char *args[] = {"/nix/store/00000000000000000000000000000000-x/bin/x", NULL};
	struct bundle b = {.name = "x",
			   .args = args,
			   .nargs = 1,
			   .os = "linux",
			   .arch = "x86_64",
			   .buildcontainer = true};
	size_t len;
	char *s = ocicfg_render(&b, NULL, false, &len);
	CHECK_STR(s, expected_default);
	CHECK_INT(len, strlen(expected_default));
	free(s);
}

/* buildContainer's bytes without every "options":null member. */
static char *without_null_options(const char *doc)
{
	static const char null_opts[] = "\"options\":null,";
	char *out = xstrdup(doc), *p;
	while ((p = strstr(out, null_opts)))
		memmove(p, p + strlen(null_opts), strlen(p + strlen(null_opts)) + 1);
	return out;
}

static void oci_default(void)
{
	/* Without compat = buildcontainer: the same document, valid OCI. */
	const char *args[] = {"/nix/store/00000000000000000000000000000000-x/bin/x", NULL};
	struct bundle b = {.name = "x", .args = args, .nargs = 1, .os = "linux", .arch = "x86_64"};
	size_t len;
	char *s = ocicfg_render(&b, NULL, false, &len);
	char *want = without_null_options(expected_default);
	CHECK(strlen(want) < strlen(expected_default));
	CHECK_STR(s, want);
	free(want);
	free(s);
}

static void settings(void)
{
	const char *args[] = {"/x", NULL};
	const char *env[] = {"PATH=/bin", "A=b c", NULL};
	const uint32_t gids[] = {27, 44};
	struct bundle b = {.args = args,
			   .nargs = 1,
			   .os = "linux",
			   .arch = "x86_64",
			   .env = env,
			   .nenv = 2,
			   .cwd = "/srv",
			   .hostname = "box",
			   .user = "1000:100,27,44",
			   .uid = 1000,
			   .gid = 100,
			   .gids = gids,
			   .ngids = 2,
			   .terminal = true};
	size_t len;
	char *s = ocicfg_render(&b, NULL, false, &len);
	CHECK(strstr(s, "\"hostname\":\"box\",\"linux\":") != NULL);
	CHECK(strstr(s, "\"process\":{\"args\":[\"/x\"],\"cwd\":\"/srv\",\"env\":[\"PATH=/bin\","
			"\"A=b c\"],\"terminal\":true,\"user\":{\"additionalGids\":[27,44],"
			"\"gid\":100,\"uid\":1000}}") != NULL);
	free(s);
}

static void escapes(void)
{
	/* builtins.toJSON escapes " \ and control characters, as \n \t ...
	 * or \u00xx (lowercase), and leaves other UTF-8 alone. */
	const char *args[] = {"a\"b\\c\n\t\r\x01\x1f\x7f/\xc3\xa9", NULL};
	struct bundle b = {.args = args, .nargs = 1, .os = "linux", .arch = "x86_64"};
	size_t len;
	char *s = ocicfg_render(&b, NULL, false, &len);
	CHECK(strstr(s, "\"args\":[\"a\\\"b\\\\c\\n\\t\\r\\u0001\\u001f\x7f/\xc3\xa9\"]") != NULL);
	free(s);
}

#define DEV_MOUNT                                                                                  \
	"{\"destination\":\"/dev\",\"options\":[\"nosuid\",\"strictatime\",\"mode=755\","          \
	"\"size=65536k\"],\"source\":\"tmpfs\",\"type\":\"tmpfs\"},"
#define AFTER_MOUNTS                                                                               \
	"],\"ociVersion\":\"1.0.0\",\"platform\":{\"arch\":\"arm64\",\"os\":\"linux\"},"           \
	"\"process\":{\"args\":[\"/x\"],\"cwd\":\"/\",\"user\":{\"gid\":0,\"uid\":0}},\"root\":"   \
	"{\"path\":\"rootfs\",\"readonly\":true}}"

static void user_mounts(bool buildcontainer, const char *want)
{
	const char *args[] = {"/x", NULL};
	const char *ro[] = {"rbind", "ro", NULL};
	struct spec_mount m[] = {
	    {.dest = "/dev", .type = "bind", .source = "/dev"},
	    {.dest = "/a", .type = "bind", .source = "/srv", .options = ro},
	};
	struct bundle b = {.args = args,
			   .nargs = 1,
			   .os = "linux",
			   .arch = "arm64",
			   .readonly = true,
			   .mounts = m,
			   .nmounts = 2,
			   .buildcontainer = buildcontainer};
	size_t len;
	char *s = ocicfg_render(&b, NULL, false, &len);
	CHECK_STR(s, want);
	free(s);
}

/* By default the user's mounts replace the system mounts at their
 * destinations, and the list stays sorted. */
static void user_mounts_merged(void)
{
	char *want = without_null_options(
	    NAMESPACES "\"mounts\":[{\"destination\":\"/a\",\"options\":[\"rbind\",\"ro\"],"
		       "\"source\":\"/srv\",\"type\":\"bind\"},{\"destination\":\"/dev\","
		       "\"source\":\"/dev\",\"type\":\"bind\"}," SYS_MOUNTS_AFTER_DEV AFTER_MOUNTS);
	user_mounts(false, want);
	free(want);
}

/* buildContainer takes `mounts` and drops them: its own alone. */
static void user_mounts_dropped_by_buildcontainer(void)
{
	user_mounts(true, NAMESPACES "\"mounts\":[" DEV_MOUNT SYS_MOUNTS_AFTER_DEV AFTER_MOUNTS);
}

UNIT_MAIN(CASE(buildcontainer_default), CASE(oci_default), CASE(settings), CASE(escapes),
	  CASE(user_mounts_merged), CASE(user_mounts_dropped_by_buildcontainer))
