/*
 * worker.c: one worker thread: its event loop, its SO_REUSEPORT listeners,
 * its mailbox from the control thread (new generation, new listeners,
 * drain, stop) and the connection limits it enforces.
 *
 * Owns struct cg_worker and its listeners.  A worker touches no lock on
 * its hot path: the mailbox lock is taken only when the control thread
 * wakes it, and the connection counters are single atomic adds.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/rand.h>

#include "policy/policy.h"
#include "proxy/metrics.h"
#include "injectors/injector.h"
#include "proxy/server.h"
#include "proxy/session.h"
#include "vault-client/vault.h"

#define LISTEN_BACKLOG 1024
#define ACCEPT_PAUSE_MS 1000
#define HELD_RETRY_MS 50	/* a listener waiting for a slot looks again */
#define UP_SPARE_MAX 64		/* pool entries kept for reuse */

static void worker_conn_unadmit(struct cg_worker *w, struct cg_route_rt *rt);
static void worker_ask_evict(struct cg_worker *w);

/*
 * A unix socket at path.  A socket file left by a process that is gone
 * (nothing accepts on it) is replaced; one that answers is another
 * server's, and so is anything that is not a socket.  The file is made
 * 0666: the folder's permissions say who may connect.
 */
static int
listener_open_unix(const char *path, int *fdp, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, probe;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix:%s: path too long", path);
		return CG_ERR_FORMAT;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "unix:%s: exists and is not a socket", path);
			return CG_ERR_IO;
		}
		if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			goto fail;
		if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
		    errno != ECONNREFUSED) {
			close(probe);
			snprintf(err, errlen, "unix:%s: in use by another server", path);
			return CG_ERR_IO;
		}
		close(probe);
		if (unlink(path) != 0)
			goto fail;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		goto fail;
	}
	*fdp = fd;
	return 0;
 fail:
	snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
	return CG_ERR_IO;
}

int
listener_open(const char *host, int port, int *fdp, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	int fd = -1, one = 1, r;

	*fdp = -1;
	if (host[0] == '/')
		return listener_open_unix(host, fdp, err, errlen);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((r = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(r));
		return CG_ERR_NOTFOUND;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		goto fail;
	if (res->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* Accepted sockets inherit it: no setsockopt per connection. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0)
		goto fail;
	freeaddrinfo(res);
	*fdp = fd;
	return 0;
 fail:
	snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return CG_ERR_IO;
}

bool
worker_conn_admit(struct cg_worker *w, struct cg_route_rt *rt, int *why)
{
	const struct cg_config *cfg = w->gen->cfg;
	uint32_t all, route;

	all = __atomic_add_fetch(&w->proc->conns_open, 1, __ATOMIC_RELAXED);
	route = __atomic_add_fetch(&rt->shared->open, 1, __ATOMIC_RELAXED);
	if (all > cfg->max_connections) {
		*why = METRICS_REFUSED_GLOBAL_LIMIT;
		worker_conn_unadmit(w, rt);
		return false;
	}
	if (rt->route->max_connections != 0 && route > rt->route->max_connections) {
		*why = METRICS_REFUSED_ROUTE_LIMIT;
		worker_conn_unadmit(w, rt);
		return false;
	}
	return true;
}

static void
worker_conn_unadmit(struct cg_worker *w, struct cg_route_rt *rt)
{
	__atomic_sub_fetch(&w->proc->conns_open, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&rt->shared->open, 1, __ATOMIC_RELAXED);
}

void
worker_conn_release(struct cg_worker *w, struct cg_route_rt *rt)
{
	struct cg_listener *ls;

	worker_conn_unadmit(w, rt);
	/* A slot of this worker's is free: listeners that wait take it at
	 * the end of the pass (one that waits for another worker's slots
	 * retries on its own timer). */
	if (w->nheld > 0)
		for (ls = w->listeners; ls != NULL; ls = ls->next)
			if (ls->held)
				event_active(ls->take, EV_TIMEOUT, 1);
}

/* ------------------------------------------------------------------ */
/* Pending connections per client address                              */
/* ------------------------------------------------------------------ */

struct cg_pending_table *
pending_table_new(void)
{
	struct cg_pending_table *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if (RAND_bytes((unsigned char *)t->key, sizeof(t->key)) != 1) {
		free(t);
		return NULL;
	}
	return t;
}

/* A 64-bit mix (the splitmix64 finaliser) of the address under key. */
static uint32_t
pending_bucket(uint64_t addr, uint64_t key)
{
	uint64_t z = addr ^ key;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (uint32_t)(z & (PENDING_BUCKETS - 1));
}

/* IPv4 (also IPv4-mapped IPv6) by its address, IPv6 by its /64; the
 * local processes on a unix socket all as one. */
static uint64_t
pending_addr(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	uint64_t a = 0;
	uint32_t v4;

	if (sa->sa_family == AF_UNIX)
		return 1ULL << 62;	/* apart from any IPv4 or IPv6 value */

	if (sa->sa_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(&v4, s6->sin6_addr.s6_addr + 12, 4);
			return v4;
		}
		memcpy(&a, s6->sin6_addr.s6_addr, 8);
		return a ^ (1ULL << 63) ^ 1;	/* apart from any IPv4 value */
	}
	memcpy(&v4, &s4->sin_addr, 4);
	return v4;
}

bool
pending_add(struct cg_pending_table *t, const struct sockaddr *sa, uint32_t limit,
    struct cg_pending_slot *slot)
{
	uint64_t addr = pending_addr(sa);
	uint32_t n[2];
	int r;

	for (r = 0; r < 2; r++) {
		slot->at[r] = pending_bucket(addr, t->key[r]);
		n[r] = __atomic_add_fetch(&t->count[r][slot->at[r]], 1, __ATOMIC_RELAXED);
	}
	if ((n[0] < n[1] ? n[0] : n[1]) <= limit)
		return true;
	pending_done(t, slot);
	return false;
}

void
pending_done(struct cg_pending_table *t, const struct cg_pending_slot *slot)
{
	__atomic_sub_fetch(&t->count[0][slot->at[0]], 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&t->count[1][slot->at[1]], 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Accepting                                                           */
/* ------------------------------------------------------------------ */

/* Over a limit: a short answer instead of a silent reset. */
static void
worker_refuse(struct cg_worker *w, struct cg_route_rt *rt, int fd, int why)
{
	static const char *const what[] = {
		"max_connections", "route_max_connections", "max_pending_per_client",
		"connection_wait_timeout",
	};
	const struct inj_ops *ops = rt->proto;

	if (send(fd, ops->busy, ops->busy_len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		cg_debug("msg=refusal_not_sent error=\"%s\"", strerror(errno));
	evutil_closesocket(fd);
	metrics_conn_refused(worker_route_metrics(w, rt), why);
	cg_log_limited(CG_LOG_WARN, "max_connections",
	    "msg=connection_refused route=%s reason=%s", rt->route->policy.name,
	    (unsigned)why < CG_ARRAY_LEN(what) ? what[why] : "limit");
}

/*
 * At the global limit with no silent connection of its own: asks another
 * worker, one at a time in turn, to close one of its own.  The slot it
 * frees is taken on the next try.
 */
static void
worker_ask_evict(struct cg_worker *w)
{
	struct cg_process *p = w->proc;
	struct cg_worker *o;

	if (p->nworkers < 2)
		return;
	w->evict_next = (w->evict_next + 1) % (unsigned)p->nworkers;
	if (w->evict_next == w->index)
		w->evict_next = (w->evict_next + 1) % (unsigned)p->nworkers;
	o = &p->workers[w->evict_next];
	pthread_mutex_lock(&o->lock);
	if (o->pending_evict < ACCEPT_BURST)
		o->pending_evict++;
	pthread_mutex_unlock(&o->lock);
	worker_post(o);
}

/*
 * One accepted connection, as the pass that accepted it ends.  Returns
 * false when it must wait for a connection slot (it is left as it is).
 *
 * At a connection limit, this worker's oldest connection that has not
 * sent a request head yet makes room; without one, the new connection
 * waits, until credgate.timeouts.client_header has passed: then it is
 * answered 503.
 */
static bool
worker_take(struct cg_listener *ls, struct cg_accepted *a, int64_t now)
{
	struct cg_worker *w = ls->worker;
	const struct cg_config *cfg = w->gen->cfg;
	struct cg_pending_slot slot;
	struct cg_route_rt *rt;
	int why = 0;

	rt = cg_gen_route_by_listen(w->gen, ls->key);
	if (rt == NULL || w->draining) {
		evutil_closesocket(a->fd);
		return true;
	}
	while (!worker_conn_admit(w, rt, &why)) {
		if (conn_evict_pending(w, why == METRICS_REFUSED_ROUTE_LIMIT ? rt->shared : NULL))
			continue;
		if (now - a->since_ms < cfg->client_header_timeout_ms) {
			if (why == METRICS_REFUSED_GLOBAL_LIMIT)
				worker_ask_evict(w);
			return false;
		}
		worker_refuse(w, rt, a->fd, METRICS_REFUSED_WAIT_TIMEOUT);
		return true;
	}
	if (!pending_add(w->proc->pending, (struct sockaddr *)&a->sa,
	    cfg->max_pending_per_client, &slot)) {
		worker_conn_unadmit(w, rt);
		worker_refuse(w, rt, a->fd, METRICS_REFUSED_CLIENT_LIMIT);
		return true;
	}
	conn_accept(w, rt, a->fd, (struct sockaddr *)&a->sa, (int)a->salen, &slot);
	return true;
}

/*
 * Accepted connections are taken at the end of the pass: the events that
 * were ready with the listener (responses to relay, most often) go first,
 * then each accepted request is read and its token checked.  After
 * ACCEPT_BURST the listener is off until the next poll.
 */
static void
worker_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct cg_listener *ls = arg;
	struct cg_accepted *a;

	/* The listener is off while the array is full: this only keeps the
	 * array's bound whatever libevent does. */
	if (ls->npend >= ACCEPT_BURST) {
		evconnlistener_disable(l);
		evutil_closesocket(fd);
		return;
	}
	a = &ls->pend[ls->npend];
	if (salen < 0 || (size_t)salen > sizeof(a->sa)) {
		evutil_closesocket(fd);		/* no address family of ours */
		return;
	}
	a->fd = fd;
	a->salen = (socklen_t)salen;
	a->since_ms = 0;
	memcpy(&a->sa, sa, (size_t)salen);
	if (++ls->npend == 1)
		event_active(ls->take, EV_TIMEOUT, 1);
	if (ls->npend == ACCEPT_BURST)
		evconnlistener_disable(l);
}

/* Takes the accepted connections in order; those that must wait for a
 * slot stay, with the listener off, and are tried again when this
 * worker frees a slot or every HELD_RETRY_MS. */
static void
worker_take_accepted(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, HELD_RETRY_MS * 1000 };
	struct cg_listener *ls = arg;
	struct cg_worker *w = ls->worker;
	unsigned i, n = ls->npend, k;
	bool was_off = n == ACCEPT_BURST || ls->held;
	int64_t now = cg_mono_ms();

	for (i = 0; i < n; i++) {
		if (ls->pend[i].since_ms == 0)
			ls->pend[i].since_ms = now;
		if (!worker_take(ls, &ls->pend[i], now))
			break;
	}
	/* What waits moves to the front, in order. */
	for (k = 0; i < n; i++, k++)
		ls->pend[k] = ls->pend[i];
	ls->npend = k;
	if (k > 0) {
		if (!ls->held) {
			ls->held = true;
			w->nheld++;
			evconnlistener_disable(ls->ev);
		}
		event_add(ls->take, &tv);
		return;
	}
	if (ls->held) {
		ls->held = false;
		w->nheld--;
	}
	if (was_off && !event_pending(ls->resume, EV_TIMEOUT, NULL) && !w->draining)
		evconnlistener_enable(ls->ev);
}

static void
worker_resume_accept(evutil_socket_t fd, short what, void *arg)
{
	struct cg_listener *ls = arg;

	if (!ls->worker->draining && !ls->held)
		evconnlistener_enable(ls->ev);
}

/*
 * accept() failed.  Out of descriptors: stop accepting for a while instead
 * of spinning on a listener that stays readable.
 */
static void
worker_accept_error(struct evconnlistener *l, void *arg)
{
	struct cg_listener *ls = arg;
	struct timeval tv = { ACCEPT_PAUSE_MS / 1000, (ACCEPT_PAUSE_MS % 1000) * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		worker_up_clear(ls->worker);
		cg_log_limited(CG_LOG_WARN, "accept_paused",
		    "msg=accept_paused listen=%s error=\"%s\" pause_ms=%d",
		    ls->key, strerror(err), ACCEPT_PAUSE_MS);
		evconnlistener_disable(l);
		event_add(ls->resume, &tv);
		return;
	}
	cg_log_limited(CG_LOG_WARN, "accept_failed", "msg=accept_failed listen=%s error=\"%s\"",
	    ls->key, strerror(err));
}

static int
listener_attach(struct cg_worker *w, struct cg_listener *ls)
{
	ls->worker = w;
	if ((ls->resume = event_new(w->base, -1, 0, worker_resume_accept, ls)) == NULL ||
	    (ls->take = event_new(w->base, -1, 0, worker_take_accepted, ls)) == NULL ||
	    (ls->ev = evconnlistener_new(w->base, worker_accept, ls,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, ls->fd)) == NULL) {
		if (ls->take != NULL)
			event_free(ls->take);
		if (ls->resume != NULL)
			event_free(ls->resume);
		ls->take = ls->resume = NULL;
		return CG_ERR_NOMEM;
	}
	evconnlistener_set_error_cb(ls->ev, worker_accept_error);
	return 0;
}

static void
listener_free(struct cg_listener *ls)
{
	if (ls->held)
		ls->worker->nheld--;
	while (ls->npend > 0)
		close(ls->pend[--ls->npend].fd);
	if (ls->take != NULL)
		event_free(ls->take);
	if (ls->resume != NULL)
		event_free(ls->resume);
	if (ls->ev != NULL)
		evconnlistener_free(ls->ev);	/* closes fd */
	else if (ls->fd >= 0)
		close(ls->fd);
	free(ls);
}

static void
listeners_free(struct cg_listener *ls)
{
	struct cg_listener *next;

	for (; ls != NULL; ls = next) {
		next = ls->next;
		listener_free(ls);
	}
}

/* ------------------------------------------------------------------ */
/* The pool of idle upstream connections                               */
/* ------------------------------------------------------------------ */

/* The idle connections of one key (route, upstream, TLS generation). */
struct up_pool {
	char key[UP_KEY_MAX];
	TAILQ_HEAD(up_idle_list, up_idle) idle;	/* newest first */
	unsigned n;
	struct up_pool *next;
};

struct up_idle {
	TAILQ_ENTRY(up_idle) link;
	struct up_idle *spare;		/* in w->up_spare, while kept */
	struct cg_worker *w;
	struct up_pool *pool;
	struct bufferevent *bev;
	void *data;			/* the protocol's, of this connection */
	void (*data_free)(void *);
	struct cg_route_metrics *rm;	/* counts it as idle */
	struct event *timer;
};

/* A pool that became empty goes: keys of old generations do not pile up. */
static void
up_pool_drop_empty(struct cg_worker *w, struct up_pool *pool)
{
	struct up_pool **pp;

	if (pool->n > 0)
		return;
	for (pp = &w->up_pools; *pp != NULL; pp = &(*pp)->next)
		if (*pp == pool) {
			*pp = pool->next;
			free(pool);
			return;
		}
}

/* An entry out of its pool is kept for the next put, with its timer: a
 * keep-alive caller puts and gets one on every request. */
static void
up_idle_free(struct up_idle *u)
{
	struct cg_worker *w = u->w;

	TAILQ_REMOVE(&u->pool->idle, u, link);
	u->pool->n--;
	metrics_up_idle(u->rm, -1);
	if (u->bev != NULL)
		bufferevent_free(u->bev);
	if (u->data != NULL)
		u->data_free(u->data);
	up_pool_drop_empty(w, u->pool);
	u->bev = NULL;
	u->data = NULL;
	u->pool = NULL;
	evtimer_del(u->timer);
	if (w->nup_spare < UP_SPARE_MAX) {
		u->spare = w->up_spare;
		w->up_spare = u;
		w->nup_spare++;
		return;
	}
	event_free(u->timer);
	free(u);
}

/* Frees the kept entries (the worker's end). */
static void
up_spares_free(struct cg_worker *w)
{
	struct up_idle *u;

	while ((u = w->up_spare) != NULL) {
		w->up_spare = u->spare;
		event_free(u->timer);
		free(u);
	}
	w->nup_spare = 0;
}

/* An idle upstream spoke, closed, failed or timed out: it is done. */
static void
up_idle_read(struct bufferevent *bev, void *arg)
{
	up_idle_free(arg);
}

static void
up_idle_event(struct bufferevent *bev, short what, void *arg)
{
	up_idle_free(arg);
}

static void
up_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	up_idle_free(arg);
}

static struct up_pool *
up_pool_find(struct cg_worker *w, const char *key)
{
	struct up_pool *pool;

	for (pool = w->up_pools; pool != NULL; pool = pool->next)
		if (strcmp(pool->key, key) == 0)
			return pool;
	return NULL;
}

/* A connection the pool does not keep. */
static void
up_discard(struct bufferevent *bev, void *data, void (*data_free)(void *))
{
	bufferevent_free(bev);
	if (data != NULL)
		data_free(data);
}

void
worker_up_put(struct cg_worker *w, const char *key, struct bufferevent *bev, unsigned max,
    int64_t idle_ms, void *data, void (*data_free)(void *), struct cg_route_metrics *rm)
{
	struct timeval tv = { idle_ms / 1000, (idle_ms % 1000) * 1000 };
	struct up_pool *pool;
	struct up_idle *u;

	if (w->draining || max == 0) {
		up_discard(bev, data, data_free);
		return;
	}
	if ((pool = up_pool_find(w, key)) == NULL) {
		if ((pool = calloc(1, sizeof(*pool))) == NULL) {
			up_discard(bev, data, data_free);
			return;
		}
		snprintf(pool->key, sizeof(pool->key), "%s", key);
		TAILQ_INIT(&pool->idle);
		pool->next = w->up_pools;
		w->up_pools = pool;
	}
	/* Full: the one idle longest makes room (the pool stays). */
	if (pool->n >= max) {
		u = TAILQ_LAST(&pool->idle, up_idle_list);
		TAILQ_REMOVE(&pool->idle, u, link);
		metrics_up_idle(u->rm, -1);
		up_discard(u->bev, u->data, u->data_free);
		u->bev = NULL;
		u->data = NULL;
		evtimer_del(u->timer);
	} else if ((u = w->up_spare) != NULL) {
		w->up_spare = u->spare;
		w->nup_spare--;
		pool->n++;
	} else if ((u = calloc(1, sizeof(*u))) == NULL ||
	    (u->timer = evtimer_new(w->base, up_idle_timeout, u)) == NULL) {
		free(u);
		up_discard(bev, data, data_free);
		up_pool_drop_empty(w, pool);
		return;
	} else
		pool->n++;
	u->w = w;
	u->pool = pool;
	u->bev = bev;
	u->data = data;
	u->data_free = data_free;
	u->rm = rm;
	metrics_up_idle(rm, 1);
	TAILQ_INSERT_HEAD(&pool->idle, u, link);
	bufferevent_setcb(bev, up_idle_read, NULL, up_idle_event, u);
	bufferevent_enable(bev, EV_READ);
	evtimer_add(u->timer, &tv);
}

/* Closes every idle upstream connection: on drain, and when descriptors
 * run out (idle connections are the first thing to give up). */
void
worker_up_clear(struct cg_worker *w)
{
	while (w->up_pools != NULL)
		up_idle_free(TAILQ_FIRST(&w->up_pools->idle));
}

bool
worker_up_any(const struct cg_worker *w)
{
	return w->up_pools != NULL;
}

struct bufferevent *
worker_up_get(struct cg_worker *w, const char *key, void **data)
{
	struct bufferevent *bev;
	struct up_pool *pool;
	struct up_idle *u;

	if ((pool = up_pool_find(w, key)) == NULL)
		return NULL;
	u = TAILQ_FIRST(&pool->idle);
	bev = u->bev;
	*data = u->data;
	u->bev = NULL;
	u->data = NULL;
	up_idle_free(u);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	return bev;
}


/* Per-route metric blocks for the worker's generation, index by index. */
static int
worker_map_metrics(struct cg_worker *w, struct cg_gen *gen)
{
	struct cg_route_metrics **rm;
	size_t i;

	if ((rm = calloc(gen->nroutes ? gen->nroutes : 1, sizeof(*rm))) == NULL)
		return CG_ERR_NOMEM;
	for (i = 0; i < gen->nroutes; i++)
		if ((rm[i] = metrics_route(w->metrics, gen->routes[i].route->policy.name)) == NULL) {
			free(rm);
			return CG_ERR_NOMEM;
		}
	free(w->route_metrics);
	w->route_metrics = rm;
	return 0;
}

struct cg_route_metrics *
worker_route_metrics(struct cg_worker *w, const struct cg_route_rt *rt)
{
	return w->route_metrics[rt - w->gen->routes];
}

/* A new generation: keep listeners it still uses, adopt new ones. */
static void
worker_switch(struct cg_worker *w, struct cg_gen *gen, struct cg_listener *adopt)
{
	struct cg_listener **pp, *ls, *next;
	struct cg_gen *old = w->gen;

	if (worker_map_metrics(w, gen) != 0) {
		cg_err("msg=generation_refused worker=%u reason=out_of_memory", w->index);
		cg_gen_unref(gen);
		listeners_free(adopt);
		return;
	}
	w->gen = gen;
	for (pp = &w->listeners; (ls = *pp) != NULL;) {
		if (cg_gen_route_by_listen(gen, ls->key) == NULL) {
			*pp = ls->next;
			listener_free(ls);
		} else
			pp = &ls->next;
	}
	for (ls = adopt; ls != NULL; ls = next) {
		next = ls->next;
		if (listener_attach(w, ls) != 0) {
			cg_err("msg=listener_adopt_failed worker=%u listen=%s", w->index, ls->key);
			listener_free(ls);
			continue;
		}
		ls->next = w->listeners;
		w->listeners = ls;
	}
	/* Keys may have changed: nothing verified under the old ones stays. */
	token_cache_flush(w->tokens);
	/* Credentials and injection settings may have changed too. */
	worker_route_slots_reset(w, gen->nroutes);
	cg_debug("msg=generation worker=%u generation=%llu", w->index,
	    (unsigned long long)gen->number);
	cg_gen_unref(old);
}

static void
worker_check_done(struct cg_worker *w)
{
	if (w->draining && w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

static void
worker_reaper(evutil_socket_t fd, short what, void *arg)
{
	struct cg_worker *w = arg;

	conn_reap(w);
	worker_check_done(w);
}

static void
worker_audit(evutil_socket_t fd, short what, void *arg)
{
	conn_audit_flush(arg);
}

static void
worker_wake(evutil_socket_t fd, short what, void *arg)
{
	struct cg_worker *w = arg;
	struct cg_listener *adopt;
	struct cg_gen *gen;
	bool drain, stop, keys;
	unsigned evict;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&w->lock);
	keys = w->pending_keys;
	w->pending_keys = false;
	gen = w->pending_gen;
	adopt = w->pending_listeners;
	drain = w->pending_drain;
	stop = w->pending_stop;
	evict = w->pending_evict;
	w->pending_evict = 0;
	w->pending_gen = NULL;
	w->pending_listeners = NULL;
	w->pending_drain = w->pending_stop = false;
	pthread_mutex_unlock(&w->lock);

	if (gen != NULL)
		worker_switch(w, gen, adopt);
	else
		listeners_free(adopt);
	while (evict-- > 0 && conn_evict_pending(w, NULL))
		;
	if (keys)
		conn_keys_answered(w);
	if (drain && !w->draining) {
		w->draining = true;
		listeners_free(w->listeners);
		w->listeners = NULL;
		worker_up_clear(w);
		conn_drain_all(w);
	}
	if (stop) {
		w->draining = true;
		conn_close_all(w, "shutdown_timeout");
		conn_reap(w);
		event_base_loopexit(w->base, NULL);
		return;
	}
	worker_check_done(w);
}

void
worker_post(struct cg_worker *w)
{
	ssize_t n;

	do {
		n = write(w->wake_fd[1], "", 1);
	} while (n < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full, so a wake-up is pending anyway. */
}

int
worker_init(struct cg_worker *w, struct cg_process *p, unsigned index, char *err, size_t errlen)
{
	const struct cg_config *cfg = p->gen->cfg;
	struct event_config *ecfg;
	int r;

	memset(w, 0, sizeof(*w));
	w->index = index;
	w->proc = p;
	w->wake_fd[0] = w->wake_fd[1] = -1;
	TAILQ_INIT(&w->conns);
	TAILQ_INIT(&w->dead);
	TAILQ_INIT(&w->pending);
	TAILQ_INIT(&w->audit_waiters);
	TAILQ_INIT(&w->key_waiters);
	cg_audit_batch_init(&w->audit, p->audit);
	pthread_mutex_init(&w->lock, NULL);
	w->gen = cg_gen_ref(p->gen);
	/*
	 * The epoll change list folds the enable/disable pairs a request makes
	 * within one loop iteration into one system call, or none.  It is
	 * unsafe only for descriptors that are dup()ed, which ours never are.
	 */
	if ((ecfg = event_config_new()) == NULL ||
	    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) != 0) {
		event_config_free(ecfg);
		snprintf(err, errlen, "worker %u: cannot set up its event loop", index);
		return CG_ERR_NOMEM;
	}
	w->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (RAND_bytes((unsigned char *)&w->rid_prefix, sizeof(w->rid_prefix)) != 1) {
		snprintf(err, errlen, "worker %u: no random bytes", index);
		return CG_ERR_INTERNAL;
	}
	if (w->base == NULL ||
	    (w->scratch = calloc(1, WORKER_SCRATCH)) == NULL ||
	    (w->rbuf = malloc(CONN_READ_MAX)) == NULL ||
	    (w->reaper = event_new(w->base, -1, 0, worker_reaper, w)) == NULL ||
	    (w->audit_ev = event_new(w->base, -1, 0, worker_audit, w)) == NULL ||
	    pipe2(w->wake_fd, O_NONBLOCK | O_CLOEXEC) != 0 ||
	    (w->wake_ev = event_new(w->base, w->wake_fd[0], EV_READ | EV_PERSIST,
	    worker_wake, w)) == NULL || event_add(w->wake_ev, NULL) != 0) {
		snprintf(err, errlen, "worker %u: cannot set up its event loop", index);
		return CG_ERR_NOMEM;
	}
	/* The process's one secret cache, seen from this worker's loop. */
	if ((r = secret_view_new(p->secrets, w->base, &w->secrets)) != 0) {
		snprintf(err, errlen, "worker %u: cannot set up its view of the secrets", index);
		return r;
	}
	if (cfg->token_cache_size > 0 &&
	    (w->tokens = token_cache_new(cfg->token_cache_size)) == NULL) {
		snprintf(err, errlen, "credgate.token_cache: out of memory");
		return CG_ERR_NOMEM;
	}
	if ((w->metrics = metrics_new()) == NULL || worker_map_metrics(w, w->gen) != 0) {
		snprintf(err, errlen, "out of memory");
		return CG_ERR_NOMEM;
	}
	worker_route_slots_reset(w, w->gen->nroutes);
	return 0;
}

/* Adds a socket the control thread opened (before the thread runs). */
int
worker_add_listener(struct cg_worker *w, const char *key, int fd)
{
	struct cg_listener *ls;

	if ((ls = calloc(1, sizeof(*ls))) == NULL)
		return CG_ERR_NOMEM;
	snprintf(ls->key, sizeof(ls->key), "%s", key);
	ls->fd = fd;
	if (listener_attach(w, ls) != 0) {
		free(ls);
		return CG_ERR_NOMEM;
	}
	ls->next = w->listeners;
	w->listeners = ls;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct cg_worker *w = arg;

	cg_debug("msg=worker_started worker=%u", w->index);
	event_base_dispatch(w->base);
	conn_close_all(w, "shutdown");
	conn_reap(w);
	conn_audit_flush(w);
	worker_up_clear(w);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	cg_debug("msg=worker_stopped worker=%u", w->index);
	return NULL;
}

int
worker_start(struct cg_worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return CG_ERR_IO;
	w->started = true;
	return 0;
}

void
worker_free(struct cg_worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	conn_close_all(w, "shutdown");
	conn_reap(w);
	conn_spares_free(w);
	conn_audit_flush(w);
	cg_audit_batch_free(&w->audit);
	worker_up_clear(w);
	up_spares_free(w);
	listeners_free(w->listeners);
	listeners_free(w->pending_listeners);
	cg_gen_unref(w->pending_gen);
	cg_gen_unref(w->gen);
	worker_route_slots_reset(w, 0);	/* its credential references first */
	secret_view_free(w->secrets);	/* before the process's cache */
	token_cache_free(w->tokens);
	free(w->route_metrics);
	free(w->scratch);
	free(w->rbuf);		/* wiped after every read */
	metrics_free(w->metrics);
	if (w->wake_ev != NULL)
		event_free(w->wake_ev);
	if (w->reaper != NULL)
		event_free(w->reaper);
	if (w->audit_ev != NULL)
		event_free(w->audit_ev);
	if (w->wake_fd[0] >= 0)
		close(w->wake_fd[0]);
	if (w->wake_fd[1] >= 0)
		close(w->wake_fd[1]);
	if (w->base != NULL)
		event_base_free(w->base);
	pthread_mutex_destroy(&w->lock);
}

/* ------------------------------------------------------------------ */
/* What the worker's sessions ask of it                                */
/* ------------------------------------------------------------------ */

void
worker_conn_add(struct cg_worker *w, struct conn *c)
{
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->nconns++;
	c->pending = true;
	TAILQ_INSERT_TAIL(&w->pending, c, pend_link);
}

void
worker_conn_unpend(struct cg_worker *w, struct conn *c)
{
	if (!c->pending)
		return;
	c->pending = false;
	TAILQ_REMOVE(&w->pending, c, pend_link);
	pending_done(w->proc->pending, &c->pend_slot);
}

void
worker_conn_dead(struct cg_worker *w, struct conn *c)
{
	TAILQ_REMOVE(&w->conns, c, link);
	TAILQ_INSERT_TAIL(&w->dead, c, link);
	w->nconns--;
	event_active(w->reaper, EV_TIMEOUT, 0);
}

struct conn *
worker_conn_next_dead(struct cg_worker *w)
{
	struct conn *c = TAILQ_FIRST(&w->dead);

	if (c != NULL)
		TAILQ_REMOVE(&w->dead, c, link);
	return c;
}

void *
worker_spare_get(struct cg_worker *w)
{
	return w->nconn_spare > 0 ? w->conn_spare[--w->nconn_spare] : NULL;
}

bool
worker_spare_put(struct cg_worker *w, void *c)
{
	if (w->nconn_spare >= CONN_SPARE_MAX)
		return false;
	w->conn_spare[w->nconn_spare++] = c;
	return true;
}

uint64_t
worker_next_conn_id(struct cg_worker *w)
{
	/* Unique across workers: the worker's index in the low bits. */
	return (++w->next_conn_id << 8) | (w->index & 0xff);
}

void
worker_request_id(struct cg_worker *w, char *out)
{
	/* The worker's random prefix and a counter: unique across workers
	 * and restarts without asking the RNG every time. */
	cg_fmt_hex64(out, w->rid_prefix);
	cg_fmt_hex64(out + 16, ++w->rid_counter);
	out[32] = '\0';
}

int
worker_audit_add(struct cg_worker *w, const char *line, size_t len)
{
	int r = cg_audit_batch_add(&w->audit, line, len);

	if (!cg_audit_batch_empty(&w->audit))
		event_active(w->audit_ev, EV_TIMEOUT, 0);
	return r;
}

bool
worker_audit_pending(const struct cg_worker *w)
{
	return !cg_audit_batch_empty(&w->audit);
}

void
worker_audit_wait(struct cg_worker *w, struct conn *c, bool on)
{
	if (on && !c->audit_wait) {
		c->audit_wait = true;
		TAILQ_INSERT_TAIL(&w->audit_waiters, c, audit_link);
	} else if (!on && c->audit_wait) {
		TAILQ_REMOVE(&w->audit_waiters, c, audit_link);
		c->audit_wait = false;
	}
}

unsigned
worker_audit_write(struct cg_worker *w, struct conn_list *waiters)
{
	unsigned lost;
	int err = 0;

	if (cg_audit_batch_flush(&w->audit) != 0)
		err = errno;
	lost = w->audit.failed;
	w->audit.failed = 0;
	if (lost > 0) {
		metrics_audit_failures(w->metrics, lost);
		cg_log_limited(CG_LOG_ERROR, "audit_write",
		    "msg=audit_write_failed worker=%u events=%u error=\"%s\"",
		    w->index, lost, strerror(err ? err : EIO));
	}
	TAILQ_INIT(waiters);
	TAILQ_CONCAT(waiters, &w->audit_waiters, audit_link);
	return lost;
}

void
worker_route_slots_reset(struct cg_worker *w, size_t n)
{
	size_t i;

	for (i = 0; w->route_slots != NULL && i < w->nroute_slots; i++) {
		if (w->route_slots[i].obj != NULL)
			w->route_slots[i].ops->slot_free(w->route_slots[i].obj);
		secret_unref(w->route_slots[i].cred);
	}
	free(w->route_slots);
	w->route_slots = n > 0 ? calloc(n, sizeof(*w->route_slots)) : NULL;
	w->nroute_slots = w->route_slots != NULL ? n : 0;
}

void **
worker_route_slot(struct cg_worker *w, size_t route, struct secret *cred,
    const struct inj_ops *ops)
{
	struct cg_route_slot *slot;

	if (w->route_slots == NULL || route >= w->nroute_slots)
		return NULL;
	slot = &w->route_slots[route];
	if (slot->cred != cred) {
		if (slot->obj != NULL)
			slot->ops->slot_free(slot->obj);
		slot->obj = NULL;
		secret_unref(slot->cred);
		slot->cred = secret_ref(cred);
		slot->ops = ops;
	}
	return &slot->obj;
}

void
worker_keys_post(struct cg_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->pending_keys = true;
	pthread_mutex_unlock(&w->lock);
	worker_post(w);
}

void
worker_publish(struct cg_worker *w, struct cg_gen *g, struct cg_listener **lists)
{
	pthread_mutex_lock(&w->lock);
	cg_gen_unref(w->pending_gen);
	w->pending_gen = cg_gen_ref(g);
	if (*lists != NULL) {
		struct cg_listener *last = *lists;

		while (last->next != NULL)
			last = last->next;
		last->next = w->pending_listeners;
		w->pending_listeners = *lists;
		*lists = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	worker_post(w);
}
