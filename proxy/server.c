/*
 * server.c: the process and its control thread: configuration generations,
 * the workers' listeners, the secret cache, the trust bundles' watch,
 * signals (SIGHUP reload,
 * SIGTERM/SIGINT drain, SIGUSR1 reopen), privilege drop, readiness
 * (sd_notify) and the admin endpoint's hooks.
 *
 * Owns struct cg_process, the generations and the secret cache (its
 * backend, fetches, leases).  Never touches a worker's connections: it
 * talks to workers through their mailboxes only, and the secret cache to
 * their views through theirs.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "policy/policy.h"
#include "policy/keyfetch.h"
#include "proxy/admin.h"
#include "proxy/audit.h"
#include "proxy/metrics.h"
#include "injectors/injector.h"
#include "proxy/server.h"
#include "proxy/tls.h"
#include "proxy/trust.h"
#include "vault-client/vault.h"

#define DRAIN_POLL_MS 50
#define SECRETS_WATCH_MS 1000	/* how often the secret store is asked
				   whether its source changed */
#define LEASE_REVOKE_WAIT_MS 2000 /* at exit, for revocations in flight */
#define TRUST_WATCH_MS 1000	/* how often trust bundle files are looked at */

/* ------------------------------------------------------------------ */
/* Generations                                                         */
/* ------------------------------------------------------------------ */

struct cg_gen *
cg_gen_ref(struct cg_gen *g)
{
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
	return g;
}

void
cg_gen_unref(struct cg_gen *g)
{
	size_t i;

	if (g == NULL || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (i = 0; i < g->nroutes; i++) {
		SSL_CTX_free(g->routes[i].server_ctx);
		SSL_CTX_free(g->routes[i].client_ctx);
	}
	for (i = 0; i < g->nbundles; i++)
		trust_bundle_unref(g->bundles[i]);
	free(g->bundles);
	free(g->bundle_shared);
	cg_config_free(g->cfg);
	free(g->routes);
	free(g);
}

struct cg_route_rt *
cg_gen_route_by_listen(struct cg_gen *g, const char *key)
{
	size_t i;

	for (i = 0; i < g->nroutes; i++)
		if (strcmp(g->routes[i].listen_key, key) == 0)
			return &g->routes[i];
	return NULL;
}

static struct cg_route_shared *
route_shared(struct cg_process *p, const char *name)
{
	struct cg_route_shared *s;

	for (s = p->route_shared; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->name = strdup(name)) == NULL) {
		free(s);
		return NULL;
	}
	s->next = p->route_shared;
	p->route_shared = s;
	return s;
}

static struct cg_trust_shared *
trust_shared(struct cg_process *p, const char *name)
{
	struct cg_trust_shared *s;

	for (s = p->trust_shared; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->name = strdup(name)) == NULL) {
		free(s);
		return NULL;
	}
	s->next = p->trust_shared;
	p->trust_shared = s;
	return s;
}

/*
 * The trust bundles of g's configuration, which its listeners of trust
 * domains verify against: each starts with the store the configuration
 * loaded.
 */
static int
gen_bundles(struct cg_process *p, struct cg_gen *g, char *err, size_t errlen)
{
	const struct cg_config *cfg = g->cfg;
	size_t i, n = cfg->ntrust_domains;

	if (n == 0)
		return 0;
	if ((g->bundles = calloc(n, sizeof(*g->bundles))) == NULL ||
	    (g->bundle_shared = calloc(n, sizeof(*g->bundle_shared))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CG_ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		const struct cg_trust_domain *td = &cfg->trust_domains[i];

		if (td->bundle == NULL) {
			/* the loader read it, with the files */
			snprintf(err, errlen, "trust_domains.[%zu].x509_bundle_file: not loaded", i);
			return CG_ERR_INTERNAL;
		}
		if ((g->bundle_shared[i] = trust_shared(p, td->name)) == NULL ||
		    (g->bundles[i] = trust_bundle_new(td, cg_now_ms())) == NULL) {
			snprintf(err, errlen, "out of memory");
			return CG_ERR_NOMEM;
		}
		g->nbundles++;
	}
	return 0;
}

/* Makes a listener of trust domains verify their X.509-SVIDs. */
static int
gen_route_trust(struct cg_gen *g, struct cg_route_rt *rt, char *err, size_t errlen)
{
	const struct cg_tls_server *t = &rt->route->tls;
	struct trust_bundle **list;
	size_t i, k;
	int r;

	if (t->ntrust_domains == 0 || rt->server_ctx == NULL)
		return 0;
	if ((list = calloc(t->ntrust_domains, sizeof(*list))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CG_ERR_NOMEM;
	}
	for (i = 0; i < t->ntrust_domains; i++) {
		for (k = 0; k < g->nbundles; k++)
			if (strcmp(trust_bundle_name(g->bundles[k]), t->trust_domains[i]) == 0)
				list[i] = g->bundles[k];
		if (list[i] == NULL) {
			/* the loader refused a name no trust domain has */
			snprintf(err, errlen, "trust_domains: no trust domain %s",
			    t->trust_domains[i]);
			free(list);
			return CG_ERR_INTERNAL;
		}
	}
	r = trust_ctx_install(rt->server_ctx, list, t->ntrust_domains, err, errlen);
	free(list);
	return r;
}

static int
resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((r = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(r));
		return CG_ERR_NOTFOUND;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void
listen_key(char *out, size_t size, const char *host, int port)
{
	if (host[0] == '/')
		snprintf(out, size, "unix:%s", host);	/* a unix socket's path */
	else
		snprintf(out, size, "%s%s%s:%d", strchr(host, ':') ? "[" : "", host,
		    strchr(host, ':') ? "]" : "", port);
}

/*
 * The key of the route's pooled upstream connections: its name, the
 * upstream's, and for TLS the generation, whose TLS settings set the
 * connection up (only that generation reuses it).  A key that does not
 * fit stays empty and the route does not pool: a cut key could match
 * another route's.
 */
static void
up_key(struct cg_route_rt *rt, uint64_t number)
{
	char num[24];
	int n;

	num[cg_fmt_u64(num, rt->client_ctx != NULL ? number : 0)] = '\0';
	n = snprintf(rt->up_key, sizeof(rt->up_key), "%s|%s|%s", rt->route->policy.name,
	    rt->upstream_name, num);
	if (n < 0 || (size_t)n >= sizeof(rt->up_key))
		rt->up_key[0] = '\0';
}

/* Builds a generation around cfg (taken; freed on failure). */
static int
gen_build(struct cg_process *p, struct cg_config *cfg, struct cg_gen **out,
    char *err, size_t errlen)
{
	struct cg_gen *g;
	struct cg_route_rt *rt;
	char why[256];
	size_t i;
	int r;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    (g->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*g->routes))) == NULL) {
		free(g);
		cg_config_free(cfg);
		snprintf(err, errlen, "out of memory");
		return CG_ERR_NOMEM;
	}
	g->refs = 1;
	g->cfg = cfg;
	g->nroutes = cfg->nroutes;
	if ((r = gen_bundles(p, g, err, errlen)) != 0) {
		cg_gen_unref(g);
		return r;
	}
	for (i = 0; i < cfg->nroutes; i++) {
		rt = &g->routes[i];
		rt->route = &cfg->routes[i];
		/* The loader refused a protocol credgate does not have. */
		rt->proto = rt->route->proto->ops;
		rt->proto_cfg = rt->route->proto_cfg;
		if ((r = resolve(rt->route->upstream_host, rt->route->upstream_port,
		    &rt->upstream, &rt->upstream_len, why, sizeof(why))) != 0) {
			snprintf(err, errlen, "routes.[%zu].upstream: %s", i, why);
			cg_gen_unref(g);
			return r;
		}
		listen_key(rt->upstream_name, sizeof(rt->upstream_name),
		    rt->route->upstream_host, rt->route->upstream_port);
		listen_key(rt->listen_key, sizeof(rt->listen_key),
		    rt->route->listen_host, rt->route->listen_port);
		if ((rt->shared = route_shared(p, rt->route->policy.name)) == NULL) {
			snprintf(err, errlen, "out of memory");
			cg_gen_unref(g);
			return CG_ERR_NOMEM;
		}
		/* Certificates and keys are read here: a reload re-reads them. */
		if (rt->route->tls.enabled && (r = tls_server_ctx_new(&rt->route->tls,
		    &rt->server_ctx, why, sizeof(why))) != 0) {
			snprintf(err, errlen, "routes.[%zu].tls: %s", i, why);
			cg_gen_unref(g);
			return r;
		}
		if (rt->server_ctx != NULL)
			tls_server_ctx_alpn(rt->server_ctx, rt->proto->alpn);
		if ((r = gen_route_trust(g, rt, why, sizeof(why))) != 0) {
			snprintf(err, errlen, "routes.[%zu].tls: %s", i, why);
			cg_gen_unref(g);
			return r;
		}
		if (rt->route->upstream_tls.enabled && (r = tls_client_ctx_new(
		    &rt->route->upstream_tls, &rt->client_ctx, why, sizeof(why))) != 0) {
			snprintf(err, errlen, "routes.[%zu].upstream.tls: %s", i, why);
			cg_gen_unref(g);
			return r;
		}
	}
	/* Fetched keys: each issuer gets its source's ring, shared with
	 * the generations before when it fetches the same way. */
	if ((r = keyfetch_attach(p->keys, cfg->issuers, cfg->nissuers, why,
	    sizeof(why))) != 0) {
		snprintf(err, errlen, "issuers: %s", why);
		cg_gen_unref(g);
		return r;
	}
	g->number = ++p->gen_counter;
	for (i = 0; i < g->nroutes; i++)
		up_key(&g->routes[i], g->number);
	*out = g;
	return 0;
}

/* The key fetcher's news (a ring changed or answered): to every worker. */
static void
keys_notify(void *arg)
{
	struct cg_process *p = arg;
	size_t k;

	for (k = 0; p->workers != NULL && k < p->nworkers; k++)
		if (p->workers[k].started)
			worker_keys_post(&p->workers[k]);
}

/*
 * Opens one SO_REUSEPORT socket per worker for every listen address of
 * g that old (NULL at start) does not have.  On failure closes what it
 * opened.  lists[i] receives worker i's new listeners.
 */
static int
open_listeners(struct cg_process *p, struct cg_gen *g, struct cg_gen *old,
    struct cg_listener **lists, char *err, size_t errlen)
{
	struct cg_listener *ls;
	char why[200];
	size_t i, k;
	int fd, r;

	for (i = 0; i < g->nroutes; i++) {
		const struct cg_route_rt *rt = &g->routes[i];

		if (old != NULL && cg_gen_route_by_listen(old, rt->listen_key) != NULL)
			continue;
		for (k = 0; k < p->nworkers; k++) {
			/* A unix socket has no SO_REUSEPORT: the workers share
			 * one, each accepting from it. */
			if (k > 0 && rt->route->listen_host[0] == '/') {
				if ((fd = fcntl(lists[0]->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
					snprintf(err, errlen, "routes.[%zu].listen: %s", i,
					    strerror(errno));
					r = CG_ERR_IO;
					goto fail;
				}
			} else if ((r = listener_open(rt->route->listen_host,
			    rt->route->listen_port, &fd, why, sizeof(why))) != 0) {
				snprintf(err, errlen, "routes.[%zu].listen: %s", i, why);
				goto fail;
			}
			if ((ls = calloc(1, sizeof(*ls))) == NULL) {
				close(fd);
				snprintf(err, errlen, "out of memory");
				r = CG_ERR_NOMEM;
				goto fail;
			}
			snprintf(ls->key, sizeof(ls->key), "%s", rt->listen_key);
			ls->fd = fd;
			ls->next = lists[k];
			lists[k] = ls;
		}
	}
	return 0;
 fail:
	for (k = 0; k < p->nworkers; k++) {
		while ((ls = lists[k]) != NULL) {
			lists[k] = ls->next;
			close(ls->fd);
			free(ls);
		}
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Readiness, privileges                                               */
/* ------------------------------------------------------------------ */

/* The sd_notify protocol: one datagram to $NOTIFY_SOCKET, if set. */
static void
notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	size_t n;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (n = strlen(path)) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';		/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
		cg_debug("msg=notify_failed error=\"%s\"", strerror(errno));
	close(fd);
}

/*
 * Drops to user (and group, default the user's) and checks that it worked
 * and cannot be undone, as OpenSSH's permanently_set_uid() does.
 */
static int
drop_privileges(const char *user, const char *group, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid;
	gid_t gid;

	if (user == NULL)
		return 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "credgate.user: no user %s", user);
		return CG_ERR_NOTFOUND;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL) {
			snprintf(err, errlen, "credgate.group: no group %s", group);
			return CG_ERR_NOTFOUND;
		}
		gid = gr->gr_gid;
	}
	if (getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid) {
		/* Started as that user already (a systemd unit with User=):
		 * nothing to drop, and no privilege to do it with. */
		cg_info("msg=running_as user=%s uid=%u", user, (unsigned)uid);
		return 0;
	}
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		snprintf(err, errlen, "credgate.user: cannot become %s: %s", user, strerror(errno));
		return CG_ERR_PERM;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
		snprintf(err, errlen, "credgate.user: privileges were not dropped");
		return CG_ERR_PERM;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen, "credgate.user: root privileges could be regained");
		return CG_ERR_PERM;
	}
	/* Changing ids resets the dumpable flag; keep core dumps off. */
	if (cg_disable_core_dumps() != 0) {
		snprintf(err, errlen, "cannot disable core dumps");
		return CG_ERR_PERM;
	}
	cg_info("msg=privileges_dropped user=%s uid=%u gid=%u", user, (unsigned)uid, (unsigned)gid);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reload, drain, signals                                              */
/* ------------------------------------------------------------------ */

static void
publish(struct cg_process *p, struct cg_gen *g, struct cg_listener **lists)
{
	struct cg_worker *w;
	size_t k;

	for (k = 0; k < p->nworkers; k++) {
		w = &p->workers[k];
		worker_publish(w, g, &lists[k]);
	}
	cg_gen_unref(p->gen);
	p->gen = g;
}

/* A setting the new file changes that needs a restart (cg_config_keep_fixed()). */
static void
warn_not_reloadable(const char *path, void *arg)
{
	cg_warn("msg=reload_ignored setting=%s detail=\"restart to apply\"", path);
}

/* The secret cache's times from cfg. */
static void
secret_opts(const struct cg_config *cfg, struct secret_cache_opts *o)
{
	o->ttl_ms = cfg->secret_cache_ttl_ms;
	o->max_stale_ms = cfg->secret_max_stale_ms;
	o->negative_ttl_ms = cfg->secret_negative_ttl_ms;
}

/* Fetches every route's secret ahead of its first request (and for
 * readiness): in the background, once per path. */
static void
secrets_prefetch(struct cg_process *p)
{
	const struct cg_config *cfg = p->gen->cfg;
	const char *why;
	size_t i;
	int r;

	for (i = 0; i < cfg->nroutes; i++) {
		/* A per-session route's credential is made for a session:
		 * fetching it ahead would make one for nobody. */
		if (cfg->routes[i].per_session)
			continue;
		r = secret_cache_check(p->secrets, cfg->routes[i].secret_path, &why);
		if (r != 0 && r != CG_ERR_AGAIN)
			cg_debug("msg=secret_prefetch_failed route=%s path=%s reason=\"%s\"",
			    cfg->routes[i].policy.name, cfg->routes[i].secret_path, why);
	}
}

static void
reload(struct cg_process *p)
{
	struct cg_listener **lists = NULL;
	struct cg_errors errs = { 0 };
	struct cg_config *cfg = NULL;
	struct cg_gen *g = NULL;
	char err[512] = "";
	size_t i;
	int r;

	notify("RELOADING=1");
	cg_info("msg=reload_started file=%s", p->config_file);
	r = cg_config_load(p->config_file, CG_CONFIG_LOAD_FILES, &cfg, &errs);
	for (i = 0; i < errs.n; i++)
		cg_log(r == 0 ? CG_LOG_WARN : CG_LOG_ERROR, "msg=reload_config %s", errs.msgs[i]);
	cg_errors_clear(&errs);
	if (r != 0) {
		snprintf(err, sizeof(err), "the new configuration has errors");
		goto refused;
	}
	/* Settings that need a restart keep their running values. */
	if (cg_config_keep_fixed(p->gen->cfg, cfg, warn_not_reloadable, NULL) != 0) {
		cg_config_free(cfg);
		snprintf(err, sizeof(err), "out of memory");
		goto refused;
	}
	if ((r = gen_build(p, cfg, &g, err, sizeof(err))) != 0)
		goto refused;
	if ((lists = calloc(p->nworkers, sizeof(*lists))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto refused;
	}
	if ((r = open_listeners(p, g, p->gen, lists, err, sizeof(err))) != 0)
		goto refused;
	publish(p, g, lists);
	free(lists);
	/* Key sources only older generations used stop fetching. */
	keyfetch_prune(p->keys, p->gen->cfg->issuers, p->gen->cfg->nissuers);
	/* The secret cache outlives generations, with its store and times
	 * as they were at start (rows not reloadable); the secrets of new
	 * routes are fetched ahead. */
	secrets_prefetch(p);
	cg_log_level_set(p->gen->cfg->log_level);
	p->reload_ok = true;
	p->reload_time = cg_now_ms();
	if (p->pmetrics != NULL) {
		p->pmetrics->config_generation = p->gen->number;
		p->pmetrics->last_reload_success = true;
		p->pmetrics->last_reload_ms = p->reload_time;
	}
	cg_info("msg=reloaded generation=%llu routes=%zu", (unsigned long long)p->gen->number,
	    p->gen->nroutes);
	notify("READY=1");
	return;
 refused:
	free(lists);
	if (g != NULL) {
		p->gen_counter--;
		cg_gen_unref(g);
	}
	keyfetch_prune(p->keys, p->gen->cfg->issuers, p->gen->cfg->nissuers);
	p->reload_ok = false;
	p->reload_time = cg_now_ms();
	if (p->pmetrics != NULL) {
		p->pmetrics->last_reload_success = false;
		p->pmetrics->last_reload_ms = p->reload_time;
	}
	cg_err("msg=reload_refused reason=\"%s\" generation=%llu detail=\"the running "
	    "configuration stays\"", err, (unsigned long long)p->gen->number);
	notify("READY=1");
}

static void
drain_poll(evutil_socket_t fd, short what, void *arg)
{
	struct cg_process *p = arg;
	size_t k;

	for (k = 0; k < p->nworkers; k++)
		if (!__atomic_load_n(&p->workers[k].done, __ATOMIC_ACQUIRE))
			return;
	event_base_loopexit(p->base, NULL);
}

static void
drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct cg_process *p = arg;
	size_t k;

	cg_warn("msg=shutdown_timeout connections=%u detail=\"closing what is left\"",
	    __atomic_load_n(&p->conns_open, __ATOMIC_RELAXED));
	for (k = 0; k < p->nworkers; k++) {
		pthread_mutex_lock(&p->workers[k].lock);
		p->workers[k].pending_stop = true;
		pthread_mutex_unlock(&p->workers[k].lock);
		worker_post(&p->workers[k]);
	}
}

/*
 * A draining process accepts no one: its unix sockets' files go, so that
 * a successor may take their paths at once.  Best effort (after a
 * privilege drop the folder may not let us); only a socket is removed.
 */
static void
unlink_unix_sockets(const struct cg_gen *g)
{
	struct stat st;
	size_t i;

	for (i = 0; i < g->nroutes; i++) {
		const char *path = g->routes[i].route->listen_host;

		if (path == NULL || path[0] != '/' || lstat(path, &st) != 0 ||
		    !S_ISSOCK(st.st_mode))
			continue;
		if (unlink(path) != 0)
			cg_info("msg=unix_socket_left path=\"%s\" error=\"%s\"", path,
			    strerror(errno));
	}
}

static void
drain(struct cg_process *p, const char *signame)
{
	int64_t ms = p->gen->cfg->shutdown_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct timeval poll = { 0, DRAIN_POLL_MS * 1000 };
	size_t k;

	if (p->draining)
		return;
	p->draining = true;
	if (p->pmetrics != NULL)
		p->pmetrics->draining = true;
	notify("STOPPING=1");
	cg_info("msg=draining signal=%s connections=%u shutdown_timeout_ms=%lld", signame,
	    __atomic_load_n(&p->conns_open, __ATOMIC_RELAXED), (long long)ms);
	for (k = 0; k < p->nworkers; k++) {
		pthread_mutex_lock(&p->workers[k].lock);
		p->workers[k].pending_drain = true;
		pthread_mutex_unlock(&p->workers[k].lock);
		worker_post(&p->workers[k]);
	}
	unlink_unix_sockets(p->gen);
	evtimer_add(p->drain_timer, &tv);
	event_add(p->drain_poll, &poll);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct cg_process *p = arg;

	switch (sig) {
	case SIGTERM:
		drain(p, "TERM");
		break;
	case SIGINT:
		drain(p, "INT");
		break;
	case SIGHUP:
		if (!p->draining)
			reload(p);
		break;
	case SIGUSR1:
		if (cg_audit_reopen(p->audit) != 0)
			cg_warn("msg=audit_still_on_old_file");
		if (cg_log_reopen() != 0)
			cg_warn("msg=log_still_on_old_file");
		break;
	}
}

/*
 * Every second: the newest generation's trust bundle files, re-read when
 * they changed (trust_bundle_check()).  Older generations keep what they
 * had: only their connections' handshakes still in flight use them.
 */
static void
trust_watch(evutil_socket_t fd, short what, void *arg)
{
	struct cg_process *p = arg;
	struct cg_gen *g = p->gen;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < g->nbundles; i++) {
		switch (trust_bundle_check(g->bundles[i], cg_now_ms())) {
		case TRUST_RELOADED:
			g->bundle_shared[i]->reloads_ok++;
			break;
		case TRUST_FAILED:
			g->bundle_shared[i]->reloads_failed++;
			break;
		case TRUST_UNCHANGED:
			break;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Admin hooks                                                         */
/* ------------------------------------------------------------------ */

static int
admin_metrics(void *arg, struct evbuffer *out)
{
	struct cg_process *p = arg;
	const struct cg_gen *g = p->gen;
	struct metrics_trust *trust = NULL;
	struct cg_metrics **ms;
	int64_t now = cg_now_ms();
	size_t k;
	int r;

	if ((ms = calloc(p->nworkers, sizeof(*ms))) == NULL ||
	    (g->nbundles > 0 && (trust = calloc(g->nbundles, sizeof(*trust))) == NULL)) {
		free(ms);
		return CG_ERR_NOMEM;
	}
	p->pmetrics->vault = vault_backend_stats(secret_cache_backend(p->secrets),
	    &p->pmetrics->vault_st);
	for (k = 0; k < g->nbundles; k++) {
		trust[k].name = trust_bundle_name(g->bundles[k]);
		trust[k].reloads_ok = g->bundle_shared[k]->reloads_ok;
		trust[k].reloads_failed = g->bundle_shared[k]->reloads_failed;
		trust[k].age_ms = now - trust_bundle_loaded_ms(g->bundles[k]);
	}
	p->pmetrics->trust = trust;
	p->pmetrics->ntrust = g->nbundles;
	for (k = 0; k < p->nworkers; k++)
		ms[k] = p->workers[k].metrics;
	r = metrics_render(out, ms, p->nworkers, p->pmetrics);
	p->pmetrics->trust = NULL;
	p->pmetrics->ntrust = 0;
	free(trust);
	free(ms);
	return r;
}

/*
 * Ready when not draining, the secret store reports no trouble, and every
 * route's secret was fetched: all from what the secret cache already
 * knows, on the control thread.  A probe never reads the store itself; at
 * most it starts a fetch in the background (secret_cache_check()).
 */
static bool
admin_ready(void *arg, char *why, size_t whylen)
{
	struct cg_process *p = arg;
	const struct cg_config *cfg = p->gen->cfg;
	enum secret_backend_state st;
	struct vault_stats vs;
	const char *reason, *breason;
	bool vault;
	size_t i;
	int r;

	if (p->draining) {
		snprintf(why, whylen, "draining");
		return false;
	}
	/* An issuer whose keys were never fetched, or were dropped for
	 * age, verifies no caller. */
	if (!keyfetch_ready(p->keys, cfg->issuers, cfg->nissuers, why, whylen))
		return false;
	/* A Vault that cannot be reached now is no reason by itself: cached
	 * secrets are served (within max_stale), and each route below says
	 * whether its own can be. */
	vault = vault_backend_stats(secret_cache_backend(p->secrets), &vs);
	if ((st = secret_cache_status(p->secrets, &breason)) != SECRET_BACKEND_OK && !vault) {
		snprintf(why, whylen, "secret store %s: %s", secret_backend_state_name(st),
		    breason);
		return false;
	}
	for (i = 0; i < cfg->nroutes; i++) {
		if (cfg->routes[i].per_session)
			continue;	/* made per session: the store's status says it */
		if ((r = secret_cache_check(p->secrets, cfg->routes[i].secret_path,
		    &reason)) != 0) {
			snprintf(why, whylen, "route %s: secret %s %s%s%s%s",
			    cfg->routes[i].policy.name, cfg->routes[i].secret_path,
			    r == CG_ERR_AGAIN ? "not fetched yet" : "cannot be fetched",
			    r != CG_ERR_AGAIN && reason != NULL ? " (" : "",
			    r != CG_ERR_AGAIN && reason != NULL ? reason : "",
			    r != CG_ERR_AGAIN && reason != NULL ? ")" : "");
			return false;
		}
	}
	if (vault && st != SECRET_BACKEND_OK)
		snprintf(why, whylen, "vault %s (%s): cached secrets served",
		    secret_backend_state_name(st), breason);
	else if (vault && vs.token_ttl_ms > 0)
		snprintf(why, whylen, "vault reachable, token ttl %llds",
		    (long long)((vs.token_ttl_ms + 999) / 1000));
	else if (vault)
		snprintf(why, whylen, "vault reachable, token without expiry");
	return true;
}

/* ------------------------------------------------------------------ */

int
server_new(const char *file, struct cg_config *cfg, struct cg_process **out,
    char *err, size_t errlen)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1, SIGHUP };
	struct cg_listener **lists = NULL, *ls;
	struct secret_backend *backend = NULL;
	struct secret_cache_opts so;
	struct admin_hooks hooks;
	struct cg_process *p;
	char why[256];
	size_t i, k;
	int r;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		cg_config_free(cfg);
		return CG_ERR_NOMEM;
	}
	p->config_file = file;
	r = CG_ERR_NOMEM;
	if ((p->base = event_base_new()) == NULL ||
	    (p->drain_timer = evtimer_new(p->base, drain_deadline, p)) == NULL ||
	    (p->trust_watch = event_new(p->base, -1, EV_PERSIST, trust_watch, p)) == NULL ||
	    (p->drain_poll = event_new(p->base, -1, EV_PERSIST, drain_poll, p)) == NULL ||
	    (p->pmetrics = calloc(1, sizeof(*p->pmetrics))) == NULL ||
	    (p->pending = pending_table_new()) == NULL) {
		cg_config_free(cfg);
		goto fail;
	}
	if ((r = keyfetch_new(p->base, keys_notify, p, &p->keys)) != 0) {
		snprintf(err, errlen, "issuers: cannot start the key fetcher");
		cg_config_free(cfg);
		goto fail;
	}
	p->pmetrics->keys = p->keys;
	if ((r = gen_build(p, cfg, &p->gen, err, errlen)) != 0)
		goto fail;
	cfg = p->gen->cfg;
	p->pmetrics->config_generation = p->gen->number;
	p->pmetrics->last_reload_success = true;
	p->pmetrics->last_reload_ms = p->pmetrics->start_time_ms = cg_now_ms();
	p->pmetrics->version = CG_PACKAGE_VERSION;
	for (i = 0; i < CG_ARRAY_LEN(sigs); i++) {
		if ((p->signals[i] = evsignal_new(p->base, sigs[i], on_signal, p)) == NULL) {
			r = CG_ERR_NOMEM;
			goto fail;
		}
		evsignal_add(p->signals[i], NULL);
	}
	if ((r = cg_audit_open(cfg->audit_file, cfg->audit_stdout, &p->audit, why,
	    sizeof(why))) != 0) {
		snprintf(err, errlen, "credgate.audit.file: %s", why);
		goto fail;
	}
	/* One secret store for the process, read by every worker's view. */
	if (strcmp(cfg->secrets_backend, "vault") == 0) {
		struct vault_opts vo;

		cg_vault_opts(cfg, &vo);
		if ((r = vault_backend_new(p->base, &vo, &backend, why, sizeof(why))) != 0) {
			snprintf(err, errlen, "secrets.vault: %s", why);
			goto fail;
		}
	} else if ((r = file_backend_new(p->base, cfg->secrets_file, &backend, why,
	    sizeof(why))) != 0) {
		snprintf(err, errlen, "secrets.file: %s", why);
		goto fail;
	}
	secret_opts(cfg, &so);
	if ((r = secret_cache_new_opts(p->base, backend, &so, &p->secrets)) != 0 ||
	    (r = secret_cache_watch(p->secrets, SECRETS_WATCH_MS)) != 0) {
		snprintf(err, errlen, "secrets: cannot create the secret cache");
		goto fail;
	}
	secrets_prefetch(p);
	{
		struct timeval tv = cg_ms_tv(TRUST_WATCH_MS);

		if (evtimer_add(p->trust_watch, &tv) != 0) {
			snprintf(err, errlen, "cannot arm the trust bundles' watch");
			r = CG_ERR_INTERNAL;
			goto fail;
		}
	}
	p->nworkers = cfg->workers ? cfg->workers : 1;
	if ((p->workers = calloc(p->nworkers, sizeof(*p->workers))) == NULL ||
	    (lists = calloc(p->nworkers, sizeof(*lists))) == NULL) {
		r = CG_ERR_NOMEM;
		goto fail;
	}
	for (k = 0; k < p->nworkers; k++)
		if ((r = worker_init(&p->workers[k], p, (unsigned)k, err, errlen)) != 0) {
			p->nworkers = k + 1;
			goto fail;
		}
	if ((r = open_listeners(p, p->gen, NULL, lists, err, errlen)) != 0)
		goto fail;
	for (k = 0; k < p->nworkers; k++) {
		while ((ls = lists[k]) != NULL) {
			lists[k] = ls->next;
			r = worker_add_listener(&p->workers[k], ls->key, ls->fd);
			free(ls);
			if (r != 0)
				goto fail;
		}
	}
	free(lists);
	lists = NULL;
	if (cfg->admin_listen_host != NULL) {
		memset(&hooks, 0, sizeof(hooks));
		hooks.render_metrics = admin_metrics;
		hooks.ready = admin_ready;
		hooks.arg = p;
		if ((r = admin_new(p->base, cfg->admin_listen_host, cfg->admin_listen_port,
		    &hooks, &p->admin, why, sizeof(why))) != 0) {
			snprintf(err, errlen, "credgate.admin.listen: %s", why);
			goto fail;
		}
	}
	for (i = 0; i < cfg->nroutes; i++)
		cg_info("msg=listening route=%s addr=%s upstream=%s mode=%s workers=%zu",
		    cfg->routes[i].policy.name, p->gen->routes[i].listen_key,
		    p->gen->routes[i].upstream_name,
		    cfg->routes[i].policy.mode == POLICY_DRY_RUN ? "dry-run" : "enforce",
		    p->nworkers);
	*out = p;
	return 0;
 fail:
	if (lists != NULL) {
		for (k = 0; k < p->nworkers; k++)
			while ((ls = lists[k]) != NULL) {
				lists[k] = ls->next;
				close(ls->fd);
				free(ls);
			}
		free(lists);
	}
	if (r == CG_ERR_NOMEM && err[0] == '\0')
		snprintf(err, errlen, "out of memory");
	server_free(p);
	return r;
}

static void
revoke_deadline(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/*
 * At exit, with the workers gone: every lease the secret cache holds is
 * revoked, and the answers are waited for a little (the store would let
 * them lapse anyway).
 */
static void
revoke_leases(struct cg_process *p)
{
	struct timeval tv = { LEASE_REVOKE_WAIT_MS / 1000, (LEASE_REVOKE_WAIT_MS % 1000) * 1000 };
	struct event *ev;
	bool expired = false;
	size_t n;

	if ((n = secret_cache_revoke_all(p->secrets)) == 0)
		return;
	cg_info("msg=revoking_leases count=%zu", n);
	if ((ev = evtimer_new(p->base, revoke_deadline, &expired)) == NULL ||
	    evtimer_add(ev, &tv) != 0) {
		if (ev != NULL)
			event_free(ev);
		return;
	}
	while (secret_cache_busy(p->secrets) && !expired)
		event_base_loop(p->base, EVLOOP_ONCE);
	event_free(ev);
}

int
server_run(struct cg_process *p)
{
	const struct cg_config *cfg = p->gen->cfg;
	char err[256] = "";
	size_t k;

	/* Everything privileged is done: sockets bound, files opened. */
	if (drop_privileges(cfg->user, cfg->group, err, sizeof(err)) != 0) {
		cg_err("msg=start_failed reason=\"%s\"", err);
		return CG_ERR_PERM;
	}
	for (k = 0; k < p->nworkers; k++) {
		if (worker_start(&p->workers[k]) != 0) {
			cg_err("msg=start_failed reason=\"cannot start worker %zu\"", k);
			drain(p, "start_failure");
			break;
		}
	}
	cg_info("msg=started generation=%llu routes=%zu issuers=%zu workers=%zu",
	    (unsigned long long)p->gen->number, p->gen->nroutes, cfg->nissuers, p->nworkers);
	notify("READY=1");
	event_base_dispatch(p->base);
	for (k = 0; k < p->nworkers; k++)
		if (p->workers[k].started) {
			pthread_join(p->workers[k].thread, NULL);
			p->workers[k].started = false;
		}
	revoke_leases(p);
	cg_info("msg=stopped");
	return 0;
}

void
server_free(struct cg_process *p)
{
	struct cg_route_shared *s, *next;
	size_t i, k;

	if (p == NULL)
		return;
	if (p->workers != NULL) {
		for (k = 0; k < p->nworkers; k++) {
			if (p->workers[k].started) {
				pthread_mutex_lock(&p->workers[k].lock);
				p->workers[k].pending_stop = true;
				pthread_mutex_unlock(&p->workers[k].lock);
				worker_post(&p->workers[k]);
			}
			if (p->workers[k].proc != NULL)
				worker_free(&p->workers[k]);
		}
		free(p->workers);
	}
	secret_cache_free(p->secrets);	/* after the views of the workers */
	keyfetch_free(p->keys);		/* after the workers, who wake it */
	admin_free(p->admin);
	free(p->pending);
	cg_audit_close(p->audit);
	for (i = 0; i < CG_ARRAY_LEN(p->signals); i++)
		if (p->signals[i] != NULL)
			event_free(p->signals[i]);
	if (p->drain_timer != NULL)
		event_free(p->drain_timer);
	if (p->drain_poll != NULL)
		event_free(p->drain_poll);
	if (p->trust_watch != NULL)
		event_free(p->trust_watch);
	cg_gen_unref(p->gen);
	for (s = p->route_shared; s != NULL; s = next) {
		next = s->next;
		free(s->name);
		free(s);
	}
	while (p->trust_shared != NULL) {
		struct cg_trust_shared *t = p->trust_shared;

		p->trust_shared = t->next;
		free(t->name);
		free(t);
	}
	free(p->pmetrics);
	if (p->base != NULL)
		event_base_free(p->base);
	free(p);
}
