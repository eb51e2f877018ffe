/*
 * tls.h: TLS contexts for listeners and upstreams, and the identity a
 * peer's certificate carries.
 *
 * A context is built from one route's settings (struct cg_tls_server or
 * struct cg_tls_client, see proxy/conf.h) when a configuration
 * generation is loaded, and freed with it (SSL_CTX_free).  An SSL_CTX is
 * reference-counted by OpenSSL: SSL objects made from it keep it alive, so
 * a connection opened under an old generation goes on working after a
 * reload has freed that generation's contexts.  Contexts are read-only
 * once built and may be shared by the worker threads.
 *
 * Every function here is safe to call from any thread.  OpenSSL's error
 * queue is per thread; the functions that fail with an err text leave the
 * queue empty.
 */
#ifndef CG_TLS_H
#define CG_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common.h"
#include "policy/spiffe.h"

struct cg_tls_server;
struct cg_tls_client;

/* Bounds on what tls_cert_identity() accepts from a certificate. */
#define TLS_PEER_MAX_SANS	32	/* entries in subjectAltName, all types */
#define TLS_PEER_MAX_VALUE	1024	/* bytes of one SAN value */
#define TLS_PEER_MAX_SUBJECT	4096	/* bytes of the RFC 2253 subject */

/*
 * The defaults used when a setting is NULL.  TLS 1.2 suites are ECDHE with
 * an AEAD only (forward secrecy, no CBC); TLS 1.3 keeps OpenSSL's suites.
 */
#define TLS_DEFAULT_MIN_VERSION	"TLSv1.2"
#define TLS_DEFAULT_CIPHERS	"ECDHE+AESGCM:ECDHE+CHACHA20"
#define TLS_DEFAULT_CURVES	"X25519:P-256:P-384"

/*
 * Who the peer is, according to its certificate.  Every string is owned by
 * the struct, NUL-terminated, and holds printable ASCII only (0x20..0x7e;
 * the subject may also hold UTF-8 from the certificate).  Values are
 * exactly as the certificate has them: no case folding, no trimming.
 */
struct tls_peer {
	bool verified;		/* a certificate was presented and its chain
				   verified against the configured CA; when
				   false every other field is empty */
	char *subject;		/* RFC 2253, "CN=client,O=Example"; NULL if none */
	char **dns;		/* dNSName SANs, ndns entries */
	size_t ndns;
	char **uri;		/* uniformResourceIdentifier SANs */
	size_t nuri;
	char **email;		/* rfc822Name SANs */
	size_t nemail;
	char **ip;		/* iPAddress SANs as text: "127.0.0.1", "2001:db8::1" */
	size_t nip;
	const char *spiffe_id;	/* the one URI SAN starting with "spiffe://"
				   (scheme compared without case) when
				   exactly one does and it is a SPIFFE ID
				   (spiffe_id_parse()); else NULL.  Points
				   into uri[], not separately owned.  Says
				   nothing of who vouches for it: see svid */
	struct spiffe_id *spiffe; /* that ID, parsed; owned; NULL with spiffe_id */
	bool svid;		/* the certificate was accepted as an X.509-SVID
				   of one of the listener's trust domains,
				   verified against that domain's bundle
				   (proxy/trust.h); spiffe is its ID */
	char *trust_domain;	/* with svid: the name of that trust domain
				   in the configuration; owned */
};

/*
 * Builds a listener's context from cfg: TLS 1.2 or later (cfg->min_version,
 * "TLSv1.2" or "TLSv1.3"), cfg->ciphers, cfg->ciphersuites, cfg->curves (a
 * NULL setting takes the TLS_DEFAULT_* above or OpenSSL's own), the
 * certificate chain cfg->cert with the private key cfg->key (which must
 * match it, must not be encrypted and must not be world-accessible), the
 * ALPN protocol "http/1.1" (tls_server_ctx_alpn() names another; a client
 * offering only other protocols goes on without ALPN), and client certificates per cfg->verify_client, verified
 * against cfg->client_ca, which is then required, or, when
 * cfg->trust_domains names trust domains, as X.509-SVIDs: the caller must
 * then install their verification with trust_ctx_install() (proxy/trust.h)
 * before the context serves, and until it does every client certificate
 * fails.  The server's cipher order wins; compression and renegotiation
 * are off.
 *
 * Session resumption: no session tickets (see tls.c); sessions are kept in
 * the context's own cache, which lives and dies with the context.  OpenSSL
 * keeps a session only if its connection ended with close_notify
 * (SSL_shutdown() before the free); a dirty close makes it unresumable.
 * A listener of trust domains resumes nothing: a resumed session would
 * skip the check against a bundle that may have changed since.
 *
 * Returns 0 and a new context in *out (the caller frees it with
 * SSL_CTX_free), or, with *out NULL and err holding one line that names
 * the setting or file and OpenSSL's reason:
 *   CG_ERR_FORMAT    a setting OpenSSL refuses (an unknown cipher, suite,
 *                    group or version), a file that holds no PEM
 *                    certificate or key, an encrypted key;
 *   CG_ERR_NOTFOUND  a file that does not exist;
 *   CG_ERR_IO        a file that cannot be read or is not a regular file;
 *   CG_ERR_PERM      a world-accessible key;
 *   CG_ERR_LIMIT     a key file over 1 MiB;
 *   CG_ERR_VERIFY    a key that does not match the certificate;
 *   CG_ERR_NOMEM, CG_ERR_INTERNAL.
 * Keys are read when this is called: a reload after the privilege drop
 * needs the key readable by credgate's user or group.
 */
int tls_server_ctx_new(const struct cg_tls_server *cfg, SSL_CTX **out,
    char *err, size_t errlen) CG_WUR;
/* The ALPN protocol a listener's context picks ("postgresql"); static. */
void tls_server_ctx_alpn(SSL_CTX *ctx, const char *alpn);

/*
 * Builds an upstream context from cfg: TLS 1.2 or later (cfg->min_version),
 * cfg->ciphers and cfg->ciphersuites, trusted CAs from cfg->ca or, when it
 * is NULL, OpenSSL's default paths (the system store), peer verification
 * on unless cfg->verify is false, and the client certificate cfg->cert
 * with cfg->key when cfg->cert is set (a key without a certificate, or the
 * other way round, is an error).  The host name to verify is set per
 * connection by tls_client_ssl_new().
 *
 * Returns as tls_server_ctx_new().
 */
int tls_client_ctx_new(const struct cg_tls_client *cfg, SSL_CTX **out,
    char *err, size_t errlen) CG_WUR;

/*
 * A new client SSL for one upstream connection, borrowing ctx and cfg.
 * The name to reach is cfg->server_name, else default_host (the route's
 * upstream host); an IPv6 literal may be written in brackets.  For a host
 * name it sets SNI and, when cfg->verify, the name the certificate must
 * carry (no partial wildcards); for an IP literal it sets no SNI and
 * requires that address in an iPAddress SAN.
 *
 * Returns a new SSL (the caller frees it, or hands it to a bufferevent
 * with BEV_OPT_CLOSE_ON_FREE), or NULL on allocation failure, on a name
 * OpenSSL refuses, or when cfg->verify is set and there is no name to
 * verify (verification never silently skips the host name).  The error
 * queue holds OpenSSL's reason, if any.
 */
SSL *tls_client_ssl_new(SSL_CTX *ctx, const struct cg_tls_client *cfg,
    const char *default_host);

/*
 * The identity of the peer of ssl, after its handshake has completed.
 * Clears *out on entry.  When the peer presented a certificate that was
 * verified, fills *out as tls_cert_identity() does and sets verified, and
 * on a listener of trust domains svid and trust_domain;
 * when it presented none, or one that was not verified (an upstream
 * context with verify off), returns 0 with verified false and every other
 * field empty: an unverified certificate says nothing about who the peer
 * is.
 *
 * Returns 0, CG_ERR_AGAIN if the handshake has not completed, or an error
 * from tls_cert_identity(), or CG_ERR_VERIFY when a listener of trust
 * domains verified a certificate whose SPIFFE ID is of none of them (which
 * its verification refuses: a broken invariant); the caller must refuse a
 * peer whose identity fails (fail closed).  *out is cleared on every error.
 */
int tls_peer_identity(SSL *ssl, struct tls_peer *out) CG_WUR;

/*
 * The subject and subjectAltName values of cert (borrowed), whether or
 * not cert was verified: verified is left false.  A pure function of the
 * certificate's bytes, safe on any certificate d2i_X509() accepts.
 * Clears *out on entry.
 *
 * Returns 0, or (with *out cleared):
 *   CG_ERR_LIMIT   more than TLS_PEER_MAX_SANS names, a value over
 *                  TLS_PEER_MAX_VALUE bytes, a subject over
 *                  TLS_PEER_MAX_SUBJECT;
 *   CG_ERR_FORMAT  the extension does not parse or appears twice, a DNS,
 *                  URI or email value that is empty or holds a NUL, a
 *                  control byte or a non-ASCII byte, an iPAddress that
 *                  is not 4 or 16 bytes;
 *   CG_ERR_NOMEM.
 * SAN types other than DNS, URI, email and IP (otherName, directoryName,
 * ...) are counted against the limit and otherwise ignored.
 */
int tls_cert_identity(X509 *cert, struct tls_peer *out) CG_WUR;

/* Frees what *p holds and zeroes it; NULL-safe. */
void tls_peer_clear(struct tls_peer *p);

/*
 * Drains this thread's OpenSSL error queue into buf (len bytes, always
 * NUL-terminated when len > 0) as one line of reasons, oldest first,
 * joined by ": "; "unknown error" when the queue was empty.  Control bytes
 * are replaced.  Returns buf.
 */
const char *tls_error_string(char *buf, size_t len);

/*
 * Why certificate verification of ssl's peer failed ("certificate has
 * expired", "hostname mismatch", ...), or "ok".  Static text; for the log
 * line of a failed handshake.
 */
const char *tls_verify_reason(const SSL *ssl);

#endif /* CG_TLS_H */
