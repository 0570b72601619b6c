/* Unit tests for ocicfg. The expected documents are what Nix's
 * builtins.toJSON makes of nixpkgs ociTools.buildContainer's attribute set
 * (evaluated with nix-instantiate; see tests/test_config.py for the live
 * comparison), not output of this code. */
#include "json.h"
#include "ocicfg.h"
#include "unit.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

/* Rendered for root, without binds. */
static char *render(const struct bundle *b, size_t *len)
{
	struct ociopts o = {0};
	return ocicfg_render(b, &o, len);
}

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
	char *s = render(&b, &len);
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

/* runc spec's masked and read-only paths (runc's libcontainer/specconv
 * Example()), which compat = oci adds to linux by default. */
#define RUNC_MASKED                                                                                \
	"\"maskedPaths\":[\"/proc/acpi\",\"/proc/asound\",\"/proc/kcore\",\"/proc/keys\","         \
	"\"/proc/latency_stats\",\"/proc/timer_list\",\"/proc/timer_stats\","                      \
	"\"/proc/sched_debug\",\"/sys/firmware\",\"/proc/scsi\"],"
#define RUNC_READONLY                                                                              \
	",\"readonlyPaths\":[\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\","              \
	"\"/proc/sysrq-trigger\"]"

/* The default (compat = oci) document of buildContainer's: no "options":
 * null, runc's paths in linux. */
static char *oci_of(const char *doc)
{
	char *v = without_null_options(doc);
	const char *ns = strstr(v, "\"namespaces\":"), *end = strstr(ns, "]}") + 1;
	struct buf b = {0};
	buf_add(&b, v, (size_t)(ns - v));
	buf_adds(&b, RUNC_MASKED);
	buf_add(&b, ns, (size_t)(end - ns));
	buf_adds(&b, RUNC_READONLY);
	buf_adds(&b, end);
	free(v);
	return b.data;
}

static void oci_default(void)
{
	/* Without compat = buildcontainer: the same document, valid OCI. */
	const char *args[] = {"/nix/store/00000000000000000000000000000000-x/bin/x", NULL};
	struct bundle b = {.name = "x", .args = args, .nargs = 1, .os = "linux", .arch = "x86_64"};
	size_t len;
	char *s = render(&b, &len);
	char *want = oci_of(expected_default);
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
	char *s = render(&b, &len);
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
	char *s = render(&b, &len);
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
	char *s = render(&b, &len);
	CHECK_STR(s, want);
	free(s);
}

/* By default the user's mounts replace the system mounts at their
 * destinations, and the list stays sorted. */
static void user_mounts_merged(void)
{
	char *want = oci_of(
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

static struct arena arena;

static const struct json *js(const char *text)
{
	struct json_error e;
	const struct json *j = json_parse(&arena, text, strlen(text), 1, 1, 16, &e);
	if (!j)
		fprintf(stderr, "bad test JSON %s: %s\n", text, e.msg), abort();
	return j;
}

/* RFC 7396, appendix A: each target, patch and result. */
static void merge_patch_rfc7396(void)
{
	static const char *const cases[][3] = {
	    {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
	    {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
	    {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
	    {"{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}"},
	    {"{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
	    {"{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}"},
	    {"{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}"},
	    {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
	    {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},
	    {"{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]"},
	    {"{\"a\":\"foo\"}", "null", "null"},
	    {"{\"a\":\"foo\"}", "\"bar\"", "\"bar\""},
	    {"{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}"},
	    {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
	    {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		cJSON *got = ocicfg_merge_patch(cJSON_Parse(cases[i][0]), js(cases[i][1]));
		cJSON *want = cJSON_Parse(cases[i][2]);
		if (!cJSON_Compare(got, want, true)) {
			char *g = cJSON_PrintUnformatted(got);
			fprintf(stderr, "case %zu: %s + %s gave %s, not %s\n", i, cases[i][0],
				cases[i][1], g, cases[i][2]);
			free(g);
			unit_failures++;
		}
		cJSON_Delete(got);
		cJSON_Delete(want);
	}
}

static cJSON *render_doc(const struct bundle *b, uint32_t uid, uint32_t gid)
{
	struct ociopts o = {.uid = uid, .gid = gid};
	size_t len;
	char *s = ocicfg_render(b, &o, &len);
	cJSON *doc = cJSON_Parse(s);
	free(s);
	return doc;
}

static char *at(cJSON *doc, const char *path)
{
	cJSON *v = doc;
	char buf[200];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok(buf, "."); k && v; k = strtok(NULL, "."))
		v = cJSON_GetObjectItemCaseSensitive(v, k);
	return v ? cJSON_PrintUnformatted(v) : xstrdup("(absent)");
}

#define CHECK_AT(doc, path, want)                                                                  \
	do {                                                                                       \
		char *s_ = at(doc, path);                                                          \
		CHECK_STR(s_, want);                                                               \
		free(s_);                                                                          \
	} while (0)

static void capabilities(void)
{
	const char *args[] = {"/x", NULL};
	struct bundle b = {.args = args, .nargs = 1, .os = "linux", .arch = "x86_64"};
	cJSON *doc = render_doc(&b, 0, 0);
	CHECK_AT(doc, "process.capabilities", "(absent)");
	cJSON_Delete(doc);
	/* CAP_NET_ADMIN (12) and CAP_CHOWN (0) added, CAP_KILL (5) dropped:
	 * listed by name. */
	struct spec_extra x = {.capabilities = js("{}"),
			       .caps = (ocicfg_default_caps() | 1 << 12 | 1) & ~(UINT64_C(1) << 5)};
	b.extra = &x;
	doc = render_doc(&b, 0, 0);
	const char *set = "[\"CAP_AUDIT_WRITE\",\"CAP_CHOWN\",\"CAP_NET_ADMIN\","
			  "\"CAP_NET_BIND_SERVICE\"]";
	CHECK_AT(doc, "process.capabilities.bounding", set);
	CHECK_AT(doc, "process.capabilities.effective", set);
	CHECK_AT(doc, "process.capabilities.permitted", set);
	CHECK_AT(doc, "process.capabilities.inheritable", "(absent)");
	CHECK_AT(doc, "process.capabilities.ambient", "(absent)");
	cJSON_Delete(doc);
	/* A user other than root keeps them across exec only with these. */
	b.user = "1000:100";
	b.uid = 1000;
	b.gid = 100;
	doc = render_doc(&b, 0, 0);
	CHECK_AT(doc, "process.capabilities.inheritable", set);
	CHECK_AT(doc, "process.capabilities.ambient", set);
	cJSON_Delete(doc);
	/* The names: Linux's, by number. */
	CHECK_STR(ocicfg_cap_names[0], "CAP_CHOWN");
	CHECK_STR(ocicfg_cap_names[12], "CAP_NET_ADMIN");
	CHECK_STR(ocicfg_cap_names[21], "CAP_SYS_ADMIN");
	CHECK_STR(ocicfg_cap_names[40], "CAP_CHECKPOINT_RESTORE");
}

static void process_and_linux_settings(void)
{
	const char *args[] = {"/x", NULL};
	const char *masked[] = {"/secret", NULL}, *none[] = {NULL};
	struct spec_extra x = {.rlimits =
				   js("{\"RLIMIT_NOFILE\": 1024, \"RLIMIT_CORE\": {\"soft\": 0, "
				      "\"hard\": 18446744073709551615}}"),
			       .no_new_privileges = SPEC_NO,
			       .annotations = js("{\"b\": \"2\", \"a\": \"1\"}"),
			       .sysctl = js("{\"net.ipv4.ip_forward\": \"1\"}"),
			       .masked_paths = masked,
			       .readonly_paths = none};
	struct bundle b = {.args = args, .nargs = 1, .os = "linux", .arch = "x86_64", .extra = &x};
	size_t len;
	char *s = render(&b, &len);
	/* Sorted by type, soft and hard numbers exact. */
	CHECK(
	    strstr(s,
		   "\"rlimits\":[{\"hard\":18446744073709551615,\"soft\":0,\"type\":"
		   "\"RLIMIT_CORE\"},{\"hard\":1024,\"soft\":1024,\"type\":\"RLIMIT_NOFILE\"}]") !=
	    NULL);
	CHECK(strstr(s, "\"noNewPrivileges\":false") != NULL);
	CHECK(strstr(s, "{\"annotations\":{\"a\":\"1\",\"b\":\"2\"},") == s);
	CHECK(strstr(s, "\"linux\":{\"maskedPaths\":[\"/secret\"],\"namespaces\":") != NULL);
	CHECK(strstr(s, "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"}}") != NULL);
	CHECK(strstr(s, "readonlyPaths") == NULL); /* [] is none */
	free(s);
	/* compat = buildcontainer: runc's paths only where asked for. */
	b.buildcontainer = true;
	x.readonly_paths = NULL;
	s = render(&b, &len);
	CHECK(strstr(s, "\"maskedPaths\":[\"/secret\"]") != NULL);
	CHECK(strstr(s, "readonlyPaths") == NULL);
	free(s);
}

/* runc spec --rootless's changes (specconv.ToRootless), for owner 1000:100. */
static void rootless(void)
{
	const char *args[] = {"/x", NULL};
	const char *opts[] = {"rbind", "uid=0", "gid=0", NULL}, *ids[] = {"uid=1", NULL};
	struct spec_mount m[] = {
	    {.dest = "/data", .type = "bind", .source = "/srv", .options = opts},
	    {.dest = "/ids", .type = "tmpfs", .source = "tmpfs", .options = ids},
	};
	struct bundle b = {
	    .args = args, .nargs = 1, .os = "linux", .arch = "x86_64", .mounts = m, .nmounts = 2};
	cJSON *doc = render_doc(&b, 1000, 100);
	CHECK_AT(doc, "linux.namespaces",
		 "[{\"type\":\"pid\"},{\"type\":\"mount\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},"
		 "{\"type\":\"user\"}]");
	CHECK_AT(doc, "linux.uidMappings", "[{\"containerID\":0,\"hostID\":1000,\"size\":1}]");
	CHECK_AT(doc, "linux.gidMappings", "[{\"containerID\":0,\"hostID\":100,\"size\":1}]");
	char *mounts = at(doc, "mounts");
	CHECK(strstr(mounts, "{\"destination\":\"/data\",\"options\":[\"rbind\"],") != NULL);
	CHECK(strstr(mounts, "{\"destination\":\"/ids\",\"source\":\"tmpfs\",") != NULL);
	CHECK(strstr(mounts, "\"options\":[\"nosuid\",\"noexec\",\"newinstance\","
			     "\"ptmxmode=0666\",\"mode=755\"],\"source\":\"devpts\"") != NULL);
	CHECK(strstr(mounts, "{\"destination\":\"/sys\",\"options\":[\"rbind\",\"nosuid\","
			     "\"noexec\",\"nodev\",\"ro\"],\"source\":\"/sys\",\"type\":\"none\"},"
			     "{\"destination\":\"/sys/fs/cgroup\",") != NULL);
	free(mounts);
	cJSON_Delete(doc);
	/* Said, it holds whoever the owner is; unsaid, with compat =
	 * buildcontainer, it is never. */
	struct spec_extra x = {.rootless = SPEC_NO};
	b.extra = &x;
	CHECK(!ocicfg_rootless(&b, 1000));
	x.rootless = SPEC_YES;
	CHECK(ocicfg_rootless(&b, 0));
	doc = render_doc(&b, 0, 0);
	CHECK_AT(doc, "linux.uidMappings", "[{\"containerID\":0,\"hostID\":0,\"size\":1}]");
	cJSON_Delete(doc);
	x.rootless = SPEC_ABSENT;
	CHECK(!ocicfg_rootless(&b, 0));
	b.buildcontainer = true;
	CHECK(!ocicfg_rootless(&b, 1000));
}

/* The patch comes last, over everything else, and keys are sorted again. */
static void oci_patch_last(void)
{
	const char *args[] = {"/x", NULL};
	struct spec_extra x = {
	    .capabilities = js("{}"),
	    .caps = ocicfg_default_caps(),
	    .oci = js("{\"zz\": {\"b\": 1, \"a\": 2}, \"hostname\": null, \"process\": "
		      "{\"capabilities\": {\"effective\": [\"CAP_NET_ADMIN\"]}}, \"linux\": "
		      "{\"maskedPaths\": null}}"),
	};
	struct bundle b = {.args = args,
			   .nargs = 1,
			   .os = "linux",
			   .arch = "x86_64",
			   .hostname = "h",
			   .extra = &x};
	size_t len;
	char *s = render(&b, &len);
	CHECK(strstr(s, "hostname") == NULL);
	CHECK(strstr(s, "maskedPaths") == NULL);
	CHECK(strstr(s, "\"readonlyPaths\":") != NULL);
	CHECK(strstr(s, "\"effective\":[\"CAP_NET_ADMIN\"],\"permitted\":[\"CAP_AUDIT_WRITE\"") !=
	      NULL);
	CHECK(strstr(s, ",\"zz\":{\"a\":2,\"b\":1}}") ==
	      s + len - strlen(",\"zz\":{\"a\":2,\"b\":1}}"));
	free(s);
}

UNIT_MAIN(CASE(buildcontainer_default), CASE(oci_default), CASE(settings), CASE(escapes),
	  CASE(user_mounts_merged), CASE(user_mounts_dropped_by_buildcontainer),
	  CASE(merge_patch_rfc7396), CASE(capabilities), CASE(process_and_linux_settings),
	  CASE(rootless), CASE(oci_patch_last))
