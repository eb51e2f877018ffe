/*
 * http.h: the HTTP/1.1 injector's request rewriting and response
 * scrubbing (http_rewrite.c): how the caller's proof is read from a request
 * head, and how the credential goes into the upstream request and is kept
 * out of the response.  Includes nothing from policy/, vault-client/ or
 * proxy/.
 */
#ifndef CG_INJ_HTTP_H
#define CG_INJ_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "injectors/injector.h"

struct evbuffer;

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

/* The protocol "http" (http_proto.c). */
extern const struct inj_proto inj_http_proto;
extern const struct inj_ops inj_http_ops;	/* http_front.c */

/*
 * The request attributes HTTP gives policy; each value is an attribute's
 * id, its index in inj_http_proto.attrs.
 */
enum inj_http_attr {
	INJ_HTTP_ATTR_METHOD = 0,	/* "method": the request method, as sent */
	INJ_HTTP_ATTR_PATH,		/* "path": the normalised path, no query */
	INJ_HTTP_NATTRS,
};

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
 * A secret value shorter than this many bytes is not searched for in
 * response fields: as a substring it would match ordinary text and drop
 * fields at random (and a credential that short can be guessed anyway).
 * The query parameter is removed from URL fields whatever its length.
 */
#define INJ_ECHO_MIN_LEN	4

/*
 * inj_http_write_response() notes what it kept from the caller in a
 * struct inj_echo (injector.h): field names borrowed from resp, or
 * ":reason-phrase" and ":field-name" (a name that holds a secret), static.
 */

/*
 * Writes the response head for the caller: status line (HTTP/1.1), the
 * upstream's fields minus hop-by-hop fields, Content-Length and
 * Transfer-Encoding; then the framing field for framing, and
 * "Connection: close" when close is true.  request_id, if not NULL, is
 * set as X-Request-Id.
 *
 * With cfg and cred (the route's configuration and the credential the
 * request was written with, borrowed for the call), no field goes out that
 * carries the credential back:
 * - for INJ_HTTP_QUERY, every pair named cfg->query_param is removed from
 *   the URL in Location and Content-Location, from each <URI> of Link and
 *   from the URL of Refresh (see inj_http_url_strip());
 * - a field whose value (after that) holds a secret value is left out: for
 *   basic the password, for bearer and query the field, for header each
 *   field the template names; each raw, percent-encoded in any way ('+'
 *   for a space too), or in base64, and for basic the base64 of
 *   user:password.  Values shorter than INJ_ECHO_MIN_LEN are not searched
 *   for.  A reason phrase that holds one is left out too, and so is a
 *   field whose name holds one.
 * The bytes searched for are held in secure memory and wiped before the
 * call returns.  echo, if not NULL, is filled in (zeroed first).  cfg and
 * cred NULL: no field is searched.
 * Returns 0; CG_ERR_FORMAT for a status or request_id that cannot be
 * written; CG_ERR_NOTFOUND when a credential field is missing (nothing
 * could be searched for: nothing is written); or CG_ERR_NOMEM.  Nothing
 * is left in out on error.
 */
int inj_http_write_response(const struct http_head *resp, enum inj_http_framing framing,
    unsigned long long content_length, bool close, const char *request_id,
    const struct inj_http_cfg *cfg, const struct inj_cred *cred,
    struct inj_echo *echo, struct evbuffer *out) CG_WUR;

/*
 * What inj_http_write_response() searches for, made once: the secret
 * values of cfg and cred (borrowed for the call) and their base64, in
 * secure memory, and cfg's query parameter (borrowed: cfg must outlive
 * the set).  A set serves every response written with that credential
 * under cfg.  Returns 0 and *out (free it with inj_http_echo_set_free(),
 * which wipes), CG_ERR_NOTFOUND when a credential field is missing,
 * CG_ERR_FORMAT or CG_ERR_NOMEM.
 */
struct inj_http_echo_set;
int inj_http_echo_set_new(const struct inj_http_cfg *cfg, const struct inj_cred *cred,
    struct inj_http_echo_set **out) CG_WUR;
void inj_http_echo_set_free(struct inj_http_echo_set *set);	/* NULL-safe */

/* inj_http_write_response() with a set made before; NULL searches for
 * nothing. */
int inj_http_write_response_set(const struct http_head *resp,
    enum inj_http_framing framing, unsigned long long content_length, bool close,
    const char *request_id, const struct inj_http_echo_set *set,
    struct inj_echo *echo, struct evbuffer *out) CG_WUR;

/*
 * Removes every pair whose name, percent-decoded, is param from the query
 * of the URI reference u[0..n), which lies between the first '?' and the
 * first '#'.  The other pairs keep their bytes and order, empty pairs go,
 * the '?' goes when nothing is left of the query, and the fragment stays.
 * Returns the number of pairs removed.  When out is not NULL it gets the
 * resulting reference (at most n bytes; u unchanged when none was removed)
 * and *outlen its length.
 */
size_t inj_http_url_strip(const char *u, size_t n, const char *param, char *out,
    size_t *outlen);

/* True for the fields RFC 9110 §7.6.1 treats as hop-by-hop. */
bool inj_http_is_hop_by_hop(const char *name, size_t len);

#endif /* CG_INJ_HTTP_H */
