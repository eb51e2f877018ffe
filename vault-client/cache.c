/*
 * cache.c: the secret cache, one per process, on the control thread.
 *
 * Owns the cached entries (a reference to each secret, keyed by path, with
 * when it was fetched, the state of its lease and the times derived from
 * them), the fetches in flight (one per path: single flight) and the waits
 * attached to them, the renewals and revocations in flight, the failures
 * it remembers (negative cache, readiness), and the control thread's side
 * of the views' traffic: the inbox of their requests and the list of their
 * mailboxes (view.c owns the rest).  Entries are bounded (oldest fetched
 * evicted first).
 *
 * Must not look inside a secret (no field is read, nothing is logged but
 * paths; lease ids are not logged either) and knows nothing about where
 * secrets come from: only the secret_backend_ops it is handed.
 *
 * Callbacks run with the cache in a consistent state and may call
 * secret_cache_get(), secret_cache_cancel() or even secret_cache_free().
 */
#include "config.h"

#include <sys/eventfd.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "vault-client/cache_int.h"
#include "vault-client/vault.h"

#define CACHE_MAX_ENTRIES	4096
#define CACHE_MAX_NODES		(2 * CACHE_MAX_ENTRIES)	/* with remembered ones */
#define CACHE_MIN_BUCKETS	64
#define NEVER			INT64_MAX

static const char refused_reason[] = "the secret store refused the request";

struct cache_node;

/* One backend fetch in flight. */
struct cache_flight {
	struct secret_cache *c;
	struct cache_node *node;	/* NULL once completed */
	uint64_t gen;			/* c->gen when started */
	bool delivering;		/* its waiters are being called */
	struct sc_waitq q;
	LIST_ENTRY(cache_flight) link;	/* c->flights */
};

/* A renewal or a revocation in flight. */
struct cache_op {
	struct secret_cache *c;
	struct cache_node *node;	/* renewal: NULL once the lease is not
					   the node's any more */
	bool revoke;
	char *lease_id;			/* revocation: in secure memory */
	char *path;			/* for the log; not secret */
	LIST_ENTRY(cache_op) link;	/* c->ops */
};

/* One path: a cached secret, a flight, what the last fetch said. */
struct cache_node {
	char *path;			/* not secret */
	uint64_t hash;
	struct secret *s;		/* our reference; NULL if none cached */
	struct secret *stale_s;		/* s as served stale; made on first use */
	int64_t fetched_at;		/* valid when s */
	int64_t lease_start;		/* granted or last renewed */
	int64_t lease_ms;		/* its duration now; 0: no bound */
	int64_t refresh_at;		/* used from here on: refresh */
	int64_t expires_at;		/* from here on: not served fresh */
	int64_t stale_until;		/* from here on: not served at all */
	int64_t renew_at;		/* NEVER when not renewed */
	bool renew_failed;		/* this lease is not renewed again */
	struct cache_op *renewing;
	/* What the last fetch of this generation said (readiness), and the
	 * failure remembered (negative cache). */
	uint64_t known_gen;		/* 0: none completed */
	bool failed;
	int64_t failed_at;
	int64_t neg_until;		/* not fetched again before, after failing */
	int err;
	const char *reason;		/* static */
	bool session;			/* a session's own (SECRET_SESSION_MARK):
					   kept and renewed until released */
	bool released;			/* its session ended while in flight */
	bool used;			/* a renewing entry was used since it was
					   stored or last renewed */
	struct cache_flight *flight;	/* in flight for this path, or NULL */
	struct cache_node *next;	/* bucket chain */
	TAILQ_ENTRY(cache_node) lru;	/* c->lru, when s != NULL */
};

/* A view's request in the inbox. */
struct cache_req {
	enum sc_req_kind kind;
	struct sc_box *box;		/* a reference */
	STAILQ_ENTRY(cache_req) link;
	char path[];
};

struct secret_cache {
	struct event_base *base;
	struct secret_backend *backend;
	struct secret_cache_opts o;
	struct sc_clock clock;
	size_t max_entries;
	struct cache_node **buckets;
	size_t nbuckets;		/* a power of two */
	size_t nnodes;
	size_t ncached;			/* nodes holding a secret */
	TAILQ_HEAD(cache_lru, cache_node) lru;	/* oldest fetched first */
	LIST_HEAD(, cache_flight) flights;
	LIST_HEAD(, cache_op) ops;
	size_t nrevoking;
	uint64_t gen;			/* bumped when the source changed */
	int delivering;			/* depth of flight_done() */
	bool closing;			/* secret_cache_free() ran */
	struct event *timer;		/* lease work; armed for the next due */
	struct event *watch;		/* asks ops->changed() */
	struct secret_cache_stats st;

	/* The views' side.  lock guards inbox and boxes; inbox_fd wakes the
	 * control thread (inbox_ev, added with the first view). */
	pthread_mutex_t lock;
	STAILQ_HEAD(, cache_req) inbox;
	LIST_HEAD(, sc_box) boxes;
	int inbox_fd;
	struct event *inbox_ev;
	bool inbox_on;
};

static void cache_schedule(struct secret_cache *c);
static void flight_done(int err, struct secret *s, const char *reason, void *arg);

/* ------------------------------------------------------------------ */
/* Waits                                                               */
/* ------------------------------------------------------------------ */

void
sc_waitq_drop(struct sc_waitq *q)
{
	struct secret_wait *w;

	while ((w = TAILQ_FIRST(&q->waits)) != NULL) {
		TAILQ_REMOVE(&q->waits, w, link);
		free(w);
	}
}

void
secret_cache_cancel(struct secret_wait *w)
{
	if (w == NULL || w->q == NULL)
		return;		/* its callback is running: freed after it */
	TAILQ_REMOVE(&w->q->waits, w, link);
	free(w);
}

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

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

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* a + b, NEVER on overflow (both are not negative). */
static int64_t
add64(int64_t a, int64_t b)
{
	return a > NEVER - b ? NEVER : a + b;
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

static void
node_unlink_free(struct secret_cache *c, struct cache_node *n)
{
	struct cache_node **pp;

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

/* Nodes that only remember something go first when there are too many. */
static void
cache_sweep(struct secret_cache *c)
{
	struct cache_node *n, *next;
	size_t i;

	for (i = 0; i < c->nbuckets && c->nnodes >= CACHE_MAX_NODES; i++) {
		for (n = c->buckets[i]; n != NULL; n = next) {
			next = n->next;
			if (n->s == NULL && n->flight == NULL)
				node_unlink_free(c, n);
		}
	}
}

static struct cache_node *
node_new(struct secret_cache *c, const char *path)
{
	struct cache_node *n;
	size_t b;

	if (c->nnodes >= CACHE_MAX_NODES)
		cache_sweep(c);
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	if ((n->path = strdup(path)) == NULL) {
		free(n);
		return NULL;
	}
	n->hash = cache_hash(path);
	n->renew_at = NEVER;
	n->session = strstr(path, SECRET_SESSION_MARK) != NULL;
	if (c->nnodes >= c->nbuckets)
		cache_grow(c);
	b = n->hash & (c->nbuckets - 1);
	n->next = c->buckets[b];
	c->buckets[b] = n;
	c->nnodes++;
	return n;
}

/*
 * Frees n if it holds no secret and no flight, and remembers nothing
 * worth keeping (no completed fetch).  A node that remembers a result
 * stays for the negative cache and readiness, within CACHE_MAX_NODES.
 */
static void
node_release(struct secret_cache *c, struct cache_node *n)
{
	if (n->s != NULL || n->flight != NULL || n->known_gen != 0)
		return;
	node_unlink_free(c, n);
}

static const struct secret_lease *
node_lease(const struct cache_node *n)
{
	return n->s != NULL ? secret_lease(n->s) : NULL;
}

/* Its lease has an id: something to renew or revoke, so timers. */
static bool
node_leased(const struct cache_node *n)
{
	const struct secret_lease *l = node_lease(n);

	return l != NULL && l->id != NULL;
}

static void
log_path(char *out, size_t size, const char *path)
{
	cg_log_quote(out, size, path, strlen(path));
}

/* ------------------------------------------------------------------ */
/* Leases                                                              */
/* ------------------------------------------------------------------ */

static void
op_free(struct cache_op *op)
{
	secmem_free(op->lease_id);
	free(op->path);
	free(op);
}

static void
revoke_done(int err, const char *reason, void *arg)
{
	struct cache_op *op = arg;
	struct secret_cache *c = op->c;
	char qpath[160];

	LIST_REMOVE(op, link);
	c->nrevoking--;
	if (err != 0) {
		c->st.revoke_failures++;
		log_path(qpath, sizeof(qpath), op->path);
		cg_warn("event=lease_revoke_failed path=%s reason=\"%s\"", qpath,
		    reason != NULL ? reason : cg_strerror(err));
	}
	op_free(op);
}

/* Revokes the lease of path (ops permitting); nothing waits for it. */
static void
cache_revoke(struct secret_cache *c, const char *path, const char *lease_id)
{
	const struct secret_backend_ops *ops = c->backend->ops;
	struct cache_op *op;
	char qpath[160];
	int r;

	if (ops->revoke == NULL || lease_id == NULL)
		return;
	if ((op = calloc(1, sizeof(*op))) == NULL ||
	    (op->lease_id = secmem_strndup(lease_id, strlen(lease_id))) == NULL ||
	    (op->path = strdup(path)) == NULL) {
		r = CG_ERR_NOMEM;
		goto fail;
	}
	op->c = c;
	op->revoke = true;
	if ((r = ops->revoke(c->backend->ctx, op->lease_id, revoke_done, op)) != 0)
		goto fail;
	c->st.revocations++;
	c->nrevoking++;
	LIST_INSERT_HEAD(&c->ops, op, link);
	return;
 fail:
	c->st.revoke_failures++;
	log_path(qpath, sizeof(qpath), path);
	cg_warn("event=lease_revoke_failed path=%s reason=\"%s\"", qpath, cg_strerror(r));
	if (op != NULL)
		op_free(op);
}

/* Stops keeping n's secret; with revoke, its lease is revoked. */
static void
node_drop_value(struct secret_cache *c, struct cache_node *n, bool revoke)
{
	const struct secret_lease *l;

	if (n->s == NULL)
		return;
	TAILQ_REMOVE(&c->lru, n, lru);
	c->ncached--;
	if (revoke && (l = secret_lease(n->s)) != NULL && l->id != NULL)
		cache_revoke(c, n->path, l->id);
	if (n->renewing != NULL) {
		n->renewing->node = NULL;
		n->renewing = NULL;
	}
	secret_unref(n->stale_s);
	secret_unref(n->s);
	n->s = n->stale_s = NULL;
	n->renew_at = NEVER;
	n->renew_failed = false;
}

/* The times of n's entry, from when it was fetched, its lease and c->o. */
static void
node_times(struct secret_cache *c, struct cache_node *n)
{
	const struct secret_lease *l = node_lease(n);
	int64_t ttl_end, bound = NEVER, end = NEVER, start = n->fetched_at;
	bool renews;

	/* A credential with a renewable lease (a dynamic one), and a
	 * session's own, live as long as the lease can be renewed: cache_ttl
	 * would only make a second credential.  It bounds what changes in
	 * place (KV secrets), whose next version a refresh picks up. */
	ttl_end = n->session || (l != NULL && l->id != NULL && l->renewable) ? NEVER :
	    add64(n->fetched_at, c->o.ttl_ms);
	if (n->lease_ms > 0) {
		bound = add64(n->lease_start, n->lease_ms / 3 * 2 + n->lease_ms % 3 * 2 / 3);
		end = add64(n->lease_start, n->lease_ms);
		if (n->lease_start > start)
			start = n->lease_start;
	}
	n->expires_at = min64(ttl_end, bound);
	/* Renewing is worth it only when the lease is what ends the entry. */
	renews = l != NULL && l->id != NULL && l->renewable && !n->renew_failed &&
	    n->lease_ms > 0 && c->backend->ops->renew != NULL && bound <= ttl_end;
	n->renew_at = renews ? add64(n->lease_start, n->lease_ms / 5 * 3 +
	    n->lease_ms % 5 * 3 / 5) : NEVER;
	/* A renewal is the refresh of such an entry: fetching would only
	 * make a second credential.  From half its lease on, a use is told
	 * to the cache (node_used()): unused, it is not renewed. */
	if (renews)
		n->refresh_at = add64(n->lease_start, n->lease_ms / 2);
	else if (start >= n->expires_at)
		n->refresh_at = n->expires_at;
	else
		n->refresh_at = start + (n->expires_at - start) / 4 * 3;
	/* With no cache (ttl 0) nothing is served from it, stale included. */
	n->stale_until = c->o.max_stale_ms > 0 && c->o.ttl_ms > 0 ?
	    min64(add64(n->expires_at, c->o.max_stale_ms), end) : n->expires_at;
	if (n->session && end != NEVER)
		n->stale_until = end;	/* kept to the lease's end, then revoked */
	if (n->stale_until < n->expires_at)
		n->stale_until = n->expires_at;
}

/* ------------------------------------------------------------------ */
/* What views are told                                                 */
/* ------------------------------------------------------------------ */

/* Sends m to box, or a copy to every view when box is NULL; takes m. */
static void
cache_post(struct secret_cache *c, struct sc_box *box, struct sc_msg *m,
    const char *path)
{
	struct sc_msg *cp;
	struct sc_box *b;

	if (box != NULL) {
		if (m == NULL)
			sc_box_lost(box);
		else
			sc_box_post(box, m);
		return;
	}
	pthread_mutex_lock(&c->lock);
	LIST_FOREACH(b, &c->boxes, link) {
		if (m == NULL) {
			sc_box_lost(b);
			continue;
		}
		if ((cp = sc_msg_new(m->kind, path)) == NULL) {
			sc_box_lost(b);
			continue;
		}
		cp->s = secret_ref(m->s);
		cp->refresh_at = m->refresh_at;
		cp->expires_at = m->expires_at;
		cp->store = m->store;
		cp->err = m->err;
		cp->reason = m->reason;
		sc_box_post(b, cp);
	}
	pthread_mutex_unlock(&c->lock);
	sc_msg_free(m);
}

static bool
cache_has_views(struct secret_cache *c)
{
	bool r;

	pthread_mutex_lock(&c->lock);
	r = !LIST_EMPTY(&c->boxes);
	pthread_mutex_unlock(&c->lock);
	return r;
}

static void
post_entry(struct secret_cache *c, struct sc_box *box, const char *path,
    struct secret *s, int64_t refresh_at, int64_t expires_at, bool store)
{
	struct sc_msg *m;

	if (box == NULL && !cache_has_views(c))
		return;
	if ((m = sc_msg_new(SC_MSG_ENTRY, path)) != NULL) {
		m->s = secret_ref(s);
		m->refresh_at = refresh_at;
		m->expires_at = expires_at;
		m->store = store;
	}
	cache_post(c, box, m, path);
}

/* n's entry as it stands, fresh. */
static void
post_node(struct secret_cache *c, struct sc_box *box, struct cache_node *n)
{
	post_entry(c, box, n->path, n->s, n->refresh_at, n->expires_at, true);
}

static void
post_error(struct secret_cache *c, struct sc_box *box, const char *path, int err,
    const char *reason)
{
	struct sc_msg *m;

	if (box == NULL && !cache_has_views(c))
		return;
	if ((m = sc_msg_new(SC_MSG_ERROR, path)) != NULL) {
		m->err = err;
		m->reason = reason;
	}
	cache_post(c, box, m, path);
}

static void
post_drop(struct secret_cache *c, const char *path)
{
	if (!cache_has_views(c))
		return;
	cache_post(c, NULL, sc_msg_new(path != NULL ? SC_MSG_DROP : SC_MSG_DROP_ALL, path),
	    path);
}

/* ------------------------------------------------------------------ */
/* Entries                                                             */
/* ------------------------------------------------------------------ */

/* s is path's secret now: keep it (a reference), with fresh times. */
static void
node_store(struct secret_cache *c, struct cache_node *n, struct secret *s, int64_t now)
{
	const struct secret_lease *old, *l = secret_lease(s);
	struct cache_node *o;

	if (n->s != s) {
		/* A new credential replaces the old one: the old lease goes,
		 * unless the backend handed the same lease back. */
		old = node_lease(n);
		node_drop_value(c, n, old != NULL && old->id != NULL &&
		    (l == NULL || l->id == NULL || strcmp(l->id, old->id) != 0));
		n->s = secret_ref(s);
		c->ncached++;
	} else {
		TAILQ_REMOVE(&c->lru, n, lru);
		secret_unref(n->stale_s);	/* fresh again */
		n->stale_s = NULL;
		if (n->renewing != NULL) {
			n->renewing->node = NULL;
			n->renewing = NULL;
		}
	}
	TAILQ_INSERT_TAIL(&c->lru, n, lru);
	n->fetched_at = now;
	n->lease_start = now;
	n->lease_ms = l != NULL ? l->duration_ms : 0;
	n->renew_failed = false;
	n->used = false;
	n->failed = false;
	n->neg_until = 0;
	n->known_gen = c->gen;
	node_times(c, n);
	/* Over the bound, the oldest go; a session's own is in use. */
	for (o = TAILQ_FIRST(&c->lru); c->ncached > c->max_entries && o != NULL && o != n;) {
		struct cache_node *next = TAILQ_NEXT(o, lru);

		if (!o->session) {
			node_drop_value(c, o, true);
			post_drop(c, o->path);
			node_release(c, o);
		}
		o = next;
	}
}

/* A fetch of n failed now; remember it. */
static void
node_fail(struct secret_cache *c, struct cache_node *n, int err, const char *reason,
    int64_t now)
{
	n->failed = true;
	n->failed_at = now;
	n->neg_until = add64(now, c->o.negative_ttl_ms);
	n->err = err;
	n->reason = reason;
	n->known_gen = c->gen;
}

/* n's secret as served past its expiry; NULL when out of memory. */
static struct secret *
node_stale(struct secret_cache *c, struct cache_node *n)
{
	char qpath[160];

	if (n->stale_s == NULL) {
		if (secret_stale_copy(n->s, &n->stale_s) != 0)
			return NULL;
		log_path(qpath, sizeof(qpath), n->path);
		cg_warn("event=secret_served_stale path=%s version=%s reason=\"%s\"",
		    qpath, secret_version(n->s)[0] != '\0' ? secret_version(n->s) : "-",
		    n->reason != NULL ? n->reason : "refresh failed");
	}
	return n->stale_s;
}

/* Starts a fetch of n; 0, or the backend's refusal (counted). */
static int
flight_start(struct secret_cache *c, struct cache_node *n)
{
	const struct secret_backend_ops *ops = c->backend->ops;
	struct cache_flight *f;
	int r;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return CG_ERR_NOMEM;
	f->c = c;
	f->gen = c->gen;
	TAILQ_INIT(&f->q.waits);
	if ((r = ops->fetch(c->backend->ctx, n->path, flight_done, f)) != 0) {
		c->st.errors++;
		free(f);
		return r;
	}
	c->st.fetches++;
	f->node = n;
	n->flight = f;
	LIST_INSERT_HEAD(&c->flights, f, link);
	return 0;
}

/*
 * Fetches n in the background unless it is in flight or failed within
 * negative_ttl.  A refusal is remembered as a failure.
 */
static void
cache_refresh(struct secret_cache *c, struct cache_node *n, int64_t now)
{
	int r;

	if (n->flight != NULL || (n->failed && now < n->neg_until))
		return;
	if ((r = flight_start(c, n)) != 0) {
		node_fail(c, n, r, refused_reason, now);
		return;
	}
	if (n->s != NULL)
		c->st.refreshes++;
}

enum cache_answer {
	ANS_FRESH,	/* *s: the entry */
	ANS_STALE,	/* *s: its stale copy */
	ANS_FAILED,	/* n->err: remembered */
	ANS_WAIT,	/* a fetch answers: n->flight, or one to start */
};

/*
 * What a request for n gets now (*s borrowed), starting a refresh where one
 * is due.  Never waits when something servable is cached.
 */
/*
 * A use of n's entry at now, served or told by a view, from its
 * refresh_at on: an entry whose lease is renewed is marked in use (its
 * next renewal is wanted); any other is refreshed.
 */
static void
node_used(struct secret_cache *c, struct cache_node *n, int64_t now)
{
	if (now < n->refresh_at)
		return;
	n->used = true;
	if (n->renew_at == NEVER)
		cache_refresh(c, n, now);
}

static enum cache_answer
cache_answer(struct secret_cache *c, struct cache_node *n, int64_t now, struct secret **s)
{
	*s = NULL;
	if (n->s != NULL) {
		if (now < n->expires_at) {
			node_used(c, n, now);
			*s = n->s;
			return ANS_FRESH;
		}
		/* Past its expiry: stale only once a refresh of this entry
		 * has failed, and not past the bound. */
		if (now < n->stale_until && n->failed && n->failed_at >= n->fetched_at) {
			if (now >= n->neg_until)
				cache_refresh(c, n, now);
			if ((*s = node_stale(c, n)) != NULL)
				return ANS_STALE;
		}
		if (now >= n->stale_until) {
			node_drop_value(c, n, true);
			cache_schedule(c);
		}
	}
	if (n->flight != NULL)
		return ANS_WAIT;
	if (n->failed && now < n->neg_until)
		return ANS_FAILED;
	return ANS_WAIT;
}

/* The backend's answer for one flight. */
static void
flight_done(int err, struct secret *s, const char *reason, void *arg)
{
	struct cache_flight *f = arg;
	struct secret_cache *c = f->c;
	struct cache_node *n = f->node;
	struct secret *give = NULL;
	struct secret_wait *w;
	bool current;
	int64_t now;

	if (c->closing)
		return;		/* secret_cache_free() frees f */

	/* Detach first: a callback's get for this path starts anew. */
	n->flight = NULL;
	f->node = NULL;
	now = sc_now(&c->clock);
	current = f->gen == c->gen;
	if (err == 0 && s == NULL) {
		err = CG_ERR_INTERNAL;	/* success without a secret */
		reason = "the secret store answered without a secret";
	}
	if (n->released) {
		/* Its session ended while this was in flight: the credential
		 * was made for nobody. */
		const struct secret_lease *l;

		if (err == 0 && (l = secret_lease(s)) != NULL && l->id != NULL)
			cache_revoke(c, n->path, l->id);
		node_drop_value(c, n, true);
		node_unlink_free(c, n);
		n = NULL;
		err = CG_ERR_EXPIRED;
		reason = "the session ended";
	} else if (err == 0) {
		if (current) {
			node_store(c, n, s, now);
			post_node(c, NULL, n);
		} else {
			/* From before the source changed: answers its
			 * waiters, is kept by no one. */
			post_entry(c, NULL, n->path, s, now, now, false);
		}
		give = secret_ref(s);
	} else {
		c->st.errors++;
		if (reason == NULL)
			reason = cg_strerror(err);
		if (current) {
			node_fail(c, n, err, reason, now);
			if (err == CG_ERR_NOTFOUND && n->s != NULL) {
				/* The store says it is gone: not served
				 * stale, and its lease is of no use. */
				node_drop_value(c, n, true);
				post_drop(c, n->path);
			} else if (n->s != NULL && now < n->expires_at) {
				give = secret_ref(n->s);	/* refreshed early */
			} else if (n->s != NULL && now < n->stale_until &&
			    (give = secret_ref(node_stale(c, n))) != NULL) {
				c->st.stale++;
				post_entry(c, NULL, n->path, give,
				    min64(n->neg_until, n->stale_until),
				    min64(n->neg_until, n->stale_until), true);
			} else if (n->s != NULL && now >= n->stale_until) {
				node_drop_value(c, n, true);
				post_drop(c, n->path);
			}
		}
		if (give == NULL)
			post_error(c, NULL, n->path, err, reason);
	}
	cache_schedule(c);
	if (n != NULL)
		node_release(c, n);

	f->delivering = true;
	c->delivering++;
	while (!c->closing && (w = TAILQ_FIRST(&f->q.waits)) != NULL) {
		TAILQ_REMOVE(&f->q.waits, w, link);
		w->q = NULL;	/* cancel on it is now a no-op */
		if (give != NULL)
			w->cb(0, give, NULL, w->arg);
		else
			w->cb(err, NULL, reason, w->arg);
		free(w);
	}
	c->delivering--;
	f->delivering = false;
	secret_unref(give);

	/* If a callback ran secret_cache_free(), that freed the remaining
	 * waits and unlinked f already. */
	if (!c->closing)
		LIST_REMOVE(f, link);
	free(f);
	if (c->closing && c->delivering == 0) {
		pthread_mutex_destroy(&c->lock);
		free(c->buckets);
		free(c);
	}
}

/* ------------------------------------------------------------------ */
/* Renewals and the lease timer                                        */
/* ------------------------------------------------------------------ */

static void
renew_done(int err, int64_t duration_ms, const char *reason, void *arg)
{
	struct cache_op *op = arg;
	struct secret_cache *c = op->c;
	struct cache_node *n = op->node;
	char qpath[160];

	LIST_REMOVE(op, link);
	op_free(op);
	if (n == NULL)
		return;		/* replaced or dropped meanwhile */
	n->renewing = NULL;
	if (err == 0 && duration_ms > 0) {
		const struct secret_lease *l = node_lease(n);

		c->st.renewals++;
		n->lease_start = sc_now(&c->clock);
		n->lease_ms = duration_ms;
		n->used = false;
		/* Less than asked: the lease is near its max TTL.  No more
		 * renewals; a use in its last quarter fetches the next
		 * credential while this one still serves. */
		if (l != NULL && duration_ms < l->duration_ms)
			n->renew_failed = true;
		node_times(c, n);
		post_node(c, NULL, n);
		cache_schedule(c);
		return;
	}
	c->st.renew_failures++;
	log_path(qpath, sizeof(qpath), n->path);
	cg_warn("event=lease_renew_failed path=%s reason=\"%s\"", qpath,
	    err == 0 ? "no time granted" : reason != NULL ? reason : cg_strerror(err));
	if (err == CG_ERR_NOTFOUND || err == CG_ERR_EXPIRED) {
		/* The lease is gone, and the credential with it. */
		node_drop_value(c, n, false);
		post_drop(c, n->path);
		node_release(c, n);
	} else {
		/* Served until its expiry; a use before then fetches a new
		 * one (refresh), as for a lease that cannot be renewed. */
		n->renew_failed = true;
		node_times(c, n);
		post_node(c, NULL, n);
	}
	cache_schedule(c);
}

static void
node_renew(struct secret_cache *c, struct cache_node *n)
{
	const struct secret_lease *l = node_lease(n);
	struct cache_op *op;
	int r;

	if ((op = calloc(1, sizeof(*op))) == NULL || (op->path = strdup(n->path)) == NULL) {
		free(op);
		return;		/* tried again at the next tick */
	}
	op->c = c;
	op->node = n;
	LIST_INSERT_HEAD(&c->ops, op, link);
	n->renewing = op;
	r = c->backend->ops->renew(c->backend->ctx, l->id, l->duration_ms, renew_done, op);
	if (r != 0) {
		n->renewing = NULL;
		op->node = NULL;
		LIST_REMOVE(op, link);
		op_free(op);
		c->st.renew_failures++;
		n->renew_failed = true;
		node_times(c, n);
		post_node(c, NULL, n);
	}
}

void
secret_cache_tick(struct secret_cache *c)
{
	struct cache_node *n, *next;
	int64_t now;

	if (c == NULL || c->closing)
		return;
	now = sc_now(&c->clock);
	for (n = TAILQ_FIRST(&c->lru); n != NULL; n = next) {
		next = TAILQ_NEXT(n, lru);
		if (!node_leased(n))
			continue;
		if (now >= n->stale_until) {
			/* Unused to its end: its lease goes now, not when the
			 * store would have let it lapse. */
			node_drop_value(c, n, true);
			post_drop(c, n->path);
			node_release(c, n);
		} else if (now >= n->renew_at && n->renewing == NULL && !n->used &&
		    !n->session) {
			/* Not used since it was stored or renewed: no longer
			 * needed, and its lease goes now. */
			node_drop_value(c, n, true);
			post_drop(c, n->path);
			node_release(c, n);
		} else if (now >= n->renew_at && n->renewing == NULL) {
			node_renew(c, n);
		}
	}
	cache_schedule(c);
}

static void
cache_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	secret_cache_tick(arg);
}

/* Arms the timer for the next lease work, if any (none with a test clock). */
static void
cache_schedule(struct secret_cache *c)
{
	struct cache_node *n;
	struct timeval tv;
	int64_t next = NEVER, d;

	if (c->closing || c->clock.now != NULL || c->timer == NULL)
		return;
	TAILQ_FOREACH(n, &c->lru, lru) {
		if (!node_leased(n))
			continue;
		next = min64(next, n->stale_until);
		if (n->renewing == NULL)
			next = min64(next, n->renew_at);
	}
	if (next == NEVER) {
		evtimer_del(c->timer);
		return;
	}
	d = next - sc_now(&c->clock);
	tv = cg_ms_tv(d);
	evtimer_add(c->timer, &tv);
}

/* ------------------------------------------------------------------ */
/* The source changed                                                  */
/* ------------------------------------------------------------------ */

/*
 * Drops every entry (what the views hold too) and fetches again what was
 * cached or failing, newest first.  Fetches in flight stay but will not
 * store.  What the last fetches said stays for readiness until then.
 */
static void
cache_changed(struct secret_cache *c)
{
	struct cache_node **again = NULL, *n;
	size_t i, k = 0;

	c->gen++;
	if (c->nnodes > 0)
		again = calloc(c->nnodes, sizeof(*again));
	TAILQ_FOREACH_REVERSE(n, &c->lru, cache_lru, lru)
		if (again != NULL && n->flight == NULL)
			again[k++] = n;
	for (i = 0; i < c->nbuckets; i++)
		for (n = c->buckets[i]; n != NULL; n = n->next)
			if (again != NULL && n->s == NULL && n->failed && n->flight == NULL)
				again[k++] = n;
	while ((n = TAILQ_FIRST(&c->lru)) != NULL)
		node_drop_value(c, n, true);
	for (i = 0; i < c->nbuckets; i++)
		for (n = c->buckets[i]; n != NULL; n = n->next)
			n->neg_until = 0;
	post_drop(c, NULL);
	for (i = 0; i < k; i++)
		cache_refresh(c, again[i], sc_now(&c->clock));
	free(again);
	cache_schedule(c);
}

static void
cache_check_changed(struct secret_cache *c)
{
	const struct secret_backend_ops *ops = c->backend->ops;

	if (ops->changed != NULL && ops->changed(c->backend->ctx))
		cache_changed(c);
}

static void
cache_watch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cache_check_changed(arg);
}

/* ------------------------------------------------------------------ */
/* The views' requests                                                 */
/* ------------------------------------------------------------------ */

/* A view asks for path: answer now, or let the flight's answer reach it. */
static void
cache_serve_view(struct secret_cache *c, struct sc_box *box, const char *path)
{
	struct cache_node *n;
	struct secret *s;
	int64_t now, until;
	int r;

	c->st.view_requests++;
	if ((n = node_find(c, path)) == NULL && (n = node_new(c, path)) == NULL) {
		post_error(c, box, path, CG_ERR_NOMEM, "out of memory");
		return;
	}
	now = sc_now(&c->clock);
	switch (cache_answer(c, n, now, &s)) {
	case ANS_FRESH:
		c->st.hits++;
		post_node(c, box, n);
		break;
	case ANS_STALE:
		c->st.hits++;
		c->st.stale++;
		until = min64(n->neg_until, n->stale_until);
		post_entry(c, box, path, s, until, until, true);
		break;
	case ANS_FAILED:
		c->st.misses++;
		c->st.negative++;
		post_error(c, box, path, n->err, n->reason);
		break;
	case ANS_WAIT:
		c->st.misses++;
		if (n->flight == NULL && (r = flight_start(c, n)) != 0)
			post_error(c, box, path, r, refused_reason);
		break;
	}
	node_release(c, n);
}

/* A view used an entry in its last part of life. */
static void
cache_hint(struct secret_cache *c, const char *path)
{
	struct cache_node *n = node_find(c, path);
	int64_t now = sc_now(&c->clock);

	if (n != NULL && n->s != NULL && now >= n->refresh_at && now < n->expires_at)
		node_used(c, n, now);
}

/* A session's own secret is not needed any more: its lease goes now. */
static void
cache_release(struct secret_cache *c, const char *path)
{
	struct cache_node *n = node_find(c, path);

	if (n == NULL || !n->session)
		return;
	if (n->flight != NULL) {
		n->released = true;	/* flight_done() ends it */
		return;
	}
	node_drop_value(c, n, true);
	post_drop(c, n->path);
	node_unlink_free(c, n);
	cache_schedule(c);
}

static void
cache_inbox(evutil_socket_t fd, short what, void *arg)
{
	struct secret_cache *c = arg;
	STAILQ_HEAD(, cache_req) reqs = STAILQ_HEAD_INITIALIZER(reqs);
	struct cache_req *q;
	uint64_t v;

	(void)what;
	/* Read first, then take the queue: a request queued in between
	 * wakes us again rather than waiting for the next one. */
	while (read(fd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&c->lock);
	STAILQ_CONCAT(&reqs, &c->inbox);
	pthread_mutex_unlock(&c->lock);
	if (!STAILQ_EMPTY(&reqs))
		cache_check_changed(c);
	while ((q = STAILQ_FIRST(&reqs)) != NULL) {
		STAILQ_REMOVE_HEAD(&reqs, link);
		if (!c->closing && !sc_box_dead(q->box)) {
			if (q->kind == SC_REQ_GET)
				cache_serve_view(c, q->box, q->path);
			else if (q->kind == SC_REQ_RELEASE)
				cache_release(c, q->path);
			else
				cache_hint(c, q->path);
		}
		sc_box_unref(q->box);
		free(q);
	}
}

int
cache_view_attach(struct secret_cache *c, struct sc_box *b, struct sc_clock *clock)
{
	if (c == NULL || c->closing)
		return CG_ERR_INTERNAL;
	if (!c->inbox_on) {
		if (event_add(c->inbox_ev, NULL) != 0)
			return CG_ERR_NOMEM;
		c->inbox_on = true;
	}
	*clock = c->clock;
	sc_box_ref(b);
	pthread_mutex_lock(&c->lock);
	LIST_INSERT_HEAD(&c->boxes, b, link);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void
cache_view_detach(struct secret_cache *c, struct sc_box *b)
{
	pthread_mutex_lock(&c->lock);
	LIST_REMOVE(b, link);
	pthread_mutex_unlock(&c->lock);
	sc_box_unref(b);
}

int
cache_view_request(struct secret_cache *c, struct sc_box *b, enum sc_req_kind kind,
    const char *path)
{
	size_t len = strlen(path);
	struct cache_req *q;
	uint64_t one = 1;
	bool first;

	if ((q = malloc(sizeof(*q) + len + 1)) == NULL)
		return CG_ERR_NOMEM;
	q->kind = kind;
	q->box = b;
	memcpy(q->path, path, len + 1);
	sc_box_ref(b);
	pthread_mutex_lock(&c->lock);
	first = STAILQ_EMPTY(&c->inbox);
	STAILQ_INSERT_TAIL(&c->inbox, q, link);
	pthread_mutex_unlock(&c->lock);
	if (first) {
		while (write(c->inbox_fd, &one, sizeof(one)) == -1 && errno == EINTR)
			;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The cache                                                           */
/* ------------------------------------------------------------------ */

static int
opts_check(const struct secret_cache_opts *o)
{
	if (o == NULL || o->ttl_ms < 0 || o->max_stale_ms < 0 || o->negative_ttl_ms < 0)
		return CG_ERR_LIMIT;
	return 0;
}

int
secret_cache_new(struct event_base *base, struct secret_backend *backend,
    int64_t ttl_ms, struct secret_cache **out)
{
	struct secret_cache_opts o = { ttl_ms, 0, 0 };

	return secret_cache_new_opts(base, backend, &o, out);
}

int
secret_cache_new_opts(struct event_base *base, struct secret_backend *backend,
    const struct secret_cache_opts *opts, struct secret_cache **out)
{
	struct secret_cache *c = NULL;
	int r;

	*out = NULL;
	if (backend == NULL || backend->ops == NULL ||
	    backend->ops->fetch == NULL) {
		r = CG_ERR_INTERNAL;
		goto out;
	}
	if ((r = opts_check(opts)) != 0)
		goto out;
	if (base == NULL) {
		r = CG_ERR_INTERNAL;
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	c->inbox_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	if ((c->buckets = calloc(CACHE_MIN_BUCKETS, sizeof(*c->buckets))) == NULL ||
	    (c->timer = evtimer_new(base, cache_timer, c)) == NULL ||
	    (c->inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (c->inbox_ev = event_new(base, c->inbox_fd, EV_READ | EV_PERSIST,
	    cache_inbox, c)) == NULL) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	c->base = base;
	c->o = *opts;
	c->gen = 1;
	c->max_entries = CACHE_MAX_ENTRIES;
	c->nbuckets = CACHE_MIN_BUCKETS;
	TAILQ_INIT(&c->lru);
	LIST_INIT(&c->flights);
	LIST_INIT(&c->ops);
	STAILQ_INIT(&c->inbox);
	LIST_INIT(&c->boxes);
	c->backend = backend;
	backend = NULL;
	*out = c;
	c = NULL;
	r = 0;
 out:
	if (c != NULL) {
		if (c->inbox_ev != NULL)
			event_free(c->inbox_ev);
		if (c->inbox_fd != -1)
			close(c->inbox_fd);
		if (c->timer != NULL)
			event_free(c->timer);
		pthread_mutex_destroy(&c->lock);
		free(c->buckets);
		free(c);
	}
	secret_backend_free(backend);	/* ours even on failure */
	return r;
}

int
secret_cache_configure(struct secret_cache *c, const struct secret_cache_opts *opts)
{
	struct cache_node *n;
	int r;

	if (c == NULL)
		return CG_ERR_INTERNAL;
	if ((r = opts_check(opts)) != 0)
		return r;
	if (memcmp(&c->o, opts, sizeof(c->o)) == 0)
		return 0;
	c->o = *opts;
	TAILQ_FOREACH(n, &c->lru, lru) {
		node_times(c, n);
		post_node(c, NULL, n);
	}
	cache_schedule(c);
	return 0;
}

int
secret_cache_watch(struct secret_cache *c, int64_t interval_ms)
{
	struct timeval tv;

	if (c == NULL || interval_ms < 0)
		return CG_ERR_INTERNAL;
	if (c->watch != NULL) {
		event_free(c->watch);
		c->watch = NULL;
	}
	if (interval_ms == 0 || c->backend->ops->changed == NULL)
		return 0;
	if ((c->watch = event_new(c->base, -1, EV_PERSIST, cache_watch, c)) == NULL)
		return CG_ERR_NOMEM;
	tv = cg_ms_tv(interval_ms);
	if (event_add(c->watch, &tv) != 0)
		return CG_ERR_NOMEM;
	return 0;
}

void
secret_cache_set_clock(struct secret_cache *c, int64_t (*now)(void *), void *arg)
{
	c->clock.now = now;
	c->clock.arg = arg;
	if (c->timer != NULL)
		evtimer_del(c->timer);
}

size_t
secret_cache_revoke_all(struct secret_cache *c)
{
	struct cache_node *n;

	if (c == NULL || c->closing)
		return 0;
	while ((n = TAILQ_FIRST(&c->lru)) != NULL) {
		node_drop_value(c, n, true);
		post_drop(c, n->path);
	}
	cache_schedule(c);
	return c->nrevoking;
}

bool
secret_cache_busy(const struct secret_cache *c)
{
	return c != NULL && c->nrevoking > 0;
}

void
secret_cache_free(struct secret_cache *c)
{
	struct cache_flight *f, *fnext;
	struct cache_node *n;
	struct cache_req *q;
	struct cache_op *op;
	size_t i;

	if (c == NULL || c->closing)
		return;
	if (!LIST_EMPTY(&c->boxes))
		abort();	/* views read it: they go first */

	/* The leases go before the backend that would revoke them. */
	secret_cache_revoke_all(c);
	c->closing = true;

	/* The backend drops its pending calls; flight_done() ignores any
	 * late answer because closing is set. */
	secret_backend_free(c->backend);
	c->backend = NULL;

	while ((op = LIST_FIRST(&c->ops)) != NULL) {
		LIST_REMOVE(op, link);
		op_free(op);
	}
	for (f = LIST_FIRST(&c->flights); f != NULL; f = fnext) {
		fnext = LIST_NEXT(f, link);
		LIST_REMOVE(f, link);
		sc_waitq_drop(&f->q);
		if (f->node != NULL)
			f->node->flight = NULL;
		if (!f->delivering)	/* else flight_done() frees it */
			free(f);
	}
	for (i = 0; i < c->nbuckets; i++) {
		while ((n = c->buckets[i]) != NULL) {
			c->buckets[i] = n->next;
			secret_unref(n->stale_s);
			secret_unref(n->s);
			free(n->path);
			free(n);
		}
	}
	TAILQ_INIT(&c->lru);
	c->nnodes = c->ncached = 0;
	while ((q = STAILQ_FIRST(&c->inbox)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->inbox, link);
		sc_box_unref(q->box);
		free(q);
	}
	if (c->watch != NULL)
		event_free(c->watch);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->inbox_ev != NULL)
		event_free(c->inbox_ev);
	if (c->inbox_fd != -1)
		close(c->inbox_fd);
	c->watch = c->timer = c->inbox_ev = NULL;
	c->inbox_fd = -1;
	if (c->delivering == 0) {
		pthread_mutex_destroy(&c->lock);
		free(c->buckets);
		free(c);
	}
}

int
secret_cache_get(struct secret_cache *c, const char *path, struct secret **out,
    secret_cb cb, void *arg, struct secret_wait **wait)
{
	struct secret_wait *w = NULL;
	struct cache_node *n;
	struct secret *s;
	int64_t now;
	int r;

	*out = NULL;
	if (wait != NULL)
		*wait = NULL;
	if (c == NULL || c->closing || path == NULL || cb == NULL)
		return CG_ERR_INTERNAL;

	cache_check_changed(c);
	now = sc_now(&c->clock);
	if ((n = node_find(c, path)) != NULL) {
		switch (cache_answer(c, n, now, &s)) {
		case ANS_FRESH:
			c->st.hits++;
			*out = secret_ref(s);
			return 0;
		case ANS_STALE:
			c->st.hits++;
			c->st.stale++;
			*out = secret_ref(s);
			return 0;
		case ANS_FAILED:
			c->st.misses++;
			c->st.negative++;
			return n->err;
		case ANS_WAIT:
			break;
		}
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
	if (n->flight == NULL && (r = flight_start(c, n)) != 0)
		goto out;
	w->q = &n->flight->q;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&w->q->waits, w, link);
	if (wait != NULL)
		*wait = w;
	w = NULL;
	r = CG_ERR_AGAIN;
 out:
	free(w);
	if (n != NULL)
		node_release(c, n);
	return r;
}

int
secret_cache_check(struct secret_cache *c, const char *path, const char **reason)
{
	struct cache_node *n;
	int64_t now;

	*reason = NULL;
	if (c == NULL || c->closing || path == NULL)
		return CG_ERR_INTERNAL;
	now = sc_now(&c->clock);
	if ((n = node_find(c, path)) == NULL && (n = node_new(c, path)) == NULL) {
		*reason = "out of memory";
		return CG_ERR_NOMEM;
	}
	/* Out of date: never fetched, fetched before the source changed, or
	 * a failure old enough to try again. */
	if (n->known_gen != c->gen || (n->failed && now >= n->neg_until))
		cache_refresh(c, n, now);
	if (n->known_gen == 0) {
		node_release(c, n);
		*reason = "not fetched yet";
		return CG_ERR_AGAIN;
	}
	if (!n->failed)
		return 0;
	/* The last fetch failed: still ready while what is cached is served
	 * (a refresh ahead failed, or stale within the bound). */
	if (n->s != NULL && (now < n->expires_at ||
	    (now < n->stale_until && n->failed_at >= n->fetched_at)))
		return 0;
	*reason = n->reason;
	return n->err;
}

enum secret_backend_state
secret_cache_status(const struct secret_cache *c, const char **reason)
{
	if (c == NULL || c->backend == NULL) {
		if (reason != NULL)
			*reason = "no secret store";
		return SECRET_BACKEND_DOWN;
	}
	return secret_backend_status(c->backend, reason);
}

void
secret_cache_stats(const struct secret_cache *c, struct secret_cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (c != NULL)
		*st = c->st;
}

const struct secret_backend *
secret_cache_backend(const struct secret_cache *c)
{
	return c != NULL ? c->backend : NULL;
}
