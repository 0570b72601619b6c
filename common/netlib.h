/* netlib: libcurl and libcrypto, loaded when first used.
 *
 * Only binary caches need them: libcurl fetches narinfo over HTTP(S) and
 * libcrypto checks their ed25519 signatures. Linked, they would come with
 * some thirty more libraries and libcurl's global setup (OpenSSL reading
 * its configuration) on every start, of a daemon that mostly serves
 * closures already in the store. So they are not linked: the first use
 * opens each with dlopen(), once per process, and looks up only the
 * functions used here. The build names them (BUNDLEFS_LIBCURL,
 * BUNDLEFS_LIBCRYPTO: their sonames, found like linked libraries, or
 * absolute paths); --version says which. Safe to use from several
 * threads. */
#ifndef BUNDLEFS_NETLIB_H
#define BUNDLEFS_NETLIB_H

#include <curl/curl.h>
#include <openssl/evp.h>

/* The functions used, each named without its library's prefix (curl_,
 * EVP_), with the type the header gives it. */
#define NETLIB_CURL_FUNCS(X)                                                                       \
	X(global_init)                                                                             \
	X(easy_init)                                                                               \
	X(easy_setopt)                                                                             \
	X(easy_getinfo)                                                                            \
	X(easy_strerror)                                                                           \
	X(easy_cleanup)                                                                            \
	X(multi_init)                                                                              \
	X(multi_setopt)                                                                            \
	X(multi_add_handle)                                                                        \
	X(multi_remove_handle)                                                                     \
	X(multi_perform)                                                                           \
	X(multi_poll)                                                                              \
	X(multi_info_read)                                                                         \
	X(multi_cleanup)
#define NETLIB_CRYPTO_FUNCS(X)                                                                     \
	X(PKEY_new_raw_public_key)                                                                 \
	X(PKEY_free)                                                                               \
	X(MD_CTX_new)                                                                              \
	X(MD_CTX_free)                                                                             \
	X(DigestVerifyInit)                                                                        \
	X(DigestVerify)                                                                            \
	/* (libcomposefs's, fs/image.c) */                                                         \
	X(sha256)                                                                                  \
	X(DigestInit_ex)                                                                           \
	X(DigestUpdate)                                                                            \
	X(DigestFinal_ex)

struct netlib_curl {
#define NETLIB_CURL_FIELD(name) __typeof__(curl_##name) *name;
	NETLIB_CURL_FUNCS(NETLIB_CURL_FIELD)
#undef NETLIB_CURL_FIELD
};

struct netlib_crypto {
#define NETLIB_CRYPTO_FIELD(name) __typeof__(EVP_##name) *name;
	NETLIB_CRYPTO_FUNCS(NETLIB_CRYPTO_FIELD)
#undef NETLIB_CRYPTO_FIELD
};

/* libcurl, set up (curl_global_init) by the first call; or NULL when it
 * cannot be loaded, with why in *err (malloc'ed): the library's name and
 * the dynamic linker's words. A failure is final for the process. */
const struct netlib_curl *netlib_curl(char **err);
/* libcrypto, the same way. */
const struct netlib_crypto *netlib_crypto(char **err);

/* What the build loads, as given to dlopen(). */
extern const char netlib_curl_name[], netlib_crypto_name[];

#endif
