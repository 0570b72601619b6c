/* layout: builds the rootfs skeleton shared by the daemon and by
 * `bundlectl materialize`, so that both produce the same tree. */
#include "layout.h"
#include "ocicfg.h"

#include <stdlib.h>
#include <string.h>

/* Binary search for the first n bytes of `name` among d's kids: returns the
 * kid, or NULL with its insertion point in *pos. */
static struct layout_dir *find_kid(const struct layout_dir *d, const char *name, size_t n,
				   size_t *pos)
{
	size_t lo = 0, hi = d->nkids;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *k = d->kids[mid]->name;
		int c = strncmp(k, name, n);
		if (c == 0 && k[n])
			c = 1;
		if (c == 0)
			return d->kids[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

static struct layout_dir *add_child(struct layout *l, struct layout_dir *d, const char *name,
				    size_t n)
{
	size_t lo;
	struct layout_dir *found = find_kid(d, name, n, &lo);
	if (found)
		return found;
	struct layout_dir *c = arena_alloc(&l->arena, sizeof(*c));
	c->name = arena_strndup(&l->arena, name, n);
	/* Copying on every insert is quadratic, but a layout has a handful of
	 * entries per directory. */
	struct layout_dir **kids = arena_alloc(&l->arena, (d->nkids + 1) * sizeof(*kids));
	if (d->nkids) {
		memcpy(kids, d->kids, lo * sizeof(*kids));
		memcpy(kids + lo + 1, d->kids + lo, (d->nkids - lo) * sizeof(*kids));
	}
	kids[lo] = c;
	d->kids = kids;
	d->nkids++;
	d->nsubdirs++;
	return c;
}

static struct layout_dir *add_path(struct layout *l, const char *path)
{
	struct layout_dir *d = l->root;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		d = add_child(l, d, p, n);
		p += n;
	}
	return d;
}

void layout_build(struct layout *l, const struct bundle *b, const struct store *st)
{
	memset(l, 0, sizeof(*l));
	l->root = arena_alloc(&l->arena, sizeof(*l->root));
	l->root->name = "";
	add_path(l, "/dev");
	add_path(l, "/proc");
	add_path(l, "/sys");
	size_t n;
	struct ocimount *m = ocicfg_mounts(b, &n);
	for (size_t i = 0; i < n; i++)
		add_path(l, m[i].dest);
	free(m);
	add_path(l, st->dir)->is_store = true;
}

void layout_free(struct layout *l)
{
	arena_free(&l->arena);
	l->root = NULL;
}

struct layout_dir *layout_child(const struct layout_dir *d, const char *name)
{
	size_t pos;
	return find_kid(d, name, strlen(name), &pos);
}
