/* Unit tests for ocischema: config.json documents against the runtime-spec
 * schema compiled in (each case passes trivially without one: see
 * have_schema), and the validator itself against small schemas of its own. */
#include "ocischema.h"
#include "unit.h"
#include "util.h"

#include <pthread.h>

static char why[1024];

/* Whether the build has the schema; tests/test_ocischema.py checks that it
 * has where the Debian package is installed. */
static bool have_schema(void)
{
	if (ocischema_available())
		return true;
	cJSON *doc = cJSON_Parse("{}");
	CHECK_INT(ocischema_check(doc, why, sizeof(why)), 0);
	CHECK_STR(why, "");
	cJSON_Delete(doc);
	fprintf(stderr, "no schema compiled in: only that every document passes is checked\n");
	return false;
}

/* ocischema_check on a document, its why in `why`. */
static int check(const char *text)
{
	cJSON *doc = cJSON_Parse(text);
	if (!doc) {
		fprintf(stderr, "not JSON: %s\n", text);
		abort();
	}
	int rc = ocischema_check(doc, why, sizeof(why));
	cJSON_Delete(doc);
	return rc;
}

#define VALID(text)                                                                                \
	do {                                                                                       \
		int rc_ = check(text);                                                             \
		if (rc_)                                                                           \
			fprintf(stderr, "%s:%d: rejected: %s\n", __FILE__, __LINE__, why);         \
		CHECK_INT(rc_, 0);                                                                 \
	} while (0)

#define INVALID(text, msg)                                                                         \
	do {                                                                                       \
		CHECK_INT(check(text), -1);                                                        \
		CHECK_STR(why, msg);                                                               \
	} while (0)

/* A document that is the minimal one with `member` added. */
#define DOC(member) "{\"ociVersion\": \"1.0.2\", " member "}"

/* What `runc spec` writes, with the parts of the schema it leaves out. */
static const char full[] =
    "{\"ociVersion\": \"1.0.2-dev\","
    " \"process\": {\"terminal\": true, \"user\": {\"uid\": 0, \"gid\": 0, \"umask\": 18,"
    "   \"additionalGids\": [1, 2]},"
    "  \"args\": [\"sh\"], \"env\": [\"PATH=/bin\", \"TERM=xterm\"], \"cwd\": \"/\","
    "  \"capabilities\": {\"bounding\": [\"CAP_KILL\"], \"effective\": [\"CAP_KILL\"],"
    "   \"permitted\": [\"CAP_KILL\"], \"ambient\": []},"
    "  \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],"
    "  \"noNewPrivileges\": true, \"oomScoreAdj\": -1000, \"consoleSize\": {\"height\": 24,"
    "   \"width\": 80}},"
    " \"root\": {\"path\": \"rootfs\", \"readonly\": true},"
    " \"hostname\": \"runc\","
    " \"mounts\": [{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},"
    "  {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
    "   \"options\": [\"nosuid\", \"mode=755\"]}],"
    " \"hooks\": {\"prestart\": [{\"path\": \"/bin/true\", \"args\": [\"true\"],"
    "   \"timeout\": 5}]},"
    " \"annotations\": {\"org.example\": \"x\"},"
    " \"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\","
    "   \"path\": \"/proc/1/ns/net\"}],"
    "  \"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}],"
    "  \"devices\": [{\"type\": \"c\", \"path\": \"/dev/null\", \"major\": 1, \"minor\": 3,"
    "   \"fileMode\": 438}],"
    "  \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"}],"
    "   \"pids\": {\"limit\": 100}, \"memory\": {\"limit\": -1, \"swappiness\": 0},"
    "   \"cpu\": {\"shares\": 1024, \"quota\": -1, \"cpus\": \"0-1\"},"
    "   \"blockIO\": {\"weight\": 10, \"weightDevice\": [{\"major\": 8, \"minor\": 0,"
    "     \"weight\": 500}], \"throttleReadBpsDevice\": [{\"major\": 8, \"minor\": 0,"
    "     \"rate\": 600}]},"
    "   \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 9223372036854775807}],"
    "   \"rdma\": {\"mlx5_1\": {\"hcaHandles\": 3}}, \"unified\": {\"io.weight\": \"10\"}},"
    "  \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\":"
    "   [\"SCMP_ARCH_X86_64\"], \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"], \"syscalls\":"
    "   [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0,"
    "     \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]},"
    "  \"rootfsPropagation\": \"private\", \"sysctl\": {\"net.ipv4.ip_forward\": \"1\"},"
    "  \"maskedPaths\": [\"/proc/kcore\"], \"readonlyPaths\": [\"/proc/sys\"],"
    "  \"intelRdt\": {\"memBwSchema\": \"MB:0=70;1=50\"},"
    "  \"personality\": {\"domain\": \"LINUX\"}},"
    " \"vm\": {\"kernel\": {\"path\": \"/boot/vmlinuz\"}, \"image\": {\"path\": \"i\","
    "   \"format\": \"qcow2\"}},"
    " \"windows\": {\"layerFolders\": [\"C:\\\\l\"], \"devices\": [{\"id\": \"x\","
    "   \"idType\": \"class\"}]},"
    " \"solaris\": {\"anet\": [{\"linkname\": \"net0\"}]},"
    " \"zos\": {\"devices\": [{\"type\": \"c\", \"path\": \"/dev/x\", \"major\": 1,"
    "   \"minor\": 2}]}}";

static void valid_documents(void)
{
	if (!have_schema())
		return;
	VALID("{\"ociVersion\": \"1.0.2\"}");
	VALID(full);
	/* beside a $ref, other keywords do not apply (draft-04) */
	VALID(DOC("\"linux\": {\"personality\": {}}"));
	/* unknown members are allowed (no additionalProperties: false) */
	VALID(DOC("\"x-extra\": [1, {}], \"process\": {\"cwd\": \"/\", \"more\": null}"));
	/* a string that cJSON parses with an embedded \u escape */
	VALID(DOC("\"hostname\": \"h\\u00e9\""));
}

static void required_members(void)
{
	if (!have_schema())
		return;
	INVALID("{}", "(root): required property \"ociVersion\" missing");
	INVALID(DOC("\"mounts\": [{\"destination\": \"/a\"}, {\"destination\": \"/b\"},"
		    " {\"source\": \"/c\"}]"),
		"/mounts/2: required property \"destination\" missing");
	INVALID(DOC("\"process\": {\"args\": [\"sh\"]}"),
		"/process: required property \"cwd\" missing");
	INVALID(DOC("\"process\": {\"cwd\": \"/\", \"consoleSize\": {\"height\": 1}}"),
		"/process/consoleSize: required property \"width\" missing");
	INVALID(DOC("\"vm\": {}"), "/vm: required property \"kernel\" missing");
	INVALID(DOC("\"windows\": {}"), "/windows: required property \"layerFolders\" missing");
	INVALID(DOC("\"linux\": {\"seccomp\": {\"syscalls\": []}}"),
		"/linux/seccomp: required property \"defaultAction\" missing");
	INVALID(DOC("\"zos\": {\"devices\": [{\"type\": \"c\", \"path\": \"/x\", \"major\": 1}]}"),
		"/zos/devices/0: required property \"minor\" missing");
}

static void types(void)
{
	if (!have_schema())
		return;
	INVALID("[]", "(root): an array is not an object");
	INVALID("{\"ociVersion\": 1}", "/ociVersion: 1 is not a string");
	INVALID(DOC("\"process\": {\"cwd\": 5}"), "/process/cwd: 5 is not a string");
	INVALID(DOC("\"mounts\": {}"), "/mounts: an object is not an array");
	INVALID(DOC("\"process\": {\"cwd\": \"/\", \"terminal\": \"yes\"}"),
		"/process/terminal: \"yes\" is not a boolean");
	INVALID(DOC("\"hostname\": null"), "/hostname: null is not a string");
	INVALID(DOC("\"process\": {\"cwd\": \"/\", \"env\": [\"A=1\", false]}"),
		"/process/env/1: false is not a string");
	INVALID(DOC("\"windows\": {\"layerFolders\": [\"l\"], \"credentialSpec\": []}"),
		"/windows/credentialSpec: an array is not an object");
}

static void integers(void)
{
	if (!have_schema())
		return;
#define USER(v) DOC("\"process\": {\"cwd\": \"/\", \"user\": {\"uid\": " v "}}")
	INVALID(USER("1.5"), "/process/user/uid: 1.5 is not an integer");
	INVALID(USER("\"0\""), "/process/user/uid: \"0\" is not an integer");
	INVALID(USER("true"), "/process/user/uid: true is not an integer");
	VALID(USER("2.0")); /* cJSON cannot tell it from 2 */
	VALID(USER("1e3"));
	VALID(USER("4294967295"));
	INVALID(USER("-1"), "/process/user/uid: -1 is less than the minimum 0");
	INVALID(USER("4294967296"),
		"/process/user/uid: 4294967296 is greater than the maximum 4294967295");
#define RLIMIT(v)                                                                                  \
	DOC("\"process\": {\"cwd\": \"/\", \"rlimits\": [{\"type\": \"RLIMIT_CPU\", \"soft\": 1,"  \
	    " \"hard\": " v "}]}")
	VALID(RLIMIT("18446744073709551615"));
	VALID(RLIMIT("0"));
	INVALID(RLIMIT("-1"), "/process/rlimits/0/hard: -1 is less than the minimum 0");
	INVALID(
	    RLIMIT("1e20"),
	    "/process/rlimits/0/hard: 1e+20 is greater than the maximum 1.8446744073709552e+19");
	INVALID(RLIMIT("1e400"), "/process/rlimits/0/hard: inf is not an integer");
	VALID(DOC("\"process\": {\"cwd\": \"/\", \"oomScoreAdj\": -1000}"));
	INVALID(DOC("\"hooks\": {\"poststop\": [{\"path\": \"/p\", \"timeout\": 0}]}"),
		"/hooks/poststop/0/timeout: 0 is less than the minimum 1");
	INVALID(DOC("\"linux\": {\"devices\": [{\"type\": \"c\", \"path\": \"/x\","
		    " \"fileMode\": 513}]}"),
		"/linux/devices/0/fileMode: 513 is greater than the maximum 512");
	INVALID(DOC("\"linux\": {\"resources\": {\"blockIO\": {\"weight\": 65536}}}"),
		"/linux/resources/blockIO/weight: 65536 is greater than the maximum 65535");
}

static void patterns(void)
{
	if (!have_schema())
		return;
#define RTYPE(t)                                                                                   \
	DOC("\"process\": {\"cwd\": \"/\", \"rlimits\": [{\"type\": " t ", \"soft\": 1,"           \
	    " \"hard\": 1}]}")
	INVALID(RTYPE("\"RLIMIT_nofile\""),
		"/process/rlimits/0/type: \"RLIMIT_nofile\" does not match ^RLIMIT_[A-Z]+$");
	/* ECMA's $ is the end of the string, not before a final newline */
	INVALID(RTYPE("\"RLIMIT_NOFILE\\n\""),
		"/process/rlimits/0/type: \"RLIMIT_NOFILE\\x0a\" does not match ^RLIMIT_[A-Z]+$");
	INVALID(RTYPE("\"x RLIMIT_NOFILE\""),
		"/process/rlimits/0/type: \"x RLIMIT_NOFILE\" does not match ^RLIMIT_[A-Z]+$");
#define PAGE(s)                                                                                    \
	DOC("\"linux\": {\"resources\": {\"hugepageLimits\": [{\"pageSize\": " s                   \
	    ", \"limit\": 1}]}}")
	VALID(PAGE("\"2MB\""));
	VALID(PAGE("\"1024KB\""));
	INVALID(PAGE("\"0MB\""), "/linux/resources/hugepageLimits/0/pageSize: \"0MB\" does not "
				 "match ^[1-9][0-9]*[KMG]B$");
	INVALID(PAGE("\"2mb\""), "/linux/resources/hugepageLimits/0/pageSize: \"2mb\" does not "
				 "match ^[1-9][0-9]*[KMG]B$");
#define MBW(s) DOC("\"linux\": {\"intelRdt\": {\"memBwSchema\": " s "}}")
	VALID(MBW("\"MB:\""));
	VALID(MBW("\"MB:0=70;1=\\\\n\"")); /* [^\n] is not newline, and not "\" and "n" */
	INVALID(MBW("\"MB:0=70\\n1=50\""),
		"/linux/intelRdt/memBwSchema: \"MB:0=70\\x0a1=50\" does not match ^MB:[^\\n]*$");
#define DEVTYPE(t) DOC("\"linux\": {\"devices\": [{\"type\": " t ", \"path\": \"/dev/x\"}]}")
	VALID(DEVTYPE("\"u\""));
	INVALID(DEVTYPE("\"cb\""), "/linux/devices/0/type: \"cb\" does not match ^[cbup]$");
	/* patternProperties ".{1,}": any key with a character that is not a
	 * line terminator holds a string; others are not constrained */
	INVALID(DOC("\"annotations\": {\"a\": 1}"), "/annotations/a: 1 is not a string");
	INVALID(DOC("\"annotations\": {\"\\na\": 1}"), "/annotations/\\x0aa: 1 is not a string");
	VALID(DOC("\"annotations\": {\"\": 1}"));
	VALID(DOC("\"annotations\": {\"\\n\": 1, \"\\r\\n\": 1}"));
}

static void enums_and_combinations(void)
{
	if (!have_schema())
		return;
	INVALID(DOC("\"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"time\"}]}"),
		"/linux/namespaces/1/type: \"time\" is not one of \"mount\", \"pid\", \"network\", "
		"\"uts\", \"ipc\", \"user\", \"cgroup\"");
	INVALID(DOC("\"linux\": {\"namespaces\": [\"pid\"]}"),
		"/linux/namespaces/0: \"pid\" is not an object");
	INVALID(DOC("\"linux\": {\"rootfsPropagation\": \"rshared\"}"),
		"/linux/rootfsPropagation: \"rshared\" is not one of \"private\", \"shared\", "
		"\"slave\", \"unbindable\"");
	INVALID(DOC("\"linux\": {\"personality\": {\"domain\": \"LINUX64\"}}"),
		"/linux/personality/domain: \"LINUX64\" is not one of \"LINUX\", \"LINUX32\"");
	INVALID(DOC("\"vm\": {\"kernel\": {\"path\": \"k\"}, \"image\": {\"path\": \"i\","
		    " \"format\": 1}}"),
		"/vm/image/format: 1 is not a string");
	/* allOf: blockIODevice's required members, and the weight's limits */
	INVALID(DOC("\"linux\": {\"resources\": {\"blockIO\": {\"weightDevice\": [{\"minor\": 0,"
		    " \"weight\": 1}]}}}"),
		"/linux/resources/blockIO/weightDevice/0: required property \"major\" missing");
	INVALID(DOC("\"linux\": {\"resources\": {\"blockIO\": {\"throttleWriteIOPSDevice\":"
		    " [{\"major\": 8, \"minor\": 0, \"rate\": -5}]}}}"),
		"/linux/resources/blockIO/throttleWriteIOPSDevice/0/rate: -5 is less than the "
		"minimum 0");
	INVALID(DOC("\"linux\": {\"resources\": {\"blockIO\": {\"throttleReadBpsDevice\": [1]}}}"),
		"/linux/resources/blockIO/throttleReadBpsDevice/0: 1 is not an object");
	INVALID(DOC("\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\","
		    " \"syscalls\": [{\"names\": [], \"action\": \"SCMP_ACT_ERRNO\"}]}}"),
		"/linux/seccomp/syscalls/0/names: 0 items, fewer than the minimum 1");
	INVALID(DOC("\"windows\": {\"layerFolders\": []}"),
		"/windows/layerFolders: 0 items, fewer than the minimum 1");
	/* additionalProperties as a schema */
	INVALID(DOC("\"linux\": {\"resources\": {\"rdma\": {\"mlx\": {\"hcaHandles\": \"x\"}}}}"),
		"/linux/resources/rdma/mlx/hcaHandles: \"x\" is not an integer");
	INVALID(DOC("\"linux\": {\"resources\": {\"rdma\": {\"mlx\": []}}}"),
		"/linux/resources/rdma/mlx: an array is not an object");
}

static void message_text(void)
{
	if (!have_schema())
		return;
	/* the pointer escapes "~" and "/" (RFC 6901), messages control bytes */
	INVALID(DOC("\"annotations\": {\"a/b~c\": 1}"), "/annotations/a~1b~0c: 1 is not a string");
	INVALID(DOC("\"hostname\": [], \"annotations\": {\"\\u001b[2J\": 1}"),
		"/hostname: an array is not a string");
	INVALID(DOC("\"annotations\": {\"\\u001b[2J\": 1}"),
		"/annotations/\\x1b[2J: 1 is not a string");
	/* long strings are cut */
	INVALID(RTYPE("\"RLIMIT_0123456789012345678901234567890123456789012345678901234567890\""),
		"/process/rlimits/0/type: "
		"\"RLIMIT_012345678901234567890123456789012345678901234567890123456...\" does not "
		"match ^RLIMIT_[A-Z]+$");
	/* a short buffer gets the message's start, terminated */
	cJSON *doc = cJSON_Parse("{}");
	char small[8];
	memset(small, 'x', sizeof(small));
	CHECK_INT(ocischema_check(doc, small, sizeof(small)), -1);
	CHECK_STR(small, "(root):");
	CHECK_INT(ocischema_check(doc, NULL, 0), -1);
	cJSON_Delete(doc);
	CHECK_INT(ocischema_check(NULL, why, sizeof(why)), -1);
	CHECK_STR(why, "(root): no document");
	/* why is emptied on success */
	strcpy(why, "stale");
	VALID(DOC("\"hostname\": \"h\""));
	CHECK_STR(why, "");
}

/* -- the validator on schemas of its own ------------------------------- */

/* Checks `doc` against a one-file schema `schema`; -2 if doc is not JSON. */
static int check_with(const char *schema, const char *doc)
{
	struct ocischema_file f = {"config-schema.json", schema, strlen(schema)};
	cJSON *d = cJSON_Parse(doc);
	if (!d)
		return -2;
	int rc = ocischema_check_files(&f, 1, d, why, sizeof(why));
	cJSON_Delete(d);
	return rc;
}

#define SCHEMA_ERROR(schema, msg)                                                                  \
	do {                                                                                       \
		CHECK_INT(check_with(schema, "{}"), -1);                                           \
		CHECK_STR(why, msg);                                                               \
	} while (0)

static void schema_refused(void)
{
	SCHEMA_ERROR(
	    "{\"properties\": {\"a\": {\"type\": \"string\", \"format\": \"uri\"}}}",
	    "schema: config-schema.json#/properties/a: keyword \"format\" is not supported");
	SCHEMA_ERROR("{\"not\": {}}",
		     "schema: config-schema.json#: keyword \"not\" is not supported");
	/* an unknown keyword beside a $ref, even though it would not apply */
	SCHEMA_ERROR("{\"definitions\": {\"s\": {}}, \"properties\": {\"a\": {\"$ref\":"
		     " \"#/definitions/s\", \"uniqueItems\": true}}}",
		     "schema: config-schema.json#/properties/a: keyword \"uniqueItems\" is not "
		     "supported");
	/* definitions are compiled when a $ref reaches them */
	SCHEMA_ERROR("{\"definitions\": {\"s\": {\"if\": {}}}, \"items\": {\"$ref\":"
		     " \"#/definitions/s\"}}",
		     "schema: config-schema.json#/definitions/s: keyword \"if\" is not supported");
	CHECK_INT(check_with("{\"definitions\": {\"s\": {\"if\": {}}}}", "{}"), 0);
	SCHEMA_ERROR("{\"$schema\": \"http://json-schema.org/draft-07/schema#\"}",
		     "schema: config-schema.json#: $schema is not "
		     "http://json-schema.org/draft-04/schema#");
	SCHEMA_ERROR("{\"items\": [{}, {}]}",
		     "schema: config-schema.json#: items is not one schema (arrays of them are not "
		     "supported)");
	SCHEMA_ERROR("{\"properties\": {\"a\": {\"$ref\": \"other.json#/x\"}}}",
		     "schema: config-schema.json#/properties/a: $ref other.json#/x: no such schema "
		     "file");
	SCHEMA_ERROR(
	    "{\"properties\": {\"a\": {\"$ref\": \"#/definitions/none\"}}}",
	    "schema: config-schema.json#/properties/a: config-schema.json#/definitions/none "
	    "is not there");
	SCHEMA_ERROR(
	    "{\"properties\": {\"a\": {\"$ref\": \"#/required\"}}, \"required\": [\"b\"]}",
	    "schema: config-schema.json#/properties/a: config-schema.json#/required is not a "
	    "schema");
	SCHEMA_ERROR("{\"type\": \"object\", \"type\": \"array\"}",
		     "schema: config-schema.json#: \"type\" twice");
	SCHEMA_ERROR("{\"type\": \"int\"}", "schema: config-schema.json#: type names no JSON type");
	SCHEMA_ERROR("{\"required\": []}",
		     "schema: config-schema.json#: required is not a non-empty array");
	SCHEMA_ERROR("{\"pattern\": \"(?=a)\"}",
		     "schema: config-schema.json#: pattern (?=a): a lookaround or named group");
	SCHEMA_ERROR("{\"patternProperties\": {\"\\\\bx\": {}}}",
		     "schema: config-schema.json#/patternProperties: pattern \\bx: \\b (a word "
		     "boundary)");
	SCHEMA_ERROR("{\"type\": ", "schema: config-schema.json#: not JSON (at byte 8)");
	/* the pointers of $refs: escapes, array indexes */
	CHECK_INT(check_with("{\"definitions\": {\"a/b~c\": {\"type\": \"string\"}}, \"items\":"
			     " {\"$ref\": \"#/definitions/a~1b~0c\"}}",
			     "[\"x\", 1]"),
		  -1);
	CHECK_STR(why, "/1: 1 is not a string");
	CHECK_INT(check_with("{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"null\"}],"
			     " \"items\": {\"$ref\": \"#/anyOf/1\"}}",
			     "[null, null]"),
		  -1);
	CHECK_STR(why, "(root): an array matches none of the 2 schemas of anyOf");
	/* a schema that refers to itself without reaching a value */
	CHECK_INT(check_with("{\"allOf\": [{\"$ref\": \"#\"}]}", "1"), -1);
	CHECK_STR(why, "(root): the schema loops at config-schema.json#/allOf/0");
}

/* Does `s` match the ECMA pattern `pattern`? 1, 0, or -1 if the pattern
 * is refused. */
static int matches(const char *pattern, const char *s)
{
	cJSON *schema = cJSON_CreateObject();
	cJSON_AddStringToObject(schema, "pattern", pattern);
	char *text = cJSON_PrintUnformatted(schema);
	cJSON *doc = cJSON_CreateString(s);
	struct ocischema_file f = {"config-schema.json", text, strlen(text)};
	int rc = ocischema_check_files(&f, 1, doc, why, sizeof(why));
	cJSON_Delete(doc);
	cJSON_Delete(schema);
	free(text);
	if (rc && !strncmp(why, "schema: ", 8))
		return -1;
	return rc == 0;
}

static void regex_translation(void)
{
	CHECK_INT(matches("^\\d+$", "0123"), 1);
	CHECK_INT(matches("^\\d+$", "12a"), 0);
	CHECK_INT(matches("^\\D$", "a"), 1);
	CHECK_INT(matches("^\\D$", "1"), 0);
	CHECK_INT(matches("^\\w+$", "a_Z9"), 1);
	CHECK_INT(matches("^\\w+$", "a-b"), 0);
	CHECK_INT(matches("^a\\sb$", "a\tb"), 1);
	CHECK_INT(matches("^\\S$", " "), 0);
	/* search, not whole-string match */
	CHECK_INT(matches("b", "abc"), 1);
	/* . is anything but a line terminator */
	CHECK_INT(matches("^a.b$", "a-b"), 1);
	CHECK_INT(matches("^a.b$", "a\nb"), 0);
	CHECK_INT(matches("^a.b$", "a\rb"), 0);
	/* $ is the end of the string, ^ its start */
	CHECK_INT(matches("^ab$", "ab\n"), 0);
	CHECK_INT(matches("^b", "a\nb"), 0);
	/* classes: escapes, ranges, and the bytes POSIX treats specially */
	CHECK_INT(matches("^[\\]\\-]+$", "]-]"), 1);
	CHECK_INT(matches("^[\\]\\-]+$", "\\"), 0);
	CHECK_INT(matches("^[a-c\\d]+$", "ab3c"), 1);
	CHECK_INT(matches("^[a-c\\d]+$", "d"), 0);
	CHECK_INT(matches("^[^\\n]*$", "\\n"), 1);
	CHECK_INT(matches("^[^\\n]*$", "a\nb"), 0);
	CHECK_INT(matches("^[\\^]$", "^"), 1);
	CHECK_INT(matches("^[x^]$", "^"), 1);
	CHECK_INT(matches("^[x^]$", "y"), 0);
	CHECK_INT(matches("^[-^]$", "-"), 1);
	CHECK_INT(matches("^[^^]$", "^"), 0);
	CHECK_INT(matches("^[[.]+$", "[.["), 1);
	CHECK_INT(matches("^[a-]$", "-"), 1);
	CHECK_INT(matches("^[\\x41-\\u0043]+$", "ABC"), 1);
	CHECK_INT(matches("^[\\x41-\\u0043]+$", "D"), 0);
	/* groups, alternation, counted and lazy quantifiers, escapes */
	CHECK_INT(matches("^(?:ab)+$", "abab"), 1);
	CHECK_INT(matches("^(?:ab)+$", "aba"), 0);
	CHECK_INT(matches("^(a|bc){2}$", "abc"), 1);
	CHECK_INT(matches("^a{2,}$", "a"), 0);
	CHECK_INT(matches("^a+?$", "aaa"), 1);
	CHECK_INT(matches("^a+?$", ""), 0);
	CHECK_INT(matches("^a??b$", "b"), 1);
	CHECK_INT(matches("^x{,2}$", "x{,2}"), 1); /* not a quantifier: itself */
	CHECK_INT(matches("^a}$", "a}"), 1);
	CHECK_INT(matches("^a]$", "a]"), 1);
	CHECK_INT(matches("^\\/\\.\\$\\($", "/.$("), 1);
	CHECK_INT(matches("^\\/\\.\\$\\($", "/x$("), 0);
	CHECK_INT(matches("^\\x41\\u0042$", "AB"), 1);
	/* a quantifier repeats a whole UTF-8 character */
	CHECK_INT(matches("^\xc3\xa9+$", "\xc3\xa9\xc3\xa9"), 1);
	CHECK_INT(matches("^\xc3\xa9+$", "\xc3\xa9\xa9"), 0);
	/* refused: no faithful POSIX translation */
	CHECK_INT(matches("(?!a)", "b"), -1);
	CHECK_INT(matches("(?<n>a)", "a"), -1);
	CHECK_INT(matches("(a)\\1", "aa"), -1);
	CHECK_INT(matches("\\bword", "word"), -1);
	CHECK_INT(matches("\\p{L}", "a"), -1);
	CHECK_INT(matches("[\\D]", "a"), -1);
	CHECK_INT(matches("[\xc3\xa9]", "a"), -1);
	CHECK_INT(matches("[]", "a"), -1);
	CHECK_INT(matches("[z-a]", "a"), -1);
	CHECK_INT(matches("[a", "a"), -1);
	CHECK_INT(matches("*a", "a"), -1);
	CHECK_INT(matches("\\u00e9", "a"), -1);
	CHECK_INT(matches("a\\", "a"), -1);
	CHECK_INT(matches("(a", "a"), -1); /* regcomp's own refusal */
	CHECK(strstr(why, "schema: config-schema.json#: pattern (a: ") == why);
}

static void keywords(void)
{
	const char *s = "{\"type\": \"object\", \"required\": [\"a\"], \"properties\": {\"a\":"
			" {\"type\": [\"string\", \"null\"]}, \"n\": {\"type\": \"number\","
			" \"minimum\": -1.5, \"maximum\": 2}}, \"patternProperties\": {\"^x-\":"
			" {\"enum\": [1, \"one\", null, [1], {\"k\": true}]}},"
			" \"additionalProperties\": false}";
	CHECK_INT(check_with(s, "{\"a\": null}"), 0);
	CHECK_INT(
	    check_with(s, "{\"a\": \"s\", \"n\": 1.25, \"x-1\": [1], \"x-2\": {\"k\": true}}"), 0);
	CHECK_INT(check_with(s, "{\"a\": 1}"), -1);
	CHECK_STR(why, "/a: 1 is not null or a string");
	CHECK_INT(check_with(s, "{\"a\": null, \"n\": -1.75}"), -1);
	CHECK_STR(why, "/n: -1.75 is less than the minimum -1.5");
	CHECK_INT(check_with(s, "{\"a\": null, \"n\": 2.5}"), -1);
	CHECK_STR(why, "/n: 2.5 is greater than the maximum 2");
	CHECK_INT(check_with(s, "{\"a\": null, \"b\": 1}"), -1);
	CHECK_STR(why, "(root): property \"b\" is not allowed");
	CHECK_INT(check_with(s, "{\"a\": null, \"x-\": {\"k\": false}}"), -1);
	CHECK_STR(why, "/x-: an object is not one of 1, \"one\", null, an array, an object");
	CHECK_INT(check_with(s, "{\"a\": null, \"x-\": true}"), -1);
	CHECK_INT(check_with(s, "{\"a\": null, \"x-\": 1.0}"), 0);
}

/* The first use compiles the schema once, whichever thread comes first. */
static void *thread_checks(void *arg)
{
	char w[256];
	cJSON *good = cJSON_Parse(full);
	cJSON *bad = cJSON_Parse(DOC("\"mounts\": [{}]"));
	long bad_verdicts = 0;
	for (int i = 0; i < 200; i++) {
		bad_verdicts += ocischema_check(good, w, sizeof(w)) != 0;
		bad_verdicts += ocischema_check(bad, w, sizeof(w)) != -1 ||
				strcmp(w, "/mounts/0: required property \"destination\" missing");
	}
	cJSON_Delete(good);
	cJSON_Delete(bad);
	return (void *)bad_verdicts;
}

static void threads(void)
{
	if (!have_schema())
		return;
	pthread_t t[8];
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		CHECK_INT(pthread_create(&t[i], NULL, thread_checks, NULL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		void *bad;
		pthread_join(t[i], &bad);
		CHECK_INT((long)bad, 0);
	}
}

UNIT_MAIN(CASE(threads), CASE(valid_documents), CASE(required_members), CASE(types), CASE(integers),
	  CASE(patterns), CASE(enums_and_combinations), CASE(message_text), CASE(schema_refused),
	  CASE(regex_translation), CASE(keywords))
