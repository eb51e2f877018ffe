/*
 * admin.h: the admin endpoint, a small HTTP/1.1 server on its own address
 * (credgate.admin.listen), run by the control thread's event loop.
 *
 *   GET|HEAD /healthz  200 "ok\n" while the process runs
 *   GET|HEAD /readyz   200 "ready\n", or 503 "not ready: <why>\n"
 *   GET|HEAD /metrics  200, Content-Type text/plain; version=0.0.4; charset=utf-8
 *   other paths        404;   other methods on these paths: 405
 *   a malformed head   400 (505 for another version, 501 for CONNECT)
 *
 * Every response carries Content-Length and Connection: close, and the
 * connection then closes (after the response drains).  The head must come
 * within ADMIN_HEADER_TIMEOUT_MS (408 otherwise) and fit in ADMIN_MAX_HEAD
 * bytes (431 otherwise; 414 for a request line over 4 KiB).  At most
 * ADMIN_MAX_CONNS connections are served at once; one more is answered 503
 * (best effort) and closed.  Query strings are ignored.
 */
#ifndef CG_ADMIN_H
#define CG_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct event_base;
struct evbuffer;
struct cg_admin;

#define ADMIN_HEADER_TIMEOUT_MS	5000
#define ADMIN_MAX_CONNS		64
#define ADMIN_MAX_HEAD		8192

/*
 * What the server provides.  Called on the admin loop's thread, from an
 * admin connection's callback; they must not block.
 */
struct admin_hooks {
	/*
	 * Appends the /metrics body to out (metrics_render() of every
	 * worker).  Returns 0, or a CG_ERR_* (the client then gets 500 and
	 * whatever was appended is dropped).  NULL: /metrics answers 404.
	 */
	int (*render_metrics)(void *arg, struct evbuffer *out);
	/*
	 * True when new traffic should be sent here.  False while draining,
	 * while the secret store reports trouble or when a route's secret
	 * cannot be fetched, with a short reason (no secrets, one line)
	 * written to why[0..whylen).  Must answer from what is known, not
	 * by reading a store.  NULL: always ready.
	 */
	bool (*ready)(void *arg, char *why, size_t whylen);
	void *arg;		/* passed to both */
};

/*
 * Binds host:port (a numeric address or a name; port 0 picks a free port,
 * see admin_port()) and serves it on base.  hooks is copied; hooks->arg is
 * borrowed and must outlive the admin.  Returns 0 and *out, or
 * CG_ERR_NOTFOUND (host does not resolve), CG_ERR_IO (cannot bind or
 * listen; errno kept), CG_ERR_NOMEM, with a one-line err.
 */
int admin_new(struct event_base *base, const char *host, int port,
    const struct admin_hooks *hooks, struct cg_admin **out, char *err, size_t errlen) CG_WUR;

/* The port the listener is bound to (useful after port 0); -1 if unknown. */
int admin_port(const struct cg_admin *a);

/* Connections being served now (for tests). */
size_t admin_nconns(const struct cg_admin *a);

/* Changes the header timeout for connections accepted from now on (tests). */
void admin_set_header_timeout(struct cg_admin *a, int64_t ms);

/* Closes the listener and every admin connection at once; NULL-safe.
 * Call on the loop's thread, not from a hook. */
void admin_free(struct cg_admin *a);

#endif /* CG_ADMIN_H */
