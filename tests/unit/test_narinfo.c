/* Unit tests for narinfo (the parser) and subst (settings and signature
 * checks, without fetching). The narinfo and key below were written by
 * Nix 2.8 (`nix copy --to file://...?secret-key=...`), so the signature
 * check is tested against Nix's own signing. */
#include "narinfo.h"
#include "subst.h"
#include "unit.h"

#include <stdlib.h>

static const char nix_narinfo[] =
    "StorePath: /nix/store/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app\n"
    "URL: nar/19sgpgjlf0mv5yvw6q3rw2mhbj2grllq26mb01phlssgv6m3w5r2.nar.xz\n"
    "Compression: xz\n"
    "FileHash: sha256:19sgpgjlf0mv5yvw6q3rw2mhbj2grllq26mb01phlssgv6m3w5r2\n"
    "FileSize: 420\n"
    "NarHash: sha256:0yv7xs9ps84lx01ccrjhavj4fn0vqa211ckvrgk3xk7armbip5rs\n"
    "NarSize: 1280\n"
    "References: 2pzc812cydgah80kagc4j05fww9z250v-tiny n3lm1ic3qsylqkajw0ykd0na582gwksn-links "
    "qb51blfxyzjspdv8fczbhlyl8414wnxl-busybox yy3c054hjpz784647252v5xw5r2cqwcb-script\n"
    "Deriver: 0jvhnjf3h5lrj4xzpcarkmbwqjjb9iim-app.drv\n"
    "Sig: test-1:atlzJiLI65hUVnW5BLpc3fQdYEi7yOZG3I2OAc7RFma2Vszgu3Y9TP4gubK7E1BHelQnsKjXPR1A+/"
    "pljxzOCg==\n";
static const char nix_key[] = "test-1:wLu6oMesIAKnDRK02azLRnebc01qZcOAc5fTuH8HWeo=";

static struct store st;

static void setup(void)
{
	char *err;
	store_init(&st);
	store_finish(&st, &err);
}

static int parse(struct narinfo *ni, const char *text, struct arena *a, char **err)
{
	return narinfo_parse(ni, text, strlen(text), &st, "x.narinfo", a, err);
}

static void parses_what_nix_writes(void)
{
	setup();
	struct arena a = {0};
	struct narinfo ni;
	char *err;
	CHECK_INT(parse(&ni, nix_narinfo, &a, &err), 0);
	CHECK_STR(ni.base, "2advgbmzbjq1l2drgqhc9zfccjglxsiq-app");
	CHECK_STR(ni.compression, "xz");
	CHECK_INT(ni.nar_size, 1280);
	CHECK_INT(ni.file_size, 420);
	CHECK_INT(ni.nrefs, 4);
	CHECK_STR(ni.refs[0], "2pzc812cydgah80kagc4j05fww9z250v-tiny");
	CHECK_STR(ni.refs[3], "yy3c054hjpz784647252v5xw5r2cqwcb-script");
	CHECK_INT(ni.nsigs, 1);
	char *fp = narinfo_fingerprint(&ni, &st);
	CHECK_STR(fp, "1;/nix/store/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app;"
		      "sha256:0yv7xs9ps84lx01ccrjhavj4fn0vqa211ckvrgk3xk7armbip5rs;1280;"
		      "/nix/store/2pzc812cydgah80kagc4j05fww9z250v-tiny,"
		      "/nix/store/n3lm1ic3qsylqkajw0ykd0na582gwksn-links,"
		      "/nix/store/qb51blfxyzjspdv8fczbhlyl8414wnxl-busybox,"
		      "/nix/store/yy3c054hjpz784647252v5xw5r2cqwcb-script");
	free(fp);
	/* No references at all is an empty list; unknown keys are skipped. */
	CHECK_INT(parse(&ni,
			"StorePath: /nix/store/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app\nURL: x\n"
			"NarHash: h\nNarSize: 0\nFuture: whatever\nReferences: \n",
			&a, &err),
		  0);
	CHECK_INT(ni.nrefs, 0);
	arena_free(&a);
}

static void errors_name_the_line(void)
{
	setup();
	struct arena a = {0};
	struct narinfo ni;
	char *err = NULL;
	struct {
		const char *text, *msg;
	} cases[] = {
	    {"URL: x\nNarHash: h\nNarSize: 1\n", "x.narinfo: no StorePath"},
	    {"StorePath: /elsewhere/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app\n",
	     "x.narinfo:1: StorePath \"/elsewhere/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app\" is not "
	     "a path in /nix/store"},
	    {"StorePath: /nix/store/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app\nURL: x\nNarSize: 1x\n",
	     "x.narinfo:3: NarSize \"1x\" is not a number"},
	    {"StorePath: /nix/store/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app\n\nReferences: ../etc\n",
	     "x.narinfo:3: reference \"../etc\" is not a store path name"},
	    {"garbage\n", "x.narinfo:1: expected \"Key: value\""},
	    {"StorePath: /nix/store/2advgbmzbjq1l2drgqhc9zfccjglxsiq-app\nURL: x\nNarSize: 1\n",
	     "x.narinfo: no NarHash"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CHECK_INT(parse(&ni, cases[i].text, &a, &err), -1);
		CHECK_STR(err, cases[i].msg);
		free(err);
		err = NULL;
	}
	CHECK_INT(narinfo_parse(&ni, "a\0b", 3, &st, "x.narinfo", &a, &err), -1);
	CHECK_STR(err, "x.narinfo: contains a NUL byte");
	free(err);
	arena_free(&a);
}

static void signatures_verify_against_trusted_keys(void)
{
	setup();
	struct arena a = {0};
	struct narinfo ni;
	char *err = NULL;
	CHECK_INT(parse(&ni, nix_narinfo, &a, &err), 0);
	struct subst *s = subst_new();
	CHECK(!subst_verify(s, &ni, &st)); /* no key trusted */
	CHECK_INT(subst_add_key(s, nix_key, &err), 0);
	CHECK(subst_verify(s, &ni, &st));
	/* A reference added by someone without the key does not verify. */
	const char *refs[] = {ni.refs[0], "00000000000000000000000000000000-secret"};
	struct narinfo forged = ni;
	forged.refs = refs;
	forged.nrefs = 2;
	CHECK(!subst_verify(s, &forged, &st));
	/* Nor does another size. */
	forged = ni;
	forged.nar_size++;
	CHECK(!subst_verify(s, &forged, &st));
	/* Another key under the same name does not verify. */
	struct subst *other = subst_new();
	CHECK_INT(subst_add_key(other, "test-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &err),
		  0);
	CHECK(!subst_verify(other, &ni, &st));
	/* Unless signatures are not required. */
	subst_require_sigs(other, false);
	CHECK(subst_verify(other, &ni, &st));
	subst_free(other);
	subst_free(s);
	arena_free(&a);
}

static void settings_as_nix_prints_them(void)
{
	struct subst *s = subst_new();
	char *err = NULL;
	CHECK_INT(subst_add_url(s, "file:///srv/cache/", &err), 0);
	CHECK_INT(subst_load_config_text(
		      s,
		      "max-jobs = 1\nsubstituters = https://cache.example/ s3://bucket "
		      "file:///srv/cache\n"
		      "trusted-public-keys = a-1:wLu6oMesIAKnDRK02azLRnebc01qZcOAc5fTuH8HWeo= "
		      "b-1:wLu6oMesIAKnDRK02azLRnebc01qZcOAc5fTuH8HWeo=\nrequire-sigs = true\n",
		      &err),
		  0);
	/* Given first, then Nix's; one cache named twice is asked once; a
	 * kind not read here (s3) is left to Nix. */
	CHECK_INT(subst_count(s), 2);
	CHECK_STR(subst_url(s, 0), "file:///srv/cache/");
	CHECK_STR(subst_url(s, 1), "https://cache.example/");
	char *urls = subst_urls(s);
	CHECK_STR(urls, "file:///srv/cache/ https://cache.example/");
	free(urls);
	CHECK_INT(subst_load_config_text(s, "trusted-public-keys = nocolon\n", &err), -1);
	CHECK_STR(err, "trusted key \"nocolon\": expected NAME:BASE64 of a 32-byte ed25519 public "
		       "key");
	free(err);
	CHECK_INT(subst_add_url(s, "s3://bucket", &err), -1);
	CHECK_STR(err, "substituter \"s3://bucket\": only file://, http:// and https:// caches are "
		       "read");
	free(err);
	CHECK_INT(subst_add_url(s, "file://rel", &err), -1);
	free(err);
	/* An empty setting is no cache. */
	struct subst *none = subst_new();
	CHECK_INT(subst_load_config_text(none, "substituters = \n", &err), 0);
	CHECK_INT(subst_count(none), 0);
	subst_free(none);
	subst_free(s);
}

UNIT_MAIN(CASE(parses_what_nix_writes), CASE(errors_name_the_line),
	  CASE(signatures_verify_against_trusted_keys), CASE(settings_as_nix_prints_them))
