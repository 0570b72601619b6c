/* subst: finds and checks narinfo in binary caches. */
#include "subst.h"
#include "netlib.h"
#include "strmap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NARINFO_MAX	  (1u << 20)
#define HTTP_PARALLEL	  16
#define HTTP_CONNECT_SECS 10L
#define HTTP_TIMEOUT_SECS 30L
#define NIX_CONFIG_MAX	  (4u << 20)

extern char **environ;

struct key {
	char *name;
	unsigned char raw[32];
};

struct cache {
	char *url;  /* as given, for messages and for Nix */
	char *base; /* what narinfo names are appended to, without a slash */
	bool file;  /* a directory read directly */
};

struct subst {
	pthread_mutex_t lock; /* a leaf: guards found and the counters */
	struct cache *caches;
	size_t ncaches, cachecap;
	struct key *keys;
	size_t nkeys, keycap;
	bool require_sigs;
	char *cafile; /* Nix's ssl-cert-file, or NULL */
	atomic_bool cancelled;
	struct strmap found; /* hash part -> struct narinfo, verified */
	struct arena arena;
	uint64_t fetched, bytes;
};

struct subst *subst_new(void)
{
	struct subst *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->require_sigs = true;
	return s;
}

void subst_free(struct subst *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ncaches; i++) {
		free(s->caches[i].url);
		free(s->caches[i].base);
	}
	for (size_t i = 0; i < s->nkeys; i++)
		free(s->keys[i].name);
	free(s->caches);
	free(s->keys);
	free(s->cafile);
	strmap_free(&s->found);
	arena_free(&s->arena);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int subst_add_url(struct subst *s, const char *url, char **err)
{
	size_t n = strcspn(url, "?");
	bool file = !strncmp(url, "file://", 7);
	if (!file && strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		*err = xasprintf("substituter \"%.200s\": only file://, http:// and https:// "
				 "caches are read",
				 url);
		return -1;
	}
	char *base = file ? xstrndup(url + 7, n - 7) : xstrndup(url, n);
	size_t len = strlen(base);
	while (len > 1 && base[len - 1] == '/')
		base[--len] = 0;
	if (file && base[0] != '/') {
		*err = xasprintf("substituter \"%.200s\": a file:// cache needs an absolute path",
				 url);
		free(base);
		return -1;
	}
	for (size_t i = 0; i < s->ncaches; i++)
		if (!strcmp(s->caches[i].base, base) && s->caches[i].file == file) {
			free(base);
			return 0;
		}
	GROW(s->caches, s->ncaches, s->cachecap);
	s->caches[s->ncaches++] = (struct cache){xstrdup(url), base, file};
	return 0;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes base64 `s` into exactly `n` bytes; false if it is not that. */
static bool b64_decode(const char *s, unsigned char *out, size_t n)
{
	size_t len = strlen(s), o = 0;
	while (len && s[len - 1] == '=')
		len--;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value((unsigned char)s[i]);
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == n)
				return false;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o == n;
}

int subst_add_key(struct subst *s, const char *key, char **err)
{
	const char *colon = strchr(key, ':');
	unsigned char raw[32];
	if (!colon || colon == key || !b64_decode(colon + 1, raw, sizeof(raw))) {
		*err = xasprintf("trusted key \"%.200s\": expected NAME:BASE64 of a 32-byte "
				 "ed25519 public key",
				 key);
		return -1;
	}
	GROW(s->keys, s->nkeys, s->keycap);
	struct key *k = &s->keys[s->nkeys++];
	k->name = xstrndup(key, (size_t)(colon - key));
	memcpy(k->raw, raw, sizeof(raw));
	return 0;
}

void subst_require_sigs(struct subst *s, bool on)
{
	s->require_sigs = on;
}

/* Calls fn for each space-separated word of `v`. */
static int each_word(struct subst *s, char *v, int (*fn)(struct subst *, const char *, char **),
		     char **err)
{
	char *save;
	for (char *w = strtok_r(v, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
		if (fn(s, w, err) < 0)
			return -1;
	return 0;
}

/* A cache of Nix's settings that is not read here (s3://, ssh://...) is
 * left to Nix: it may still realise paths from it. */
static int add_nix_url(struct subst *s, const char *url, char **err)
{
	char *why = NULL;
	if (subst_add_url(s, url, &why) < 0)
		free(why);
	(void)err;
	return 0;
}

int subst_load_config_text(struct subst *s, const char *text, char **err)
{
	char *copy = xstrdup(text);
	int rc = 0;
	char *save;
	for (char *line = strtok_r(copy, "\n", &save); line && rc == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strstr(line, " = ");
		if (!eq)
			continue;
		*eq = 0;
		char *v = eq + 3;
		char *val = xstrdup(v);
		if (!strcmp(line, "substituters"))
			rc = each_word(s, val, add_nix_url, err);
		else if (!strcmp(line, "trusted-public-keys"))
			rc = each_word(s, val, subst_add_key, err);
		else if (!strcmp(line, "require-sigs"))
			s->require_sigs = strcmp(val, "false") != 0;
		else if (!strcmp(line, "ssl-cert-file") && *val) {
			free(s->cafile);
			s->cafile = xstrdup(val);
		}
		free(val);
	}
	free(copy);
	return rc;
}

int subst_load_nix_config(struct subst *s, const char *nix, char **err)
{
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		*err = xasprintf("nix show-config: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	char *argv[] = {(char *)nix, "--extra-experimental-features", "nix-command", "show-config",
			NULL};
	pid_t pid;
	int e = posix_spawnp(&pid, nix, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	if (e) {
		close(out[0]);
		*err = xasprintf("%s show-config: %s", nix, strerror(e));
		return -1;
	}
	struct buf text = {0};
	int rr = read_stream(out[0], NIX_CONFIG_MAX, &text);
	close(out[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rr < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		*err = xasprintf("%s show-config failed (%s)", nix,
				 rr < 0 ? strerror(errno) : "see its messages above");
		buf_free(&text);
		return -1;
	}
	int rc = subst_load_config_text(s, text.data, err);
	buf_free(&text);
	return rc;
}

size_t subst_count(const struct subst *s)
{
	return s->ncaches;
}

const char *subst_url(const struct subst *s, size_t i)
{
	return s->caches[i].url;
}

char *subst_urls(const struct subst *s)
{
	struct buf b = {0};
	for (size_t i = 0; i < s->ncaches; i++) {
		if (i)
			buf_addc(&b, ' ');
		buf_adds(&b, s->caches[i].url);
	}
	buf_addc(&b, 0);
	return b.data;
}

static bool verify_one(const struct netlib_crypto *c, const struct key *k, const char *fp,
		       const unsigned char *sig)
{
	EVP_PKEY *pk = c->PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, k->raw, 32);
	EVP_MD_CTX *ctx = pk ? c->MD_CTX_new() : NULL;
	bool ok = ctx && c->DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		  c->DigestVerify(ctx, sig, 64, (const unsigned char *)fp, strlen(fp)) == 1;
	c->MD_CTX_free(ctx);
	c->PKEY_free(pk);
	return ok;
}

/* subst_verify(), saying in *err (malloc'ed) when no signature could be
 * checked: libcrypto, loaded for the first signature by a trusted key's
 * name, cannot be. */
static bool verify(const struct subst *s, const struct narinfo *ni, const struct store *st,
		   char **err)
{
	*err = NULL;
	if (!s->require_sigs)
		return true;
	const struct netlib_crypto *c = NULL;
	char *fp = NULL;
	bool ok = false;
	for (size_t i = 0; i < ni->nsigs && !ok && !*err; i++) {
		const char *colon = strchr(ni->sigs[i], ':');
		unsigned char sig[64];
		if (!colon || !b64_decode(colon + 1, sig, sizeof(sig)))
			continue;
		size_t nlen = (size_t)(colon - ni->sigs[i]);
		for (size_t k = 0; k < s->nkeys && !ok; k++) {
			if (strlen(s->keys[k].name) != nlen ||
			    memcmp(s->keys[k].name, ni->sigs[i], nlen))
				continue;
			if (!c && !(c = netlib_crypto(err)))
				break;
			if (!fp)
				fp = narinfo_fingerprint(ni, st);
			ok = verify_one(c, &s->keys[k], fp, sig);
		}
	}
	free(fp);
	return ok;
}

bool subst_verify(const struct subst *s, const struct narinfo *ni, const struct store *st)
{
	char *err;
	bool ok = verify(s, ni, st, &err);
	free(err);
	return ok;
}

/* One narinfo being looked up in the current cache. */
struct fetch {
	size_t i; /* index into the caller's arrays */
	char *url;
	struct buf body;
	bool too_big;
	long status; /* HTTP status, 200 for a file read, 404 when not there */
	char *error; /* a failure other than "not there" */
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct fetch *f = ctx;
	if (f->body.len + size * n > NARINFO_MAX) {
		f->too_big = true;
		return 0;
	}
	buf_add(&f->body, p, size * n);
	return size * n;
}

static void fetch_file(struct fetch *f)
{
	char *text;
	size_t len;
	if (read_file(f->url, NARINFO_MAX, &text, &len) < 0) {
		if (errno == ENOENT)
			f->status = 404;
		else
			f->error = xasprintf("%s: %s", f->url, strerror(errno));
		return;
	}
	buf_add(&f->body, text, len);
	free(text);
	f->status = 200;
}

/* The CA certificates HTTPS caches are checked against, as Nix finds
 * them: its ssl-cert-file setting, NIX_SSL_CERT_FILE, SSL_CERT_FILE; else
 * libcurl's default. */
static const char *cafile(const struct subst *s)
{
	const char *f = s->cafile;
	if (!f || !*f)
		f = getenv("NIX_SSL_CERT_FILE");
	if (!f || !*f)
		f = getenv("SSL_CERT_FILE");
	return f && *f ? f : NULL;
}

static void fetch_http(const struct subst *s, struct fetch *v, size_t n)
{
	char *err = NULL;
	const struct netlib_curl *curl = netlib_curl(&err);
	if (!curl) {
		for (size_t i = 0; i < n; i++)
			v[i].error = xasprintf("%s: %s", v[i].url, err);
		free(err);
		return;
	}
	const char *ca = cafile(s);
	CURLM *m = curl->multi_init();
	curl->multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)HTTP_PARALLEL);
	char(*errbuf)[CURL_ERROR_SIZE] = xcalloc(n ? n : 1, sizeof(*errbuf));
	CURL **hs = xcalloc(n ? n : 1, sizeof(*hs));
	for (size_t i = 0; i < n; i++) {
		CURL *h = hs[i] = curl->easy_init();
		curl->easy_setopt(h, CURLOPT_URL, v[i].url);
		curl->easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl->easy_setopt(h, CURLOPT_WRITEDATA, &v[i]);
		curl->easy_setopt(h, CURLOPT_PRIVATE, &v[i]);
		curl->easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf[i]);
		curl->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl->easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl->easy_setopt(h, CURLOPT_CONNECTTIMEOUT, HTTP_CONNECT_SECS);
		curl->easy_setopt(h, CURLOPT_TIMEOUT, HTTP_TIMEOUT_SECS);
		curl->easy_setopt(h, CURLOPT_USERAGENT, "bundlefs");
		if (ca)
			curl->easy_setopt(h, CURLOPT_CAINFO, ca);
		curl->multi_add_handle(m, h);
	}
	int running = 1;
	while (running && !atomic_load(&s->cancelled)) {
		if (curl->multi_perform(m, &running) != CURLM_OK)
			break;
		if (running)
			curl->multi_poll(m, NULL, 0, 100, NULL);
	}
	CURLMsg *msg;
	int left;
	while ((msg = curl->multi_info_read(m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct fetch *f;
		curl->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		if (msg->data.result != CURLE_OK) {
			const char *eb = errbuf[f - v];
			f->error = xasprintf("%s: %s", f->url,
					     f->too_big ? "larger than 1 MiB"
					     : *eb	? eb
							: curl->easy_strerror(msg->data.result));
			continue;
		}
		curl->easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &f->status);
		/* A cache without the path answers 404 (S3: 403). */
		if (f->status != 200 && f->status != 404 && f->status != 403)
			f->error = xasprintf("%s: HTTP status %ld", f->url, f->status);
		if (f->status == 403)
			f->status = 404;
	}
	/* (What a cancel cut short never finished.) */
	for (size_t i = 0; i < n; i++)
		if (!v[i].error && !v[i].status)
			v[i].error = xasprintf("%s: cancelled", v[i].url);
	for (size_t i = 0; i < n; i++) {
		curl->multi_remove_handle(m, hs[i]);
		curl->easy_cleanup(hs[i]);
	}
	free(hs);
	curl->multi_cleanup(m);
	free(errbuf);
}

/* Keeps a verified narinfo (what the closure needs of it). */
static const struct narinfo *ni_keep(struct subst *s, const struct narinfo *ni)
{
	pthread_mutex_lock(&s->lock);
	struct narinfo *have = strmap_get(&s->found, ni->base, STORE_HASH_LEN);
	if (!have) {
		struct arena *a = &s->arena;
		have = arena_alloc(a, sizeof(*have));
		memset(have, 0, sizeof(*have));
		have->base = arena_strdup(a, ni->base);
		have->url = arena_strdup(a, ni->url);
		have->nar_hash = arena_strdup(a, ni->nar_hash);
		have->nar_size = ni->nar_size;
		have->file_size = ni->file_size;
		have->nrefs = ni->nrefs;
		have->refs = arena_alloc(a, (ni->nrefs + 1) * sizeof(*have->refs));
		for (size_t i = 0; i < ni->nrefs; i++)
			have->refs[i] = arena_strdup(a, ni->refs[i]);
		strmap_put(&s->found, have->base, STORE_HASH_LEN, have);
	}
	pthread_mutex_unlock(&s->lock);
	return have;
}

bool subst_nar_size(struct subst *s, const char *base, uint64_t *size)
{
	if (strlen(base) < STORE_HASH_LEN)
		return false;
	pthread_mutex_lock(&s->lock);
	const struct narinfo *ni = strmap_get(&s->found, base, STORE_HASH_LEN);
	if (ni)
		*size = ni->nar_size;
	pthread_mutex_unlock(&s->lock);
	return ni != NULL;
}

void subst_lookup(struct subst *s, const struct store *st, const char *const *bases, size_t n,
		  const struct narinfo **out, char **why)
{
	struct buf *reasons = xcalloc(n ? n : 1, sizeof(*reasons));
	struct fetch *v = xcalloc(n ? n : 1, sizeof(*v));
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		why[i] = NULL;
		out[i] = strmap_get(&s->found, bases[i], STORE_HASH_LEN);
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t c = 0; c < s->ncaches; c++) {
		const struct cache *cache = &s->caches[c];
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (out[i])
				continue;
			v[k] = (struct fetch){.i = i};
			v[k].url =
			    xasprintf("%s/%.*s.narinfo", cache->base, STORE_HASH_LEN, bases[i]);
			k++;
		}
		if (!k)
			break;
		if (cache->file)
			for (size_t j = 0; j < k; j++)
				fetch_file(&v[j]);
		else
			fetch_http(s, v, k);
		for (size_t j = 0; j < k; j++) {
			struct fetch *f = &v[j];
			struct buf *r = &reasons[f->i];
			if (r->len)
				buf_adds(r, "; ");
			pthread_mutex_lock(&s->lock);
			s->fetched += f->status == 200;
			s->bytes += f->body.len;
			pthread_mutex_unlock(&s->lock);
			if (f->error) {
				buf_adds(r, f->error);
			} else if (f->status == 404) {
				buf_addf(r, "%s: not there", cache->url);
			} else {
				struct arena a = {0};
				struct narinfo ni;
				char *err;
				if (narinfo_parse(&ni, f->body.data ? f->body.data : "",
						  f->body.len, st, f->url, &a, &err) < 0) {
					buf_adds(r, err);
					free(err);
				} else if (strcmp(ni.base, bases[f->i])) {
					buf_addf(r, "%s: describes %s/%s", f->url, st->dir,
						 ni.base);
				} else if (!verify(s, &ni, st, &err)) {
					if (err)
						buf_addf(r,
							 "%s: its signatures cannot be checked: %s",
							 f->url, err);
					else
						buf_addf(r, "%s: no signature by a trusted key",
							 f->url);
					free(err);
				} else {
					out[f->i] = ni_keep(s, &ni);
				}
				arena_free(&a);
			}
			free(f->error);
			free(f->url);
			buf_free(&f->body);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!out[i]) {
			if (!s->ncaches)
				buf_adds(&reasons[i], "no substituters");
			buf_addc(&reasons[i], 0);
			why[i] = reasons[i].data;
		} else {
			buf_free(&reasons[i]);
		}
	}
	free(reasons);
	free(v);
}

void subst_cancel(struct subst *s)
{
	atomic_store(&s->cancelled, true);
}

void subst_stats(struct subst *s, uint64_t *fetched, uint64_t *bytes)
{
	pthread_mutex_lock(&s->lock);
	*fetched = s->fetched;
	*bytes = s->bytes;
	pthread_mutex_unlock(&s->lock);
}
