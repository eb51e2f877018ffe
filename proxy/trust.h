/*
 * trust.h: SPIFFE trust domains at run time: the trust bundles the control
 * thread keeps fresh, and the X.509-SVID verification of the listeners
 * that accept them (routes.[].tls.trust_domains).
 *
 * A bundle (struct trust_bundle) is one trust domain's current set of
 * X.509 authorities, an X509_STORE that is never changed once published: a
 * newer one replaces it whole.  The control thread looks at the bundle
 * file (trust_bundle_check()) and publishes a new store under the
 * bundle's mutex; a worker takes a reference to the store in force under
 * the same mutex (trust_bundle_store()) and verifies against it holding
 * nothing, so that a handshake never waits for a file or a reload.  A
 * bundle is reference-counted: the generation that made it and every TLS
 * context of its listeners hold one, and a context may outlive its
 * generation (a connection keeps its SSL).
 *
 * trust_ctx_install() makes a listener's context verify each client
 * certificate as an X.509-SVID (policy/svid.h): its SPIFFE ID picks the
 * trust domain among the listener's, and its chain is verified against
 * that domain's bundle in force, and no other.  A refusal fails the
 * handshake, and its reason stays on the SSL for the engine's log line and
 * audit event (trust_ssl_refusal()).
 */
#ifndef CG_TRUST_H
#define CG_TRUST_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common.h"
#include "policy/spiffe.h"
#include "proxy/conf.h"

struct trust_bundle;

/*
 * A bundle for td, whose store (td->bundle, loaded with the configuration)
 * it takes a reference to and serves first; the file is looked at from
 * then on as it was read then (td->bundle_st).  now_ms (Unix ms) is when
 * that store was read.  Returns NULL when out of memory or when td has no
 * store (a configuration loaded without files).  One reference, the
 * caller's.
 */
struct trust_bundle *trust_bundle_new(const struct cg_trust_domain *td, int64_t now_ms);
/* Takes one more reference and returns b.  Any thread. */
struct trust_bundle *trust_bundle_ref(struct trust_bundle *b);
/* Drops one; the last frees b and its store.  NULL-safe; any thread. */
void trust_bundle_unref(struct trust_bundle *b);

/* The trust domain's name in the configuration, and the trust domain
 * itself ("prod.example.org"); static for b's life. */
const char *trust_bundle_name(const struct trust_bundle *b);
const char *trust_bundle_domain(const struct trust_bundle *b);

/*
 * A new reference to the store in force (the caller frees it with
 * X509_STORE_free()), taken under b's mutex and nothing else.  Any thread.
 */
X509_STORE *trust_bundle_store(struct trust_bundle *b);

enum trust_check {
	TRUST_UNCHANGED,	/* the file is as last looked at */
	TRUST_RELOADED,		/* it changed; its new bundle is in force */
	TRUST_FAILED,		/* it changed and cannot be read, or is no valid
				   bundle: the last good one stays in force */
};

/*
 * Control thread: looks at b's file (stat: device, inode, size,
 * modification and change times; or why it cannot be looked at) and, when
 * that differs from what it last saw, reads it again.  A valid bundle
 * (svid_bundle_load_file(), in a file others cannot write) is published;
 * otherwise the store in force stays.  Each change is logged once: a
 * reload at info, a failure as a warning (msg=trust_bundle_reload_failed
 * ... detail="the last good bundle stays").  now_ms (Unix ms) is the time
 * of a reload.
 */
enum trust_check trust_bundle_check(struct trust_bundle *b, int64_t now_ms);

/* Control thread: when the store in force was read (Unix ms). */
int64_t trust_bundle_loaded_ms(const struct trust_bundle *b);

/*
 * Makes ctx, a listener's context made by tls_server_ctx_new() with
 * trust_domains, verify client certificates as X.509-SVIDs of bundles[0..n)
 * (each with its trust domain's max_svid_lifetime).  ctx takes a
 * reference to each bundle, dropped when it is freed.  Returns 0, or
 * CG_ERR_NOMEM (ctx is then unchanged: it still refuses every client
 * certificate) with err filled in.
 */
int trust_ctx_install(SSL_CTX *ctx, struct trust_bundle *const *bundles, size_t n,
    char *err, size_t errlen) CG_WUR;

/* Whether ssl's context verifies X.509-SVIDs (trust_ctx_install()). */
bool trust_ssl_verifies(const SSL *ssl);

/*
 * The configuration's name of trust domain td (as an ID carries it) among
 * those ssl's listener accepts; NULL when it accepts none of that name, or
 * no SVID at all.  Static for ssl's life.
 */
const char *trust_ssl_domain(const SSL *ssl, const char *td);

/*
 * Why ssl's handshake refused the client certificate as an X.509-SVID:
 * true with *reason (one line, never key material) and *spiffe_id (the ID
 * the certificate carries when it could be read, else NULL), both valid
 * while ssl is; false when it refused none.
 */
bool trust_ssl_refusal(const SSL *ssl, const char **spiffe_id, const char **reason);

#endif /* CG_TRUST_H */
