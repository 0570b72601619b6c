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
#include "closure.h"

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

/* Nix sorts attribute names bytewise; strcmp compares as unsigned char. */
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
	/* Insertion sort: these objects have at most six keys. */
	for (size_t i = 1; i < n; i++) {
		cJSON *x = v[i];
		size_t j = i;
		while (j > 0 && strcmp(v[j - 1]->string, x->string) > 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
	for (size_t i = 0; i < n; i++) {
		v[i]->prev = i ? v[i - 1] : v[n - 1]; /* cJSON: head's prev is the tail */
		v[i]->next = i + 1 < n ? v[i + 1] : NULL;
	}
	o->child = v[0];
	free(v);
}

char *ocicfg_render(const struct bundle *b, const struct ocibinds *binds, bool pretty, size_t *len)
{
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

	sort_keys(root);
	char *out = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!out)
		abort(); /* cJSON fails only when allocation fails */
	*len = strlen(out);
	return out;
}
