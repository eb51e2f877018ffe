/*
 * injector.h: the one interface every protocol implements.
 *
 * A protocol (HTTP/1.1 today; PostgreSQL, MySQL, Redis, LDAP later) owns
 * its state machine on both sides of a session: on the caller's side it
 * reads the identity proof in the protocol's own way, on the upstream side
 * it authenticates with a credential it is handed, then relays.  It keeps
 * its own state enum with one function that changes it.
 *
 * The engine (proxy/) runs the session: sockets, TLS, timers, the pipeline
 * (proof -> verification -> decision -> audit -> credential), the upstream
 * connection and its pool, close and reap.  It lends the protocol a small
 * table of callbacks (struct inj_host_ops) and calls the protocol through
 * its operations (struct inj_ops).  A protocol includes nothing from
 * proxy/, policy/ or vault-client/: it never calls the vault or the
 * policy itself, and can be tested with a fake host, as the engine can be
 * with a fake protocol.
 *
 * Calls go one way at a time: an operation of the protocol may call the
 * host, and a host callback may call back into the protocol before it
 * returns only where its comment says so (begin(), proof()).
 */
#ifndef CG_INJECTOR_H
#define CG_INJECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "settings.h"

struct evbuffer;

/*
 * The credential as the injector sees it: named fields, borrowed for the
 * duration of one call.  field() returns a NUL-terminated value and its
 * length, or NULL when the field is absent.
 */
struct inj_cred {
	const char *(*field)(const void *ctx, const char *name, size_t *len);
	const void *ctx;
	const void *id;		/* the same for every use of one credential
				   version (for caches of things made from it) */
};

/*
 * Output queued for one side that stops reading the other side, and the
 * level it must drain to before reading resumes: the engine's plain relay
 * and every protocol's own relaying keep the same bounds.
 */
#define INJ_RELAY_HIGH	(256 * 1024)
#define INJ_RELAY_LOW	(64 * 1024)

/* The two sides of a session. */
enum inj_side {
	INJ_CLIENT = 0,		/* the caller */
	INJ_UPSTREAM = 1,	/* the legacy service */
};

/*
 * Why the engine refuses what the protocol handed over; the protocol
 * answers in its own way (for HTTP the status in brackets).
 */
enum inj_refusal {
	INJ_REFUSE_PROOF,	/* the proof did not verify (401) */
	INJ_REFUSE_DENIED,	/* policy denies (403) */
	INJ_REFUSE_UNAVAILABLE,	/* route withdrawn, audit or credential
				   unavailable (503) */
	INJ_REFUSE_UPSTREAM,	/* the upstream cannot be reached (502) */
	INJ_REFUSE_TIMEOUT,	/* the upstream did not answer in time (504) */
};

/* A request attribute policy may name ("method", "path", "database"...). */
struct inj_attr {
	const char *name;	/* static; one the protocol declares */
	const char *value;	/* borrowed until the request ends */
	size_t len;
};

/* What a protocol hands over when a request (HTTP) or a login begins. */
struct inj_request {
	/*
	 * For policy, audit and logs: in the order its struct inj_proto
	 * declares them, so that attrs[i] is the attribute of id i (named
	 * attrs[i] there): policy takes them by index.  nattrs is at most
	 * INJ_ATTRS_MAX.
	 */
	const struct inj_attr *attrs;
	size_t nattrs;
	const char *const *flags;	/* facts audit records as true in its
					   request object ("host_mismatch") */
	size_t nflags;
	const char *request_id;		/* the caller's, checked; NULL: the
					   engine makes one */
};

/*
 * What the engine tells the protocol about the route and the caller.
 * Valid until the protocol's next call of begin(): a reload may change it
 * between two requests of one session.
 */
struct inj_params {
	const void *cfg;		/* the protocol's own settings of the
					   route (struct inj_http_cfg for http) */
	uint64_t max_body;		/* request body bytes; 0 = none */
	size_t max_line;		/* limits of a message head */
	size_t max_head;
	size_t max_fields;
	int64_t header_timeout_ms;	/* reading the proof */
	int64_t idle_timeout_ms;	/* between requests, and relaying */
	int64_t connect_timeout_ms;	/* upstream connect */
	int64_t response_timeout_ms;	/* upstream's first answer */
	size_t max_proof;		/* bytes of the caller's proof (token) */
	int64_t proof_expires;		/* the verified proof's expiry, seconds since
					   the epoch; 0 before one, or none */
	const char *peer_ip;		/* the caller, as text */
	const char *upstream_name;	/* "host:port" */
	bool tls;			/* the caller's side is TLS */
	bool tls_offered;		/* the caller's side may start TLS */
	bool upstream_tls;		/* the route's upstream side is TLS */
};

/*
 * Names of what went back to the caller without the credential, for the
 * secret_echo audit event: names only, never values.
 */
#define INJ_ECHO_NAMES	8
struct inj_echo {
	unsigned scrubbed;	/* values rewritten without the secret */
	unsigned dropped;	/* values left out */
	size_t nnames;		/* entries of names[], each (name, dropped) once */
	struct {
		struct http_span name;	/* borrowed for the call it is given in */
		bool dropped;		/* else scrubbed */
	} names[INJ_ECHO_NAMES];
};

struct inj_host;	/* the engine's session; opaque here */

/* What a protocol counts for metrics (count()). */
enum inj_count {
	INJ_COUNT_LOGIN_OK,		/* logged in upstream anew */
	INJ_COUNT_LOGIN_REUSED,		/* handed a pooled login */
	INJ_COUNT_LOGIN_REFUSED,	/* the caller's login refused */
	INJ_COUNT_LOGIN_FAILED,		/* the upstream login failed */
	INJ_COUNT_KEY_DERIVED,		/* a login's keys derived from the password */
	INJ_COUNT_KEY_CACHED,		/* ... or taken from the route's cache */
};

enum inj_read {
	INJ_READ_OFF = 0,
	INJ_READ_ON,
	/* On, unless the side is a plain socket never read by an event so
	 * far: a caller that sent all it will send before its answer need
	 * not be watched until the answer is out (a caller that reads its
	 * answer and closes then costs no system call to watch it). */
	INJ_READ_IF_WATCHED,
};

/*
 * What the engine lends a protocol.  Every callback takes the host the
 * protocol's start() was given.
 */
struct inj_host_ops {
	/* The bytes read from a side, and those queued for it. */
	struct evbuffer *(*input)(struct inj_host *h, enum inj_side side);
	struct evbuffer *(*output)(struct inj_host *h, enum inj_side side);
	/* Reads a side, or stops (backpressure, or nothing is wanted). */
	void (*reading)(struct inj_host *h, enum inj_side side, enum inj_read how);
	/* (Re-)arms the session's one timer; timeout() follows when it fires. */
	void (*arm)(struct inj_host *h, int64_t ms);
	/*
	 * Starts TLS on a side now, over the bytes not read yet
	 * (PostgreSQL's SSLRequest, LDAP's StartTLS): on the caller's side
	 * with the listener's certificate, on the upstream's (connected) as
	 * the route's upstream TLS settings say.  tls_done() follows when
	 * the handshake is over; a failed handshake closes the session (the
	 * caller's side) or comes as connected(false) (the upstream's).
	 * For a protocol with tls_late, neither side starts TLS by itself.
	 * The protocol's timer (arm()) bounds the handshake, as any other
	 * wait of its own.  0, or CG_ERR_* (nothing changed).
	 */
	int (*start_tls)(struct inj_host *h, enum inj_side side);
	/*
	 * Connects upstream, or takes an idle connection from the pool.
	 * cred: NULL for a protocol whose upstream connection carries no
	 * login of its own (HTTP); else the connection is pooled only with
	 * others authenticated as that same credential version, and tag
	 * (NULL: none) names what else of the login must match (a
	 * database, session parameters: at most INJ_TAG_MAX bytes).
	 * Returns 0 and *connected true for a pooled one (ready now, its
	 * up_data() as the protocol left it), false when connected()
	 * follows; else CG_ERR_*.
	 */
	int (*connect)(struct inj_host *h, const struct inj_cred *cred, const char *tag,
	    bool *connected);
	/*
	 * The protocol's object of the upstream connection in use (what a
	 * pooled login must tell its next caller: server parameters, keys):
	 * it goes to the pool and back with the connection, and is freed
	 * with up_data_free() when the connection closes.  NULL while
	 * there is no upstream connection.
	 */
	void **(*up_data)(struct inj_host *h);
	/*
	 * TLS channel binding of a side ("tls-server-end-point", RFC 5929:
	 * the hash of the server's certificate) into out (size bytes, 64
	 * suffice).  Returns its length, or 0 when the side is not TLS or
	 * the hash cannot be made.
	 */
	size_t (*tls_binding)(struct inj_host *h, enum inj_side side, unsigned char *out,
	    size_t size);
	/* Closes the upstream connection now. */
	void (*drop_upstream)(struct inj_host *h);
	/*
	 * A request begins.  The engine counts it, adopts the newest
	 * configuration (so that a reload applies to the next request of an
	 * open session) and sets *params and *last (this is the session's
	 * last request: keep-alive limits).  req NULL: a request that failed
	 * before it could be read is only counted.  Returns 0; or
	 * CG_ERR_NOTFOUND when the route was withdrawn: refuse() has been
	 * called before it returns.
	 */
	int (*begin)(struct inj_host *h, const struct inj_request *req,
	    const struct inj_params **params, bool *last);
	/*
	 * The caller's proof: a bearer token (JWT).  The engine verifies it,
	 * decides (with the caller's verified client certificate, if any, as
	 * the peer rules see), audits and fetches the credential; allowed()
	 * or refuse() follows, possibly before proof() returns.
	 */
	void (*proof)(struct inj_host *h, const char *proof, size_t len);
	/*
	 * The caller's verified client certificate as its whole proof, where
	 * the route lets a certificate log in: false when there is none
	 * (nothing happened).  Else the engine decides as for proof(), with
	 * no token: only an allow rule that names the certificate
	 * (client_subject, client_san) can allow; allowed() or refuse()
	 * follows, possibly before it returns.
	 */
	bool (*peer_proof)(struct inj_host *h);
	/* The protocol refuses the proof as malformed before verification:
	 * audited as a decision to deny, with code, the protocol's answer
	 * ("401", "28P01"), which it gives itself. */
	void (*deny)(struct inj_host *h, const char *code, const char *reason);
	/* An error after the decision (upstream, injection): audited. */
	void (*audit_error)(struct inj_host *h, const char *reason);
	/* A response carried the credential and was cleaned (secret_echo). */
	void (*audit_echo)(struct inj_host *h, int status, const struct inj_echo *echo);
	/* The engine relays bytes both ways from now on, with backpressure;
	 * the protocol is called again only by eof() and timeouts. */
	void (*relay)(struct inj_host *h);
	/* The protocol answered with an error of its own (status is the
	 * protocol's code, for metrics and session_end); logged with reason. */
	void (*refused)(struct inj_host *h, int status, const char *reason);
	/* The upstream's answer to the request is on its way (its status). */
	void (*answered)(struct inj_host *h, int status);
	/*
	 * The request is complete both ways.  The upstream connection goes
	 * back to the pool when reusable (else it is closed).
	 */
	void (*done)(struct inj_host *h, bool reusable);
	/*
	 * Stops reading, lets the output drain, then closes.  linger: the
	 * caller may still be sending: its input is read and dropped for a
	 * while before the close, so that the answer is not lost to a reset.
	 */
	void (*finish)(struct inj_host *h, const char *reason, bool linger);
	/* Closes now (idempotent). */
	void (*close)(struct inj_host *h, const char *reason);
	/* The request id of the request in flight ("" before one). */
	const char *(*request_id)(struct inj_host *h);
	/* True while the process drains: no request after this one. */
	bool (*draining)(struct inj_host *h);
	/* Scratch memory of the worker, for a parse that does not outlive
	 * the call (size in *size). */
	void *(*scratch)(struct inj_host *h, size_t *size);
	/*
	 * A slot the protocol may keep one object in per route and worker,
	 * for all sessions of the route, made from the credential of the
	 * request in flight: when the route's credential changes, the
	 * engine frees the object (slot_free()) and the slot is empty again.
	 * NULL when there is none (no credential yet, or a request of an
	 * older configuration).
	 */
	void **(*route_slot)(struct inj_host *h);
	/* Counts what happened for the route's metrics. */
	void (*count)(struct inj_host *h, enum inj_count what);
};

/* A protocol's operations.  st is the state start() set up. */
struct inj_ops {
	const char *name;	/* routes.[].protocol */
	bool tls_late;		/* TLS starts when the protocol asks
				   (start_tls()), not at accept or connect */
	size_t state_size;	/* bytes of state the engine keeps per session,
				   zeroed before start() */
	/* A session begins, at accept (with TLS at accept, its bytes come
	 * after the handshake).  The protocol arms its first timer and asks
	 * for the caller's side to be read.  Returns 0 or a CG_ERR_* (the
	 * session closes). */
	int (*start)(void *st, struct inj_host *h, const struct inj_host_ops *ops,
	    const struct inj_params *params);
	/* The session is freed: let go of everything, wipe what held secrets. */
	void (*free)(void *st);
	/* New bytes are in input(side). */
	void (*readable)(void *st, enum inj_side side);
	/* output(side) drained to its low watermark. */
	void (*writable)(void *st, enum inj_side side);
	/* A side closed (error: not cleanly). */
	void (*eof)(void *st, enum inj_side side, bool error);
	/* The upstream connection is up, or failed (reason for audit). */
	void (*connected)(void *st, bool ok, const char *reason);
	/* TLS on side is up (start_tls()). */
	void (*tls_done)(void *st, enum inj_side side);
	/* The pipeline allows: go on upstream with cred (borrowed until
	 * done() or the session ends). */
	void (*allowed)(void *st, const struct inj_cred *cred);
	/* The pipeline refuses: answer the caller in the protocol's way. */
	void (*refuse)(void *st, enum inj_refusal why, const char *reason);
	/* The timer armed with arm() fired. */
	void (*timeout)(void *st);
	/* The process drains.  Returns true when the session is between
	 * requests and may close now; else its last response says so. */
	bool (*drain)(void *st);
	/* Frees what the protocol kept in a route slot. */
	void (*slot_free)(void *slot);
	/* How the route's credential is injected, for audit ("basic"...). */
	const char *(*inject_name)(const void *cfg);
	/* Frees what up_data() held (NULL: the protocol keeps none). */
	void (*up_data_free)(void *data);
	/* The code a refusal answers with ("403", "28P01"), for audit. */
	const char *(*refusal_code)(enum inj_refusal why);
	/* The ALPN protocol of its TLS listeners ("http/1.1"). */
	const char *alpn;
	/* What a caller over a connection limit gets before the close: one
	 * whole answer of the protocol (HTTP's 503). */
	const char *busy;
	size_t busy_len;
};

/* The longest tag connect() takes. */
#define INJ_TAG_MAX	128

/* The most request attributes a protocol declares. */
#define INJ_ATTRS_MAX	8

/* Where a protocol's settings rows live: each row's path starts with it. */
#define INJ_ROUTE_PREFIX	"routes.[]."

/*
 * What a protocol declares to the configuration and to policy
 * (routes.[].protocol).  One const instance per protocol, defined in its
 * folder and listed in injector.c; nothing here is changed at run time.
 */
struct inj_proto {
	const char *name;		/* the routes.[].protocol value: "http" */
	const struct inj_ops *ops;	/* its sessions */
	/*
	 * The request attributes the protocol gives policy, in order,
	 * NULL-terminated, at most INJ_ATTRS_MAX: an attribute's id is its
	 * index here, and struct inj_request carries them in this order.
	 * Rules may name any of them (methods and paths name "method" and
	 * "path").
	 */
	const char *const *attrs;
	/*
	 * Its own settings: rows (common/settings.h) whose paths start with
	 * INJ_ROUTE_PREFIX, bound (CG_SCOPE_PROTO) to fields of its
	 * configuration struct, of cfg_size bytes.  Each route of the
	 * protocol holds one, zeroed, that the loader fills, checks and
	 * frees from these rows alone.
	 */
	const struct cg_setting *settings;
	size_t nsettings;
	size_t cfg_size;
};

/* The protocol named name; NULL if credgate has none of that name. */
const struct inj_proto *inj_proto_find(const char *name);

/* Every protocol, NULL-terminated, in the order messages list them. */
extern const struct inj_proto *const inj_protos[];

#endif /* CG_INJECTOR_H */
