/*
 * server.h: one worker's state (event loop, listeners, connections) and the
 * connection entry points.  A worker owns everything here; nothing on the
 * hot path is shared with another thread.
 */
#ifndef CG_SERVER_H
#define CG_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "common.h"
#include "proxy/config.h"

struct event_base;
struct event;
struct evconnlistener;
struct secret_cache;
struct cg_audit;
struct conn;

/* What a route needs at run time besides its configuration. */
struct cg_route_rt {
	const struct cg_route *route;
	struct sockaddr_storage upstream;	/* resolved at start */
	socklen_t upstream_len;
	char upstream_name[80];			/* "host:port" for audit and logs */
	struct evconnlistener *listener;
	struct cg_server *srv;
};

TAILQ_HEAD(conn_list, conn);

struct cg_server {
	struct event_base *base;
	struct cg_config *cfg;		/* the generation connections use */
	struct secret_cache *secrets;
	struct cg_audit *audit;
	struct cg_route_rt *routes;	/* cfg->nroutes entries */
	size_t nroutes;
	struct conn_list conns;		/* live connections */
	struct conn_list dead;		/* closed, freed by the reaper */
	struct event *reaper;
	struct event *signals[5];
	uint64_t next_conn_id;
	uint64_t nconns;
	bool stopping;
};

/*
 * Builds a server from a loaded configuration: resolves upstreams, opens
 * the audit sinks and the secret store, binds every route's listener.
 * Returns 0, or a CG_ERR_* with err filled in.  Takes ownership of cfg.
 */
int server_new(struct cg_config *cfg, struct cg_server **out, char *err, size_t errlen) CG_WUR;
/* Runs until SIGTERM or SIGINT; returns 0. */
int server_run(struct cg_server *srv);
void server_free(struct cg_server *srv);

/* conn.c */
void conn_accept(struct cg_route_rt *rt, int fd, const struct sockaddr *sa, int salen);
void conn_reap(struct cg_server *srv);	/* frees closed connections */
void conn_close_all(struct cg_server *srv, const char *reason);

#endif /* CG_SERVER_H */
