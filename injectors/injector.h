/*
 * injector.h: how the credential reaches the upstream, one file per
 * protocol.  An injector reads the caller's identity proof in its protocol
 * and writes the upstream side with a credential it is handed; it never
 * calls the vault or the policy, and includes nothing from policy/,
 * vault-client/ or proxy/.
 */
#ifndef CG_INJECTOR_H
#define CG_INJECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

struct evbuffer;

/*
 * The credential as the injector sees it: named fields, borrowed for the
 * duration of one call.  field() returns a NUL-terminated value and its
 * length, or NULL when the field is absent.
 */
struct inj_cred {
	const char *(*field)(const void *ctx, const char *name, size_t *len);
	const void *ctx;
};

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */
enum inj_http_kind {
	INJ_HTTP_BASIC = 0,	/* Authorization: Basic base64(user:password) */
	INJ_HTTP_BEARER,	/* Authorization: Bearer <field> */
	INJ_HTTP_HEADER,	/* <header>: <template over fields> */
	INJ_HTTP_QUERY,		/* ?<param>=<field, percent-encoded> */
};

struct inj_http_cfg {
	enum inj_http_kind kind;
	char *username_field;	/* basic; default "username" */
	char *password_field;	/* basic; default "password" */
	char *field;		/* bearer, query; default "token" */
	char *header;		/* header: the header name */
	char *value_template;	/* header: text with ${field} references */
	char *query_param;	/* query: the parameter name */
};

/* "basic", "bearer", "header", "query" <-> kind; -1 if unknown. */
int inj_http_kind_parse(const char *s);
const char *inj_http_kind_name(enum inj_http_kind k);

/*
 * Checks a configuration: header is a token and not a hop-by-hop or framing
 * field (Connection, Transfer-Encoding, Content-Length, Host, ...), the
 * template's ${...} references are well formed, query_param is non-empty
 * and needs no encoding.  err gets a one-line reason.
 */
int inj_http_cfg_check(const struct inj_http_cfg *cfg, char *err, size_t errlen) CG_WUR;
void inj_http_cfg_clear(struct inj_http_cfg *cfg);

/*
 * The name of the header the credential goes into ("Authorization" for
 * basic and bearer, cfg->header for header, NULL for query).
 */
const char *inj_http_target_header(const struct inj_http_cfg *cfg);

/*
 * Reads the caller's proof: exactly one Authorization field whose value is
 * "Bearer" (any case), one or more SP, and a token68 value.  Returns 0 and
 * the token span; CG_ERR_NOTFOUND when there is no Authorization field;
 * CG_ERR_FORMAT when there are several, or the scheme or syntax is wrong.
 * *reason gets a static text either way on error.
 */
int inj_http_read_proof(const struct http_head *req, struct http_span *token,
    const char **reason) CG_WUR;

/* How the body that follows the head is framed on the way out. */
enum inj_http_framing {
	INJ_FRAMING_NONE = 0,	/* no body */
	INJ_FRAMING_LENGTH,	/* Content-Length: content_length */
	INJ_FRAMING_CHUNKED,	/* Transfer-Encoding: chunked */
	INJ_FRAMING_CLOSE,	/* responses only: until the connection closes */
};

struct inj_http_req_ctx {
	const char *client_addr;	/* for X-Forwarded-For and Forwarded */
	const char *proto;		/* "http" or "https" */
	const char *request_id;		/* written as X-Request-Id */
	struct http_span host;		/* len > 0: the Host sent in place of the
					   caller's (an absolute-form target's
					   authority) */
	const char *default_host;	/* not NULL: the Host sent when the request
					   has none (HTTP/1.0): the upstream's
					   host:port */
	enum inj_http_framing framing;
	unsigned long long content_length;
};

/*
 * Writes the upstream request head into out:
 * - the request line (HTTP/1.1) in origin-form: the target as it is, or
 *   for a target in absolute-form its path ("/" when empty) and query;
 *   with the query parameter injected for INJ_HTTP_QUERY (a caller's own
 *   parameter of that name is removed);
 * - Host: ctx->host when set, else the caller's Host field where it stands,
 *   else (no Host, or an empty one) ctx->default_host when set;  a Host
 *   written from ctx comes first, and the caller's Host fields are then
 *   not forwarded;
 * - every other field of req except: hop-by-hop fields (Connection,
 *   Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade,
 *   Proxy-Authorization, Proxy-Authenticate, Trailer) and every field the
 *   Connection field names, Content-Length, Expect, Authorization,
 *   X-Request-Id, any field of the injected header's name (any case), and
 *   fields with drop set;
 * - the injected credential, X-Forwarded-For (the caller's list with
 *   client_addr appended), Forwarded (likewise, RFC 7239), X-Request-Id, and
 *   the framing field for ctx->framing.
 * Returns 0, CG_ERR_NOTFOUND if a credential field is missing (reason set),
 * CG_ERR_FORMAT for a request or ctx value that cannot be written (reason
 * set), or CG_ERR_NOMEM.  Nothing is left in out on error.
 */
int inj_http_write_request(const struct http_head *req, const struct inj_http_cfg *cfg,
    const struct inj_cred *cred, const struct inj_http_req_ctx *ctx,
    struct evbuffer *out, const char **reason) CG_WUR;

/*
 * Writes the response head for the caller: status line (HTTP/1.1), the
 * upstream's fields minus hop-by-hop fields, Content-Length and
 * Transfer-Encoding; then the framing field for framing, and
 * "Connection: close" when close is true.  request_id, if not NULL, is
 * set as X-Request-Id.
 */
int inj_http_write_response(const struct http_head *resp, enum inj_http_framing framing,
    unsigned long long content_length, bool close, const char *request_id,
    struct evbuffer *out) CG_WUR;

/* True for the fields RFC 9110 §7.6.1 treats as hop-by-hop. */
bool inj_http_is_hop_by_hop(const char *name, size_t len);

#endif /* CG_INJECTOR_H */
