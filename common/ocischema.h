/* ocischema: checks a config.json document against the OCI runtime-spec's
 * JSON schema (config-schema.json and the files it refers to), compiled
 * into the library from Debian's golang-github-opencontainers-specs-dev
 * when the build found it. The validator implements the part of JSON
 * Schema draft-04 those files use and refuses a schema that uses more, so
 * that a newer schema cannot pass for checked with some of its rules
 * silently ignored. */
#ifndef BUNDLEFS_OCISCHEMA_H
#define BUNDLEFS_OCISCHEMA_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* 0: valid; -1: invalid, the first violation in `why` as "JSON-POINTER:
 * what is wrong" (e.g. "/mounts/2: required property \"destination\"
 * missing"; the document itself is "(root)"). Without a compiled-in schema
 * (see ocischema_available) every document passes: 0, `why` empty. The
 * schema is parsed on the first call (thread-safe) and kept; a schema the
 * validator cannot apply whole makes every call -1, saying why. */
int ocischema_check(const cJSON *doc, char *why, size_t wl);

/* Was the schema compiled in? */
bool ocischema_available(void);

/* One schema file, as a $ref names it ("defs.json") and its text. */
struct ocischema_file {
	const char *name;
	const char *text;
	size_t len;
};

/* ocischema_check against the given files (the first is the root) instead
 * of the compiled-in ones, compiled for this call alone: for the tests and
 * the build's check of the schema it compiles in. A schema that cannot be
 * applied is -1 with a message that starts with "schema: ". */
int ocischema_check_files(const struct ocischema_file *files, size_t n, const cJSON *doc, char *why,
			  size_t wl);

#endif
