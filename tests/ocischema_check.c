/* ocischema_check: the OCI schema validator on documents, one JSON document
 * a line on stdin, one verdict a line on stdout: "valid", "invalid\tWHY", or
 * "unparsed" (not JSON). For tests/test_ocischema.py, which compares the
 * verdicts with python3-jsonschema's.
 *   ocischema_check --available    prints yes or no
 *   ocischema_check [--schema-dir DIR] < docs
 * With --schema-dir, the schema is DIR's config-schema.json and the other
 * *.json there, not the one compiled in. */
#include "ocischema.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t load_dir(const char *dir, struct ocischema_file **files)
{
	DIR *d = opendir(dir);
	if (!d) {
		perror(dir);
		exit(2);
	}
	size_t n = 1, cap = 0;
	GROW(*files, n, cap);
	(*files)[0] = (struct ocischema_file){"config-schema.json", NULL, 0};
	for (struct dirent *e; (e = readdir(d));) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 5, ".json") ||
		    !strcmp(e->d_name, "config-schema.json"))
			continue;
		GROW(*files, n, cap);
		(*files)[n++] = (struct ocischema_file){xstrdup(e->d_name), NULL, 0};
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", dir, (*files)[i].name);
		char *text;
		if (read_file(path, 1 << 24, &text, &(*files)[i].len)) {
			perror(path);
			exit(2);
		}
		(*files)[i].text = text;
		free(path);
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--available")) {
		puts(ocischema_available() ? "yes" : "no");
		return 0;
	}
	struct ocischema_file *files = NULL;
	size_t nfiles = 0;
	if (argc == 3 && !strcmp(argv[1], "--schema-dir")) {
		nfiles = load_dir(argv[2], &files);
	} else if (argc != 1) {
		fprintf(stderr, "usage: ocischema_check [--available | --schema-dir DIR]\n");
		return 2;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		cJSON *doc = cJSON_ParseWithLength(line, (size_t)len);
		char why[1024];
		if (!doc) {
			puts("unparsed");
			continue;
		}
		int rc = files ? ocischema_check_files(files, nfiles, doc, why, sizeof(why))
			       : ocischema_check(doc, why, sizeof(why));
		if (rc)
			printf("invalid\t%s\n", why);
		else
			puts("valid");
		cJSON_Delete(doc);
	}
	free(line);
	for (size_t i = 0; i < nfiles; i++) {
		free((char *)files[i].text);
		if (i)
			free((char *)files[i].name);
	}
	free(files);
	return 0;
}
