/* ocischema-selfcheck: run by the build, it compiles the schema that
 * ocischema.c embeds and checks a minimal document with it, so that a schema
 * the validator cannot apply whole (a newer one, with keywords it does not
 * implement) fails the build with the reason, not every check at run time. */
#include "ocischema.h"

#include <stdio.h>

int main(void)
{
	char why[512];
	cJSON *doc = cJSON_Parse("{\"ociVersion\": \"1.0.2\"}");
	int rc = ocischema_check(doc, why, sizeof(why));
	cJSON_Delete(doc);
	if (rc) {
		fprintf(stderr,
			"ocischema-selfcheck: %s\n(update common/ocischema.c, point "
			"BUNDLEFS_OCI_SCHEMA_DIR at another schema, or configure with "
			"-DBUNDLEFS_OCI_SCHEMA=OFF)\n",
			why);
		return 1;
	}
	return 0;
}
