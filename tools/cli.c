/* cli: option syntax shared by the binaries. */
#include "cli.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n])
		return 0;
	*val = *i + 1 < argc ? argv[++*i] : NULL;
	return 1;
}

int cli_store_arg(struct store *st, int argc, char **argv, int *i, char **err)
{
	static const char *const names[] = {"--store-dir", "--real-store", "--db"};
	for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
		const char *val;
		if (cli_opt(argc, argv, i, names[k], &val))
			return store_option(st, names[k], val, err) < 0 ? -1 : 1;
	}
	return 0;
}

const char cli_store_help[] =
    "Store options:\n"
    "  --store-dir DIR    the logical store directory that paths are written with\n"
    "                     and that containers see (default $NIX_STORE_DIR or " STORE_DEFAULT_DIR
    ")\n"
    "  --real-store DIR   where the store's entries physically are (default: the\n"
    "                     store directory)\n"
    "  --db FILE|none     Nix's SQLite database used to resolve closures (default:\n"
    "                     var/nix/db/db.sqlite beside the real store); `none` skips\n"
    "                     it and scans store paths for references instead\n";
