/*
 * view.c: a worker thread's view of the secret cache, and the mailbox the
 * cache fills it through.
 *
 * Owns struct secret_view: per path, a reference to the secret the cache
 * sent, when to ask for a refresh and when to stop serving it, and the
 * waits of requests that asked the cache; and struct sc_box, the mailbox
 * (shared with the cache, reference-counted, so that either side may go
 * first).  A hit is a lookup, a clock read and a reference: no lock, no
 * system call.  Everything else goes through the cache (cache.c) on the
 * control thread: the view never fetches, renews or expires anything by
 * itself beyond not serving an entry past the time the cache gave it.
 *
 * Must not look inside a secret.  Runs on its worker's event base; the
 * only thing it shares with other threads is its mailbox and the cache's
 * inbox, each under its own lock.
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

#define VIEW_MIN_BUCKETS	16
#define VIEW_MAX_NODES		4096	/* idle ones go beyond this */

/* ------------------------------------------------------------------ */
/* Messages and mailboxes                                              */
/* ------------------------------------------------------------------ */

struct sc_msg *
sc_msg_new(enum sc_msg_kind kind, const char *path)
{
	size_t len = path != NULL ? strlen(path) : 0;
	struct sc_msg *m;

	if ((m = calloc(1, sizeof(*m) + len + 1)) == NULL)
		return NULL;
	m->kind = kind;
	if (path != NULL)
		memcpy(m->path, path, len + 1);
	return m;
}

void
sc_msg_free(struct sc_msg *m)
{
	if (m == NULL)
		return;
	secret_unref(m->s);
	free(m);
}

static void
sc_box_wake(struct sc_box *b)
{
	uint64_t one = 1;

	while (write(b->fd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

void
sc_box_post(struct sc_box *b, struct sc_msg *m)
{
	bool first;

	pthread_mutex_lock(&b->lock);
	if (b->dead) {
		pthread_mutex_unlock(&b->lock);
		sc_msg_free(m);
		return;
	}
	first = STAILQ_EMPTY(&b->q) && !b->lost;
	STAILQ_INSERT_TAIL(&b->q, m, link);
	pthread_mutex_unlock(&b->lock);
	/* The fd lives as long as the box, and we are called with a
	 * reference to it: writing after the unlock is safe. */
	if (first)
		sc_box_wake(b);
}

void
sc_box_lost(struct sc_box *b)
{
	bool first;

	pthread_mutex_lock(&b->lock);
	first = STAILQ_EMPTY(&b->q) && !b->lost;
	b->lost = !b->dead;
	pthread_mutex_unlock(&b->lock);
	if (first)
		sc_box_wake(b);
}

void
sc_box_ref(struct sc_box *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

void
sc_box_unref(struct sc_box *b)
{
	struct sc_msg *m;

	if (b == NULL || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	while ((m = STAILQ_FIRST(&b->q)) != NULL) {
		STAILQ_REMOVE_HEAD(&b->q, link);
		sc_msg_free(m);
	}
	if (b->fd != -1)
		close(b->fd);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

bool
sc_box_dead(struct sc_box *b)
{
	bool dead;

	pthread_mutex_lock(&b->lock);
	dead = b->dead;
	pthread_mutex_unlock(&b->lock);
	return dead;
}

static struct sc_box *
sc_box_new(void)
{
	struct sc_box *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if ((b->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		free(b);
		return NULL;
	}
	pthread_mutex_init(&b->lock, NULL);
	STAILQ_INIT(&b->q);
	b->refs = 1;
	return b;
}

/* ------------------------------------------------------------------ */
/* The view                                                            */
/* ------------------------------------------------------------------ */

struct view_node {
	char *path;			/* not secret */
	uint64_t hash;
	struct secret *s;		/* our reference; NULL when none served */
	int64_t refresh_at;		/* used from here on: ask for a refresh */
	int64_t expires_at;		/* from here on: ask the cache */
	bool hinted;			/* the refresh was asked for */
	bool asked;			/* a GET is out; q waits for its answer */
	bool lost;			/* its answer was lost (view_lost) */
	struct sc_waitq q;
	struct view_node *next;		/* bucket chain */
};

struct secret_view {
	struct secret_cache *c;
	struct event_base *base;
	struct sc_box *box;		/* our reference */
	struct event *ev;		/* box->fd readable */
	struct sc_clock clock;		/* the cache's */
	struct view_node **buckets;
	size_t nbuckets;		/* a power of two */
	size_t nnodes;
	int delivering;			/* depth of view_wake() */
	bool closing;			/* secret_view_free() ran */
};

/* FNV-1a, 64 bits, as the cache. */
static uint64_t
view_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct view_node *
vnode_find(struct secret_view *v, const char *path)
{
	uint64_t h = view_hash(path);
	struct view_node *n;

	for (n = v->buckets[h & (v->nbuckets - 1)]; n != NULL; n = n->next) {
		if (n->hash == h && strcmp(n->path, path) == 0)
			return n;
	}
	return NULL;
}

static void
vnode_drop(struct view_node *n)
{
	secret_unref(n->s);
	n->s = NULL;
	n->hinted = false;
}

/* Nodes are kept (a path asked once is asked again); past the bound,
 * those that serve nothing and wait for nothing go. */
static void
view_sweep(struct secret_view *v)
{
	struct view_node **pp, *n;
	size_t i;

	for (i = 0; i < v->nbuckets; i++) {
		for (pp = &v->buckets[i]; (n = *pp) != NULL;) {
			if (n->s == NULL && !n->asked && TAILQ_EMPTY(&n->q.waits)) {
				*pp = n->next;
				free(n->path);
				free(n);
				v->nnodes--;
			} else
				pp = &n->next;
		}
	}
}

static void
view_grow(struct secret_view *v)
{
	struct view_node **nb, *n, *next;
	size_t size = v->nbuckets * 2, i;

	if (size < v->nbuckets || (nb = calloc(size, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < v->nbuckets; i++) {
		for (n = v->buckets[i]; n != NULL; n = next) {
			next = n->next;
			n->next = nb[n->hash & (size - 1)];
			nb[n->hash & (size - 1)] = n;
		}
	}
	free(v->buckets);
	v->buckets = nb;
	v->nbuckets = size;
}

static struct view_node *
vnode_new(struct secret_view *v, const char *path)
{
	struct view_node *n;
	size_t b;

	if (v->nnodes >= VIEW_MAX_NODES)
		view_sweep(v);
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	if ((n->path = strdup(path)) == NULL) {
		free(n);
		return NULL;
	}
	n->hash = view_hash(path);
	TAILQ_INIT(&n->q.waits);
	if (v->nnodes >= v->nbuckets)
		view_grow(v);
	b = n->hash & (v->nbuckets - 1);
	n->next = v->buckets[b];
	v->buckets[b] = n;
	v->nnodes++;
	return n;
}

static void
view_destroy(struct secret_view *v)
{
	free(v->buckets);
	free(v);
}

/*
 * Answers every wait of n (s lent, or err and reason).  Callbacks may
 * get, cancel or free the view: the waits are moved to a list of our own
 * first, so that a get for the same path asks anew.
 */
static void
view_deliver(struct secret_view *v, struct view_node *n, int err, struct secret *s,
    const char *reason)
{
	struct sc_waitq mine;
	struct secret_wait *w;

	TAILQ_INIT(&mine.waits);
	while ((w = TAILQ_FIRST(&n->q.waits)) != NULL) {
		TAILQ_REMOVE(&n->q.waits, w, link);
		w->q = &mine;
		TAILQ_INSERT_TAIL(&mine.waits, w, link);
	}
	n->asked = false;
	s = secret_ref(s);	/* whatever the callbacks drop */
	while (!v->closing && (w = TAILQ_FIRST(&mine.waits)) != NULL) {
		TAILQ_REMOVE(&mine.waits, w, link);
		w->q = NULL;	/* cancel on it is now a no-op */
		if (err == 0)
			w->cb(0, s, NULL, w->arg);
		else
			w->cb(err, NULL, reason != NULL ? reason : cg_strerror(err), w->arg);
		free(w);
	}
	sc_waitq_drop(&mine);	/* the view went: no more callbacks */
	secret_unref(s);
}

static void
view_handle(struct secret_view *v, struct sc_msg *m)
{
	struct view_node *n;
	size_t i;

	if (m->kind == SC_MSG_DROP_ALL) {
		for (i = 0; i < v->nbuckets; i++)
			for (n = v->buckets[i]; n != NULL; n = n->next)
				vnode_drop(n);
		return;
	}
	/* A new entry is kept even for a path this view has not asked for
	 * yet: the cache fetched it for another view or ahead of requests
	 * (route secrets at start), and this view's first request for it
	 * is then a hit too. */
	if ((n = vnode_find(v, m->path)) == NULL &&
	    (m->kind != SC_MSG_ENTRY || !m->store ||
	    strstr(m->path, SECRET_SESSION_MARK) != NULL ||	/* another's */
	    (n = vnode_new(v, m->path)) == NULL))
		return;
	switch (m->kind) {
	case SC_MSG_ENTRY:
		if (m->store) {
			vnode_drop(n);
			n->s = secret_ref(m->s);
			n->refresh_at = m->refresh_at;
			n->expires_at = m->expires_at;
		}
		if (n->asked)
			view_deliver(v, n, 0, m->s, NULL);
		break;
	case SC_MSG_ERROR:
		if (n->asked)
			view_deliver(v, n, m->err, NULL, m->reason);
		break;
	case SC_MSG_DROP:
		vnode_drop(n);
		break;
	case SC_MSG_DROP_ALL:
		break;
	}
}

/* A message could not be made for us: what waits fails, nothing stays.
 * One node at a time, looked for afresh: callbacks may add or sweep
 * nodes. */
static void
view_lost(struct secret_view *v)
{
	struct view_node *n;
	size_t i;

	for (i = 0; i < v->nbuckets; i++)
		for (n = v->buckets[i]; n != NULL; n = n->next) {
			vnode_drop(n);
			n->lost = n->asked;
		}
	while (!v->closing) {
		for (i = 0, n = NULL; i < v->nbuckets && n == NULL; i++)
			for (n = v->buckets[i]; n != NULL && !n->lost; n = n->next)
				;
		if (n == NULL)
			break;
		n->lost = false;
		if (n->asked)
			view_deliver(v, n, CG_ERR_NOMEM, NULL, "out of memory");
	}
}

static void
view_wake(evutil_socket_t fd, short what, void *arg)
{
	struct secret_view *v = arg;
	struct sc_msgs q = STAILQ_HEAD_INITIALIZER(q);
	struct sc_msg *m;
	uint64_t val;
	bool lost;

	(void)what;
	/* Read first, then take the queue (see cache.c's inbox). */
	while (read(fd, &val, sizeof(val)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&v->box->lock);
	STAILQ_CONCAT(&q, &v->box->q);
	lost = v->box->lost;
	v->box->lost = false;
	pthread_mutex_unlock(&v->box->lock);

	v->delivering++;
	while ((m = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, link);
		if (!v->closing)
			view_handle(v, m);
		sc_msg_free(m);
	}
	if (lost && !v->closing)
		view_lost(v);
	v->delivering--;
	if (v->closing && v->delivering == 0)
		view_destroy(v);
}

int
secret_view_new(struct secret_cache *c, struct event_base *base, struct secret_view **out)
{
	struct secret_view *v = NULL;
	int r;

	*out = NULL;
	if (c == NULL || base == NULL)
		return CG_ERR_INTERNAL;
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v->buckets = calloc(VIEW_MIN_BUCKETS, sizeof(*v->buckets))) == NULL) {
		r = CG_ERR_NOMEM;
		goto fail;
	}
	v->nbuckets = VIEW_MIN_BUCKETS;
	v->c = c;
	v->base = base;
	if ((v->box = sc_box_new()) == NULL) {
		r = CG_ERR_IO;
		goto fail;
	}
	if ((v->ev = event_new(base, v->box->fd, EV_READ | EV_PERSIST, view_wake, v)) == NULL ||
	    event_add(v->ev, NULL) != 0) {
		r = CG_ERR_NOMEM;
		goto fail;
	}
	if ((r = cache_view_attach(c, v->box, &v->clock)) != 0)
		goto fail;
	*out = v;
	return 0;
 fail:
	if (v != NULL) {
		if (v->ev != NULL)
			event_free(v->ev);
		sc_box_unref(v->box);
		free(v->buckets);
		free(v);
	}
	return r;
}

void
secret_view_free(struct secret_view *v)
{
	struct view_node *n;
	struct sc_msg *m;
	size_t i;

	if (v == NULL || v->closing)
		return;
	v->closing = true;
	cache_view_detach(v->c, v->box);
	pthread_mutex_lock(&v->box->lock);
	v->box->dead = true;
	while ((m = STAILQ_FIRST(&v->box->q)) != NULL) {
		STAILQ_REMOVE_HEAD(&v->box->q, link);
		sc_msg_free(m);
	}
	pthread_mutex_unlock(&v->box->lock);
	event_free(v->ev);
	v->ev = NULL;
	for (i = 0; i < v->nbuckets; i++) {
		while ((n = v->buckets[i]) != NULL) {
			v->buckets[i] = n->next;
			sc_waitq_drop(&n->q);
			secret_unref(n->s);
			free(n->path);
			free(n);
		}
	}
	v->nnodes = 0;
	sc_box_unref(v->box);	/* the cache may still hold requests of ours */
	v->box = NULL;
	if (v->delivering == 0)
		view_destroy(v);
}

int
secret_view_get(struct secret_view *v, const char *path, struct secret **out,
    secret_cb cb, void *arg, struct secret_wait **wait)
{
	struct secret_wait *w;
	struct view_node *n;
	int64_t now;
	int r;

	*out = NULL;
	if (wait != NULL)
		*wait = NULL;
	if (v == NULL || v->closing || path == NULL || cb == NULL)
		return CG_ERR_INTERNAL;

	n = vnode_find(v, path);
	if (n != NULL && n->s != NULL) {
		now = sc_now(&v->clock);
		if (now < n->expires_at) {
			/* In its last part of life: the cache refreshes it
			 * (once per entry); this use is served as it is. */
			if (now >= n->refresh_at && !n->hinted &&
			    cache_view_request(v->c, v->box, SC_REQ_REFRESH, path) == 0)
				n->hinted = true;
			*out = secret_ref(n->s);
			return 0;
		}
		vnode_drop(n);	/* expired: the cache says what now */
	}

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return CG_ERR_NOMEM;
	if (n == NULL && (n = vnode_new(v, path)) == NULL) {
		free(w);
		return CG_ERR_NOMEM;
	}
	if (!n->asked) {
		if ((r = cache_view_request(v->c, v->box, SC_REQ_GET, path)) != 0) {
			free(w);
			return r;
		}
		n->asked = true;
	}
	w->q = &n->q;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&n->q.waits, w, link);
	if (wait != NULL)
		*wait = w;
	return CG_ERR_AGAIN;
}

void
secret_view_cancel(struct secret_wait *w)
{
	secret_cache_cancel(w);
}

int
secret_session_key(char *out, size_t outlen, const char *path, unsigned worker, uint64_t id)
{
	int n = snprintf(out, outlen, "%s" SECRET_SESSION_MARK "%u-%llu", path, worker,
	    (unsigned long long)id);

	return n < 0 || (size_t)n >= outlen ? CG_ERR_LIMIT : 0;
}

void
secret_view_release(struct secret_view *v, const char *key)
{
	struct view_node **pp, *n;

	if (v == NULL || v->closing || key == NULL)
		return;
	for (pp = &v->buckets[view_hash(key) & (v->nbuckets - 1)]; (n = *pp) != NULL;
	    pp = &n->next) {
		if (strcmp(n->path, key) != 0)
			continue;
		vnode_drop(n);
		if (TAILQ_EMPTY(&n->q.waits)) {
			/* An answer still on its way finds no node: dropped. */
			*pp = n->next;
			free(n->path);
			free(n);
			v->nnodes--;
		}
		break;
	}
	/* Out of memory: the lease ends on its own (the cache revokes it at
	 * its end), later than it should. */
	if (cache_view_request(v->c, v->box, SC_REQ_RELEASE, key) != 0)
		cg_warn("msg=session_secret_release_failed reason=\"out of memory\"");
}
