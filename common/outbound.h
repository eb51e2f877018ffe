/*
 * outbound.h: HTTP(S) requests from the control thread, without blocking
 * it: libcurl's multi interface driven by a libevent base.
 *
 * One client per purpose (the Vault backend, later a key set fetcher),
 * each with its TLS settings, timeouts and response limit.  Request
 * headers and bodies are copied into secure memory and the response body
 * lands there too; both are wiped when the request ends.  libcurl's own
 * allocations go through allocation functions that wipe on free
 * (outbound_global_init()), and its TLS sessions cleanse the plaintext
 * they received.  Nothing here logs a header or a body.
 */
#ifndef CG_OUTBOUND_H
#define CG_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct event_base;
struct ob_client;
struct ob_call;

/*
 * Once per process, before any thread starts: libcurl's global set-up,
 * with its memory wiped when freed.  0 or CG_ERR_INTERNAL.
 */
int outbound_global_init(void) CG_WUR;
void outbound_global_cleanup(void);

struct ob_client_opts {
	const char *ca_file;		/* PEM bundle; NULL: the system's */
	const char *ca_path;		/* hashed directory of CAs; NULL: none */
	const char *server_name;	/* name the server's certificate must carry
					   (SNI too) instead of the URL's host */
	const char *cert, *key;		/* PEM client certificate and key */
	int64_t connect_timeout_ms;	/* TCP and TLS set-up */
	int64_t timeout_ms;		/* the whole request */
	size_t max_response;		/* body bytes; more fails the request */
};

/* A request; every pointer is read during ob_request() only. */
struct ob_request {
	const char *method;		/* "GET", "POST", "PUT", "LIST" */
	const char *url;
	const char *const *headers;	/* "Name: value"; may carry a token */
	size_t nheaders;
	const char *body;		/* NULL: none */
	size_t body_len;
};

/* How a request ended when there is no HTTP status. */
enum ob_fail {
	OB_OK = 0,		/* an HTTP status came back */
	OB_CONNECT,		/* resolve, connect or TLS handshake failed */
	OB_TIMEOUT,		/* a timeout passed */
	OB_TOO_LARGE,		/* the body passed max_response */
	OB_TRANSFER,		/* the connection broke, or anything else */
};

struct ob_response {
	enum ob_fail fail;
	long status;		/* with OB_OK */
	const char *body;	/* secure memory, NUL-terminated; wiped after the
				   callback returns: copy what is kept */
	size_t body_len;
	const char *cache_control; /* with OB_OK: these headers of the */
	const char *location;	/* response, NULL when absent; valid
				   during the callback only */
	const char *error;	/* with a failure: libcurl's text (no secrets) */
};

/* Called once per started request, never from inside ob_request(). */
typedef void (*ob_cb)(const struct ob_response *r, void *arg);

/*
 * A client on base (which must be the calling thread's).  The strings of
 * opts are copied.  0, CG_ERR_NOMEM or CG_ERR_INTERNAL.
 */
int ob_client_new(struct event_base *base, const struct ob_client_opts *opts,
    struct ob_client **out) CG_WUR;
/*
 * Ends every request without its callback, then the client.  NULL-safe;
 * may be called from one of its callbacks (whose response goes with it).
 */
void ob_client_free(struct ob_client *c);

/*
 * Starts a request; cb follows once, from base's loop.  *call (when call
 * is not NULL) can cancel it until cb runs.  0, CG_ERR_NOMEM or
 * CG_ERR_FORMAT: a URL libcurl refuses, or one without an explicit http
 * or https scheme; a method not all capital letters; a header line with
 * a CR or LF in it.
 */
int ob_request(struct ob_client *c, const struct ob_request *rq, ob_cb cb, void *arg,
    struct ob_call **call) CG_WUR;
/* No callback after this.  NULL-safe; not from inside the call's own cb. */
void ob_call_cancel(struct ob_call *call);
/* Requests started and not yet ended. */
size_t ob_client_pending(const struct ob_client *c);

#endif /* CG_OUTBOUND_H */
