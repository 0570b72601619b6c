/* bundlectl: checks a bundlefs spec and shows what the mount will serve:
 * the config.json bytes, the closure, or the whole bundle copied to a
 * directory (the way ociTools.buildContainer builds it). */
#include "cli.h"
#include "closure.h"
#include "ctlsock.h"
#include "layout.h"
#include "materialize.h"
#include "mountctl.h"
#include "ocicfg.h"
#include "spec.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_BADSPEC = 2, EXIT_USAGE = 2 };

static const char usage_text[] =
    "usage: bundlectl [STORE OPTIONS] COMMAND ARGS...\n"
    "\n"
    "Commands:\n"
    "  check SPEC                  parse SPEC and resolve every bundle's closure;\n"
    "                              print every problem, exit 0 only if there is none\n"
    "  config [--pretty] SPEC NAME print the config.json of bundle NAME, byte for\n"
    "                              byte as bundlefs serves it (--pretty: indented)\n"
    "  closure SPEC NAME           print the store paths of bundle NAME's closure\n"
    "  materialize SPEC NAME DIR   write bundle NAME to the new directory DIR by\n"
    "                              copying, as ociTools.buildContainer does\n"
    "  status [--json] MOUNTPOINT  show a running mount: its daemon and every\n"
    "                              bundle's state, closure, traffic and root\n"
    "  reload MOUNTPOINT           make a running mount read its spec again\n"
    "  reset MOUNTPOINT NAME       start bundle NAME's writable root (readonly =\n"
    "                              false) afresh: new containers see a clean root\n"
    "  prune [--dry-run] MOUNTPOINT | --state-dir DIR\n"
    "                              remove the writable roots' state that no bundle\n"
    "                              of the spec uses and no container runs on\n"
    "\n"
    "Every command takes --help and --version; those that talk to a mount's\n"
    "daemon take --timeout SECONDS (default 10): how long to wait for it.\n"
    "Exit status: 0 success, 1 failure, 2 bad spec or bad usage.\n"
    "\n";

static const char *const cmd_usage[] = {
    "usage: bundlectl check [STORE OPTIONS] SPEC\n"
    "Parses SPEC and resolves the closure of every bundle in it. Prints each\n"
    "problem as FILE:LINE: message (in a bundle: FILE:LINE: bundle \"NAME\": KEY:\n"
    "message), and what will not happen (a compat = buildcontainer bundle's\n"
    "mounts) as FILE:LINE: warning: .... Exit status 0 when there is no problem,\n"
    "2 otherwise.\n",
    "usage: bundlectl config [--pretty] [STORE OPTIONS] SPEC NAME\n"
    "Prints bundle NAME's config.json exactly as a mount owned by the caller\n"
    "serves it (compact, keys sorted, no trailing newline), or indented with\n"
    "--pretty. A bundle that does not say `rootless` is rootless for a caller\n"
    "who is not root.\n",
    "usage: bundlectl closure [STORE OPTIONS] SPEC NAME\n"
    "Prints the store paths of bundle NAME's closure, sorted, one per line.\n",
    "usage: bundlectl materialize [STORE OPTIONS] SPEC NAME DIR\n"
    "Writes bundle NAME to DIR (which must not exist) by copying its closure, as\n"
    "buildContainer does. On failure DIR is removed again.\n",
    "usage: bundlectl status [--json] [--timeout SECONDS] MOUNTPOINT\n"
    "Shows the bundlefs mount at MOUNTPOINT: its daemon (pid, spec, when it was\n"
    "loaded, state directory, uptime, nodes in memory, RSS) and each bundle (not\n"
    "yet resolved, resolving, ready, retrying or failed with its problems;\n"
    "closure paths and size; requests and bytes served; whether a container runs\n"
    "on it; its root: ro, or a writable root mounted, unmounted or failed; for a\n"
    "closure not all in the store yet, how many paths are here, being realised,\n"
    "not here yet), and what substitution did. --json prints the status\n"
    "document, version 1, whose every field bundlectl(1) lists (STATUS DOCUMENT).\n"
    "A daemon that does not answer within --timeout SECONDS (default 10) fails\n"
    "the command (exit status 1).\n",
    "usage: bundlectl reload [--timeout SECONDS] MOUNTPOINT\n"
    "Makes the bundlefs mount at MOUNTPOINT read its spec again (as SIGHUP does)\n"
    "and waits for it. A spec with problems changes nothing: they are printed as\n"
    "FILE:LINE: message and the exit status is 2. A daemon that does not answer\n"
    "within --timeout SECONDS (default 10) fails the command (exit status 1; the\n"
    "reload may still be done).\n",
    "usage: bundlectl reset [--timeout SECONDS] MOUNTPOINT NAME\n"
    "Starts the writable root of bundle NAME (readonly = false) of the mount at\n"
    "MOUNTPOINT afresh: new containers see a clean root. Containers running on\n"
    "it keep what they see, and write on, until they exit; then what they wrote\n"
    "is removed from the mount's --state-dir. Exit status 2 when the spec has no\n"
    "bundle NAME or it is read-only (`bundlectl prune` removes the state of\n"
    "bundles the spec no longer has). --timeout SECONDS (default 10): how long\n"
    "to wait for the daemon's answer.\n",
    "usage: bundlectl prune [--dry-run] [--timeout SECONDS] MOUNTPOINT\n"
    "       bundlectl prune [--dry-run] [--timeout SECONDS] --state-dir DIR\n"
    "Removes what containers wrote in writable roots that no bundle of the spec\n"
    "uses any more: bundles the spec of the mount at MOUNTPOINT no longer has (or\n"
    "that are read-only now), and the generations `bundlectl reset` left. Never\n"
    "one a container's root uses (an overlay on it in any mount namespace), nor\n"
    "a bundle's current one. With --state-dir, every mount point's state in DIR:\n"
    "a live mount's daemon prunes its own, and the state of a mount point no\n"
    "bundlefs serves goes whole, but what a container uses. Prints one line per\n"
    "generation: removed, kept and why; --dry-run only says what would go.\n"
    "--timeout SECONDS (default 10): how long to wait for each daemon's answer.\n",
};

static void usage(FILE *f)
{
	fputs(usage_text, f);
	fputs(cli_store_help, f);
}

struct opts {
	struct store st;
	bool pretty, json, dry_run;
	const char *state_dir; /* prune --state-dir */
	int timeout_ms;	       /* status, reload, reset, prune: --timeout */
	const char *pos[4];
	int npos;
};

/* --timeout SECONDS: a decimal number, above 0 and at most a day. */
static int parse_timeout(const char *s, int *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400)
		return -1;
	*ms = (int)(v * 1000 + 0.5) > 0 ? (int)(v * 1000 + 0.5) : 1;
	return 0;
}

/* Parses the command's arguments. Returns -1 on a usage error, 1 when
 * --help or --version was answered, 0 otherwise. */
static int parse_args(int argc, char **argv, int cmd, struct opts *o)
{
	bool dashdash = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!dashdash && a[0] == '-' && a[1]) {
			if (!strcmp(a, "--")) {
				dashdash = true;
				continue;
			}
			if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
				fputs(cmd_usage[cmd], stdout);
				fputs(cli_store_help, stdout);
				return 1;
			}
			if (!strcmp(a, "--version")) {
				printf("bundlectl %s\n", BUNDLEFS_VERSION);
				return 1;
			}
			if (!strcmp(a, "--pretty") && cmd == 1) {
				o->pretty = true;
				continue;
			}
			if (!strcmp(a, "--json") && cmd == 4) {
				o->json = true;
				continue;
			}
			if (!strcmp(a, "--dry-run") && cmd == 7) {
				o->dry_run = true;
				continue;
			}
			if (!strcmp(a, "--timeout") && cmd >= 4) {
				if (i + 1 == argc ||
				    parse_timeout(argv[i + 1], &o->timeout_ms) < 0) {
					fprintf(stderr,
						"bundlectl: --timeout needs a number of seconds, "
						"above 0 "
						"and at most 86400\n%s",
						cmd_usage[cmd]);
					return -1;
				}
				i++;
				continue;
			}
			if (!strcmp(a, "--state-dir") && cmd == 7) {
				if (i + 1 == argc || !*argv[i + 1]) {
					fprintf(stderr,
						"bundlectl: --state-dir needs a directory\n%s",
						cmd_usage[cmd]);
					return -1;
				}
				o->state_dir = argv[++i];
				continue;
			}
			char *err = NULL;
			int r = cli_store_arg(&o->st, argc, argv, &i, &err);
			if (r < 0) {
				fprintf(stderr, "bundlectl: %s\n", err);
				free(err);
				return -1;
			}
			if (r == 0) {
				fprintf(stderr, "bundlectl: unknown option %s\n%s", a,
					cmd_usage[cmd]);
				return -1;
			}
			continue;
		}
		if (o->npos == 4) {
			fprintf(stderr, "bundlectl: too many arguments\n%s", cmd_usage[cmd]);
			return -1;
		}
		o->pos[o->npos++] = a;
	}
	char *err = NULL;
	if (store_finish(&o->st, &err) < 0) {
		fprintf(stderr, "bundlectl: %s\n", err);
		free(err);
		return -1;
	}
	return 0;
}

static int load(struct opts *o, struct spec *sp)
{
	struct diags d = {0};
	int r = spec_load(sp, o->pos[0], &o->st, &d);
	diag_print(&d, stderr, NULL);
	diag_clear(&d);
	return r;
}

static const struct bundle *find(const struct spec *sp, const char *name)
{
	const struct bundle *b = spec_find(sp, name);
	if (!b)
		fprintf(stderr, "bundlectl: %s: no bundle named \"%s\"\n", sp->file, name);
	return b;
}

static int resolve(struct opts *o, const struct spec *sp, const struct bundle *b,
		   struct resolver *r, const struct closure **c)
{
	struct diags d = {0};
	int rc = closure_resolve(r, sp, b, c, &d);
	diag_print(&d, stderr, NULL);
	diag_clear(&d);
	return rc;
}

static int cmp_line(const void *a, const void *b)
{
	unsigned x = (*(const struct bundle *const *)a)->line;
	unsigned y = (*(const struct bundle *const *)b)->line;
	return (x > y) - (x < y);
}

static int cmd_check(struct opts *o)
{
	struct spec sp;
	if (load(o, &sp) < 0)
		return EXIT_BADSPEC;
	/* Problems are reported in the order the spec names the bundles. */
	const struct bundle **order = xreallocarray(NULL, sp.n, sizeof(*order));
	for (size_t i = 0; i < sp.n; i++)
		order[i] = &sp.bundles[i];
	qsort(order, sp.n, sizeof(*order), cmp_line);
	struct resolver *r = resolver_new(&o->st);
	int bad = 0;
	for (size_t i = 0; i < sp.n; i++) {
		const struct closure *c;
		struct diags w = {0};
		spec_bundle_warnings(&sp, order[i], &w);
		diag_print(&w, stderr, NULL);
		diag_clear(&w);
		if (resolve(o, &sp, order[i], r, &c) < 0) {
			bad++;
			continue;
		}
		closure_release(r, c);
		/* The mount points, as the mount decides them (bind sources). */
		struct layout l;
		struct diags d = {0};
		if (layout_build(&l, order[i], sp.file, &o->st, NULL, &d) < 0)
			bad++;
		else
			layout_free(&l);
		diag_print(&d, stderr, NULL);
		diag_clear(&d);
	}
	resolver_free(r);
	free(order);
	if (!bad)
		printf("%s: %zu bundle%s OK\n", sp.file, sp.n, sp.n == 1 ? "" : "s");
	spec_free(&sp);
	return bad ? EXIT_BADSPEC : 0;
}

static int cmd_bundle(struct opts *o, int cmd)
{
	struct spec sp;
	if (load(o, &sp) < 0)
		return EXIT_BADSPEC;
	const struct bundle *b = find(&sp, o->pos[1]);
	int rc = 0;
	if (!b) {
		rc = 1;
	} else if (cmd == 1) {
		/* data = bind: the closure is in config.json. */
		struct resolver *r = b->data == SPEC_DATA_BIND ? resolver_new(&o->st) : NULL;
		const struct closure *c = NULL;
		if (r && resolve(o, &sp, b, r, &c) < 0) {
			rc = EXIT_BADSPEC;
		} else {
			struct ocibinds binds = {o->st.dir, o->st.real, c};
			/* (As the mount would serve it to its caller.) */
			struct ociopts opts = {.binds = c ? &binds : NULL,
					       .pretty = o->pretty,
					       .uid = geteuid(),
					       .gid = getegid()};
			size_t len;
			char *cfg = ocicfg_render(b, &opts, &len);
			fwrite(cfg, 1, len, stdout);
			if (o->pretty)
				putchar('\n');
			free(cfg);
		}
		if (c)
			closure_release(r, c);
		resolver_free(r);
	} else {
		struct resolver *r = resolver_new(&o->st);
		const struct closure *c;
		if (resolve(o, &sp, b, r, &c) < 0) {
			rc = EXIT_BADSPEC;
		} else if (cmd == 2) {
			for (size_t i = 0; i < c->n; i++)
				printf("%s/%s\n", o->st.dir, c->base[i]);
			closure_release(r, c);
		} else {
			char *err = NULL;
			if (materialize(&o->st, b, sp.file, c, o->pos[2], &err) < 0) {
				fprintf(stderr, "bundlectl: %s\n", err);
				free(err);
				rc = 1;
			}
			closure_release(r, c);
		}
		resolver_free(r);
	}
	spec_free(&sp);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("bundlectl: writing output");
		rc = rc ? rc : 1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const cmds[] = {"check",  "config", "closure", "materialize",
					   "status", "reload", "reset",	  "prune"};
	static const int nargs[] = {1, 2, 2, 3, 1, 1, 2, 1};
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("bundlectl %s\n", BUNDLEFS_VERSION);
		return 0;
	}
	/* Store options may also come before the command. */
	struct opts o = {.timeout_ms = CTLSOCK_TIMEOUT_MS};
	store_init(&o.st);
	int ci = 1;
	for (; ci < argc && argv[ci][0] == '-'; ci++) {
		char *err = NULL;
		int r = cli_store_arg(&o.st, argc, argv, &ci, &err);
		if (r <= 0) {
			if (r == 0)
				fprintf(stderr, "bundlectl: unknown option %s\n", argv[ci]);
			else
				fprintf(stderr, "bundlectl: %s\n", err);
			free(err);
			store_free(&o.st);
			return EXIT_USAGE;
		}
	}
	int cmd = -1;
	for (int i = 0; ci < argc && i < (int)ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[ci], cmds[i]))
			cmd = i;
	if (cmd < 0) {
		if (ci < argc)
			fprintf(stderr, "bundlectl: unknown command \"%s\"\n", argv[ci]);
		usage(stderr);
		store_free(&o.st);
		return EXIT_USAGE;
	}
	int r = parse_args(argc - ci - 1, argv + ci + 1, cmd, &o);
	int rc;
	if (r != 0) {
		rc = r < 0 ? EXIT_USAGE : 0;
	} else if (o.npos != nargs[cmd] - (o.state_dir != NULL)) {
		fprintf(stderr, "bundlectl: %s takes %d argument%s\n%s", cmds[cmd], nargs[cmd],
			nargs[cmd] == 1 ? "" : "s", cmd_usage[cmd]);
		rc = EXIT_USAGE;
	} else {
		switch (cmd) {
		case 0:
			rc = cmd_check(&o);
			break;
		case 4:
			rc = mountctl_status(o.pos[0], o.json, o.timeout_ms);
			break;
		case 5:
			rc = mountctl_reload(o.pos[0], o.timeout_ms);
			break;
		case 6:
			rc = mountctl_reset(o.pos[0], o.pos[1], o.timeout_ms);
			break;
		case 7:
			rc = o.state_dir ? mountctl_prune_dir(o.state_dir, o.dry_run, o.timeout_ms)
					 : mountctl_prune(o.pos[0], o.dry_run, o.timeout_ms);
			break;
		default:
			rc = cmd_bundle(&o, cmd);
		}
	}
	store_free(&o.st);
	return rc;
}
