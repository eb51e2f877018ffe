/*
 * pg_parse.h: the PostgreSQL wire protocol (version 3), apart from I/O.
 *
 * Parsers take bytes and return "need more", "one message" or "error",
 * never touching a socket; writers append one message to an evbuffer.
 * Both sides are here: what a caller sends before it is logged in
 * (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage,
 * PasswordMessage) and what a server answers while it logs credgate in
 * (Authentication*, ErrorResponse, ParameterStatus, BackendKeyData,
 * ReadyForQuery, NegotiateProtocolVersion).  Spans point into the
 * caller's buffer and live as long as it does.
 *
 * Limits are parameters: a startup packet and a message before login are
 * bounded far tighter than PostgreSQL's 1 GiB, since no identity has been
 * verified yet.
 */
#ifndef CG_INJ_PG_PARSE_H
#define CG_INJ_PG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct evbuffer;

/* PostgreSQL's own bound on a startup packet. */
#define INJ_PG_STARTUP_MAX	10000
/* Parameters a startup packet may carry; more is refused. */
#define INJ_PG_PARAMS_MAX	64
/* Longest cancel key (protocol 3.2); 3.0's is 4 bytes. */
#define INJ_PG_KEY_MAX		256

/* The codes of the startup packets that are not a StartupMessage. */
#define INJ_PG_CANCEL_CODE	80877102u	/* 1234.5678 */
#define INJ_PG_SSL_CODE		80877103u	/* 1234.5679 */
#define INJ_PG_GSSENC_CODE	80877104u	/* 1234.5680 */

/* The newest protocol credgate speaks: 3.2. */
#define INJ_PG_MAJOR		3
#define INJ_PG_MINOR_MAX	2

enum inj_pg_parse {
	INJ_PG_ERROR = -1,
	INJ_PG_NEED_MORE = 0,
	INJ_PG_DONE = 1,
};

/* Why input was refused: the SQLSTATE and a short text for the
 * ErrorResponse, both static; never a byte of the input. */
struct inj_pg_error {
	const char *sqlstate;
	const char *reason;
};

struct inj_pg_str {
	const char *p;
	size_t len;
};

enum inj_pg_startup_kind {
	INJ_PG_STARTUP = 0,	/* StartupMessage */
	INJ_PG_SSL_REQUEST,
	INJ_PG_GSSENC_REQUEST,
	INJ_PG_CANCEL_REQUEST,
};

struct inj_pg_param {
	struct inj_pg_str name;		/* not empty */
	struct inj_pg_str value;	/* may be empty */
};

struct inj_pg_startup {
	enum inj_pg_startup_kind kind;
	size_t len;			/* bytes of the packet */
	/* INJ_PG_STARTUP */
	unsigned major, minor;		/* the version asked for */
	struct inj_pg_param params[INJ_PG_PARAMS_MAX];
	size_t nparams;
	/* INJ_PG_CANCEL_REQUEST */
	uint32_t pid;
	struct inj_pg_str key;		/* 4 to INJ_PG_KEY_MAX bytes */
};

/*
 * Parses the first packet of a connection (or the one after an SSL or
 * GSSENC answer): length, code, and for a StartupMessage its parameters.
 * max bounds the packet (at most INJ_PG_STARTUP_MAX is sensible).
 * Returns INJ_PG_DONE with *out filled (out->len bytes taken),
 * INJ_PG_NEED_MORE, or INJ_PG_ERROR with *err:
 *   08P01 a length under 8 or over max, an SSL or GSSENC request that is
 *         not 8 bytes, a cancel key under 4 or over INJ_PG_KEY_MAX bytes,
 *         parameters not each NUL-terminated, no final NUL, an empty
 *         name, more than INJ_PG_PARAMS_MAX, or a name given twice in any
 *         letter case (PostgreSQL would take the last value, so a check
 *         of one value could be bypassed);
 *   0A000 a protocol major version other than 3 (2.0 included);
 *   28000 no "user" parameter.
 * A minor version above INJ_PG_MINOR_MAX is accepted: the caller then
 * answers NegotiateProtocolVersion.
 */
int inj_pg_parse_startup(const char *buf, size_t len, size_t max,
    struct inj_pg_startup *out, struct inj_pg_error *err) CG_WUR;

/* The value of parameter name (exact case) in s; NULL when absent. */
const struct inj_pg_str *inj_pg_startup_param(const struct inj_pg_startup *s,
    const char *name);

/*
 * The caller's startup parameters credgate passes on by default: the
 * client-side settings drivers send, none of which changes who the
 * session is or how the server starts it.  NULL-terminated.
 */
extern const char *const inj_pg_startup_allow_default[];

/*
 * The parameters of the StartupMessage credgate writes upstream, into out
 * (INJ_PG_PARAMS_MAX entries): "user" and "database" as given (database
 * NULL: none is sent, the server takes the user's name), then each of
 * the caller's parameters whose name is in allow (NULL-terminated; any
 * letter case, PostgreSQL's own rule for settings), as the caller wrote
 * it.  Whatever allow says, the caller's user, database, options and
 * replication never pass, nor a "_pq_." protocol option: those are listed
 * in unknown (INJ_PG_PARAMS_MAX entries) for NegotiateProtocolVersion.
 * Spans point into in, user and database.  Returns the number of
 * parameters in out; *nunknown gets the number of options.
 */
size_t inj_pg_startup_upstream(const struct inj_pg_startup *in, const char *const *allow,
    const char *user, const char *database, struct inj_pg_param *out,
    struct inj_pg_str *unknown, size_t *nunknown);

/* One message after the startup packet: a type byte and a length. */
struct inj_pg_msg {
	char type;
	struct inj_pg_str body;		/* the bytes after the length */
	size_t len;			/* bytes of the whole message */
};

/*
 * Parses one message.  max bounds the whole message.  Returns
 * INJ_PG_DONE, INJ_PG_NEED_MORE, or INJ_PG_ERROR (08P01: a length under
 * 4, or over max).
 */
int inj_pg_parse_msg(const char *buf, size_t len, size_t max, struct inj_pg_msg *out,
    struct inj_pg_error *err) CG_WUR;

/*
 * A PasswordMessage ('p'): one string, its NUL the last byte and the only
 * one.  0 and *pw; or CG_ERR_FORMAT with *err (08P01).
 */
int inj_pg_password(const struct inj_pg_msg *m, struct inj_pg_str *pw,
    struct inj_pg_error *err) CG_WUR;

/* The server's Authentication* requests (the code of an 'R' message). */
enum inj_pg_auth_code {
	INJ_PG_AUTH_OK = 0,
	INJ_PG_AUTH_KERBEROS = 2,
	INJ_PG_AUTH_CLEARTEXT = 3,
	INJ_PG_AUTH_MD5 = 5,
	INJ_PG_AUTH_GSS = 7,
	INJ_PG_AUTH_GSS_CONTINUE = 8,
	INJ_PG_AUTH_SSPI = 9,
	INJ_PG_AUTH_SASL = 10,
	INJ_PG_AUTH_SASL_CONTINUE = 11,
	INJ_PG_AUTH_SASL_FINAL = 12,
};

struct inj_pg_auth {
	uint32_t code;			/* enum inj_pg_auth_code, or another */
	unsigned char salt[4];		/* MD5 */
	bool scram_sha256;		/* SASL: the mechanisms offered */
	bool scram_sha256_plus;
	struct inj_pg_str data;		/* SASL continue and final */
};

/*
 * An 'R' message.  0 and *out; CG_ERR_FORMAT with *err (08P01) for a
 * body that does not fit its code (OK and cleartext: no data; MD5: 4
 * bytes of salt; SASL: NUL-terminated names and a final NUL).  A code
 * credgate does not know is returned as it is, for the caller to refuse.
 */
int inj_pg_parse_auth(const struct inj_pg_msg *m, struct inj_pg_auth *out,
    struct inj_pg_error *err) CG_WUR;

/* The fields of an ErrorResponse or NoticeResponse that credgate reads. */
struct inj_pg_notice {
	struct inj_pg_str severity;	/* 'V', else 'S' */
	struct inj_pg_str sqlstate;	/* 'C' */
	struct inj_pg_str message;	/* 'M' */
};

/* An 'E' or 'N' message.  0 and *out (absent fields empty);
 * CG_ERR_FORMAT with *err (08P01) for fields not NUL-terminated. */
int inj_pg_parse_notice(const struct inj_pg_msg *m, struct inj_pg_notice *out,
    struct inj_pg_error *err) CG_WUR;

/* A BackendKeyData ('K'): the process id and a 4- to 256-byte key. */
int inj_pg_parse_key(const struct inj_pg_msg *m, uint32_t *pid, struct inj_pg_str *key,
    struct inj_pg_error *err) CG_WUR;

/* A ParameterStatus ('S'): two strings. */
int inj_pg_parse_param_status(const struct inj_pg_msg *m, struct inj_pg_str *name,
    struct inj_pg_str *value, struct inj_pg_error *err) CG_WUR;

/* ------------------------------------------------------------------ */
/* Writers: each appends one whole message, or nothing (CG_ERR_NOMEM,  */
/* or CG_ERR_FORMAT for a value that cannot be written).               */
/* ------------------------------------------------------------------ */

/* ErrorResponse: severity ("FATAL", "ERROR"), SQLSTATE, message; the
 * message must hold no NUL (it is the caller's static text). */
int inj_pg_write_error(struct evbuffer *out, const char *severity, const char *sqlstate,
    const char *message) CG_WUR;
/* An 'R' message: code, then data (NULL for none). */
int inj_pg_write_auth(struct evbuffer *out, uint32_t code, const void *data,
    size_t len) CG_WUR;
/* NegotiateProtocolVersion: the newest minor credgate speaks, and the
 * _pq_. options it does not know, as the caller named them. */
int inj_pg_write_negotiate(struct evbuffer *out, unsigned minor,
    const struct inj_pg_str *options, size_t noptions) CG_WUR;
/* StartupMessage 3.0 with these parameters (names and values without NUL). */
int inj_pg_write_startup(struct evbuffer *out, const struct inj_pg_param *params,
    size_t nparams) CG_WUR;
/* PasswordMessage (also SASLResponse): the bytes as they are, and a NUL
 * unless sasl. */
int inj_pg_write_password(struct evbuffer *out, const void *pw, size_t len,
    bool sasl) CG_WUR;
/* SASLInitialResponse: the mechanism's name, then the client's first
 * message (its length leads it). */
int inj_pg_write_sasl_initial(struct evbuffer *out, const char *mechanism,
    const void *data, size_t len) CG_WUR;
/* Query: one SQL string (without NUL). */
int inj_pg_write_query(struct evbuffer *out, const char *sql) CG_WUR;
/* SSLRequest, and CancelRequest with a 4- to 256-byte key. */
int inj_pg_write_ssl_request(struct evbuffer *out) CG_WUR;
int inj_pg_write_cancel(struct evbuffer *out, uint32_t pid, const void *key,
    size_t keylen) CG_WUR;
/* BackendKeyData, ParameterStatus, ReadyForQuery (status 'I', 'T', 'E'). */
int inj_pg_write_key(struct evbuffer *out, uint32_t pid, const void *key,
    size_t keylen) CG_WUR;
int inj_pg_write_param_status(struct evbuffer *out, const char *name,
    const char *value) CG_WUR;
int inj_pg_write_ready(struct evbuffer *out, char status) CG_WUR;

#endif /* CG_INJ_PG_PARSE_H */
