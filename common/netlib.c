/* netlib: libcurl and libcrypto, loaded when first used. */
#include "netlib.h"
#include "util.h"

#include <dlfcn.h>
#include <pthread.h>

#ifndef BUNDLEFS_LIBCURL
#error "the build names libcurl (BUNDLEFS_LIBCURL)"
#endif
#ifndef BUNDLEFS_LIBCRYPTO
#error "the build names libcrypto (BUNDLEFS_LIBCRYPTO)"
#endif

const char netlib_curl_name[] = BUNDLEFS_LIBCURL;
const char netlib_crypto_name[] = BUNDLEFS_LIBCRYPTO;

/* Opens library `name`, or says why not in *err. Never closed: what was
 * looked up in it stays in use for the life of the process. */
static void *open_lib(const char *name, char **err)
{
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		*err = xasprintf("cannot load %s: %s", name, dlerror());
	return h;
}

/* The address of `sym` in h, or NULL with why in *err (the first
 * failure only: the rest are not looked up). */
static void *find(void *h, const char *name, const char *sym, char **err)
{
	if (*err)
		return NULL;
	dlerror();
	void *p = dlsym(h, sym);
	if (!p)
		*err = xasprintf("cannot load %s: %s", name, dlerror());
	return p;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static struct netlib_curl curl;
static char *curl_err; /* why it could not be loaded, or NULL */

static void curl_load(void)
{
	void *h = open_lib(netlib_curl_name, &curl_err);
	if (!h)
		return;
#define LOAD(name)                                                                                 \
	curl.name = (__typeof__(curl.name))find(h, netlib_curl_name, "curl_" #name, &curl_err);
	NETLIB_CURL_FUNCS(LOAD)
#undef LOAD
	if (curl_err)
		return;
	CURLcode e = curl.global_init(CURL_GLOBAL_DEFAULT);
	if (e != CURLE_OK)
		curl_err = xasprintf("%s: curl_global_init failed: %s", netlib_curl_name,
				     curl.easy_strerror(e));
}

const struct netlib_curl *netlib_curl(char **err)
{
	pthread_once(&curl_once, curl_load);
	if (curl_err) {
		*err = xstrdup(curl_err);
		return NULL;
	}
	return &curl;
}

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static struct netlib_crypto crypto;
static char *crypto_err;

static void crypto_load(void)
{
	void *h = open_lib(netlib_crypto_name, &crypto_err);
	if (!h)
		return;
#define LOAD(name)                                                                                 \
	crypto.name =                                                                              \
	    (__typeof__(crypto.name))find(h, netlib_crypto_name, "EVP_" #name, &crypto_err);
	NETLIB_CRYPTO_FUNCS(LOAD)
#undef LOAD
}

const struct netlib_crypto *netlib_crypto(char **err)
{
	pthread_once(&crypto_once, crypto_load);
	if (crypto_err) {
		*err = xstrdup(crypto_err);
		return NULL;
	}
	return &crypto;
}
