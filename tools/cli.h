/* cli: the command-line conventions shared by bundlefs and bundlectl:
 * "--opt VALUE" and "--opt=VALUE", and the store options every binary
 * takes. The core library has setters (store_option); the parsing of argv
 * lives here. */
#ifndef BUNDLEFS_CLI_H
#define BUNDLEFS_CLI_H

#include "store.h"

/* Is argv[*i] the option `name` ("--name VALUE" or "--name=VALUE")?
 * Returns 0 when it is not; 1 when it is, with *val its value (NULL when
 * missing) and *i advanced to the last argument used. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* Applies argv[*i] when it is a store option. Returns 1 (and advances
 * *i as cli_opt does), 0 when it is not a store option, or -1 with a
 * message in *err. */
int cli_store_arg(struct store *st, int argc, char **argv, int *i, char **err);

/* The usage text for the store options. */
extern const char cli_store_help[];

#endif
