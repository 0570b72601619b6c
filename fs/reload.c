/* reload: a new set of bundles from the spec, swapped in atomically. */
#include "reload.h"
#include "control.h"
#include "log.h"
#include "mounts.h"
#include "overlay.h"
#include "service.h"
#include "state.h"
#include "tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void notify_reloading(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	char msg[64];
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)t.tv_sec * 1000000 + (unsigned long long)t.tv_nsec / 1000);
	service_notify(msg);
}

static char *joined(const struct diags *d)
{
	struct buf b = {0};
	for (size_t i = 0; i < d->n; i++) {
		buf_adds(&b, d->msg[i]);
		buf_addc(&b, '\n');
	}
	if (d->dropped)
		buf_addf(&b, "... and %zu more errors\n", d->dropped);
	return b.data;
}

/* Versions of `old` that `next` does not hold are retired: the kernel is
 * told to forget them once nothing is mounted on them (see reap). Called
 * with the reload lock held. */
static void retire(struct bfs *fs, const struct bundles *old, const struct bundles *next)
{
	for (size_t i = 0; i < bundles_count(old); i++) {
		struct bstate *b = bundles_at(old, i);
		if (bundles_find(next, bundle_name(b)) == b)
			continue;
		GROW(fs->retired, fs->nretired, fs->retired_cap);
		fs->retired[fs->nretired++] = bundle_serial(b);
		/* Its writable root leaves the mount point (running containers
		 * keep theirs): else it would keep the version mounted on. */
		if (!bundle_spec(b)->readonly)
			overlay_detach(fs, b);
	}
	/* The reaper looks a second later: not while the reloaded bundles
	 * are first used. */
	pthread_cond_signal(&fs->retired_cond);
}

errint_t reload_run(struct bfs *fs, struct reload_result *out)
{
	pthread_mutex_lock(&fs->reload_lock);
	notify_reloading();
	struct reload_result r = {.ok = true};
	clock_gettime(CLOCK_REALTIME, &r.at);
	struct spec sp;
	struct diags d = {0};
	if (spec_load(&sp, fs->spec_path, &fs->st, &d) < 0) {
		for (size_t i = 0; i < d.n; i++)
			log_err("%s", d.msg[i]);
		log_err("reload: %s has problems; still serving generation %llu", fs->spec_path,
			(unsigned long long)fs->generation);
		r.ok = false;
		r.problems = joined(&d);
		r.generation = fs->generation;
		diag_clear(&d);
	} else {
		struct bundles *next = bundles_new(&sp, &fs->env, fs->bundles);
		/* A successor finds the new set before anything of it is served. */
		state_save_bundles(fs->state, &fs->env, next, fs->generation + 1,
				   (double)r.at.tv_sec + r.at.tv_nsec / 1e9);
		pthread_rwlock_wrlock(&fs->gen_lock);
		struct bundles *old = fs->bundles;
		fs->bundles = next;
		r.generation = ++fs->generation;
		fs->loaded = r.at;
		char **names;
		size_t n = tree_reloaded(fs, old, nodes_get(&fs->nodes, NODES_ROOT_ID), &names);
		pthread_rwlock_unlock(&fs->gen_lock);
		/* With no lock held: the kernel may be waiting for a lookup. */
		for (size_t i = 0; i < n; i++) {
			log_debug("reload: the kernel forgets \"%s\"", names[i]);
			ll_forget_entry(fs, NODES_ROOT_ID, names[i]);
			free(names[i]);
		}
		if (n)
			ll_forget_entry(fs, NODES_ROOT_ID, NULL);
		free(names);
		retire(fs, old, next);
		log_notice("reloaded %s: generation %llu, %zu bundles, %zu changed", fs->spec_path,
			   (unsigned long long)r.generation, bundles_count(next), n);
		bundles_put(old);
	}
	free(fs->last_reload.problems);
	fs->last_reload = r;
	if (out) {
		*out = r;
		out->problems = r.problems ? xstrdup(r.problems) : NULL;
	}
	char *status = control_status_line(fs, &r);
	service_reloaded(status);
	free(status);
	pthread_mutex_unlock(&fs->reload_lock);
	return r.ok ? 0 : -EINVAL;
}

/* ---- retired versions ---------------------------------------------------- */

bool reload_version_in_use(struct bfs *fs, const struct mounts_all *all, uint64_t serial,
			   bool or_below)
{
	char root_path[64];
	snprintf(root_path, sizeof(root_path), "/" VERSIONS_DIR "/%llu",
		 (unsigned long long)serial);
	char *point = or_below ? xasprintf("%s%s", fs->mountpoint, root_path) : NULL;
	bool used = mounts_all_under(all, fs->mnt.major, fs->mnt.minor, root_path, point);
	free(point);
	return used;
}

/* Every few seconds, and after a reload: a retired version that still
 * lives (the kernel caches its nodes) and that no mount namespace has a
 * mount on (a running container has its root there) is forgotten by the
 * kernel; its nodes are then released, and with them the bundle, its
 * closure and its GC roots. One with mounts on it waits: forgetting a
 * directory detaches every mount below it, and would pull a running
 * container's root, /proc and /dev from under it. */
static void reap(struct bfs *fs)
{
	pthread_mutex_lock(&fs->reload_lock);
	size_t n = fs->nretired;
	uint64_t *serials = xreallocarray(NULL, n ? n : 1, sizeof(*serials));
	if (n)
		memcpy(serials, fs->retired, n * sizeof(*serials));
	pthread_mutex_unlock(&fs->reload_lock);

	struct node *root = nodes_get(&fs->nodes, NODES_ROOT_ID);
	/* (Every namespace's mounts read once for all of them; unread, every
	 * version counts as in use.) */
	struct mounts_all all;
	bool known = n && mounts_all_read(&all) == 0;
	for (size_t i = 0; i < n; i++) {
		struct bstate *b = bundles_by_serial(&fs->env, serials[i]);
		bool gone = !b;
		if (b) {
			char name[32];
			snprintf(name, sizeof(name), "%llu", (unsigned long long)serials[i]);
			node_id versions = nodes_child_id(&fs->nodes, root, VERSIONS_DIR);
			if (known && !reload_version_in_use(fs, &all, serials[i], true) && versions)
				ll_forget_entry(fs, versions, name);
			bundle_put(b);
		}
		if (!gone)
			serials[i] = 0;
	}
	if (known)
		mounts_all_free(&all);
	/* Drop the ones that are gone. */
	pthread_mutex_lock(&fs->reload_lock);
	size_t k = 0;
	for (size_t i = 0; i < fs->nretired; i++) {
		bool dead = false;
		for (size_t j = 0; j < n; j++)
			dead |= serials[j] && serials[j] == fs->retired[i];
		if (!dead)
			fs->retired[k++] = fs->retired[i];
	}
	fs->nretired = k;
	pthread_mutex_unlock(&fs->reload_lock);
	free(serials);
}

/* Waits on the reaper's condition until `secs` from now, or until
 * stopping. Called with the reload lock held. */
static void pause_for(struct bfs *fs, time_t secs)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += secs;
	while (!fs->stopping &&
	       pthread_cond_timedwait(&fs->retired_cond, &fs->reload_lock, &t) != ETIMEDOUT)
		;
}

static void *reap_thread(void *arg)
{
	struct bfs *fs = arg;
	pthread_mutex_lock(&fs->reload_lock);
	while (!fs->stopping) {
		/* Nothing retired: nothing to do until a reload retires some.
		 * Then a second later (not while the reloaded bundles are first
		 * used), and every five seconds while some remain. */
		if (!fs->nretired)
			pthread_cond_wait(&fs->retired_cond, &fs->reload_lock);
		pause_for(fs, 1);
		if (fs->stopping)
			break;
		pthread_mutex_unlock(&fs->reload_lock);
		reap(fs);
		pthread_mutex_lock(&fs->reload_lock);
		if (fs->nretired)
			pause_for(fs, 4);
	}
	pthread_mutex_unlock(&fs->reload_lock);
	return NULL;
}

errint_t reload_start(struct bfs *fs)
{
	int e = pthread_create(&fs->reaper, NULL, reap_thread, fs);
	fs->reaping = e == 0;
	return -e;
}

void reload_stop(struct bfs *fs)
{
	if (!fs->reaping)
		return;
	pthread_mutex_lock(&fs->reload_lock);
	fs->stopping = true;
	pthread_cond_signal(&fs->retired_cond);
	pthread_mutex_unlock(&fs->reload_lock);
	pthread_join(fs->reaper, NULL);
	fs->reaping = false;
}
