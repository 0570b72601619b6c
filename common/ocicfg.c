/* ocicfg: renders config.json with cJSON: buildContainer's document, made
 * valid OCI (no "options": null) unless the bundle asks for compat =
 * buildcontainer, plus the bundle's optional process settings.
 *
 * Byte compatibility with buildContainer rests on three facts about Nix's
 * builtins.toJSON: attribute names come out sorted bytewise (we sort every
 * object before printing), output has no whitespace (cJSON's unformatted
 * printer), and strings escape only '"', '\\' and control characters, as
 * \b \f \n \r \t or \u00xx, leaving other UTF-8 as it is (cJSON's string
 * printer does the same). */
#include "ocicfg.h"
#include "keys.gen.h"
#include "closure.h"
#include "json.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* buildContainer's sysMounts, in the order of their destinations. */
#define OPTS(...) ((const char *const[]){__VA_ARGS__, NULL})
static const struct ocimount sys_mounts[] = {
    {.dest = "/dev",
     .type = "tmpfs",
     .source = "tmpfs",
     .options = OPTS("nosuid", "strictatime", "mode=755", "size=65536k")},
    {.dest = "/dev/mqueue",
     .type = "mqueue",
     .source = "mqueue",
     .options = OPTS("nosuid", "noexec", "nodev")},
    {.dest = "/dev/pts",
     .type = "devpts",
     .source = "devpts",
     .options = OPTS("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=755", "gid=5")},
    {.dest = "/dev/shm",
     .type = "tmpfs",
     .source = "shm",
     .options = OPTS("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")},
    {.dest = "/proc", .type = "proc", .source = "proc"},
    {.dest = "/sys",
     .type = "sysfs",
     .source = "sysfs",
     .options = OPTS("nosuid", "noexec", "nodev", "ro")},
    {.dest = "/sys/fs/cgroup",
     .type = "cgroup",
     .source = "cgroup",
     .options = OPTS("nosuid", "noexec", "nodev", "relatime", "ro")},
};

static int cmp_dest(const void *a, const void *b)
{
	return strcmp(((const struct ocimount *)a)->dest, ((const struct ocimount *)b)->dest);
}

struct ocimount *ocicfg_mounts(const struct bundle *b, const struct ocibinds *binds, size_t *n)
{
	/* buildContainer writes its sysMounts alone: it takes `mounts` and
	 * drops them. */
	size_t nu = b->buildcontainer ? 0 : b->nmounts;
	size_t nb = binds ? binds->closure->n : 0;
	size_t cap = ARRAY_SIZE(sys_mounts) + nu + nb, k = 0;
	struct ocimount *m = xreallocarray(NULL, cap ? cap : 1, sizeof(*m));
	for (size_t i = 0; i < nu; i++) {
		const struct spec_mount *u = &b->mounts[i];
		m[k++] = (struct ocimount){u->dest, u->type, u->source, u->options, NULL};
	}
	for (size_t i = 0; i < ARRAY_SIZE(sys_mounts); i++) {
		bool replaced = false;
		for (size_t j = 0; j < nu && !replaced; j++)
			replaced = !strcmp(b->mounts[j].dest, sys_mounts[i].dest);
		if (!replaced)
			m[k++] = sys_mounts[i];
	}
	qsort(m, k, sizeof(*m), cmp_dest);
	/* After the others, in the closure's order: the store directory
	 * (a mount point of its own, or none) comes before its entries. */
	static const char *const bind_opts[] = {"bind", "ro", "nosuid", "nodev", NULL};
	for (size_t i = 0; i < nb; i++) {
		const char *base = binds->closure->base[i];
		size_t dl = strlen(binds->dir) + 1 + strlen(base) + 1;
		char *o = xmalloc(dl + strlen(binds->real) + 1 + strlen(base) + 1);
		sprintf(o, "%s/%s", binds->dir, base);
		sprintf(o + dl, "%s/%s", binds->real, base);
		m[k++] = (struct ocimount){o, "bind", o + dl, bind_opts, o};
	}
	*n = k;
	return m;
}

void ocicfg_mounts_free(struct ocimount *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].owned);
	free(m);
}

static cJSON *strings(const char *const *v)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; v[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Nix sorts attribute names bytewise; strcmp compares as unsigned char.
 * (An object's keys are unique: the order is total.) */
static void sort_keys(cJSON *o)
{
	for (cJSON *c = o->child; c; c = c->next)
		sort_keys(c);
	if (!cJSON_IsObject(o) || !o->child)
		return;
	size_t n = 0;
	for (cJSON *c = o->child; c; c = c->next)
		n++;
	cJSON **v = xreallocarray(NULL, n, sizeof(*v));
	n = 0;
	for (cJSON *c = o->child; c; c = c->next)
		v[n++] = c;
	qsort(v, n, sizeof(*v), cmp_member);
	for (size_t i = 0; i < n; i++) {
		v[i]->prev = i ? v[i - 1] : v[n - 1]; /* cJSON: head's prev is the tail */
		v[i]->next = i + 1 < n ? v[i + 1] : NULL;
	}
	o->child = v[0];
	free(v);
}

/* ---- names Linux gives ---------------------------------------------------- */

/* From nix/keys.json's "names" (keys.gen.h), which nix/bundlefs.nix
 * checks by too. */
_Static_assert(BUNDLEFS_NAMES_CAPABILITIES_N == OCICFG_NCAPS,
	       "nix/keys.json names another number of capabilities than ocicfg.h");
_Static_assert(BUNDLEFS_NAMES_RLIMITS_N == OCICFG_NRLIMITS,
	       "nix/keys.json names another number of resource limits than ocicfg.h");
const char *const ocicfg_cap_names[OCICFG_NCAPS] = {BUNDLEFS_NAMES_CAPABILITIES};
const char *const ocicfg_rlimit_names[OCICFG_NRLIMITS] = {BUNDLEFS_NAMES_RLIMITS};
const char *const ocicfg_default_masked[] = {BUNDLEFS_NAMES_DEFAULT_MASKED_PATHS NULL};
const char *const ocicfg_default_readonly[] = {BUNDLEFS_NAMES_DEFAULT_READONLY_PATHS NULL};

uint64_t ocicfg_default_caps(void)
{
	static const char *const names[] = {BUNDLEFS_NAMES_DEFAULT_CAPABILITIES};
	uint64_t caps = 0;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		for (int c = 0; c < OCICFG_NCAPS; c++)
			if (!strcmp(names[i], ocicfg_cap_names[c]))
				caps |= UINT64_C(1) << c;
	return caps;
}

/* ---- rendering -------------------------------------------------------------- */

/* A JSON number as cJSON holds it: an integer that a double cannot hold
 * exactly stays as written (cJSON would print it rounded). */
static cJSON *number(const char *raw)
{
	const char *d = raw + (raw[0] == '-');
	bool integer = *d && strspn(d, "0123456789") == strlen(d);
	if (integer && strlen(d) > 15)
		return cJSON_CreateRaw(raw);
	return cJSON_CreateNumber(strtod(raw, NULL));
}

static cJSON *from_json(const struct json *v)
{
	cJSON *o;
	switch (v->type) {
	case JSON_NULL:
		return cJSON_CreateNull();
	case JSON_FALSE:
		return cJSON_CreateFalse();
	case JSON_TRUE:
		return cJSON_CreateTrue();
	case JSON_NUMBER:
		return number(v->raw);
	case JSON_STRING:
		return cJSON_CreateString(v->str);
	case JSON_ARRAY:
		o = cJSON_CreateArray();
		for (size_t i = 0; i < v->n; i++)
			cJSON_AddItemToArray(o, from_json(v->items[i]));
		return o;
	case JSON_OBJECT:
		o = cJSON_CreateObject();
		for (size_t i = 0; i < v->n; i++)
			cJSON_AddItemToObject(o, v->members[i].key, from_json(v->members[i].val));
		return o;
	}
	abort();
}

cJSON *ocicfg_merge_patch(cJSON *target, const struct json *patch)
{
	if (patch->type != JSON_OBJECT) {
		cJSON_Delete(target);
		return from_json(patch);
	}
	if (!cJSON_IsObject(target)) {
		cJSON_Delete(target);
		target = cJSON_CreateObject();
	}
	for (size_t i = 0; i < patch->n; i++) {
		const struct json_member *m = &patch->members[i];
		cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(target, m->key);
		if (m->val->type == JSON_NULL)
			cJSON_Delete(old);
		else
			cJSON_AddItemToObject(target, m->key, ocicfg_merge_patch(old, m->val));
	}
	return target;
}

/* The capability set, by name (as runc spec sorts them). */
static cJSON *cap_list(uint64_t set)
{
	const char *v[OCICFG_NCAPS + 1];
	size_t n = 0;
	for (int c = 0; c < OCICFG_NCAPS; c++)
		if (set >> c & 1)
			v[n++] = ocicfg_cap_names[c];
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			const char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	v[n] = NULL;
	return strings(v);
}

/* process.capabilities: the set in the bounding, effective and permitted
 * sets; for a user other than root also the inheritable and ambient ones,
 * which a process keeps across its exec only there. */
static void add_capabilities(cJSON *proc, const struct bundle *b)
{
	cJSON *c = cJSON_AddObjectToObject(proc, "capabilities");
	static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable",
					   "ambient"};
	bool root = (b->user ? b->uid : 0) == 0;
	for (size_t i = 0; i < (root ? 3 : 5); i++)
		cJSON_AddItemToObject(c, sets[i], cap_list(spec_extra(b)->caps));
}

static int cmp_member_ptr(const void *a, const void *b)
{
	return strcmp((*(const struct json_member *const *)a)->key,
		      (*(const struct json_member *const *)b)->key);
}

/* process.rlimits: [{type, soft, hard}], sorted by type. */
static void add_rlimits(cJSON *proc, const struct json *r)
{
	const struct json_member **m = xreallocarray(NULL, r->n ? r->n : 1, sizeof(*m));
	for (size_t i = 0; i < r->n; i++)
		m[i] = &r->members[i];
	qsort(m, r->n, sizeof(*m), cmp_member_ptr);
	cJSON *a = cJSON_AddArrayToObject(proc, "rlimits");
	for (size_t i = 0; i < r->n; i++) {
		const struct json *v = m[i]->val;
		const struct json *soft = v->type == JSON_OBJECT ? json_get(v, "soft") : v;
		const struct json *hard = v->type == JSON_OBJECT ? json_get(v, "hard") : v;
		cJSON *l = cJSON_CreateObject();
		cJSON_AddStringToObject(l, "type", m[i]->key);
		cJSON_AddItemToObject(l, "soft", number(soft->raw));
		cJSON_AddItemToObject(l, "hard", number(hard->raw));
		cJSON_AddItemToArray(a, l);
	}
	free(m);
}

bool ocicfg_rootless(const struct bundle *b, uint32_t uid)
{
	/* Unsaid, a bundle is rootless where the owner is not root; not with
	 * compat = buildcontainer, whose bytes are buildContainer's. */
	enum spec_opt r = spec_extra(b)->rootless;
	if (r != SPEC_ABSENT)
		return r == SPEC_YES;
	return !b->buildcontainer && uid != 0;
}

static cJSON *id_mapping(uint32_t host)
{
	cJSON *a = cJSON_CreateArray(), *m = cJSON_CreateObject();
	cJSON_AddNumberToObject(m, "containerID", 0);
	cJSON_AddNumberToObject(m, "hostID", host);
	cJSON_AddNumberToObject(m, "size", 1);
	cJSON_AddItemToArray(a, m);
	return a;
}

/* What runc's specconv.ToRootless does to a spec (runc spec --rootless):
 * no network namespace, a user namespace (last) mapping root to the owner,
 * /sys a read-only rbind of the host's (a sysfs needs a network namespace
 * of one's own), no uid= or gid= mount options (those ids are not mapped),
 * no cgroup resources. */
static void make_rootless(cJSON *root, const struct ociopts *o)
{
	cJSON *linux_ = cJSON_GetObjectItemCaseSensitive(root, "linux");
	cJSON *ns = cJSON_GetObjectItemCaseSensitive(linux_, "namespaces");
	for (cJSON *n = ns->child, *next; n; n = next) {
		next = n->next;
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "type"));
		if (t && (!strcmp(t, "network") || !strcmp(t, "user")))
			cJSON_Delete(cJSON_DetachItemViaPointer(ns, n));
	}
	cJSON *user = cJSON_CreateObject();
	cJSON_AddStringToObject(user, "type", "user");
	cJSON_AddItemToArray(ns, user);
	cJSON_AddItemToObject(linux_, "uidMappings", id_mapping(o->uid));
	cJSON_AddItemToObject(linux_, "gidMappings", id_mapping(o->gid));
	cJSON_DeleteItemFromObjectCaseSensitive(linux_, "resources");

	cJSON *mounts = cJSON_GetObjectItemCaseSensitive(root, "mounts");
	for (cJSON *m = mounts->child; m; m = m->next) {
		const char *dest =
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "destination"));
		if (dest && !strcmp(dest, "/sys")) {
			static const char *const opts[] = {"rbind", "nosuid", "noexec",
							   "nodev", "ro",     NULL};
			cJSON_ReplaceItemInObjectCaseSensitive(m, "type",
							       cJSON_CreateString("none"));
			cJSON_ReplaceItemInObjectCaseSensitive(m, "source",
							       cJSON_CreateString("/sys"));
			cJSON_DeleteItemFromObjectCaseSensitive(m, "options");
			cJSON_AddItemToObject(m, "options", strings(opts));
			continue;
		}
		cJSON *opts = cJSON_GetObjectItemCaseSensitive(m, "options");
		if (!cJSON_IsArray(opts))
			continue;
		for (cJSON *x = opts->child, *next; x; x = next) {
			next = x->next;
			const char *s = cJSON_GetStringValue(x);
			if (s && (!strncmp(s, "gid=", 4) || !strncmp(s, "uid=", 4)))
				cJSON_Delete(cJSON_DetachItemViaPointer(opts, x));
		}
		/* (runc leaves an emptied list out.) */
		if (!opts->child)
			cJSON_DeleteItemFromObjectCaseSensitive(m, "options");
	}
}

char *ocicfg_render(const struct bundle *b, const struct ociopts *opts, size_t *len)
{
	const struct ocibinds *binds = opts->binds;
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "ociVersion", "1.0.0");

	cJSON *platform = cJSON_AddObjectToObject(root, "platform");
	cJSON_AddStringToObject(platform, "os", b->os);
	cJSON_AddStringToObject(platform, "arch", b->arch);

	cJSON *linux_ = cJSON_AddObjectToObject(root, "linux");
	cJSON *ns = cJSON_AddArrayToObject(linux_, "namespaces");
	static const char *const nstypes[] = {"pid", "network", "mount", "ipc", "uts"};
	for (size_t i = 0; i < ARRAY_SIZE(nstypes); i++) {
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "type", nstypes[i]);
		cJSON_AddItemToArray(ns, t);
	}

	cJSON *r = cJSON_AddObjectToObject(root, "root");
	cJSON_AddStringToObject(r, "path", "rootfs");
	cJSON_AddBoolToObject(r, "readonly", b->readonly);
	if (b->hostname)
		cJSON_AddStringToObject(root, "hostname", b->hostname);

	cJSON *proc = cJSON_AddObjectToObject(root, "process");
	cJSON_AddItemToObject(proc, "args", strings(b->args));
	cJSON *user = cJSON_AddObjectToObject(proc, "user");
	cJSON_AddNumberToObject(user, "uid", b->user ? b->uid : 0);
	cJSON_AddNumberToObject(user, "gid", b->user ? b->gid : 0);
	if (b->ngids) {
		cJSON *g = cJSON_AddArrayToObject(user, "additionalGids");
		for (size_t i = 0; i < b->ngids; i++)
			cJSON_AddItemToArray(g, cJSON_CreateNumber(b->gids[i]));
	}
	cJSON_AddStringToObject(proc, "cwd", b->cwd ? b->cwd : "/");
	if (b->nenv)
		cJSON_AddItemToObject(proc, "env", strings(b->env));
	if (b->terminal)
		cJSON_AddBoolToObject(proc, "terminal", true);
	const struct spec_extra *x = spec_extra(b);
	if (x->capabilities)
		add_capabilities(proc, b);
	if (x->rlimits)
		add_rlimits(proc, x->rlimits);
	if (x->no_new_privileges != SPEC_ABSENT)
		cJSON_AddBoolToObject(proc, "noNewPrivileges", x->no_new_privileges == SPEC_YES);
	if (x->annotations)
		cJSON_AddItemToObject(root, "annotations", from_json(x->annotations));
	if (x->sysctl)
		cJSON_AddItemToObject(linux_, "sysctl", from_json(x->sysctl));
	/* runc spec's masked and read-only paths, unless the bundle says
	 * (an empty list: none) or wants buildContainer's bytes. */
	const char *const *masked = x->masked_paths, *const *ro = x->readonly_paths;
	if (!b->buildcontainer) {
		masked = masked ? masked : ocicfg_default_masked;
		ro = ro ? ro : ocicfg_default_readonly;
	}
	if (masked && *masked)
		cJSON_AddItemToObject(linux_, "maskedPaths", strings(masked));
	if (ro && *ro)
		cJSON_AddItemToObject(linux_, "readonlyPaths", strings(ro));

	size_t nm;
	struct ocimount *m = ocicfg_mounts(b, binds, &nm);
	cJSON *mounts = cJSON_AddArrayToObject(root, "mounts");
	for (size_t i = 0; i < nm; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "destination", m[i].dest);
		cJSON_AddStringToObject(o, "type", m[i].type);
		cJSON_AddStringToObject(o, "source", m[i].source);
		/* The runtime spec wants an array or nothing: buildContainer
		 * writes null (Nix's toJSON of an absent list). */
		if (m[i].options)
			cJSON_AddItemToObject(o, "options", strings(m[i].options));
		else if (b->buildcontainer)
			cJSON_AddItemToObject(o, "options", cJSON_CreateNull());
		cJSON_AddItemToArray(mounts, o);
	}
	ocicfg_mounts_free(m, nm);
	if (ocicfg_rootless(b, opts->uid))
		make_rootless(root, opts);

	sort_keys(root);
	/* The user's last word, on the document as it would be without it. */
	if (x->oci) {
		root = ocicfg_merge_patch(root, x->oci);
		sort_keys(root);
	}
	char *out = opts->pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!out)
		abort(); /* cJSON fails only when allocation fails */
	*len = strlen(out);
	return out;
}
