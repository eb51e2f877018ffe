/*
 * cache.c: the secret cache in front of a backend.
 *
 * Owns the cached entries (a reference to each secret, keyed by path, with
 * the monotonic time it was fetched), the fetches in flight (one per path:
 * single flight) and the waits attached to them.  Entries are bounded
 * (oldest fetched evicted first); errors are never cached.
 *
 * Must not look inside a secret (no field is read, nothing is logged but
 * paths) and knows nothing about where secrets come from: only the
 * secret_backend_ops it is handed.
 *
 * Callbacks run with the cache in a consistent state and may call
 * secret_cache_get(), secret_cache_cancel() or even secret_cache_free().
 */
#include "config.h"

#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vault-client/vault.h"

#define CACHE_MAX_ENTRIES	4096
#define CACHE_MIN_BUCKETS	64

struct cache_node;

/* One backend fetch in flight. */
struct cache_flight {
	struct secret_cache *c;
	struct cache_node *node;	/* NULL once completed */
	uint64_t gen;			/* c->gen when started */
	bool delivering;		/* its waiters are being called */
	TAILQ_HEAD(, secret_wait) waits;
	LIST_ENTRY(cache_flight) link;	/* c->flights */
};

struct secret_wait {
	struct cache_flight *f;		/* NULL while its callback runs */
	secret_cb cb;
	void *arg;
	TAILQ_ENTRY(secret_wait) link;	/* f->waits */
};

/* One path: a cached secret, a flight, or both. */
struct cache_node {
	char *path;			/* not secret */
	uint64_t hash;
	struct secret *s;		/* our reference; NULL if none cached */
	int64_t fetched_at;		/* monotonic ms, valid when s */
	struct cache_flight *flight;	/* in flight for this path, or NULL */
	struct cache_node *next;	/* bucket chain */
	TAILQ_ENTRY(cache_node) lru;	/* c->lru, when s != NULL */
};

struct secret_cache {
	struct event_base *base;
	struct secret_backend *backend;
	int64_t ttl_ms;
	size_t max_entries;
	struct cache_node **buckets;
	size_t nbuckets;		/* a power of two */
	size_t nnodes;
	size_t ncached;			/* nodes holding a secret */
	TAILQ_HEAD(, cache_node) lru;	/* oldest fetched first */
	LIST_HEAD(, cache_flight) flights;
	uint64_t gen;			/* bumped when all entries drop */
	int delivering;			/* depth of flight_done() */
	bool closing;			/* secret_cache_free() ran */
	struct secret_cache_stats st;
};

/* FNV-1a, 64 bits. */
static uint64_t
cache_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct cache_node *
node_find(struct secret_cache *c, const char *path)
{
	uint64_t h = cache_hash(path);
	struct cache_node *n;

	for (n = c->buckets[h & (c->nbuckets - 1)]; n != NULL; n = n->next) {
		if (n->hash == h && strcmp(n->path, path) == 0)
			return n;
	}
	return NULL;
}

static void
cache_grow(struct secret_cache *c)
{
	struct cache_node **nb, *n, *next;
	size_t size = c->nbuckets * 2, i;

	if (size < c->nbuckets || (nb = calloc(size, sizeof(*nb))) == NULL)
		return;		/* longer chains, still correct */
	for (i = 0; i < c->nbuckets; i++) {
		for (n = c->buckets[i]; n != NULL; n = next) {
			next = n->next;
			n->next = nb[n->hash & (size - 1)];
			nb[n->hash & (size - 1)] = n;
		}
	}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = size;
}

static struct cache_node *
node_new(struct secret_cache *c, const char *path)
{
	struct cache_node *n;
	size_t b;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	if ((n->path = strdup(path)) == NULL) {
		free(n);
		return NULL;
	}
	n->hash = cache_hash(path);
	if (c->nnodes >= c->nbuckets)
		cache_grow(c);
	b = n->hash & (c->nbuckets - 1);
	n->next = c->buckets[b];
	c->buckets[b] = n;
	c->nnodes++;
	return n;
}

static void
node_drop_secret(struct secret_cache *c, struct cache_node *n)
{
	if (n->s == NULL)
		return;
	TAILQ_REMOVE(&c->lru, n, lru);
	c->ncached--;
	secret_unref(n->s);
	n->s = NULL;
	n->fetched_at = 0;
}

/* Frees n if it holds neither a secret nor a flight. */
static void
node_release(struct secret_cache *c, struct cache_node *n)
{
	struct cache_node **pp;

	if (n->s != NULL || n->flight != NULL)
		return;
	for (pp = &c->buckets[n->hash & (c->nbuckets - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	c->nnodes--;
	free(n->path);
	free(n);
}

static void
node_store(struct secret_cache *c, struct cache_node *n, struct secret *s)
{
	struct cache_node *old;

	node_drop_secret(c, n);
	n->s = secret_ref(s);
	n->fetched_at = cg_mono_ms();
	TAILQ_INSERT_TAIL(&c->lru, n, lru);
	c->ncached++;
	while (c->ncached > c->max_entries &&
	    (old = TAILQ_FIRST(&c->lru)) != n) {
		node_drop_secret(c, old);
		node_release(c, old);
	}
}

/* Drops every cached secret; fetches in flight stay but will not store. */
static void
cache_drop_all(struct secret_cache *c)
{
	struct cache_node *n;

	c->gen++;
	while ((n = TAILQ_FIRST(&c->lru)) != NULL) {
		node_drop_secret(c, n);
		node_release(c, n);
	}
}

/* Frees the cache itself once nothing is delivering any more. */
static void
cache_destroy(struct secret_cache *c)
{
	free(c->buckets);
	free(c);
}

/* The backend's answer for one flight. */
static void
flight_done(int err, struct secret *s, const char *reason, void *arg)
{
	struct cache_flight *f = arg;
	struct secret_cache *c = f->c;
	struct cache_node *n = f->node;
	struct secret_wait *w;

	if (c->closing)
		return;		/* secret_cache_free() frees f */

	/* Detach first: a callback's get for this path starts anew. */
	n->flight = NULL;
	f->node = NULL;
	if (err == 0 && s != NULL) {
		if (f->gen == c->gen)
			node_store(c, n, s);
	} else {
		if (err == 0)
			err = CG_ERR_INTERNAL;	/* success without a secret */
		s = NULL;
		c->st.errors++;
	}
	node_release(c, n);

	f->delivering = true;
	c->delivering++;
	while (!c->closing && (w = TAILQ_FIRST(&f->waits)) != NULL) {
		TAILQ_REMOVE(&f->waits, w, link);
		w->f = NULL;	/* cancel on it is now a no-op */
		w->cb(err, s, err == 0 ? NULL : reason, w->arg);
		free(w);
	}
	c->delivering--;
	f->delivering = false;

	/* If a callback ran secret_cache_free(), that freed the remaining
	 * waits and unlinked f already. */
	if (!c->closing)
		LIST_REMOVE(f, link);
	free(f);
	if (c->closing && c->delivering == 0)
		cache_destroy(c);
}

int
secret_cache_new(struct event_base *base, struct secret_backend *backend,
    int64_t ttl_ms, struct secret_cache **out)
{
	struct secret_cache *c = NULL;
	int r;

	*out = NULL;
	if (backend == NULL || backend->ops == NULL ||
	    backend->ops->fetch == NULL) {
		r = CG_ERR_INTERNAL;
		goto out;
	}
	if (ttl_ms < 0) {
		r = CG_ERR_LIMIT;
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->buckets = calloc(CACHE_MIN_BUCKETS, sizeof(*c->buckets))) == NULL) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	c->base = base;
	c->ttl_ms = ttl_ms;
	c->max_entries = CACHE_MAX_ENTRIES;
	c->nbuckets = CACHE_MIN_BUCKETS;
	TAILQ_INIT(&c->lru);
	LIST_INIT(&c->flights);
	c->backend = backend;
	backend = NULL;
	*out = c;
	c = NULL;
	r = 0;
 out:
	if (c != NULL)
		free(c->buckets);
	free(c);
	secret_backend_free(backend);	/* ours even on failure */
	return r;
}

void
secret_cache_free(struct secret_cache *c)
{
	struct cache_flight *f, *fnext;
	struct secret_wait *w;
	struct cache_node *n;
	size_t i;

	if (c == NULL || c->closing)
		return;
	c->closing = true;

	/* The backend drops its pending fetches; flight_done() ignores any
	 * late answer because closing is set. */
	secret_backend_free(c->backend);
	c->backend = NULL;

	for (f = LIST_FIRST(&c->flights); f != NULL; f = fnext) {
		fnext = LIST_NEXT(f, link);
		LIST_REMOVE(f, link);
		while ((w = TAILQ_FIRST(&f->waits)) != NULL) {
			TAILQ_REMOVE(&f->waits, w, link);
			free(w);
		}
		if (f->node != NULL)
			f->node->flight = NULL;
		if (!f->delivering)	/* else flight_done() frees it */
			free(f);
	}
	while ((n = TAILQ_FIRST(&c->lru)) != NULL)
		node_drop_secret(c, n);
	for (i = 0; i < c->nbuckets; i++) {
		while ((n = c->buckets[i]) != NULL) {
			c->buckets[i] = n->next;
			free(n->path);
			free(n);
		}
	}
	c->nnodes = 0;
	if (c->delivering == 0)
		cache_destroy(c);
}

int
secret_cache_get(struct secret_cache *c, const char *path, struct secret **out,
    secret_cb cb, void *arg, struct secret_wait **wait)
{
	struct cache_flight *f = NULL;
	struct secret_wait *w = NULL;
	struct cache_node *n;
	const struct secret_backend_ops *ops;
	int64_t now;
	int r;

	*out = NULL;
	if (wait != NULL)
		*wait = NULL;
	if (c == NULL || c->closing || path == NULL || cb == NULL)
		return CG_ERR_INTERNAL;
	ops = c->backend->ops;

	if (ops->changed != NULL && ops->changed(c->backend->ctx))
		cache_drop_all(c);

	now = cg_mono_ms();
	n = node_find(c, path);
	if (n != NULL && n->s != NULL) {
		if (now - n->fetched_at < c->ttl_ms) {
			c->st.hits++;
			*out = secret_ref(n->s);
			return 0;
		}
		node_drop_secret(c, n);	/* expired: not kept around */
	}
	c->st.misses++;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	if (n == NULL && (n = node_new(c, path)) == NULL) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	if (n->flight == NULL) {
		if ((f = calloc(1, sizeof(*f))) == NULL) {
			r = CG_ERR_NOMEM;
			goto out;
		}
		f->c = c;
		f->gen = c->gen;
		TAILQ_INIT(&f->waits);
		if ((r = ops->fetch(c->backend->ctx, path, flight_done, f)) != 0) {
			c->st.errors++;
			goto out;
		}
		c->st.fetches++;
		f->node = n;
		n->flight = f;
		LIST_INSERT_HEAD(&c->flights, f, link);
		f = NULL;
	}
	w->f = n->flight;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&w->f->waits, w, link);
	if (wait != NULL)
		*wait = w;
	w = NULL;
	r = CG_ERR_AGAIN;
 out:
	free(f);
	free(w);
	if (n != NULL)
		node_release(c, n);
	return r;
}

void
secret_cache_cancel(struct secret_wait *w)
{
	if (w == NULL || w->f == NULL)
		return;		/* its callback is running: freed after it */
	TAILQ_REMOVE(&w->f->waits, w, link);
	free(w);
}

void
secret_cache_stats(const struct secret_cache *c, struct secret_cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (c != NULL)
		*st = c->st;
}
