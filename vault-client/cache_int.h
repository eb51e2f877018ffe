/*
 * cache_int.h: what the files of vault-client/ share behind vault.h: the
 * stale copy of a secret (secret.c), the wait (cache.c and view.c), and
 * the two directions of traffic between the secret cache on the control
 * thread (cache.c) and the views of the worker threads (view.c).  Not for
 * use outside vault-client/.
 *
 * A view asks the cache through the cache's inbox: a mutex-protected queue
 * and an eventfd the control thread's event base listens on.  The cache
 * answers, and pushes what changed, through each view's mailbox (struct
 * sc_box): a mutex-protected queue and an eventfd the view's event base
 * listens on.  Neither side's event base is touched by the other thread.
 */
#ifndef CG_VAULT_CACHE_INT_H
#define CG_VAULT_CACHE_INT_H

#include <sys/queue.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vault-client/vault.h"

/*
 * A copy of s, in its own block of secure memory, for which secret_stale()
 * is true: what the cache hands out when it serves s past its expiry.
 * Returns 0 and *out (refcount 1), or CG_ERR_NOMEM.
 */
int secret_stale_copy(const struct secret *s, struct secret **out) CG_WUR;

/* ------------------------------------------------------------------ */
/* Waits                                                               */
/* ------------------------------------------------------------------ */

/* The waits for one answer: a flight's (cache.c) or a view node's. */
TAILQ_HEAD(sc_waits, secret_wait);
struct sc_waitq {
	struct sc_waits waits;
};

struct secret_wait {
	struct sc_waitq *q;	/* NULL while its callback runs */
	secret_cb cb;
	void *arg;
	TAILQ_ENTRY(secret_wait) link;	/* q->waits */
};

/* Frees every wait still in q, without calling it. */
void sc_waitq_drop(struct sc_waitq *q);

/* ------------------------------------------------------------------ */
/* The clock                                                           */
/* ------------------------------------------------------------------ */

/* Monotonic milliseconds: cg_mono_ms(), or the test's clock. */
struct sc_clock {
	int64_t (*now)(void *arg);	/* NULL: cg_mono_ms() */
	void *arg;
};

static inline int64_t
sc_now(const struct sc_clock *k)
{
	return k->now == NULL ? cg_mono_ms() : k->now(k->arg);
}

/* ------------------------------------------------------------------ */
/* Cache to view: a view's mailbox (view.c)                            */
/* ------------------------------------------------------------------ */

enum sc_msg_kind {
	SC_MSG_ENTRY,		/* path's secret, to keep and to answer waits */
	SC_MSG_ERROR,		/* path cannot be had now: answer waits */
	SC_MSG_DROP,		/* stop serving path */
	SC_MSG_DROP_ALL,	/* stop serving anything (the source changed) */
};

struct sc_msg {
	enum sc_msg_kind kind;
	struct secret *s;	/* ENTRY: a reference the message holds */
	int64_t refresh_at;	/* ENTRY: from then on a use asks for a refresh */
	int64_t expires_at;	/* ENTRY: from then on it is not served */
	bool store;		/* ENTRY: false: answer waits, keep nothing */
	int err;		/* ERROR */
	const char *reason;	/* ERROR: static */
	STAILQ_ENTRY(sc_msg) link;
	char path[];		/* all but DROP_ALL */
};
STAILQ_HEAD(sc_msgs, sc_msg);

/* A new message for path (NULL for DROP_ALL); NULL when out of memory. */
struct sc_msg *sc_msg_new(enum sc_msg_kind kind, const char *path);
void sc_msg_free(struct sc_msg *m);	/* NULL-safe; drops its reference */

struct sc_box {
	pthread_mutex_t lock;
	int refs;		/* atomic: the view's, the cache's list's and
				   each request's in the cache's inbox */
	int fd;			/* eventfd: written when q gets its first
				   message; closed with the box */
	struct sc_msgs q;	/* under lock */
	bool dead;		/* under lock: the view is gone */
	bool lost;		/* under lock: a message could not be made */
	LIST_ENTRY(sc_box) link;	/* cache's boxes, under its lock */
};

/* Takes m, and drops it when the view is gone.  Any thread. */
void sc_box_post(struct sc_box *b, struct sc_msg *m);
/* A message for b could not be made: b's view fails what waits. */
void sc_box_lost(struct sc_box *b);
void sc_box_ref(struct sc_box *b);
void sc_box_unref(struct sc_box *b);	/* NULL-safe */
bool sc_box_dead(struct sc_box *b);

/* ------------------------------------------------------------------ */
/* View to cache: the cache's inbox (cache.c)                          */
/* ------------------------------------------------------------------ */

enum sc_req_kind {
	SC_REQ_GET,		/* answer with ENTRY or ERROR (now or later) */
	SC_REQ_REFRESH,		/* an entry in its last part of life was used */
	SC_REQ_RELEASE,		/* a session's own secret is done with */
};

/*
 * Called by a view when it is made (on the control thread) and when it
 * goes (any thread).  Attached, b gets every message the cache sends to
 * all views.
 */
int cache_view_attach(struct secret_cache *c, struct sc_box *b, struct sc_clock *clock) CG_WUR;
void cache_view_detach(struct secret_cache *c, struct sc_box *b);
/* Queues a request of b's view for path; any thread.  0 or CG_ERR_NOMEM. */
int cache_view_request(struct secret_cache *c, struct sc_box *b, enum sc_req_kind kind,
    const char *path) CG_WUR;

#endif /* CG_VAULT_CACHE_INT_H */
