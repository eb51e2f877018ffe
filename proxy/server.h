/*
 * server.h: the process (control thread), its workers and the configuration
 * generations they share.
 *
 * - A generation (struct cg_gen) is one loaded configuration plus what it
 *   needs at run time (resolved upstreams); immutable, reference-counted.
 *   A connection keeps the generation it started with; a reload publishes
 *   a new one to every worker.
 * - A worker (struct cg_worker) is one thread with its own event loop, its
 *   own SO_REUSEPORT listeners, connections, view of the secret cache and
 *   token cache.  Nothing on its hot path takes a lock.
 * - The process (struct cg_process) runs the control thread: signals,
 *   reload, drain, the audit sink shared by all workers, and the secret
 *   cache (one backend, one fetch per secret for all workers), which lives
 *   across generations.
 */
#ifndef CG_SERVER_H
#define CG_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "common.h"
#include "proxy/audit.h"
#include "proxy/conf.h"

struct event_base;
struct event;
struct evconnlistener;
struct secret_cache;
struct secret_view;
struct token_cache;
struct cg_audit;
struct cg_process;
struct conn;

/* A route's counters that outlive generations (found by route name). */
struct cg_route_shared {
	char *name;
	uint32_t open;			/* connections open, all workers (atomic) */
	struct cg_route_shared *next;
};

/* A trust domain's counters that outlive generations (found by name);
 * the control thread's only. */
struct cg_trust_shared {
	char *name;
	uint64_t reloads_ok;		/* re-reads of the bundle file that took */
	uint64_t reloads_failed;	/* ... and that did not */
	struct cg_trust_shared *next;
};

/* Longest key of the pool of idle upstream connections (worker_up_put). */
#define UP_KEY_MAX 200

/* What a route needs at run time besides its configuration. */
struct cg_route_rt {
	const struct cg_route *route;
	struct sockaddr_storage upstream;	/* resolved when the generation is built */
	socklen_t upstream_len;
	char upstream_name[80];			/* "host:port" for audit and logs */
	char listen_key[128];			/* "host:port" or "unix:/path" */
	struct cg_route_shared *shared;
	struct ssl_ctx_st *server_ctx;		/* listener TLS; NULL = plain */
	struct ssl_ctx_st *client_ctx;		/* upstream TLS; NULL = plain */
	const struct inj_ops *proto;		/* routes.[].protocol */
	const void *proto_cfg;			/* its settings of the route */
	char up_key[UP_KEY_MAX];		/* which pooled upstream
						   connections the route reuses;
						   "" = it does not pool */
};

struct trust_bundle;

struct cg_gen {
	unsigned refs;			/* atomic */
	uint64_t number;
	struct cg_config *cfg;
	struct cg_route_rt *routes;	/* cfg->nroutes entries */
	size_t nroutes;
	struct trust_bundle **bundles;	/* one reference each, parallel to
					   cfg->trust_domains (proxy/trust.h);
					   the control thread keeps the
					   newest generation's fresh */
	struct cg_trust_shared **bundle_shared;	/* their counters */
	size_t nbundles;
};
struct cg_gen *cg_gen_ref(struct cg_gen *g);
void cg_gen_unref(struct cg_gen *g);	/* NULL-safe; any thread */
/* The route of g listening on key; NULL if none. */
struct cg_route_rt *cg_gen_route_by_listen(struct cg_gen *g, const char *key);

/*
 * Connections a listener takes in one pass of the loop.  What a pass
 * decided is audited and forwarded at its end: without a bound, a full
 * backlog would hold every reply and every decided request back for a
 * backlog's worth of signature checks.
 */
#define ACCEPT_BURST 8

/*
 * Connections each client address holds before sending a complete request
 * head, over all workers (credgate.max_pending_per_client): two rows of
 * counters, each indexed by a keyed hash of the address, and an address's
 * count is the smaller of its two.  Lock-free and of fixed size; two
 * addresses share a count only when they collide in both rows.
 */
#define PENDING_BUCKETS 32768
struct cg_pending_table {
	uint64_t key[2];			/* random */
	uint32_t count[2][PENDING_BUCKETS];	/* atomic */
};
/* Where one address counts: a bucket in each row. */
struct cg_pending_slot {
	uint32_t at[2];
};

/* One listening socket of one worker. */
struct cg_listener {
	char key[128];			/* the listen address, as listen_key */
	int fd;
	struct evconnlistener *ev;
	struct event *resume;		/* turns accepting back on after a pause;
					   pending while paused */
	struct event *take;		/* takes the accepted ones at the end
					   of the pass */
	unsigned npend;			/* accepted, not yet taken */
	bool held;			/* pend[] waits for a connection slot;
					   the listener is off meanwhile */
	struct cg_accepted {
		int fd;
		socklen_t salen;
		int64_t since_ms;	/* accepted at (monotonic) */
		struct sockaddr_storage sa;
	} pend[ACCEPT_BURST];
	struct cg_worker *worker;
	struct cg_listener *next;
};

TAILQ_HEAD(conn_list, conn);

/* What a protocol keeps per route and worker, made from the route's
 * last credential (the HTTP front: what its responses are searched for);
 * one per route of the worker's generation (conn.c). */
struct secret;
struct inj_ops;
struct cg_route_slot {
	struct secret *cred;		/* a reference */
	void *obj;			/* the protocol's, made from cred */
	const struct inj_ops *ops;	/* frees obj */
};

/* Bytes of a worker's scratch memory: room for the most fields a message
 * head may have (HTTP_MAX_FIELDS_HARD). */
#define WORKER_SCRATCH	(HTTP_MAX_FIELDS_HARD * sizeof(struct http_field))

/* Bytes one read of a plain socket takes at most. */
#define CONN_READ_MAX 16384
/* Freed connection structs a worker keeps for its next accepts. */
#define CONN_SPARE_MAX 64

struct cg_worker {
	unsigned index;
	pthread_t thread;
	struct cg_process *proc;
	struct event_base *base;
	struct cg_gen *gen;		/* current; a reference */
	struct cg_listener *listeners;
	unsigned nheld;			/* listeners waiting for a slot */
	struct conn_list conns;		/* live connections */
	struct conn_list pending;	/* those without a complete request
					   head yet, oldest first */
	struct conn_list dead;		/* closed, freed by the reaper */
	struct event *reaper;
	struct cg_audit_batch audit;	/* this pass's audit events */
	struct event *audit_ev;		/* writes them at the end of the pass */
	struct conn_list audit_waiters;	/* allowed, waiting for them to be written */
	struct conn_list key_waiters;	/* their token's issuer lacked its key:
					   waiting for the ring's answer */
	void *scratch;			/* WORKER_SCRATCH bytes a protocol may use
					   within one call (where heads are parsed) */
	char *rbuf;			/* CONN_READ_MAX: where plain sockets are read */
	struct conn *conn_spare[CONN_SPARE_MAX]; /* wiped, ready for reuse */
	unsigned nconn_spare;
	struct secret_view *secrets;	/* this worker's view of proc->secrets */
	struct token_cache *tokens;
	struct cg_metrics *metrics;
	struct cg_route_metrics **route_metrics; /* parallel to gen->routes */
	struct cg_route_slot *route_slots; /* parallel to gen->routes; may be NULL */
	size_t nroute_slots;
	struct up_pool *up_pools;	/* idle upstream connections, by key */
	struct up_idle *up_spare;	/* pool entries kept for reuse */
	unsigned nup_spare;
	uint64_t next_conn_id;
	uint64_t rid_prefix;		/* random, for request ids */
	uint64_t rid_counter;
	uint64_t nconns;
	bool draining;
	bool started;			/* the thread runs (control thread's view) */
	bool done;			/* the thread left its loop (atomic) */

	/* Mailbox from the control thread, under lock; wake_fd[1] is written
	 * to wake the worker, which reads wake_fd[0]. */
	pthread_mutex_t lock;
	int wake_fd[2];
	struct event *wake_ev;
	struct cg_gen *pending_gen;		/* publish this generation */
	struct cg_listener *pending_listeners;	/* adopt these sockets */
	bool pending_drain;
	bool pending_stop;
	bool pending_keys;			/* a key ring answered: look at
						   the callers waiting for keys */
	unsigned pending_evict;		/* close this many silent connections:
					   another worker is at the limit */
	unsigned evict_next;		/* the worker this one asks next (its own) */
};

struct cg_process {
	struct event_base *base;
	const char *config_file;
	struct cg_gen *gen;		/* the newest generation */
	uint64_t gen_counter;
	struct cg_worker *workers;
	size_t nworkers;
	struct cg_audit *audit;		/* shared: one fd, whole-line writes */
	struct cg_pending_table *pending; /* per client address, all workers */
	struct cg_route_shared *route_shared;
	struct cg_trust_shared *trust_shared;
	struct event *trust_watch;	/* looks at the trust bundle files */
	struct event *signals[5];
	struct event *drain_timer;
	struct event *drain_poll;
	bool draining;
	bool reload_ok;
	int64_t reload_time;
	uint32_t conns_open;		/* all workers (atomic) */
	struct cg_admin *admin;
	struct cg_process_metrics *pmetrics;
	struct secret_cache *secrets;	/* owned by the control thread; every
					   generation's, freed after the workers */
	struct keyfetch *keys;		/* fetches issuers' keys; every
					   generation's, freed after the workers */
};

/*
 * Builds the process from a loaded configuration: the first generation,
 * the audit sink, the workers and their listeners (bound here, before
 * privileges are dropped).  Takes ownership of cfg.  Returns 0, or a
 * CG_ERR_* with err filled in.
 */
int server_new(const char *file, struct cg_config *cfg, struct cg_process **out,
    char *err, size_t errlen) CG_WUR;
/* Starts the workers and runs the control loop until the workers have
 * drained after SIGTERM; returns 0. */
int server_run(struct cg_process *p);
void server_free(struct cg_process *p);

/* worker.c */
int worker_init(struct cg_worker *w, struct cg_process *p, unsigned index,
    char *err, size_t errlen) CG_WUR;
/* Adds a listening socket before the worker's thread starts. */
int worker_add_listener(struct cg_worker *w, const char *key, int fd) CG_WUR;
int worker_start(struct cg_worker *w) CG_WUR;
void worker_post(struct cg_worker *w);	/* wake it to read its mailbox */
void worker_free(struct cg_worker *w);
/* Opens a SO_REUSEPORT listening socket for "host:port". */
int listener_open(const char *host, int port, int *fd, char *err, size_t errlen) CG_WUR;
/* Connection accounting, all workers: false when a limit refuses it. */
bool worker_conn_admit(struct cg_worker *w, struct cg_route_rt *rt, int *why);
/* A connection slot is given back: a listener waiting for one takes it. */
void worker_conn_release(struct cg_worker *w, struct cg_route_rt *rt);
/* The per-client table (NULL on failure) and its counts: add counts a new
 * pending connection of sa's address, false (nothing counted) when the
 * address is at limit; done uncounts one. */
struct cg_pending_table *pending_table_new(void);
bool pending_add(struct cg_pending_table *t, const struct sockaddr *sa, uint32_t limit,
    struct cg_pending_slot *slot);
void pending_done(struct cg_pending_table *t, const struct cg_pending_slot *slot);

/*
 * Idle upstream connections, per worker, reused across client
 * connections of the same route and upstream.  put takes the bufferevent
 * (closing it when max of that key are idle already); get hands one over
 * (the caller sets its callbacks), NULL when none.  data, the protocol's
 * object of the connection (NULL: none), goes and comes with it, and is
 * freed with data_free when the pool closes the connection.  Idle ones
 * close after idle_ms, or when the upstream closes them or sends
 * anything.  rm, the route's metrics, counts them while they idle.
 */
struct bufferevent;
struct cg_route_metrics;
void worker_up_put(struct cg_worker *w, const char *key, struct bufferevent *bev,
    unsigned max, int64_t idle_ms, void *data, void (*data_free)(void *),
    struct cg_route_metrics *rm);
struct bufferevent *worker_up_get(struct cg_worker *w, const char *key, void **data);
void worker_up_clear(struct cg_worker *w);
bool worker_up_any(const struct cg_worker *w);	/* any idle one */

/*
 * What the worker's sessions (conn.c and its companions) ask of it; only
 * worker.c writes struct cg_worker.
 */
void worker_conn_add(struct cg_worker *w, struct conn *c);	/* live and pending */
void worker_conn_unpend(struct cg_worker *w, struct conn *c);	/* a complete request */
void worker_conn_dead(struct cg_worker *w, struct conn *c);	/* closed: to the reaper */
struct conn *worker_conn_next_dead(struct cg_worker *w);	/* NULL when none */
/* Freed session structs kept for the next accepts. */
void *worker_spare_get(struct cg_worker *w);			/* NULL when none */
bool worker_spare_put(struct cg_worker *w, void *c);		/* false: free it */
uint64_t worker_next_conn_id(struct cg_worker *w);
void worker_request_id(struct cg_worker *w, char *out);	/* 33 bytes */
/* Queues an audit line for the end of the pass (cg_audit_batch_add()). */
int worker_audit_add(struct cg_worker *w, const char *line, size_t len) CG_WUR;
bool worker_audit_pending(const struct cg_worker *w);
/* c waits for this pass's events to be written (on), or not any more. */
void worker_audit_wait(struct cg_worker *w, struct conn *c, bool on);
/* Writes the pass's events; moves the waiters to *waiters; returns how
 * many events were lost. */
unsigned worker_audit_write(struct cg_worker *w, struct conn_list *waiters);
/* Lets go of the route slots; with n > 0, makes n empty ones (none when
 * out of memory: sessions then make their own). */
void worker_route_slots_reset(struct cg_worker *w, size_t n);
/* Route route's slot, for credential cred: emptied (its object freed by
 * ops->slot_free) when the credential changed.  NULL when there is none. */
struct inj_ops;
void **worker_route_slot(struct cg_worker *w, size_t route, struct secret *cred,
    const struct inj_ops *ops);
/* Control thread: a key ring answered (worker_wake runs conn_keys_answered). */
void worker_keys_post(struct cg_worker *w);
/* Control thread: hands w a new generation and listeners to adopt. */
void worker_publish(struct cg_worker *w, struct cg_gen *g, struct cg_listener **lists);

/* The route's metric block in this worker (for its current generation). */
struct cg_route_metrics *worker_route_metrics(struct cg_worker *w, const struct cg_route_rt *rt);

/* conn.c */
/* slot: where the connection counts as pending per client (taken over). */
void conn_accept(struct cg_worker *w, struct cg_route_rt *rt, int fd,
    const struct sockaddr *sa, int salen, const struct cg_pending_slot *slot);
/* At a connection limit: closes this worker's oldest connection that has
 * not sent a complete request head (of route's, if not NULL).  True when
 * one was closed, and its slot given back. */
bool conn_evict_pending(struct cg_worker *w, const struct cg_route_shared *route);
void conn_reap(struct cg_worker *w);	/* frees closed connections */
void conn_spares_free(struct cg_worker *w);	/* frees the structs kept for reuse */
void conn_close_all(struct cg_worker *w, const char *reason);
/* Draining: closes idle connections now, the others after their response. */
void conn_drain_all(struct cg_worker *w);
/* Writes the audit events queued in this pass; see conn.c. */
void conn_audit_flush(struct cg_worker *w);
/* pipeline.c: key rings answered; callers waiting for a key go on. */
void conn_keys_answered(struct cg_worker *w);

#endif /* CG_SERVER_H */
