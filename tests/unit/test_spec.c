/* Unit tests for spec: both syntaxes, and that errors name the right line. */
#include "spec.h"
#include "unit.h"

#define H  "0123456789abcdfghijklmnpqrsvwxyz"
#define SP "/nix/store/" H

static struct store st;

static int parse(const char *text, struct spec *sp, struct diags *d)
{
	if (!st.dir) {
		char *err;
		store_init(&st);
		store_finish(&st, &err);
	}
	memset(d, 0, sizeof(*d));
	return spec_parse(sp, "t.conf", text, strlen(text), &st, d);
}

static void conf_full(void)
{
	struct spec sp;
	struct diags d;
	const char *text = "\xef\xbb\xbf# comment\n"
			   "[hello]\n"
			   "args = " SP "-hello/bin/hello --greeting \"hi there\"\n"
			   "  readonly=true  \n"
			   "os = linux\n"
			   "arch = aarch64\n"
			   "mount = /data bind /srv/data rbind,ro\n"
			   "mount = /tmp tmpfs tmpfs\n"
			   "closure = /tmp/closure\n"
			   "paths = " SP "-extra-1 " SP "-extra-2\n"
			   "\n"
			   "[a.b+c_d-1]\n"
			   "args = [\"/bin/sh\", \"-c\", \"echo \\\"hi\\\"\"]\n";
	CHECK_INT(parse(text, &sp, &d), 0);
	diag_print(&d, stderr, "unexpected: ");
	CHECK_INT(sp.n, 2);
	/* sorted by name */
	const struct bundle *b = spec_find(&sp, "hello");
	CHECK(b == &sp.bundles[1]);
	CHECK_INT(b->nargs, 3);
	CHECK_STR(b->args[2], "hi there");
	CHECK(b->readonly);
	CHECK_STR(b->arch, "aarch64");
	CHECK_INT(b->nmounts, 2);
	CHECK_STR(b->mounts[0].dest, "/data");
	CHECK_STR(b->mounts[0].options[1], "ro");
	CHECK(b->mounts[0].options[2] == NULL);
	CHECK(b->mounts[1].options == NULL);
	CHECK_STR(b->closure, "/tmp/closure");
	CHECK_INT(b->npaths, 2);
	CHECK_INT(b->paths_line, 10);
	const struct bundle *c = spec_find(&sp, "a.b+c_d-1");
	CHECK(c != NULL);
	CHECK_STR(c->args[2], "echo \"hi\"");
	CHECK(!c->readonly);
	CHECK_STR(c->os, "linux");
	CHECK_STR(c->arch, "x86_64");
	spec_free(&sp);
	diag_clear(&d);
}

static void json_full(void)
{
	struct spec sp;
	struct diags d;
	const char *text =
	    "\n  {\"hello\": {\"args\": [\"" SP "-hello/bin/hello\"],\n"
	    "   \"readonly\": true, \"mounts\": {\"/data\": {\"type\": \"bind\", "
	    "\"source\": \"/srv\", \"options\": [\"rbind\"]},\n"
	    "   \"/tmp\": {\"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": null}},\n"
	    "   \"paths\": [\"" SP "-x\"], \"closure\": \"/c\", \"os\": \"linux\", "
	    "\"arch\": \"x86_64\"}}\n";
	CHECK_INT(parse(text, &sp, &d), 0);
	diag_print(&d, stderr, "unexpected: ");
	CHECK_INT(sp.n, 1);
	const struct bundle *b = &sp.bundles[0];
	CHECK(b->readonly);
	CHECK_INT(b->nmounts, 2);
	CHECK_STR(b->mounts[0].options[0], "rbind");
	CHECK(b->mounts[1].options == NULL);
	CHECK_STR(b->paths[0], SP "-x");
	spec_free(&sp);
	diag_clear(&d);
}

/* Each bad spec must fail with exactly this message prefix. */
static const struct {
	const char *text, *want;
} bad[] = {
    {"[a]\nargs = /bin/x\nfoo = 1\n", "t.conf:3: bundle \"a\": unknown key \"foo\""},
    {"[a]\nargs = /bin/x\nargs = /bin/y\n",
     "t.conf:3: bundle \"a\": args: duplicate key (first at line 2)"},
    {"[a]\nargs = /bin/x\n[a]\nargs = /bin/y\n", "t.conf:3: duplicate bundle \"a\""},
    {"[..]\nargs = /bin/x\n", "t.conf:1: \"..\": bad bundle name"},
    {"[a/b]\nargs = /bin/x\n", "t.conf:1: \"a/b\": bad bundle name"},
    {"[a]\nreadonly = true\n", "t.conf:1: bundle \"a\": args: missing"},
    {"[a]\nargs = \"\" x\n", "t.conf:2: bundle \"a\": args: the program (its first word) is empty"},
    {"[a]\nargs = []\n", "t.conf:2: bundle \"a\": args: is empty"},
    {"[a]\nargs =\n", "t.conf:2: bundle \"a\": args: no value"},
    {"[a]\nargs = /bin/x \"oops\n", "t.conf:2:15: bundle \"a\": args: unterminated double quote"},
    {"[a]\nargs = [\"x\", 1]\n", "t.conf:2:14: bundle \"a\": args: expected a string, not number"},
    {"[a]\nargs = [\"x\"\n", "t.conf:2:12: bundle \"a\": args: expected ',' or ']'"},
    {"[a]\nargs = /x\nreadonly = yes\n",
     "t.conf:3: bundle \"a\": readonly: expected true or false, not \"yes\""},
    {"[a]\nargs = /x\npaths = /tmp/x\n",
     "t.conf:3: bundle \"a\": paths: \"/tmp/x\" is not a store path"},
    {"[a]\nargs = /x\nmount = data bind /x\n",
     "t.conf:3: bundle \"a\": mount: destination \"data\" is not an absolute path"},
    {"[a]\nargs = /x\nmount = /a/../b bind /x\n",
     "t.conf:3: bundle \"a\": mount: destination \"/a/../b\" is not normalized"},
    {"[a]\nargs = /x\nmount = /nix/store/x bind /x\n",
     "t.conf:3: bundle \"a\": mount: destination \"/nix/store/x\" is inside"},
    {"[a]\nargs = /x\nmount = /nix bind /srv\n",
     "t.conf:3: bundle \"a\": mount: destination \"/nix\" covers the store directory /nix/store"},
    {"{\"a\": {\"args\": [\"/x\"], \"mounts\": {\"/nix\": {\"type\": \"tmpfs\", \"source\": "
     "\"t\"}}}}",
     "t.conf:1:35: bundle \"a\": mounts: destination \"/nix\" covers"},
    {"[a]\nargs = /x\ncwd = x\n", "t.conf:3: bundle \"a\": cwd: \"x\" is not an absolute path"},
    {"[a]\nargs = /x\ncwd = /../..\n", "t.conf:3: bundle \"a\": cwd: \"/../..\" is not "
				       "normalized"},
    {"[a]\nargs = /x\ncwd = /a/./b\n", "t.conf:3: bundle \"a\": cwd: \"/a/./b\" is not "
				       "normalized"},
    {"[a]\nargs = /x\ncwd = /a/\n", "t.conf:3: bundle \"a\": cwd: \"/a/\" is not normalized"},
    {"[a]\nargs = /x\ncwd = /nix/store/x/y\n", "t.conf:3: bundle \"a\": cwd: "
					       "\"/nix/store/x/y\" is in the store directory"},
    {"{\"a\": {\"args\": [\"/x\"], \"cwd\": \"//\"}}", "t.conf:1:31: bundle \"a\": cwd: "
						       "\"//\" is not normalized"},
    {"[a]\nargs = /x\nmount = /d bind\n",
     "t.conf:3: bundle \"a\": mount: expected DESTINATION TYPE SOURCE"},
    {"[a]\nargs = /x\nmount = /d bind /x a,,b\n",
     "t.conf:3: bundle \"a\": mount: \"/d\": empty option"},
    {"[a]\nargs = /x\nmount = /d bind /x\nmount = /d tmpfs t\n",
     "t.conf:4: bundle \"a\": mount: duplicate destination \"/d\" (first at line 3)"},
    {"args = /x\n", "t.conf:1: \"args\" outside of a [bundle] section"},
    {"[a]\r\nargs = /x\r\n", "t.conf:1: CRLF line ending"},
    {"[a]\nargs = /x\xff\n", "t.conf:2:10: invalid UTF-8"},
    {"[a]\njust words\n", "t.conf:2: expected \"key = value\""},
    {"[a\nargs = /x\n", "t.conf:1: section header must look like [name]"},
    {"[a]\nargs = /x\nclosure = relative\n",
     "t.conf:3: bundle \"a\": closure: expected one absolute"},
    {"[a]\nargs = /x\nos = two words\n",
     "t.conf:3: bundle \"a\": os: \"two words\" contains whitespace"},
    {"[.bundlefs]\nargs = /x\n", "t.conf:1: \".bundlefs\": bad bundle name"},
    {"{\"a\": {\"args\": [\"/x\"], \"bogus\": 1}}",
     "t.conf:1:24: bundle \"a\": unknown key \"bogus\""},
    {"{\"a\": {}}", "t.conf:1:7: bundle \"a\": args: missing"},
    {"{\"a\": {\"args\": \"/x\"}}",
     "t.conf:1:16: bundle \"a\": args: expected an array of strings"},
    {"{\"a\": {\"args\": [\"/x\"]},\n \"a\": {\"args\": [\"/y\"]}}",
     "t.conf:2:2: duplicate key \"a\""},
    {"{\"a\": {\"args\": [\"/x\"], \"readonly\": \"yes\"}}",
     "t.conf:1:36: bundle \"a\": readonly: expected a boolean, not string"},
    {"{\"a\": {\"args\": [\"/x\"], \"mounts\": {\"/d\": {\"type\": \"bind\"}}}}",
     "t.conf:1:41: bundle \"a\": mounts: \"/d\": needs a source"},
    {"{\"a\": {\"args\": [\"/x\"], \"mounts\": {\"/d\": {\"type\": \"bind\", \"source\": \"/s\", "
     "\"opts\": []}}}}",
     "t.conf:1:74: bundle \"a\": mounts: \"/d\": unknown member \"opts\""},
    {"{\"a\": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}", "t.conf:1:22: nesting deeper than 16"},
    {"{\"a\": {\"args\": [\"/x\"]}} trailing", "t.conf:1:25: unexpected text after"},
    {"{\"a\x01\": {}}", "t.conf:1:4: control character in string"},
    {"[a]\nargs = /x\ncapabilities = {\"add\": [\"CAP_NOPE\"]}\n",
     "t.conf:3:25: bundle \"a\": capabilities: add: \"CAP_NOPE\" is not a Linux capability"},
    {"[a]\nargs = /x\ncapabilities = {\"drop\": [\"ALL\"], \"add\": [\"ALL\"]}\n",
     "t.conf:3:42: bundle \"a\": capabilities: \"ALL\" is both added and dropped"},
    {"[a]\nargs = /x\ncapabilities = [\"CAP_KILL\"]\n",
     "t.conf:3: bundle \"a\": capabilities: expected an object, not array"},
    {"[a]\nargs = /x\nrlimits = {\"RLIMIT_NOFILE\": {\"soft\": 2, \"hard\": 1}}\n",
     "t.conf:3:38: bundle \"a\": rlimits: RLIMIT_NOFILE: soft 2 is above hard 1"},
    {"[a]\nargs = /x\nrlimits = {\"RLIMIT_NOFILE\": 1e3}\n",
     "t.conf:3:29: bundle \"a\": rlimits: RLIMIT_NOFILE: expected an integer from 0 to "
     "18446744073709551615, not 1e3"},
    {"[a]\nargs = /x\nrlimits = {\"RLIMIT_NOFILE\": {\"soft\": 1, \"hard\": 2, \"x\": 3}}\n",
     "t.conf:3:52: bundle \"a\": rlimits: RLIMIT_NOFILE: unknown member \"x\""},
    {"[a]\nargs = /x\nrlimits = {\"nofile\": 1}\n",
     "t.conf:3:12: bundle \"a\": rlimits: \"nofile\" is not a Linux resource limit"},
    {"[a]\nargs = /x\nannotations = {\"a\": true}\n",
     "t.conf:3:21: bundle \"a\": annotations: \"a\": expected a string, not boolean"},
    {"[a]\nargs = /x\nsysctl = {\"kernel.\": \"1\"}\n",
     "t.conf:3:11: bundle \"a\": sysctl: \"kernel.\" is not a kernel parameter"},
    {"[a]\nargs = /x\nsysctl = {\"net.ipv4.ip_forward\": 1}\n",
     "t.conf:3:34: bundle \"a\": sysctl: \"net.ipv4.ip_forward\": expected a string"},
    {"[a]\nargs = /x\nmaskedPaths = /proc/kcore proc/keys\n",
     "t.conf:3: bundle \"a\": maskedPaths: \"proc/keys\" is not an absolute path"},
    {"{\"a\": {\"args\": [\"/x\"], \"readonlyPaths\": [\"/a/\"]}}",
     "t.conf:1:42: bundle \"a\": readonlyPaths: \"/a/\" is not normalized"},
    {"[a]\nargs = /x\nrootless = 1\n", "t.conf:3: bundle \"a\": rootless: expected true or false"},
    {"{\"a\": {\"args\": [\"/x\"], \"noNewPrivileges\": 1}}",
     "t.conf:1:43: bundle \"a\": noNewPrivileges: expected a boolean, not number"},
    {"{\"a\": {\"args\": [\"/x\"], \"oci\": \"{}\"}}",
     "t.conf:1:31: bundle \"a\": oci: expected an object, not string"},
    {"[a]\nargs = /x\noci = {\"process\": }\n", "t.conf:3:19: bundle \"a\": oci: unexpected "
						"character"},
    {"[a]\nargs = /x\x00y\n", NULL /* NUL: checked below with an explicit length */},
};

static void errors(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!bad[i].want)
			continue;
		struct spec sp;
		struct diags d;
		int r = parse(bad[i].text, &sp, &d);
		CHECK_INT(r, -1);
		if (d.n < 1 || strncmp(d.msg[0], bad[i].want, strlen(bad[i].want))) {
			fprintf(stderr, "case %zu: want \"%s\", got \"%s\"\n", i, bad[i].want,
				d.n ? d.msg[0] : "(nothing)");
			unit_failures++;
		}
		diag_clear(&d);
	}
}

/* A cwd may be /, the store directory or what covers it, or in a store
 * path (which the closure provides). */
static void cwd_accepted(void)
{
	static const char *const ok[] = {
	    "/", "/srv/app", "/nix", "/nix/store", SP "-app", SP "-app/share/x",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct spec sp;
		struct diags d;
		char text[200];
		snprintf(text, sizeof(text), "[a]\nargs = /x\ncwd = %s\n", ok[i]);
		CHECK_INT(parse(text, &sp, &d), 0);
		diag_print(&d, stderr, "unexpected: ");
		if (sp.n == 1)
			CHECK_STR(sp.bundles[0].cwd, ok[i]);
		spec_free(&sp);
		diag_clear(&d);
	}
}

static void nul_and_limits(void)
{
	struct spec sp;
	struct diags d = {0};
	static const char text[] = "[a]\nargs = /x\0y\n";
	CHECK_INT(spec_parse(&sp, "t.conf", text, sizeof(text) - 1, &st, &d), -1);
	CHECK_INT(d.n, 1);
	CHECK_STR(d.msg[0], "t.conf:2:10: NUL byte");
	diag_clear(&d);

	size_t n = SPEC_MAX_LINE + 100;
	char *big = malloc(n + 20);
	strcpy(big, "[a]\nargs = /x\n# ");
	memset(big + strlen(big), 'x', n);
	big[n] = 0;
	CHECK_INT(spec_parse(&sp, "t.conf", big, strlen(big), &st, &d), -1);
	CHECK(d.n == 1 && strstr(d.msg[0], "t.conf:3: line is longer than 64 KiB"));
	diag_clear(&d);
	free(big);
}

static void every_problem_reported(void)
{
	struct spec sp;
	struct diags d;
	CHECK_INT(parse("[a]\nfoo = 1\nreadonly = x\n[b]\nargs = /x\nbar = 2\n", &sp, &d), -1);
	CHECK_INT(d.n, 4); /* foo, readonly, missing args of a, bar */
	diag_clear(&d);
}

/* The same bundles, written differently, are equal; any change is not. */
static void bundles_equal(void)
{
	struct spec a, b;
	struct diags d;
	CHECK_INT(parse("[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\n"
			"[y]\nargs = /bin/y\n",
			&a, &d),
		  0);
	CHECK_INT(parse("{\"y\": {\"args\": [\"/bin/y\"]},\n"
			" \"x\": {\"mounts\": {\"/d\": {\"type\": \"bind\", \"source\": \"/s\", "
			"\"options\": [\"ro\", \"rbind\"]}}, \"args\": [\"/bin/a\", \"b c\"]}}",
			&b, &d),
		  0);
	CHECK(spec_bundle_equal(spec_find(&a, "x"), spec_find(&b, "x")));
	CHECK(spec_bundle_equal(spec_find(&a, "y"), spec_find(&b, "y")));
	CHECK(!spec_bundle_equal(spec_find(&a, "x"), spec_find(&a, "y")));
	static const char *const changed[] = {
	    "[x]\nargs = /bin/a 'b c' d\nmount = /d bind /s ro,rbind\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /t ro,rbind\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nreadonly = true\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\narch = aarch64\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nclosure = /c\n",
	    "[x]\nargs = /bin/a 'b c'\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\ncompat = buildcontainer\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nenv = A=1\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\ncwd = /a\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nhostname = a\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nuser = 0:0\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nterminal = true\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\ncapabilities = {}\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nrlimits = {}\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nnoNewPrivileges = false\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nannotations = {}\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nsysctl = {}\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nmaskedPaths = []\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nreadonlyPaths = /a\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\nrootless = false\n",
	    "[x]\nargs = /bin/a 'b c'\nmount = /d bind /s ro,rbind\noci = {}\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(changed); i++) {
		struct spec c;
		CHECK_INT(parse(changed[i], &c, &d), 0);
		if (spec_bundle_equal(spec_find(&a, "x"), spec_find(&c, "x")))
			fprintf(stderr, "case %zu compares equal\n", i), unit_failures++;
		spec_free(&c);
	}
	spec_free(&a);
	spec_free(&b);
}

/* A bundle written as JSON reads back as the same bundle. */
static void json_round_trip(void)
{
	struct spec a;
	struct diags d;
	CHECK_INT(
	    parse(
		"[x]\nargs = /bin/a 'b \"c' \\\\d \xc3\xa9\nreadonly = true\narch = aarch64\n"
		"mount = /d bind /s ro,rbind\nmount = /e tmpfs t\n"
		"closure = /c/f\npaths = " SP "-p\n[y]\nargs = /y\n"
		"[z]\nargs = /z\ncompat = buildcontainer\nenv = A=1\nenv = B=x y\ncwd = /w\n"
		"hostname = h\nuser = 1:2,3,4\nterminal = true\n"
		"[w]\nargs = /w\ncapabilities = {\"add\": [\"ALL\"], \"drop\": [\"CAP_KILL\"]}\n"
		"rlimits = {\"RLIMIT_NOFILE\": 18446744073709551615, \"RLIMIT_AS\": {\"hard\": 2, "
		"\"soft\": 1}}\nnoNewPrivileges = true\nannotations = {\"k\": \"v\\u00e9\"}\n"
		"sysctl = {\"kernel/msgmax\": \"1\"}\nmaskedPaths = []\nreadonlyPaths = /a /b\n"
		"rootless = false\noci = {\"a\": [1.5, null, {\"b\": -0}]}\n",
		&a, &d),
	    0);
	diag_print(&d, stderr, "unexpected: ");
	CHECK_INT(a.n, 4);
	for (size_t i = 0; i < a.n; i++) {
		char *json = spec_bundle_json(&a.bundles[i]);
		struct spec b;
		CHECK_INT(spec_parse(&b, "j", json, strlen(json), &st, &d), 0);
		CHECK_INT(b.n, 1);
		CHECK(b.n == 1 && spec_bundle_equal(&a.bundles[i], &b.bundles[0]));
		spec_free(&b);
		free(json);
	}
	spec_free(&a);
}

/* Thousands of bundles in no order, names alike in their first bytes and
 * not: sorted as strcmp sorts them; duplicates found at their lines. */
static void many_bundles(void)
{
	enum { N = 3000 };
	static const char *const prefix[] = {"s", "service-", "service-x"};
	struct buf b = {0};
	for (int i = 0; i < N; i++)
		buf_addf(&b, "[%s%d]\nargs = /bin/x\n", prefix[i % 3], i * 7919 % N);
	struct spec sp;
	struct diags d;
	CHECK_INT(parse(b.data, &sp, &d), 0);
	CHECK_INT(sp.n, N);
	for (size_t i = 1; i < sp.n; i++)
		CHECK(strcmp(sp.bundles[i - 1].name, sp.bundles[i].name) < 0);
	for (size_t i = 0; i < sp.n; i++)
		CHECK(spec_find(&sp, sp.bundles[i].name) == &sp.bundles[i]);
	spec_free(&sp);
	buf_free(&b);

	buf_addf(&b, "[service-b]\nargs = /b\n[service-a]\nargs = /a\n[s]\nargs = /s\n"
		     "[service-a]\nargs = /a2\n[service-aa]\nargs = /aa\n[service-a]\nargs = "
		     "/a3\n");
	CHECK_INT(parse(b.data, &sp, &d), -1);
	CHECK_INT(d.n, 2);
	if (d.n == 2) {
		CHECK_STR(d.msg[0], "t.conf:7: duplicate bundle \"service-a\" (first at line 3)");
		CHECK_STR(d.msg[1], "t.conf:11: duplicate bundle \"service-a\" (first at line 7)");
	}
	diag_clear(&d);
	buf_free(&b);
	CHECK_INT(parse("[c]\nargs = /c\n[b]\nargs = /b\n[a]\nargs = /a\n", &sp, &d), 0);
	CHECK_STR(sp.bundles[0].name, "a");
	CHECK_INT(sp.bundles[0].line, 5);
	CHECK_STR(sp.bundles[2].args[0], "/c");
	spec_free(&sp);
}

/* A bundle may set many variables, one line each; each name once. */
static void many_env(void)
{
	enum { N = 20000 };
	struct buf b = {0};
	buf_adds(&b, "[e]\nargs = /bin/e\n");
	for (int i = 0; i < N; i++)
		buf_addf(&b, "env = V%d=%d\n", i, i);
	struct spec sp;
	struct diags d;
	CHECK_INT(parse(b.data, &sp, &d), 0);
	CHECK_INT(sp.bundles[0].nenv, N);
	CHECK_STR(sp.bundles[0].env[N - 1], "V19999=19999");
	CHECK(sp.bundles[0].env[N] == NULL);
	spec_free(&sp);
	buf_addf(&b, "env = V123=again\n");
	CHECK_INT(parse(b.data, &sp, &d), -1);
	CHECK_INT(d.n, 1);
	if (d.n == 1)
		CHECK_STR(d.msg[0], "t.conf:20003: bundle \"e\": env: V123 is set twice");
	diag_clear(&d);
	/* Few of them: the same, checked one by one. */
	CHECK_INT(parse("[e]\nargs = /e\nenv = A=1\nenv = B=2\nenv = A=3\n", &sp, &d), -1);
	CHECK_INT(d.n, 1);
	if (d.n == 1)
		CHECK_STR(d.msg[0], "t.conf:5: bundle \"e\": env: A is set twice");
	diag_clear(&d);
	buf_free(&b);
}

/* The keys beyond buildContainer's and bundlefs's first: each syntax
 * reads the same, into what config.json needs. */
static void config_keys(void)
{
	struct spec c, j;
	struct diags d;
	CHECK_INT(
	    parse("[a]\nargs = /x\ncapabilities = {\"drop\": [\"ALL\"], \"add\": "
		  "[\"CAP_NET_ADMIN\", \"CAP_CHOWN\"]}\nrlimits = {\"RLIMIT_NOFILE\": 1}\n"
		  "noNewPrivileges = true\nmaskedPaths = /a /b\nreadonlyPaths = []\n"
		  "rootless = false\nannotations = {\"x\": \"y\"}\nsysctl = {\"a.b\": \"c\"}\n"
		  "oci = {\"hostname\": \"h\"}\n",
		  &c, &d),
	    0);
	diag_print(&d, stderr, "unexpected: ");
	CHECK_INT(
	    parse("{\"a\": {\"args\": [\"/x\"], \"capabilities\": {\"drop\": [\"ALL\"], "
		  "\"add\": [\"CAP_NET_ADMIN\", \"CAP_CHOWN\"]}, \"rlimits\": "
		  "{\"RLIMIT_NOFILE\": 1}, \"noNewPrivileges\": true, \"maskedPaths\": [\"/a\", "
		  "\"/b\"], \"readonlyPaths\": [], \"rootless\": false, \"annotations\": "
		  "{\"x\": \"y\"}, \"sysctl\": {\"a.b\": \"c\"},\n\"oci\": {\"hostname\": \"h\"}}}",
		  &j, &d),
	    0);
	diag_print(&d, stderr, "unexpected: ");
	if (c.n == 1 && j.n == 1) {
		const struct bundle *b = &c.bundles[0];
		const struct spec_extra *x = spec_extra(b);
		CHECK(spec_bundle_equal(b, &j.bundles[0]));
		/* drop ALL, then add: CAP_CHOWN (0) and CAP_NET_ADMIN (12) alone */
		CHECK(x->caps == (UINT64_C(1) | UINT64_C(1) << 12));
		CHECK_INT(x->no_new_privileges, SPEC_YES);
		CHECK_INT(x->rootless, SPEC_NO);
		CHECK_STR(x->masked_paths[1], "/b");
		CHECK(x->readonly_paths && !x->readonly_paths[0]);
		CHECK_INT(x->oci_line, 11);
		CHECK_INT(x->oci_col, 0);
		CHECK_INT(spec_extra(&j.bundles[0])->oci_line, 2);
		CHECK_INT(spec_extra(&j.bundles[0])->oci_col, 8);
	}
	spec_free(&c);
	spec_free(&j);
	/* add ALL less drop; absent: runc's default set */
	CHECK_INT(parse("[a]\nargs = /x\ncapabilities = {\"add\": [\"ALL\"], \"drop\": "
			"[\"CAP_SYS_ADMIN\"]}\n[b]\nargs = /x\ncapabilities = {}\n",
			&c, &d),
		  0);
	if (c.n == 2) {
		CHECK(spec_extra(&c.bundles[0])->caps ==
		      (((UINT64_C(1) << 41) - 1) & ~(UINT64_C(1) << 21)));
		CHECK(spec_extra(&c.bundles[1])->caps ==
		      (UINT64_C(1) << 5 | UINT64_C(1) << 10 | UINT64_C(1) << 29));
	}
	spec_free(&c);
}

UNIT_MAIN(CASE(config_keys), CASE(conf_full), CASE(bundles_equal), CASE(json_round_trip),
	  CASE(json_full), CASE(errors), CASE(cwd_accepted), CASE(nul_and_limits),
	  CASE(every_problem_reported), CASE(many_bundles), CASE(many_env))
