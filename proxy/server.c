/*
 * server.c: one worker: its event loop, listeners, signals, the secret
 * cache and audit sinks it uses, and the reaper that frees closed
 * connections outside of their callbacks.
 *
 * Owns struct cg_server.  Connections are conn.c's.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "proxy/audit.h"
#include "proxy/server.h"
#include "vault-client/vault.h"

#define LISTEN_BACKLOG 1024
#define ACCEPT_PAUSE_MS 1000

static void
server_reaper(evutil_socket_t fd, short what, void *arg)
{
	conn_reap(arg);
}

static void
server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	conn_accept(arg, fd, sa, salen);
}

static void
server_resume_accept(evutil_socket_t fd, short what, void *arg)
{
	struct cg_route_rt *rt = arg;

	if (!rt->srv->stopping)
		evconnlistener_enable(rt->listener);
}

/*
 * accept() failed.  Out of descriptors: stop accepting for a while instead
 * of spinning on a listener that stays readable.
 */
static void
server_accept_error(struct evconnlistener *l, void *arg)
{
	struct cg_route_rt *rt = arg;
	struct timeval tv = { ACCEPT_PAUSE_MS / 1000, (ACCEPT_PAUSE_MS % 1000) * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		cg_warn("msg=accept_paused route=%s error=\"%s\" pause_ms=%d",
		    rt->route->policy.name, strerror(err), ACCEPT_PAUSE_MS);
		evconnlistener_disable(l);
		event_base_once(rt->srv->base, -1, EV_TIMEOUT, server_resume_accept, rt, &tv);
		return;
	}
	cg_warn("msg=accept_failed route=%s error=\"%s\"", rt->route->policy.name, strerror(err));
}

static void
server_signal(evutil_socket_t sig, short what, void *arg)
{
	struct cg_server *srv = arg;
	size_t i;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (srv->stopping)
			return;
		cg_info("msg=stopping signal=%s connections=%llu",
		    sig == SIGTERM ? "TERM" : "INT", (unsigned long long)srv->nconns);
		srv->stopping = true;
		for (i = 0; i < srv->nroutes; i++)
			if (srv->routes[i].listener != NULL)
				evconnlistener_disable(srv->routes[i].listener);
		conn_close_all(srv, "shutdown");
		event_base_loopexit(srv->base, NULL);
		break;
	case SIGUSR1:
		if (cg_audit_reopen(srv->audit) != 0)
			cg_warn("msg=audit_still_on_old_file");
		break;
	case SIGHUP:
		cg_warn("msg=reload_unsupported detail=\"restart credgate to apply a new configuration\"");
		break;
	}
}

static int
resolve(const char *host, int port, bool passive, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
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

static int
server_route(struct cg_server *srv, size_t i, char *err, size_t errlen)
{
	struct cg_route_rt *rt = &srv->routes[i];
	const struct cg_route *route = &srv->cfg->routes[i];
	struct sockaddr_storage ss;
	socklen_t sslen;
	char why[160];
	int r;

	rt->route = route;
	rt->srv = srv;
	if ((r = resolve(route->upstream_host, route->upstream_port, false, &rt->upstream,
	    &rt->upstream_len, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "routes.[%zu].upstream: %s", i, why);
		return r;
	}
	snprintf(rt->upstream_name, sizeof(rt->upstream_name), "%s%s%s:%d",
	    strchr(route->upstream_host, ':') ? "[" : "", route->upstream_host,
	    strchr(route->upstream_host, ':') ? "]" : "", route->upstream_port);
	if ((r = resolve(route->listen_host, route->listen_port, true, &ss, &sslen,
	    why, sizeof(why))) != 0) {
		snprintf(err, errlen, "routes.[%zu].listen: %s", i, why);
		return r;
	}
	rt->listener = evconnlistener_new_bind(srv->base, server_accept, rt,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    LISTEN_BACKLOG, (struct sockaddr *)&ss, (int)sslen);
	if (rt->listener == NULL) {
		snprintf(err, errlen, "routes.[%zu].listen: cannot listen on %s:%d: %s", i,
		    route->listen_host, route->listen_port, strerror(errno));
		return CG_ERR_IO;
	}
	evconnlistener_set_error_cb(rt->listener, server_accept_error);
	cg_info("msg=listening route=%s addr=%s:%d upstream=%s mode=%s",
	    route->policy.name, route->listen_host, route->listen_port, rt->upstream_name,
	    route->policy.mode == POLICY_DRY_RUN ? "dry-run" : "enforce");
	return 0;
}

int
server_new(struct cg_config *cfg, struct cg_server **out, char *err, size_t errlen)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1, SIGHUP };
	struct secret_backend *backend = NULL;
	struct cg_server *srv;
	char why[256];
	size_t i;
	int r;

	*out = NULL;
	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		cg_config_free(cfg);
		return CG_ERR_NOMEM;
	}
	srv->cfg = cfg;
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->dead);
	r = CG_ERR_NOMEM;
	if ((srv->base = event_base_new()) == NULL)
		goto fail;
	if ((srv->reaper = event_new(srv->base, -1, 0, server_reaper, srv)) == NULL)
		goto fail;
	for (i = 0; i < CG_ARRAY_LEN(sigs); i++) {
		if ((srv->signals[i] = evsignal_new(srv->base, sigs[i], server_signal, srv)) == NULL)
			goto fail;
		evsignal_add(srv->signals[i], NULL);
	}
	if ((r = cg_audit_open(cfg->audit_file, cfg->audit_stdout, &srv->audit, why,
	    sizeof(why))) != 0) {
		snprintf(err, errlen, "credgate.audit.file: %s", why);
		goto fail;
	}
	if ((r = file_backend_new(srv->base, cfg->secrets_file, &backend, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "secrets.file: %s", why);
		goto fail;
	}
	if ((r = secret_cache_new(srv->base, backend, cfg->secret_cache_ttl_ms, &srv->secrets)) != 0) {
		snprintf(err, errlen, "secrets: cannot create the secret cache");
		goto fail;
	}
	if ((srv->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*srv->routes))) == NULL) {
		r = CG_ERR_NOMEM;
		goto fail;
	}
	srv->nroutes = cfg->nroutes;
	for (i = 0; i < cfg->nroutes; i++)
		if ((r = server_route(srv, i, err, errlen)) != 0)
			goto fail;
	*out = srv;
	return 0;
 fail:
	if (r == CG_ERR_NOMEM && err[0] == '\0')
		snprintf(err, errlen, "out of memory");
	server_free(srv);
	return r;
}

int
server_run(struct cg_server *srv)
{
	cg_info("msg=started routes=%zu issuers=%zu", srv->nroutes, srv->cfg->nissuers);
	event_base_dispatch(srv->base);
	conn_reap(srv);
	cg_info("msg=stopped");
	return 0;
}

void
server_free(struct cg_server *srv)
{
	size_t i;

	if (srv == NULL)
		return;
	conn_close_all(srv, "shutdown");
	conn_reap(srv);
	for (i = 0; i < srv->nroutes; i++)
		if (srv->routes[i].listener != NULL)
			evconnlistener_free(srv->routes[i].listener);
	free(srv->routes);
	secret_cache_free(srv->secrets);
	cg_audit_close(srv->audit);
	for (i = 0; i < CG_ARRAY_LEN(srv->signals); i++)
		if (srv->signals[i] != NULL)
			event_free(srv->signals[i]);
	if (srv->reaper != NULL)
		event_free(srv->reaper);
	if (srv->base != NULL)
		event_base_free(srv->base);
	cg_config_free(srv->cfg);
	free(srv);
}
