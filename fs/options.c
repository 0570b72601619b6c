/* options: parsing bundlefs's arguments. */
#include "options.h"
#include "cli.h"
#include "mounts.h"
#include "image.h"
#include "netlib.h"
#include "passthrough.h"
#include "state.h"
#include "subst.h"

#include <fuse_lowlevel.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: bundlefs [OPTIONS] MOUNTPOINT SPEC\n"
    "       bundlefs SPEC MOUNTPOINT -o OPTIONS     (as mount.fuse3 calls it)\n"
    "       bundlefs --takeover MOUNTPOINT          (a live upgrade)\n"
    "\n"
    "Mounts every bundle of SPEC as MOUNTPOINT/NAME/{config.json,rootfs/}, an OCI\n"
    "runtime bundle whose rootfs is the bundle's Nix closure, served read-only\n"
    "from the store without copying (with readonly = false, under an overlay\n"
    "that keeps what containers write in --state-dir). Then:\n"
    "runc run -b MOUNTPOINT/NAME ID\n"
    "The command returns once the mount serves; the daemon stays in the\n"
    "background.\n"
    "\n"
    "Options:\n"
    "  -f, --foreground    stay in the foreground (log to stderr, each line with its\n"
    "                      syslog priority: <3>bundlefs: ...)\n"
    "  -v, --verbose       log debug lines too (default: from info up)\n"
    "  -d, --debug         log every FUSE request (implies -f and -v)\n"
    "  -s                  single-threaded\n"
    "  --threads N         at most N worker threads (default 8; fewer when the\n"
    "                      descriptor limit, ulimit -n, has no room for them)\n"
    "  --gcroots DIR|none  register served closures as Nix GC roots below DIR\n"
    "                      (default: the gcroots directory beside Nix's database,\n"
    "                      when it exists); none: register nothing\n"
    "  --log FILE          in the background, log to FILE (default: syslog, when\n"
    "                      the machine has one); SIGUSR1 opens it again (logrotate)\n"
    "  --watch             reload when the spec file is written or replaced, or a\n"
    "                      symlink on the way to it repointed (nix-build -o result)\n"
    "  --state-dir DIR     where the writable roots of readonly = false bundles\n"
    "                      keep their changes, one directory per mount point and\n"
    "                      bundle (default " DEFAULT_STATE_DIR "; not root:\n"
    "                      $XDG_STATE_HOME/bundlefs, else ~/.local/state/bundlefs)\n"
    "  --run-dir DIR       where writable roots are mounted while the mount\n"
    "                      serves, outside the mount (default " DEFAULT_RUN_DIR ";\n"
    "                      not root: $XDG_RUNTIME_DIR/bundlefs). Not root, they\n"
    "                      are fuse-overlayfs mounts (it must be installed)\n"
    "  -o OPT[,OPT...]     mount options: gcroots=DIR, threads=N, log=FILE, watch,\n"
    "                      verbose,\n"
    "                      nopassthrough, passthrough-files=N, state-dir=DIR,\n"
    "                      run-dir=DIR, data=native|fuse, substituter=URL,\n"
    "                      nosubstitute, prefetch=N, stall-timeout=S,\n"
    "                      store-dir=DIR, real-store=DIR, db=FILE,\n"
    "                      and FUSE options; rw, dev, suid and the like (which\n"
    "                      mount(8) adds) are ignored: the mount is always\n"
    "                      ro,nodev,nosuid\n"
    "  --no-passthrough    read store files through the daemon even where the kernel\n"
    "                      could read them itself (FUSE passthrough)\n"
    "  --passthrough-files N\n"
    "                      store files nobody has open that stay registered for\n"
    "                      passthrough, the least recently used let go first\n"
    "                      (default 1024, at most 16384; 0: only open ones)\n"
    "  --substituter URL   a binary cache (file://, http://, https://) that store\n"
    "                      paths missing here may come from, besides the\n"
    "                      substituters of Nix's own settings (nix show-config);\n"
    "                      repeatable. A bundle whose closure is not all here\n"
    "                      lists it whole, and Nix realises each missing path\n"
    "                      (nix-store --realise) when a container first uses it\n"
    "  --no-substitute     never: a closure must be in the store\n"
    "  --prefetch N        once a bundle is used, realise its other missing paths\n"
    "                      in the background, N at a time (default 2; 0: never)\n"
    "  --stall-timeout S   a store path being realised fails (EIO) once its\n"
    "                      download has received nothing for S seconds, or a\n"
    "                      cache has not accepted a connection in S seconds (Nix's\n"
    "                      stalled-download-timeout and connect-timeout; default\n"
    "                      30; 0: Nix's own settings, 300 s of stall)\n"
    "  --data native|fuse  the data path of bundles whose spec has no `data`:\n"
    "                      native (the default): once the closure's metadata\n"
    "                      image is built, the bundle's root is an overlay the\n"
    "                      kernel alone serves (the image over the store); the\n"
    "                      FUSE tree until then and where that cannot be (not\n"
    "                      root, an old kernel, paths not here yet); fuse:\n"
    "                      always this mount's tree\n"
    "  --no-openat2        resolve store paths one component at a time even where\n"
    "                      the kernel has openat2 (the fallback, for testing it)\n"
    "  --mount-rw          mount read-write, so that writes reach the daemon,\n"
    "                      which refuses them itself (for testing that)\n"
    "  -h, --help          this text\n"
    "  -V, --version       the version\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "Logs go to stderr in the foreground, each line led by its syslog priority\n"
    "(<5>, which the journal keeps); in the background to --log FILE, else to\n"
    "syslog. Priorities: err (something failed: a bundle, a store path Nix cannot\n"
    "realise, a reload), warning (degraded: no supervisor, no watchdog, a bundle\n"
    "tried again later), notice (mounted, ready, reloaded, taken over, stopping,\n"
    "exiting), info (a bundle resolved, a path realised, a writable root\n"
    "mounted), debug (only with -v). SIGUSR1 opens the --log file again under\n"
    "its name, for logrotate.\n"
    "\n"
    "SIGHUP (or `bundlectl reload MOUNTPOINT`) reads SPEC again: bundles added,\n"
    "removed or changed appear, disappear or change at once; running containers\n"
    "keep what they have; a spec with errors changes nothing.\n"
    "`bundlectl status MOUNTPOINT` shows the daemon and every bundle.\n"
    "\n"
    "If the daemon dies, a supervisor process starts another that takes the\n"
    "mount over: readers and containers see a pause, not an error.\n"
    "`bundlefs --takeover MOUNTPOINT`, run from a new binary, takes the mount\n"
    "over from the running daemon the same way (with its options and spec),\n"
    "and returns once it serves; the old daemon exits.\n"
    "\n"
    "The mount is always ro,nosuid,nodev; as root it is also allow_other with\n"
    "default_permissions, so containers running as any user can read it.\n"
    "Unmount with `fusermount3 -u MOUNTPOINT`, `umount MOUNTPOINT`, or SIGTERM:\n"
    "writable roots are mounted outside the mount (--run-dir), and go with it;\n"
    "the daemon exits once the last container running on it has exited.\n"
    "The soft descriptor limit is raised to the hard one; below 38 bundlefs\n"
    "refuses to start.\n"
    "Exit status: 0 after a clean unmount, 1 on a failure, 2 for a bad spec\n"
    "or bad usage.\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bundlefs: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry `bundlefs --help'.\n");
	return 2;
}

static int set_threads(struct options *o, const char *v)
{
	char *end;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || *end || n < 1 || n > 1024)
		return usage_error("threads needs a number from 1 to 1024%s", "");
	o->threads = (unsigned)n;
	return -1;
}

static int set_pt_files(struct options *o, const char *v)
{
	char *end;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || !*v || *end || n < 0 || n > STATE_PT_SLOTS)
		return usage_error("passthrough-files needs a number from 0 to %u", STATE_PT_SLOTS);
	o->pt_files = (unsigned)n;
	return -1;
}

static int set_prefetch(struct options *o, const char *v)
{
	char *end;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || !*v || *end || n < 0 || n > 64)
		return usage_error("prefetch needs a number from 0 to 64%s", "");
	o->prefetch = (unsigned)n;
	return -1;
}

static int set_stall(struct options *o, const char *v)
{
	char *end;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || !*v || *end || n < 0 || n > 3600)
		return usage_error("stall-timeout needs a number of seconds from 0 to 3600%s", "");
	o->stall_timeout = (unsigned)n;
	return -1;
}

static int set_data(struct options *o, const char *v)
{
	if (v && !strcmp(v, "native"))
		o->data = SPEC_DATA_NATIVE;
	else if (v && !strcmp(v, "fuse"))
		o->data = SPEC_DATA_FUSE;
	else
		return usage_error("data needs native or fuse%s", "");
	return -1;
}

static int add_substituter(struct options *o, const char *v)
{
	struct subst *s = subst_new();
	char *err = NULL;
	int rc = v && *v ? subst_add_url(s, v, &err) : -1;
	subst_free(s);
	if (rc < 0) {
		rc = usage_error("%s", err ? err : "--substituter needs a URL");
		free(err);
		return rc;
	}
	GROW(o->substituters, o->nsubstituters, o->subcap);
	o->substituters[o->nsubstituters++] = arena_strdup(&o->strings, v);
	return -1;
}

/* Options mount(8) and mount.fuse3 pass that mean nothing here (a bundlefs
 * mount is always read-only, nodev and nosuid). */
static bool ignored(const char *opt, size_t n)
{
	static const char *const names[] = {"rw",	"ro",	  "dev",     "nodev",	 "suid",
					    "nosuid",	"exec",	  "noexec",  "async",	 "sync",
					    "auto",	"noauto", "user",    "nouser",	 "users",
					    "defaults", "nofail", "_netdev", "relatime", "noatime"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == n && !strncmp(opt, names[i], n))
			return true;
	return (n > 2 && !strncmp(opt, "x-", 2)) || (n > 8 && !strncmp(opt, "comment=", 8));
}

/* One -o option: ours, ignored, or passed to libfuse. */
static int mount_option(struct options *o, struct store *st, char *opt)
{
	char *eq = strchr(opt, '=');
	const char *v = eq ? eq + 1 : NULL;
	size_t kl = eq ? (size_t)(eq - opt) : strlen(opt);
	if (ignored(opt, kl))
		return -1;
#define KEY(k) (kl == strlen(k) && !strncmp(opt, k, kl))
	if (KEY("gcroots") && v && *v) {
		o->gcroots = arena_strdup(&o->strings, v);
	} else if (KEY("threads")) {
		return set_threads(o, v);
	} else if (KEY("log") && v && *v) {
		o->log = arena_strdup(&o->strings, v);
	} else if (KEY("state-dir") && v && *v) {
		o->state_dir = arena_strdup(&o->strings, v);
	} else if (KEY("run-dir") && v && *v) {
		o->run_dir = arena_strdup(&o->strings, v);
	} else if (KEY("watch") && !v) {
		o->watch = true;
	} else if (KEY("verbose") && !v) {
		o->verbose = true;
	} else if (KEY("nopassthrough") && !v) {
		o->no_passthrough = true;
	} else if (KEY("passthrough-files")) {
		return set_pt_files(o, v);
	} else if (KEY("substituter")) {
		return add_substituter(o, v);
	} else if (KEY("nosubstitute") && !v) {
		o->no_substitute = true;
	} else if (KEY("prefetch")) {
		return set_prefetch(o, v);
	} else if (KEY("stall-timeout")) {
		return set_stall(o, v);
	} else if (KEY("data")) {
		return set_data(o, v);
	} else if (KEY("store-dir") || KEY("real-store") || KEY("db")) {
		char name[32], *err = NULL;
		snprintf(name, sizeof(name), "--%.*s", (int)kl, opt);
		if (store_option(st, name, v, &err) < 0) {
			int rc = usage_error("%s", err);
			free(err);
			return rc;
		}
	} else {
		buf_addc(&o->fuse_opts, ',');
		buf_adds(&o->fuse_opts, opt);
	}
#undef KEY
	return -1;
}

static int mount_options(struct options *o, struct store *st, const char *list)
{
	char *copy = xstrdup(list), *save = NULL;
	int rc = -1;
	for (char *opt = strtok_r(copy, ",", &save); opt && rc < 0;
	     opt = strtok_r(NULL, ",", &save))
		rc = mount_option(o, st, opt);
	free(copy);
	return rc;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void absolute(struct options *o, const char **path)
{
	if (!*path || **path == '/')
		return;
	char *abs = mounts_abspath(*path);
	*path = arena_strdup(&o->strings, abs);
	free(abs);
}

/* A daemon that is not root cannot write /var/lib or /run: its writable
 * roots' state and area default to the user's own directories (XDG base
 * directories: $XDG_STATE_HOME, else ~/`home_rel`; $XDG_RUNTIME_DIR), as
 * rootless runtimes' do. *dir is left as it is where they are not set. */
static void user_dir(struct options *o, const char **dir, const char *var, const char *home_rel)
{
	const char *base = getenv(var);
	char *d = NULL;
	if (base && base[0] == '/')
		d = xasprintf("%s/bundlefs", base);
	else if (home_rel && (base = getenv("HOME")) && base[0] == '/')
		d = xasprintf("%s/%s/bundlefs", base, home_rel);
	if (!d)
		return;
	*dir = arena_strdup(&o->strings, d);
	o->dirs_from_env = true;
	free(d);
}

int options_parse(int argc, char **argv, struct options *o, struct store *st)
{
	o->threads = 8;
	o->pt_files = 1024;
	o->prefetch = 2;
	o->stall_timeout = 30;
	o->data = SPEC_DATA_NATIVE;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v;
		char *err = NULL;
		int r;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(usage_text, stdout);
			fputs(cli_store_help, stdout);
			fputs(usage_tail, stdout);
			return 0;
		} else if (!strcmp(s, "-V") || !strcmp(s, "--version")) {
			printf("bundlefs %s (libfuse %s, passthrough %s, native roots %s)\n",
			       BUNDLEFS_VERSION, fuse_pkgversion(),
			       passthrough_built() ? "built in" : "not built in",
			       image_built_in() ? "built in" : "not built in");
			printf("binary caches: %s and %s, loaded when first used\n",
			       netlib_curl_name, netlib_crypto_name);
			return 0;
		} else if (!strcmp(s, "-f") || !strcmp(s, "--foreground")) {
			o->foreground = true;
		} else if (!strcmp(s, "-v") || !strcmp(s, "--verbose")) {
			o->verbose = true;
		} else if (!strcmp(s, "-d") || !strcmp(s, "--debug")) {
			o->debug = o->foreground = o->verbose = true;
		} else if (!strcmp(s, "-s")) {
			o->single = true;
		} else if (!strcmp(s, "--no-openat2")) {
			o->no_openat2 = true;
		} else if (!strcmp(s, "--mount-rw")) {
			o->mount_rw = true;
		} else if (!strcmp(s, "--no-passthrough")) {
			o->no_passthrough = true;
		} else if (!strcmp(s, "--no-substitute")) {
			o->no_substitute = true;
		} else if (!strcmp(s, "--watch")) {
			o->watch = true;
		} else if (!strncmp(s, "-o", 2)) {
			v = s[2] ? s + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v)
				return usage_error("%s needs a value", "-o");
			if ((r = mount_options(o, st, v)) >= 0)
				return r;
		} else if (cli_opt(argc, argv, &i, "--threads", &v)) {
			if ((r = set_threads(o, v)) >= 0)
				return r;
		} else if (cli_opt(argc, argv, &i, "--passthrough-files", &v)) {
			if ((r = set_pt_files(o, v)) >= 0)
				return r;
		} else if (cli_opt(argc, argv, &i, "--substituter", &v)) {
			if ((r = add_substituter(o, v)) >= 0)
				return r;
		} else if (cli_opt(argc, argv, &i, "--prefetch", &v)) {
			if ((r = set_prefetch(o, v)) >= 0)
				return r;
		} else if (cli_opt(argc, argv, &i, "--stall-timeout", &v)) {
			if ((r = set_stall(o, v)) >= 0)
				return r;
		} else if (cli_opt(argc, argv, &i, "--data", &v)) {
			if ((r = set_data(o, v)) >= 0)
				return r;
		} else if (cli_opt(argc, argv, &i, "--gcroots", &o->gcroots)) {
			if (!o->gcroots || !*o->gcroots)
				return usage_error("--gcroots needs a directory or none%s", "");
		} else if (cli_opt(argc, argv, &i, "--log", &o->log)) {
			if (!o->log || !*o->log)
				return usage_error("--log needs a file%s", "");
		} else if (cli_opt(argc, argv, &i, "--state-dir", &o->state_dir)) {
			if (!o->state_dir || !*o->state_dir)
				return usage_error("--state-dir needs a directory%s", "");
		} else if (cli_opt(argc, argv, &i, "--run-dir", &o->run_dir)) {
			if (!o->run_dir || !*o->run_dir)
				return usage_error("--run-dir needs a directory%s", "");
		} else if ((r = cli_store_arg(st, argc, argv, &i, &err)) != 0) {
			if (r < 0) {
				int rc = usage_error("%s", err);
				free(err);
				return rc;
			}
		} else if (s[0] == '-' && s[1]) {
			return usage_error("unknown option %s", s);
		} else if (!o->mountpoint) {
			o->mountpoint = s;
		} else if (!o->spec) {
			o->spec = s;
		} else {
			return usage_error("unexpected argument %s", s);
		}
	}
	if (!o->mountpoint || !o->spec)
		return usage_error("%s", "need a MOUNTPOINT and a SPEC");
	/* mount.fuse3 passes the source (the spec) first. */
	if (!o->reparse && !is_dir(o->mountpoint) && is_dir(o->spec)) {
		const char *t = o->mountpoint;
		o->mountpoint = o->spec;
		o->spec = t;
	}
	/* The daemon works from /: relative paths are made absolute now. */
	absolute(o, &o->log);
	if (!o->state_dir) {
		o->state_dir = DEFAULT_STATE_DIR;
		if (geteuid() != 0)
			user_dir(o, &o->state_dir, "XDG_STATE_HOME", ".local/state");
	}
	absolute(o, &o->state_dir);
	if (!o->run_dir) {
		o->run_dir = DEFAULT_RUN_DIR;
		if (geteuid() != 0)
			user_dir(o, &o->run_dir, "XDG_RUNTIME_DIR", NULL);
	}
	absolute(o, &o->run_dir);
	if (o->gcroots && strcmp(o->gcroots, "none"))
		absolute(o, &o->gcroots);
	char *err = NULL;
	if (store_finish(st, &err) < 0) {
		int rc = usage_error("%s", err);
		free(err);
		return rc;
	}
	return -1;
}

void options_free(struct options *o)
{
	buf_free(&o->fuse_opts);
	free(o->substituters);
	arena_free(&o->strings);
}
