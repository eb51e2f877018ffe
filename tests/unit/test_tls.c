/*
 * test_tls.c: listener and upstream contexts, host name checks, client
 * certificates and the identity read from them, listeners of SPIFFE trust
 * domains (proxy/trust.h: X.509-SVIDs verified against each domain's
 * bundle, bundles re-read when their file changes), with a small PKI made
 * by OpenSSL at test time (two CAs, server, client, expired certificates)
 * and handshakes run in memory over a BIO pair.
 */
#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "policy/svid.h"
#include "proxy/conf.h"
#include "proxy/tls.h"
#include "proxy/trust.h"

#define SPIFFE_ID	"spiffe://example.org/ns/a/sa/b"
#define DAY		(24L * 3600L)

/* ------------------------------------------------------------------ */
/* The test PKI                                                        */
/* ------------------------------------------------------------------ */

static char tdir[256];
static char *tfiles[32];
static size_t ntfiles;

static EVP_PKEY *k_ca, *k_ca2, *k_srv, *k_srv2, *k_exp, *k_cli, *k_cli2, *k_wrong;
static X509 *c_ca, *c_ca2, *c_srv, *c_srv2, *c_exp, *c_cli, *c_cli2;

/* Files in tdir. */
static char *f_ca, *f_ca2, *f_srv, *f_srv_key, *f_srv2, *f_srv2_key;
static char *f_exp, *f_exp_key, *f_cli, *f_cli_key, *f_cli2, *f_cli2_key;
static char *f_wrong_key, *f_world_key, *f_enc_key, *f_empty, *f_empty_key, *f_missing;

static char *xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
xfmt(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		abort();
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void
ossl_check(int ok, const char *what)
{
	if (!ok) {
		ERR_print_errors_fp(stderr);
		fprintf(stderr, "test PKI: %s failed\n", what);
		abort();
	}
}

static EVP_PKEY *
keygen(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	ossl_check(k != NULL, "EVP_EC_gen");
	return k;
}

static void
add_ext(X509 *x, X509V3_CTX *v3, const char *name, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf(NULL, v3, name, value);

	ossl_check(ext != NULL, name);
	ossl_check(X509_add_ext(x, ext, -1), "X509_add_ext");
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for key with subject "O=Example, CN=<cn>" (O only when org
 * is set), valid from `from` to `to` seconds from now, signed by
 * issuer/ikey (self-signed when issuer is NULL).  exts holds name, value
 * pairs, NULL-terminated.
 */
static X509 *
mkcert(EVP_PKEY *key, const char *org, const char *cn, X509 *issuer,
    EVP_PKEY *ikey, long from, long to, const char *const *exts)
{
	static long serial = 1;
	X509_NAME *name;
	X509V3_CTX v3;
	X509 *x;

	ossl_check((x = X509_new()) != NULL, "X509_new");
	ossl_check(X509_set_version(x, X509_VERSION_3), "version");
	ossl_check(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), "serial");
	ossl_check(X509_gmtime_adj(X509_getm_notBefore(x), from) != NULL, "notBefore");
	ossl_check(X509_gmtime_adj(X509_getm_notAfter(x), to) != NULL, "notAfter");
	name = X509_get_subject_name(x);
	if (org != NULL)
		ossl_check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
		    (const unsigned char *)org, -1, -1, 0), "O");
	ossl_check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0), "CN");
	ossl_check(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name), "issuer");
	ossl_check(X509_set_pubkey(x, key), "pubkey");
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	add_ext(x, &v3, "subjectKeyIdentifier", "hash");
	add_ext(x, &v3, "authorityKeyIdentifier", "keyid:always");
	for (; exts != NULL && exts[0] != NULL; exts += 2)
		add_ext(x, &v3, exts[0], exts[1]);
	ossl_check(X509_sign(x, issuer != NULL ? ikey : key, EVP_sha256()) > 0, "sign");
	return x;
}

static char *
tfile(const char *name)
{
	char *p = xfmt("%s/%s", tdir, name);

	assert_true(ntfiles < CG_ARRAY_LEN(tfiles));
	tfiles[ntfiles++] = p;
	return p;
}

/* Writes the certificates (leaf first), NULL-terminated. */
static char *
write_certs(const char *name, X509 *first, ...)
{
	char *p = tfile(name);
	FILE *f = fopen(p, "w");
	va_list ap;
	X509 *x;

	ossl_check(f != NULL, p);
	va_start(ap, first);
	for (x = first; x != NULL; x = va_arg(ap, X509 *))
		ossl_check(PEM_write_X509(f, x), "PEM_write_X509");
	va_end(ap);
	ossl_check(fclose(f) == 0, "fclose");
	return p;
}

static char *
write_key(const char *name, EVP_PKEY *k, mode_t mode, int encrypt)
{
	static const unsigned char pass[] = "passphrase";
	char *p = tfile(name);
	FILE *f = fopen(p, "w");

	ossl_check(f != NULL, p);
	ossl_check(fchmod(fileno(f), mode) == 0, "fchmod");
	if (encrypt)
		ossl_check(PEM_write_PrivateKey(f, k, EVP_aes_128_cbc(), pass,
		    (int)sizeof(pass) - 1, NULL, NULL), "PEM_write_PrivateKey");
	else
		ossl_check(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL),
		    "PEM_write_PrivateKey");
	ossl_check(fclose(f) == 0, "fclose");
	return p;
}

static int
setup(void **state)
{
	static const char *const ca_ext[] = {
		"basicConstraints", "critical,CA:TRUE",
		"keyUsage", "critical,keyCertSign,cRLSign", NULL };
	static const char *const srv_ext[] = {
		"basicConstraints", "CA:FALSE",
		"keyUsage", "critical,digitalSignature",
		"extendedKeyUsage", "serverAuth",
		"subjectAltName", "DNS:localhost,IP:127.0.0.1", NULL };
	static const char *const cli_ext[] = {
		"basicConstraints", "CA:FALSE",
		"keyUsage", "critical,digitalSignature",
		"extendedKeyUsage", "clientAuth",
		"subjectAltName", "DNS:client.example.org,URI:" SPIFFE_ID
		    ",email:client@example.org,IP:10.1.2.3,IP:2001:db8::1", NULL };
	static const char *const both_ext[] = {
		"basicConstraints", "CA:FALSE",
		"extendedKeyUsage", "serverAuth,clientAuth",
		"subjectAltName", "DNS:localhost,IP:127.0.0.1", NULL };
	const char *tmp = getenv("TMPDIR");
	FILE *f;

	(void)state;
	snprintf(tdir, sizeof(tdir), "%s/cg-tls-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(tdir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	k_ca = keygen();
	k_ca2 = keygen();
	k_srv = keygen();
	k_srv2 = keygen();
	k_exp = keygen();
	k_cli = keygen();
	k_cli2 = keygen();
	k_wrong = keygen();
	c_ca = mkcert(k_ca, "Example", "Test CA", NULL, NULL, -DAY, 30 * DAY, ca_ext);
	c_ca2 = mkcert(k_ca2, "Elsewhere", "Other CA", NULL, NULL, -DAY, 30 * DAY, ca_ext);
	c_srv = mkcert(k_srv, NULL, "localhost", c_ca, k_ca, -DAY, 30 * DAY, srv_ext);
	c_srv2 = mkcert(k_srv2, NULL, "localhost", c_ca2, k_ca2, -DAY, 30 * DAY, srv_ext);
	c_exp = mkcert(k_exp, NULL, "localhost", c_ca, k_ca, -30 * DAY, -DAY, both_ext);
	c_cli = mkcert(k_cli, "Example", "client", c_ca, k_ca, -DAY, 30 * DAY, cli_ext);
	c_cli2 = mkcert(k_cli2, "Elsewhere", "client", c_ca2, k_ca2, -DAY, 30 * DAY, cli_ext);

	f_ca = write_certs("ca.pem", c_ca, NULL);
	f_ca2 = write_certs("ca2.pem", c_ca2, NULL);
	f_srv = write_certs("server.pem", c_srv, c_ca, NULL);
	f_srv_key = write_key("server.key", k_srv, 0600, 0);
	f_srv2 = write_certs("server2.pem", c_srv2, NULL);
	f_srv2_key = write_key("server2.key", k_srv2, 0640, 0);
	f_exp = write_certs("expired.pem", c_exp, NULL);
	f_exp_key = write_key("expired.key", k_exp, 0600, 0);
	f_cli = write_certs("client.pem", c_cli, NULL);
	f_cli_key = write_key("client.key", k_cli, 0600, 0);
	f_cli2 = write_certs("client2.pem", c_cli2, NULL);
	f_cli2_key = write_key("client2.key", k_cli2, 0600, 0);
	f_wrong_key = write_key("wrong.key", k_wrong, 0600, 0);
	f_world_key = write_key("world.key", k_srv, 0644, 0);
	f_enc_key = write_key("encrypted.key", k_srv, 0600, 1);
	f_empty = tfile("empty.pem");
	ossl_check((f = fopen(f_empty, "w")) != NULL && fclose(f) == 0, "empty");
	f_empty_key = tfile("empty.key");
	ossl_check((f = fopen(f_empty_key, "w")) != NULL &&
	    fchmod(fileno(f), 0600) == 0 && fclose(f) == 0, "empty key");
	f_missing = tfile("missing.pem");
	return 0;
}

static int
teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ntfiles; i++) {
		(void)unlink(tfiles[i]);
		free(tfiles[i]);
	}
	if (tdir[0] != '\0')
		(void)rmdir(tdir);
	X509_free(c_ca);
	X509_free(c_ca2);
	X509_free(c_srv);
	X509_free(c_srv2);
	X509_free(c_exp);
	X509_free(c_cli);
	X509_free(c_cli2);
	EVP_PKEY_free(k_ca);
	EVP_PKEY_free(k_ca2);
	EVP_PKEY_free(k_srv);
	EVP_PKEY_free(k_srv2);
	EVP_PKEY_free(k_exp);
	EVP_PKEY_free(k_cli);
	EVP_PKEY_free(k_cli2);
	EVP_PKEY_free(k_wrong);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Contexts and in-memory handshakes                                   */
/* ------------------------------------------------------------------ */

static struct cg_tls_server
srv_cfg(char *cert, char *key, enum cg_tls_verify verify)
{
	struct cg_tls_server c = {
		.enabled = true,
		.cert = cert,
		.key = key,
		.client_ca = verify != CG_TLS_VERIFY_NONE ? f_ca : NULL,
		.verify_client = verify,
	};
	return c;
}

static struct cg_tls_client
cli_cfg(char *ca, bool verify)
{
	struct cg_tls_client c = { .enabled = true, .ca = ca, .verify = verify,
	    .verify_name = true };
	return c;
}

static SSL_CTX *
srv_ctx(const struct cg_tls_server *cfg)
{
	SSL_CTX *ctx = NULL;
	char err[512];

	if (tls_server_ctx_new(cfg, &ctx, err, sizeof(err)) != 0)
		fail_msg("server context: %s", err);
	assert_non_null(ctx);
	return ctx;
}

static SSL_CTX *
cli_ctx(const struct cg_tls_client *cfg)
{
	SSL_CTX *ctx = NULL;
	char err[512];

	if (tls_client_ctx_new(cfg, &ctx, err, sizeof(err)) != 0)
		fail_msg("client context: %s", err);
	assert_non_null(ctx);
	return ctx;
}

struct pair {
	SSL *c, *s;
};

enum { HS_OK = 0, HS_CLIENT_FAILED = -1, HS_SERVER_FAILED = -2, HS_STUCK = -3 };

static bool
hs_waiting(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Runs the handshake of client c against a new server SSL from sctx. */
static int
pair_handshake(struct pair *p, SSL_CTX *sctx, SSL *c)
{
	bool cdone = false, sdone = false, cfail = false, sfail = false;
	int i, r, first = HS_OK, after = 0;
	BIO *bc, *bs;

	assert_non_null(c);
	p->c = c;
	assert_non_null(p->s = SSL_new(sctx));
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(p->c, bc, bc);
	SSL_set_bio(p->s, bs, bs);
	SSL_set_connect_state(p->c);
	SSL_set_accept_state(p->s);
	for (i = 0; i < 64 && !(cdone && sdone) && !(cfail && sfail); i++) {
		if (!cdone && !cfail) {
			if ((r = SSL_do_handshake(p->c)) == 1)
				cdone = true;
			else if (!hs_waiting(p->c, r)) {
				cfail = true;
				if (first == HS_OK)
					first = HS_CLIENT_FAILED;
			}
		}
		if (!sdone && !sfail) {
			if ((r = SSL_do_handshake(p->s)) == 1)
				sdone = true;
			else if (!hs_waiting(p->s, r)) {
				sfail = true;
				if (first == HS_OK)
					first = HS_SERVER_FAILED;
			}
		}
		/* Let the other side read the alert, then stop. */
		if (first != HS_OK && ++after > 4)
			break;
	}
	ERR_clear_error();
	if (first != HS_OK)
		return first;	/* the side that refused */
	return cdone && sdone ? HS_OK : HS_STUCK;
}

static void
pair_close(struct pair *p)
{
	SSL_free(p->c);
	SSL_free(p->s);
	p->c = p->s = NULL;
}

/* One handshake of a client made by tls_client_ssl_new(); returns its
 * outcome and, when want_reason is set, checks the client's verify reason. */
static int
try_client(SSL_CTX *sctx, SSL_CTX *cctx, const struct cg_tls_client *ccfg,
    const char *host, const char *want_reason)
{
	struct pair p;
	int r;

	r = pair_handshake(&p, sctx, tls_client_ssl_new(cctx, ccfg, host));
	if (want_reason != NULL && strstr(tls_verify_reason(p.c), want_reason) == NULL)
		fail_msg("verify reason \"%s\", want \"%s\"",
		    tls_verify_reason(p.c), want_reason);
	pair_close(&p);
	return r;
}

/* ------------------------------------------------------------------ */
/* Building contexts                                                   */
/* ------------------------------------------------------------------ */

static void
test_server_ctx_loads(void **state)
{
	struct cg_tls_server cfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_REQUIRED);
	SSL_CTX *ctx;

	(void)state;
	ctx = srv_ctx(&cfg);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_true((SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION) != 0);
	assert_true((SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION) != 0);
	assert_true((SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE) != 0);
	assert_true((SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET) != 0);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx),
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	/* The CA names offered to clients come from client_ca. */
	assert_int_equal(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(ctx)), 1);
	SSL_CTX_free(ctx);

	cfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_NONE);
	cfg.min_version = "TLSv1.3";
	cfg.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
	cfg.ciphersuites = "TLS_AES_256_GCM_SHA384";
	cfg.curves = "P-256";
	ctx = srv_ctx(&cfg);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
	SSL_CTX_free(ctx);

	/* A group-readable key is fine (Debian's ssl-cert group). */
	cfg = srv_cfg(f_srv2, f_srv2_key, CG_TLS_VERIFY_OPTIONAL);
	ctx = srv_ctx(&cfg);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
	SSL_CTX_free(ctx);
}

struct refusal {
	const char *what;
	struct cg_tls_server cfg;
	int code;
	const char *want[2];	/* fragments err must hold */
};

static void
test_server_ctx_refusals(void **state)
{
	const struct refusal cases[] = {
		{ "mismatched key", { .cert = f_srv, .key = f_wrong_key },
		  CG_ERR_VERIFY, { "does not match the certificate", "wrong.key" } },
		{ "key of another certificate", { .cert = f_srv2, .key = f_srv_key },
		  CG_ERR_VERIFY, { "server.key does not match", "server2.pem" } },
		{ "bad cipher list", { .cert = f_srv, .key = f_srv_key, .ciphers = "NOPE-CIPHER" },
		  CG_ERR_FORMAT, { "tls.ciphers \"NOPE-CIPHER\"", "no cipher match" } },
		{ "bad ciphersuites", { .cert = f_srv, .key = f_srv_key, .ciphersuites = "TLS_NOPE" },
		  CG_ERR_FORMAT, { "tls.ciphersuites \"TLS_NOPE\"", NULL } },
		{ "one bad suite", { .cert = f_srv, .key = f_srv_key,
		    .ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_129_GCM_SHA256" },
		  CG_ERR_FORMAT, { "unknown suite \"TLS_AES_129_GCM_SHA256\"", NULL } },
		{ "no suite for TLS 1.3 only", { .cert = f_srv, .key = f_srv_key,
		    .min_version = "TLSv1.3", .ciphersuites = "" },
		  CG_ERR_FORMAT, { "tls.ciphersuites: empty", NULL } },
		{ "bad curves", { .cert = f_srv, .key = f_srv_key, .curves = "X25519:P-999" },
		  CG_ERR_FORMAT, { "tls.curves", NULL } },
		{ "TLS 1.1", { .cert = f_srv, .key = f_srv_key, .min_version = "TLSv1.1" },
		  CG_ERR_FORMAT, { "tls.min_version \"TLSv1.1\"", "not TLSv1.2 or TLSv1.3" } },
		{ "no key", { .cert = f_srv }, CG_ERR_FORMAT, { "cert and key", NULL } },
		{ "missing cert", { .cert = f_missing, .key = f_srv_key },
		  CG_ERR_NOTFOUND, { "tls.cert", "missing.pem: No such file" } },
		{ "missing key", { .cert = f_srv, .key = f_missing },
		  CG_ERR_NOTFOUND, { "tls.key", "missing.pem: No such file" } },
		{ "cert not PEM", { .cert = f_empty, .key = f_srv_key },
		  CG_ERR_FORMAT, { "tls.cert", "empty.pem" } },
		{ "key not PEM", { .cert = f_srv, .key = f_empty_key },
		  CG_ERR_FORMAT, { "tls.key", "empty.key: no PEM private key" } },
		{ "directory as cert", { .cert = tdir, .key = f_srv_key },
		  CG_ERR_IO, { "not a regular file", NULL } },
		{ "world-readable key", { .cert = f_srv, .key = f_world_key },
		  CG_ERR_PERM, { "world.key: mode 0644 is world-accessible", NULL } },
		{ "encrypted key", { .cert = f_srv, .key = f_enc_key },
		  CG_ERR_FORMAT, { "encrypted.key: the key is encrypted", NULL } },
		{ "client verify without CA", { .cert = f_srv, .key = f_srv_key,
		    .verify_client = CG_TLS_VERIFY_REQUIRED },
		  CG_ERR_FORMAT, { "tls.client_ca: required", NULL } },
		{ "client CA missing", { .cert = f_srv, .key = f_srv_key,
		    .verify_client = CG_TLS_VERIFY_OPTIONAL, .client_ca = f_missing },
		  CG_ERR_NOTFOUND, { "tls.client_ca", "missing.pem" } },
		{ "client CA empty", { .cert = f_srv, .key = f_srv_key,
		    .verify_client = CG_TLS_VERIFY_OPTIONAL, .client_ca = f_empty },
		  CG_ERR_FORMAT, { "tls.client_ca", "empty.pem" } },
	};
	SSL_CTX *ctx;
	char err[512];
	size_t i, k;
	int r;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		ctx = (SSL_CTX *)&ctx;	/* must be cleared */
		memset(err, 'x', sizeof(err));
		r = tls_server_ctx_new(&cases[i].cfg, &ctx, err, sizeof(err));
		if (r != cases[i].code)
			fail_msg("%s: got %d (%s), want %d", cases[i].what, r,
			    r == 0 ? "" : err, cases[i].code);
		assert_null(ctx);
		assert_non_null(memchr(err, '\0', sizeof(err)));
		for (k = 0; k < 2 && cases[i].want[k] != NULL; k++)
			if (strstr(err, cases[i].want[k]) == NULL)
				fail_msg("%s: err \"%s\" lacks \"%s\"", cases[i].what,
				    err, cases[i].want[k]);
		/* Nothing left behind for the next caller's message. */
		assert_int_equal(ERR_peek_error(), 0);
	}
}

static void
test_client_ctx(void **state)
{
	struct cg_tls_client cfg = cli_cfg(f_ca, true);
	const struct {
		const char *what;
		struct cg_tls_client cfg;
		int code;
		const char *want;
	} bad[] = {
		{ "cert without key", { .verify = true, .cert = f_cli }, CG_ERR_FORMAT, "key is missing" },
		{ "key without cert", { .verify = true, .key = f_cli_key }, CG_ERR_FORMAT, "cert is missing" },
		{ "mismatched key", { .verify = true, .cert = f_cli, .key = f_cli2_key },
		  CG_ERR_VERIFY, "does not match" },
		{ "missing CA", { .verify = true, .ca = f_missing }, CG_ERR_NOTFOUND, "upstream.tls.ca" },
		{ "empty CA", { .verify = true, .ca = f_empty }, CG_ERR_FORMAT, "upstream.tls.ca" },
		{ "bad ciphers", { .verify = true, .ciphers = "NOPE" }, CG_ERR_FORMAT,
		  "upstream.tls.ciphers \"NOPE\"" },
		{ "bad version", { .verify = true, .min_version = "SSLv3" }, CG_ERR_FORMAT,
		  "upstream.tls.min_version" },
	};
	SSL_CTX *ctx;
	char err[512];
	size_t i;
	int r;

	(void)state;
	ctx = cli_ctx(&cfg);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	SSL_CTX_free(ctx);

	/* No CA: the system store. */
	cfg = cli_cfg(NULL, true);
	ctx = cli_ctx(&cfg);
	SSL_CTX_free(ctx);

	cfg = cli_cfg(f_ca, false);
	cfg.cert = f_cli;
	cfg.key = f_cli_key;
	cfg.min_version = "TLSv1.3";
	ctx = cli_ctx(&cfg);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
	assert_non_null(SSL_CTX_get0_certificate(ctx));
	SSL_CTX_free(ctx);

	for (i = 0; i < CG_ARRAY_LEN(bad); i++) {
		ctx = (SSL_CTX *)&ctx;
		r = tls_client_ctx_new(&bad[i].cfg, &ctx, err, sizeof(err));
		if (r != bad[i].code || strstr(err, bad[i].want) == NULL)
			fail_msg("%s: got %d \"%s\", want %d \"%s\"", bad[i].what,
			    r, err, bad[i].code, bad[i].want);
		assert_null(ctx);
	}
}

/* ------------------------------------------------------------------ */
/* Handshakes: the server's certificate                                */
/* ------------------------------------------------------------------ */

static void
test_verify_server(void **state)
{
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_NONE);
	struct cg_tls_server ocfg = srv_cfg(f_srv2, f_srv2_key, CG_TLS_VERIFY_NONE);
	struct cg_tls_server ecfg = srv_cfg(f_exp, f_exp_key, CG_TLS_VERIFY_NONE);
	struct cg_tls_client good = cli_cfg(f_ca, true);
	struct cg_tls_client wrong_ca = cli_cfg(f_ca2, true);
	struct cg_tls_client named = cli_cfg(f_ca, true);
	struct cg_tls_client noverify = cli_cfg(f_ca, false);
	SSL_CTX *sctx = srv_ctx(&scfg), *octx = srv_ctx(&ocfg), *ectx = srv_ctx(&ecfg);
	SSL_CTX *cgood = cli_ctx(&good), *cwrong = cli_ctx(&wrong_ca);
	SSL_CTX *cnoverify = cli_ctx(&noverify);

	(void)state;
	/* The right CA and name. */
	assert_int_equal(try_client(sctx, cgood, &good, "localhost", "ok"), HS_OK);
	/* The wrong CA. */
	assert_int_equal(try_client(sctx, cwrong, &wrong_ca, "localhost",
	    "self-signed certificate in certificate chain"), HS_CLIENT_FAILED);
	/* A server whose certificate another CA signed. */
	assert_int_equal(try_client(octx, cgood, &good, "localhost",
	    "unable to get local issuer certificate"), HS_CLIENT_FAILED);
	/* The wrong name. */
	assert_int_equal(try_client(sctx, cgood, &good, "db.example.org",
	    "hostname mismatch"), HS_CLIENT_FAILED);
	assert_int_equal(try_client(sctx, cgood, &good, "localhost.", NULL), HS_OK);
	assert_int_equal(try_client(sctx, cgood, &good, "xlocalhost", NULL),
	    HS_CLIENT_FAILED);
	/* server_name overrides the upstream host. */
	named.server_name = "localhost";
	assert_int_equal(try_client(sctx, cgood, &named, "db.example.org", NULL), HS_OK);
	named.server_name = "db.example.org";
	assert_int_equal(try_client(sctx, cgood, &named, "localhost",
	    "hostname mismatch"), HS_CLIENT_FAILED);
	/* verify_name = false (verify-ca): any name, but still the CA. */
	named.server_name = "db.example.org";
	named.verify_name = false;
	assert_int_equal(try_client(sctx, cgood, &named, "localhost", "ok"), HS_OK);
	assert_int_equal(try_client(octx, cgood, &named, "localhost",
	    "unable to get local issuer certificate"), HS_CLIENT_FAILED);
	/* An expired certificate. */
	assert_int_equal(try_client(ectx, cgood, &good, "localhost",
	    "certificate has expired"), HS_CLIENT_FAILED);
	/* verify = false reaches the server of the other CA, and the expired one. */
	assert_int_equal(try_client(octx, cnoverify, &noverify, "localhost", NULL), HS_OK);
	assert_int_equal(try_client(ectx, cnoverify, &noverify, "elsewhere", NULL), HS_OK);
	/* With verify on and no name at all there is nothing to check: refused. */
	assert_null(tls_client_ssl_new(cgood, &good, NULL));
	assert_null(tls_client_ssl_new(cgood, &good, ""));

	SSL_CTX_free(sctx);
	SSL_CTX_free(octx);
	SSL_CTX_free(ectx);
	SSL_CTX_free(cgood);
	SSL_CTX_free(cwrong);
	SSL_CTX_free(cnoverify);
}

/* SNI for names only; IP literals are checked against iPAddress SANs. */
static void
test_sni_and_ip(void **state)
{
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_NONE);
	struct cg_tls_client good = cli_cfg(f_ca, true);
	SSL_CTX *sctx = srv_ctx(&scfg), *cctx = cli_ctx(&good);
	struct tls_peer peer;
	struct pair p;

	(void)state;
	assert_int_equal(pair_handshake(&p, sctx, tls_client_ssl_new(cctx, &good,
	    "localhost")), HS_OK);
	assert_string_equal(SSL_get_servername(p.s, TLSEXT_NAMETYPE_host_name),
	    "localhost");
	/* The client's view of the server. */
	assert_int_equal(tls_peer_identity(p.c, &peer), 0);
	assert_true(peer.verified);
	assert_string_equal(peer.subject, "CN=localhost");
	assert_int_equal(peer.ndns, 1);
	assert_string_equal(peer.dns[0], "localhost");
	assert_int_equal(peer.nip, 1);
	assert_string_equal(peer.ip[0], "127.0.0.1");
	assert_null(peer.spiffe_id);
	tls_peer_clear(&peer);
	pair_close(&p);

	assert_int_equal(pair_handshake(&p, sctx, tls_client_ssl_new(cctx, &good,
	    "127.0.0.1")), HS_OK);
	assert_null(SSL_get_servername(p.s, TLSEXT_NAMETYPE_host_name));
	pair_close(&p);

	assert_int_equal(try_client(sctx, cctx, &good, "127.0.0.2",
	    "IP address mismatch"), HS_CLIENT_FAILED);
	/* No IPv6 SAN on this certificate; brackets are taken off. */
	assert_int_equal(try_client(sctx, cctx, &good, "[::1]",
	    "IP address mismatch"), HS_CLIENT_FAILED);

	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void
test_alpn(void **state)
{
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_NONE);
	struct cg_tls_client good = cli_cfg(f_ca, true);
	SSL_CTX *sctx = srv_ctx(&scfg), *cctx = cli_ctx(&good);
	static const unsigned char offer[] = "\x02h2\x08http/1.1";
	static const unsigned char h2only[] = "\x02h2";
	const unsigned char *sel;
	unsigned int len;
	struct pair p;
	SSL *c;

	(void)state;
	c = tls_client_ssl_new(cctx, &good, "localhost");
	assert_int_equal(SSL_set_alpn_protos(c, offer, sizeof(offer) - 1), 0);
	assert_int_equal(pair_handshake(&p, sctx, c), HS_OK);
	SSL_get0_alpn_selected(p.c, &sel, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(sel, "http/1.1", 8);
	pair_close(&p);

	c = tls_client_ssl_new(cctx, &good, "localhost");
	assert_int_equal(SSL_set_alpn_protos(c, h2only, sizeof(h2only) - 1), 0);
	assert_int_equal(pair_handshake(&p, sctx, c), HS_OK);
	SSL_get0_alpn_selected(p.c, &sel, &len);
	assert_int_equal(len, 0);
	pair_close(&p);

	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* A client limited to versions below the listener's minimum fails. */
static void
test_min_version(void **state)
{
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_NONE);
	struct cg_tls_client good = cli_cfg(f_ca, true);
	SSL_CTX *sctx = srv_ctx(&scfg), *s13ctx, *old, *old_srv, *c12;
	struct pair p;
	int r;

	(void)state;
	/* A TLS 1.1-only client, with what it needs to speak 1.1 at all. */
	assert_non_null(old = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_security_level(old, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(old, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_cipher_list(old, "DEFAULT:@SECLEVEL=0"), 1);
	SSL_CTX_set_verify(old, SSL_VERIFY_NONE, NULL);

	/* Control: a server that allows TLS 1.1 talks to it. */
	assert_non_null(old_srv = SSL_CTX_new(TLS_server_method()));
	SSL_CTX_set_security_level(old_srv, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(old_srv, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_cipher_list(old_srv, "DEFAULT:@SECLEVEL=0"), 1);
	assert_int_equal(SSL_CTX_use_certificate(old_srv, c_srv), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(old_srv, k_srv), 1);
	r = pair_handshake(&p, old_srv, SSL_new(old));
	if (r == HS_OK)
		assert_int_equal(SSL_version(p.c), TLS1_1_VERSION);
	else
		print_message("this libssl cannot speak TLS 1.1 at all; control skipped\n");
	pair_close(&p);

	/* Ours refuses it. */
	assert_int_equal(pair_handshake(&p, sctx, SSL_new(old)), HS_SERVER_FAILED);
	pair_close(&p);

	/* min_version TLSv1.3 against a client that stops at 1.2. */
	scfg.min_version = "TLSv1.3";
	s13ctx = srv_ctx(&scfg);
	c12 = cli_ctx(&good);
	assert_int_equal(SSL_CTX_set_max_proto_version(c12, TLS1_2_VERSION), 1);
	assert_int_equal(try_client(sctx, c12, &good, "localhost", NULL), HS_OK);
	assert_int_not_equal(try_client(s13ctx, c12, &good, "localhost", NULL), HS_OK);

	SSL_CTX_free(sctx);
	SSL_CTX_free(s13ctx);
	SSL_CTX_free(old);
	SSL_CTX_free(old_srv);
	SSL_CTX_free(c12);
}

/* ------------------------------------------------------------------ */
/* Handshakes: client certificates and the identity they carry         */
/* ------------------------------------------------------------------ */

static void
check_client_identity(const struct tls_peer *peer)
{
	assert_true(peer->verified);
	assert_string_equal(peer->subject, "CN=client,O=Example");
	assert_int_equal(peer->ndns, 1);
	assert_string_equal(peer->dns[0], "client.example.org");
	assert_int_equal(peer->nuri, 1);
	assert_string_equal(peer->uri[0], SPIFFE_ID);
	assert_int_equal(peer->nemail, 1);
	assert_string_equal(peer->email[0], "client@example.org");
	assert_int_equal(peer->nip, 2);
	assert_string_equal(peer->ip[0], "10.1.2.3");
	assert_string_equal(peer->ip[1], "2001:db8::1");
	assert_non_null(peer->spiffe_id);
	assert_ptr_equal(peer->spiffe_id, peer->uri[0]);
	assert_string_equal(peer->spiffe->trust_domain, "example.org");
	assert_string_equal(peer->spiffe->path, "/ns/a/sa/b");
	assert_false(peer->svid);
}

/* Handshake of a client holding cert/key (or none) against a listener with
 * verify_client = verify; returns the outcome, the server's view in *peer. */
static int
mtls(enum cg_tls_verify verify, char *cert, char *key, char *min_version,
    struct tls_peer *peer)
{
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, verify);
	struct cg_tls_client ccfg = cli_cfg(f_ca, true);
	SSL_CTX *sctx, *cctx;
	struct pair p;
	int r;

	ccfg.cert = cert;
	ccfg.key = key;
	ccfg.min_version = min_version;
	scfg.min_version = ccfg.min_version;
	sctx = srv_ctx(&scfg);
	cctx = cli_ctx(&ccfg);
	r = pair_handshake(&p, sctx, tls_client_ssl_new(cctx, &ccfg, "localhost"));
	memset(peer, 0, sizeof(*peer));
	if (r == HS_OK)
		assert_int_equal(tls_peer_identity(p.s, peer), 0);
	pair_close(&p);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return r;
}

static void
test_client_certs(void **state)
{
	static char *const versions[] = { "TLSv1.2", "TLSv1.3" };
	struct tls_peer peer;
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(versions); i++) {
		char *v = versions[i];

		/* Required, none sent: the server refuses. */
		assert_int_equal(mtls(CG_TLS_VERIFY_REQUIRED, NULL, NULL, v, &peer),
		    HS_SERVER_FAILED);
		/* Optional, none sent: fine, and nobody is verified. */
		assert_int_equal(mtls(CG_TLS_VERIFY_OPTIONAL, NULL, NULL, v, &peer), HS_OK);
		assert_false(peer.verified);
		assert_null(peer.subject);
		assert_int_equal(peer.ndns + peer.nuri + peer.nemail + peer.nip, 0);
		/* Required and sent: every SAN value, exactly. */
		assert_int_equal(mtls(CG_TLS_VERIFY_REQUIRED, f_cli, f_cli_key, v, &peer),
		    HS_OK);
		check_client_identity(&peer);
		tls_peer_clear(&peer);
		assert_int_equal(mtls(CG_TLS_VERIFY_OPTIONAL, f_cli, f_cli_key, v, &peer),
		    HS_OK);
		check_client_identity(&peer);
		tls_peer_clear(&peer);
		/* Sent but from another CA, or expired: refused even when optional. */
		assert_int_equal(mtls(CG_TLS_VERIFY_OPTIONAL, f_cli2, f_cli2_key, v, &peer),
		    HS_SERVER_FAILED);
		assert_int_equal(mtls(CG_TLS_VERIFY_REQUIRED, f_exp, f_exp_key, v, &peer),
		    HS_SERVER_FAILED);
		/* Not asked for: the certificate is not sent, nobody is verified. */
		assert_int_equal(mtls(CG_TLS_VERIFY_NONE, f_cli, f_cli_key, v, &peer), HS_OK);
		assert_false(peer.verified);
	}
}

/* A resumed session keeps the verified client identity (the session ID
 * context is set), under TLS 1.2 session IDs and TLS 1.3 tickets. */
static void
test_resumption(void **state)
{
	static char *const versions[] = { "TLSv1.2", "TLSv1.3" };
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_REQUIRED);
	struct cg_tls_client ccfg = cli_cfg(f_ca, true);
	SSL_CTX *sctx, *cctx;
	struct tls_peer peer;
	SSL_SESSION *sess;
	struct pair p;
	unsigned char b;
	size_t i;
	SSL *c;

	(void)state;
	ccfg.cert = f_cli;
	ccfg.key = f_cli_key;
	sctx = srv_ctx(&scfg);
	for (i = 0; i < CG_ARRAY_LEN(versions); i++) {
		ccfg.min_version = versions[i];
		cctx = cli_ctx(&ccfg);
		assert_int_equal(SSL_CTX_set_max_proto_version(cctx,
		    i == 0 ? TLS1_2_VERSION : TLS1_3_VERSION), 1);
		assert_int_equal(pair_handshake(&p, sctx,
		    tls_client_ssl_new(cctx, &ccfg, "localhost")), HS_OK);
		/* TLS 1.3 tickets arrive after the handshake. */
		assert_true(SSL_read(p.c, &b, 1) <= 0);
		ERR_clear_error();
		assert_non_null(sess = SSL_get1_session(p.c));
		assert_true(SSL_SESSION_is_resumable(sess));
		/* A session ended without close_notify is dropped from the cache. */
		assert_true(SSL_shutdown(p.c) >= 0);
		assert_true(SSL_shutdown(p.s) >= 0);
		pair_close(&p);

		c = tls_client_ssl_new(cctx, &ccfg, "localhost");
		assert_int_equal(SSL_set_session(c, sess), 1);
		assert_int_equal(pair_handshake(&p, sctx, c), HS_OK);
		if (!SSL_session_reused(p.s))
			fail_msg("%s: not resumed (client says %d)", versions[i],
			    SSL_session_reused(p.c));
		assert_int_equal(tls_peer_identity(p.s, &peer), 0);
		check_client_identity(&peer);
		tls_peer_clear(&peer);
		pair_close(&p);
		SSL_SESSION_free(sess);
		SSL_CTX_free(cctx);
	}
	SSL_CTX_free(sctx);
}

/* ------------------------------------------------------------------ */
/* Listeners of trust domains: X.509-SVIDs                              */
/* ------------------------------------------------------------------ */

/* A trust domain as the configuration loads it, its bundle read from file. */
static struct trust_bundle *
bundle_of(const char *name, const char *domain, char *file, int64_t max_lifetime_s)
{
	struct cg_trust_domain td = {
		.name = xfmt("%s", name), .trust_domain = xfmt("%s", domain),
		.x509_bundle_file = file, .max_svid_lifetime_s = max_lifetime_s,
	};
	struct trust_bundle *b;
	char err[512];

	if (svid_bundle_load_file(file, &td.bundle, &td.bundle_certs, &td.bundle_st, err,
	    sizeof(err)) != 0)
		fail_msg("bundle %s: %s", file, err);
	b = trust_bundle_new(&td, 1000);
	assert_non_null(b);
	X509_STORE_free(td.bundle);	/* the bundle holds its own reference */
	free(td.name);
	free(td.trust_domain);
	return b;
}

/* A listener of the trust domains named, with their bundles. */
static SSL_CTX *
svid_ctx(enum cg_tls_verify verify, struct trust_bundle **bundles, size_t n)
{
	char *names[4];
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, verify);
	SSL_CTX *sctx;
	char err[256];
	size_t i;

	for (i = 0; i < n; i++)
		names[i] = xfmt("%s", trust_bundle_name(bundles[i]));
	scfg.client_ca = NULL;
	scfg.trust_domains = names;
	scfg.ntrust_domains = n;
	sctx = srv_ctx(&scfg);
	if (trust_ctx_install(sctx, bundles, n, err, sizeof(err)) != 0)
		fail_msg("trust_ctx_install: %s", err);
	for (i = 0; i < n; i++)
		free(names[i]);
	return sctx;
}

/*
 * One handshake of a client holding cert/key (or none) against sctx; the
 * server's view in *peer (with HS_OK), or why it refused in why (else "").
 */
static int
svid_try(SSL_CTX *sctx, char *cert, char *key, char *version, struct tls_peer *peer,
    char *why, size_t whylen, char *id, size_t idlen)
{
	struct cg_tls_client ccfg = cli_cfg(f_ca, true);
	const char *rid, *rwhy;
	SSL_CTX *cctx;
	struct pair p;
	int r;

	ccfg.cert = cert;
	ccfg.key = key;
	ccfg.min_version = version;
	cctx = cli_ctx(&ccfg);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, strcmp(version, "TLSv1.2") == 0 ?
	    TLS1_2_VERSION : TLS1_3_VERSION), 1);
	r = pair_handshake(&p, sctx, tls_client_ssl_new(cctx, &ccfg, "localhost"));
	memset(peer, 0, sizeof(*peer));
	if (r == HS_OK)
		assert_int_equal(tls_peer_identity(p.s, peer), 0);
	snprintf(why, whylen, "%s", "");
	snprintf(id, idlen, "%s", "");
	if (trust_ssl_refusal(p.s, &rid, &rwhy)) {
		assert_int_not_equal(r, HS_OK);
		snprintf(why, whylen, "%s", rwhy);
		snprintf(id, idlen, "%s", rid != NULL ? rid : "(none)");
	}
	pair_close(&p);
	SSL_CTX_free(cctx);
	return r;
}

static void
write_file_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* The whole file, NUL-terminated (malloc'd). */
static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	assert_true(n > 0 && n < 65535);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void
test_svid_listener(void **state)
{
	static const char *const other_ext[] = {
		"basicConstraints", "CA:FALSE",
		"keyUsage", "critical,digitalSignature",
		"subjectAltName", "URI:spiffe://other.org/ns/a/sa/b", NULL };
	static const char *const two_uris_ext[] = {
		"basicConstraints", "CA:FALSE",
		"keyUsage", "critical,digitalSignature",
		"subjectAltName", "URI:" SPIFFE_ID ",URI:https://example.org/", NULL };
	static char *const versions[] = { "TLSv1.2", "TLSv1.3" };
	EVP_PKEY *k_other = keygen(), *k_two = keygen();
	X509 *c_other = mkcert(k_other, NULL, "other", c_ca2, k_ca2, -DAY, 30 * DAY, other_ext);
	X509 *c_two = mkcert(k_two, NULL, "two", c_ca, k_ca, -DAY, 30 * DAY, two_uris_ext);
	char *f_other = write_certs("other.pem", c_other, NULL);
	char *f_other_key = write_key("other.key", k_other, 0600, 0);
	char *f_two = write_certs("two.pem", c_two, NULL);
	char *f_two_key = write_key("two.key", k_two, 0600, 0);
	struct trust_bundle *ex = bundle_of("ex", "example.org", f_ca, 0);
	struct trust_bundle *other = bundle_of("oth", "other.org", f_ca2, 0);
	struct trust_bundle *short_lived = bundle_of("ex", "example.org", f_ca, 3600);
	struct trust_bundle *both[2] = { ex, other };
	SSL_CTX *sctx, *sboth, *sshort;
	char why[400], id[256];
	struct tls_peer peer;
	size_t i;

	(void)state;
	sctx = svid_ctx(CG_TLS_VERIFY_OPTIONAL, &ex, 1);
	sboth = svid_ctx(CG_TLS_VERIFY_REQUIRED, both, 2);
	sshort = svid_ctx(CG_TLS_VERIFY_REQUIRED, &short_lived, 1);
	/* Nothing to resume: a session would skip the bundle in force. */
	assert_int_equal(SSL_CTX_get_session_cache_mode(sctx), SSL_SESS_CACHE_OFF);
	assert_int_equal(SSL_CTX_get_num_tickets(sctx), 0);
	for (i = 0; i < CG_ARRAY_LEN(versions); i++) {
		char *v = versions[i];

		/* An SVID of the trust domain, against its bundle. */
		assert_int_equal(svid_try(sctx, f_cli, f_cli_key, v, &peer, why, sizeof(why),
		    id, sizeof(id)), HS_OK);
		assert_true(peer.verified);
		assert_true(peer.svid);
		assert_string_equal(peer.trust_domain, "ex");
		assert_string_equal(peer.spiffe_id, SPIFFE_ID);
		assert_string_equal(peer.spiffe->trust_domain, "example.org");
		assert_string_equal(peer.spiffe->path, "/ns/a/sa/b");
		tls_peer_clear(&peer);

		/* No certificate, optional: nobody, as with client_ca. */
		assert_int_equal(svid_try(sctx, NULL, NULL, v, &peer, why, sizeof(why), id,
		    sizeof(id)), HS_OK);
		assert_false(peer.verified);
		assert_false(peer.svid);

		/* The same ID from another authority: refused even when optional. */
		assert_int_equal(svid_try(sctx, f_cli2, f_cli2_key, v, &peer, why, sizeof(why),
		    id, sizeof(id)), HS_SERVER_FAILED);
		assert_string_equal(id, SPIFFE_ID);
		assert_non_null(strstr(why, "certificate chain"));

		/* A trust domain this listener does not accept. */
		assert_int_equal(svid_try(sctx, f_other, f_other_key, v, &peer, why,
		    sizeof(why), id, sizeof(id)), HS_SERVER_FAILED);
		assert_string_equal(id, "spiffe://other.org/ns/a/sa/b");
		assert_string_equal(why, "trust domain \"other.org\" is not one this listener "
		    "accepts");

		/* Two URI names: no SVID, and no ID to name. */
		assert_int_equal(svid_try(sctx, f_two, f_two_key, v, &peer, why, sizeof(why),
		    id, sizeof(id)), HS_SERVER_FAILED);
		assert_string_equal(id, "(none)");
		assert_non_null(strstr(why, "2 URI subjectAltNames"));

		/* Expired, against its own bundle. */
		assert_int_equal(svid_try(sctx, f_exp, f_exp_key, v, &peer, why, sizeof(why),
		    id, sizeof(id)), HS_SERVER_FAILED);

		/* Two trust domains: each ID against its own domain's bundle. */
		assert_int_equal(svid_try(sboth, f_other, f_other_key, v, &peer, why,
		    sizeof(why), id, sizeof(id)), HS_OK);
		assert_string_equal(peer.trust_domain, "oth");
		tls_peer_clear(&peer);
		assert_int_equal(svid_try(sboth, f_cli, f_cli_key, v, &peer, why, sizeof(why),
		    id, sizeof(id)), HS_OK);
		assert_string_equal(peer.trust_domain, "ex");
		tls_peer_clear(&peer);
		/* example.org's ID signed by other.org's authority: not accepted
		 * because that authority is trusted for another domain. */
		assert_int_equal(svid_try(sboth, f_cli2, f_cli2_key, v, &peer, why, sizeof(why),
		    id, sizeof(id)), HS_SERVER_FAILED);
		assert_string_equal(id, SPIFFE_ID);
		/* Required, none sent. */
		assert_int_equal(svid_try(sboth, NULL, NULL, v, &peer, why, sizeof(why), id,
		    sizeof(id)), HS_SERVER_FAILED);
		assert_string_equal(why, "");

		/* max_svid_lifetime: the client's 31 days are more than an hour. */
		assert_int_equal(svid_try(sshort, f_cli, f_cli_key, v, &peer, why, sizeof(why),
		    id, sizeof(id)), HS_SERVER_FAILED);
		assert_non_null(strstr(why, "exceeds the 3600 s allowed"));
	}
	SSL_CTX_free(sctx);
	SSL_CTX_free(sboth);
	SSL_CTX_free(sshort);
	/* The contexts held their own references. */
	trust_bundle_unref(ex);
	trust_bundle_unref(other);
	trust_bundle_unref(short_lived);
	X509_free(c_other);
	X509_free(c_two);
	EVP_PKEY_free(k_other);
	EVP_PKEY_free(k_two);
	(void)f_other;
	(void)f_two;
}

/*
 * A bundle file that changes is read again and its new authorities take
 * over, for handshakes of contexts made before; one that becomes invalid
 * or unreadable leaves the last good bundle in force, and is reported once
 * per change.
 */
static void
test_svid_rotation(void **state)
{
	char *f_bundle = tfile("rotating.pem"), *ca1 = read_all(f_ca), *ca2 = read_all(f_ca2);
	char tls12[] = "TLSv1.2", tls13[] = "TLSv1.3";
	struct trust_bundle *b;
	char why[400], id[256];
	struct tls_peer peer;
	SSL_CTX *sctx;

	(void)state;
	write_file_text(f_bundle, ca1);
	b = bundle_of("ex", "example.org", f_bundle, 0);
	sctx = svid_ctx(CG_TLS_VERIFY_REQUIRED, &b, 1);
	assert_int_equal(trust_bundle_check(b, 2000), TRUST_UNCHANGED);
	assert_int_equal(trust_bundle_loaded_ms(b), 1000);
	assert_int_equal(svid_try(sctx, f_cli, f_cli_key, tls13, &peer, why, sizeof(why),
	    id, sizeof(id)), HS_OK);
	tls_peer_clear(&peer);
	assert_int_equal(svid_try(sctx, f_cli2, f_cli2_key, tls13, &peer, why, sizeof(why),
	    id, sizeof(id)), HS_SERVER_FAILED);

	/* A new authority: the old one's SVIDs are refused, the new one's taken. */
	write_file_text(f_bundle, ca2);
	assert_int_equal(trust_bundle_check(b, 3000), TRUST_RELOADED);
	assert_int_equal(trust_bundle_loaded_ms(b), 3000);
	assert_int_equal(trust_bundle_check(b, 3500), TRUST_UNCHANGED);
	assert_int_equal(svid_try(sctx, f_cli2, f_cli2_key, tls13, &peer, why, sizeof(why),
	    id, sizeof(id)), HS_OK);
	tls_peer_clear(&peer);
	assert_int_equal(svid_try(sctx, f_cli, f_cli_key, tls12, &peer, why, sizeof(why),
	    id, sizeof(id)), HS_SERVER_FAILED);

	/* Garbage: the last good bundle stays, reported once. */
	write_file_text(f_bundle, "not a bundle\n");
	assert_int_equal(trust_bundle_check(b, 4000), TRUST_FAILED);
	assert_int_equal(trust_bundle_check(b, 5000), TRUST_UNCHANGED);
	assert_int_equal(trust_bundle_loaded_ms(b), 3000);
	assert_int_equal(svid_try(sctx, f_cli2, f_cli2_key, tls13, &peer, why, sizeof(why),
	    id, sizeof(id)), HS_OK);
	tls_peer_clear(&peer);
	/* Gone: the same. */
	assert_int_equal(unlink(f_bundle), 0);
	assert_int_equal(trust_bundle_check(b, 6000), TRUST_FAILED);
	assert_int_equal(trust_bundle_check(b, 7000), TRUST_UNCHANGED);
	/* Others may change it: not taken. */
	write_file_text(f_bundle, ca1);
	assert_int_equal(chmod(f_bundle, 0666), 0);
	assert_int_equal(trust_bundle_check(b, 8000), TRUST_FAILED);
	assert_int_equal(svid_try(sctx, f_cli, f_cli_key, tls13, &peer, why, sizeof(why),
	    id, sizeof(id)), HS_SERVER_FAILED);
	/* Back to a good file: taken again. */
	assert_int_equal(chmod(f_bundle, 0644), 0);
	assert_int_equal(trust_bundle_check(b, 9000), TRUST_RELOADED);
	assert_int_equal(svid_try(sctx, f_cli, f_cli_key, tls13, &peer, why, sizeof(why),
	    id, sizeof(id)), HS_OK);
	tls_peer_clear(&peer);

	SSL_CTX_free(sctx);
	trust_bundle_unref(b);
	free(ca1);
	free(ca2);
}

/* Before the handshake ends there is no identity to give. */
static void
test_peer_identity_early(void **state)
{
	struct cg_tls_server scfg = srv_cfg(f_srv, f_srv_key, CG_TLS_VERIFY_NONE);
	SSL_CTX *sctx = srv_ctx(&scfg);
	struct tls_peer peer;
	SSL *s = SSL_new(sctx);

	(void)state;
	assert_int_equal(tls_peer_identity(s, &peer), CG_ERR_AGAIN);
	assert_false(peer.verified);
	assert_null(peer.subject);
	SSL_free(s);
	SSL_CTX_free(sctx);
}

/* ------------------------------------------------------------------ */
/* tls_cert_identity(): the SAN bounds                                 */
/* ------------------------------------------------------------------ */

static GENERAL_NAME *
gn_text(int type, const char *v, size_t len)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	ossl_check(gn != NULL && s != NULL && ASN1_STRING_set(s, v, (int)len),
	    "gn_text");
	GENERAL_NAME_set0_value(gn, type, s);
	return gn;
}

static GENERAL_NAME *
gn_ip(const void *b, size_t len)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();

	ossl_check(gn != NULL && s != NULL &&
	    ASN1_OCTET_STRING_set(s, b, (int)len), "gn_ip");
	GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
	return gn;
}

static GENERAL_NAME *
gn_dir(void)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	X509_NAME *n = X509_NAME_new();

	ossl_check(gn != NULL && n != NULL && X509_NAME_add_entry_by_txt(n, "CN",
	    MBSTRING_ASC, (const unsigned char *)"dir", -1, -1, 0), "gn_dir");
	GENERAL_NAME_set0_value(gn, GEN_DIRNAME, n);
	return gn;
}

/*
 * A certificate whose subjectAltName holds gens (freed here), added
 * `times` times, signed, and read back from DER as a peer's would be.
 */
static X509 *
cert_with(GENERAL_NAMES *gens, int times, const char *cn)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	X509 *x = mkcert(k_cli, NULL, cn, c_ca, k_ca, -DAY, DAY, NULL), *back;
	int len, i;

	for (i = 0; i < times; i++)
		ossl_check(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
		    X509V3_ADD_APPEND) == 1, "add SAN");
	GENERAL_NAMES_free(gens);
	ossl_check(X509_sign(x, k_ca, EVP_sha256()) > 0, "sign");
	ossl_check((len = i2d_X509(x, &der)) > 0, "i2d_X509");
	p = der;
	ossl_check((back = d2i_X509(NULL, &p, len)) != NULL, "d2i_X509");
	OPENSSL_free(der);
	X509_free(x);
	return back;
}

/* Names from a list of GENERAL_NAME pointers, NULL-terminated. */
static GENERAL_NAMES *
names(GENERAL_NAME *first, ...)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gn;
	va_list ap;

	ossl_check(gens != NULL, "GENERAL_NAMES_new");
	va_start(ap, first);
	for (gn = first; gn != NULL; gn = va_arg(ap, GENERAL_NAME *))
		ossl_check(sk_GENERAL_NAME_push(gens, gn) > 0, "push");
	va_end(ap);
	return gens;
}

/* n dNSNames "h<i>.example" */
static GENERAL_NAMES *
many_dns(int n)
{
	GENERAL_NAMES *gens = names(NULL);
	char buf[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "h%d.example", i);
		ossl_check(sk_GENERAL_NAME_push(gens,
		    gn_text(GEN_DNS, buf, strlen(buf))) > 0, "push");
	}
	return gens;
}

/* Runs tls_cert_identity() on x (freed); on failure the struct is empty. */
static int
identity_of(X509 *x, struct tls_peer *peer)
{
	int r;

	memset(peer, 0xa5, sizeof(*peer));
	r = tls_cert_identity(x, peer);
	X509_free(x);
	assert_false(peer->verified);
	if (r != 0) {
		assert_null(peer->subject);
		assert_null(peer->dns);
		assert_null(peer->uri);
		assert_null(peer->email);
		assert_null(peer->ip);
		assert_null(peer->spiffe_id);
		assert_null(peer->spiffe);
		assert_int_equal(peer->ndns + peer->nuri + peer->nemail + peer->nip, 0);
	}
	return r;
}

static void
test_cert_identity_bounds(void **state)
{
	static const unsigned char v4[4] = { 192, 0, 2, 1 }, v5[5] = { 1, 2, 3, 4, 5 };
	char big[TLS_PEER_MAX_VALUE + 2];
	struct tls_peer peer;
	size_t k;

	(void)state;
	/* The client certificate as written. */
	assert_int_equal(identity_of(X509_dup(c_cli), &peer), 0);
	peer.verified = true;
	check_client_identity(&peer);
	tls_peer_clear(&peer);
	assert_null(peer.subject);

	/* No SAN at all: the subject only. */
	assert_int_equal(identity_of(X509_dup(c_ca), &peer), 0);
	assert_string_equal(peer.subject, "CN=Test CA,O=Example");
	assert_int_equal(peer.ndns + peer.nuri + peer.nemail + peer.nip, 0);
	tls_peer_clear(&peer);

	/* TLS_PEER_MAX_SANS names, then one more. */
	assert_int_equal(identity_of(cert_with(many_dns(TLS_PEER_MAX_SANS), 1, "a"),
	    &peer), 0);
	assert_int_equal(peer.ndns, TLS_PEER_MAX_SANS);
	assert_string_equal(peer.dns[TLS_PEER_MAX_SANS - 1], "h31.example");
	tls_peer_clear(&peer);
	assert_int_equal(identity_of(cert_with(many_dns(TLS_PEER_MAX_SANS + 1), 1, "a"),
	    &peer), CG_ERR_LIMIT);
	/* Names of other types count too. */
	{
		GENERAL_NAMES *g = many_dns(TLS_PEER_MAX_SANS);

		ossl_check(sk_GENERAL_NAME_push(g, gn_dir()) > 0, "push");
		assert_int_equal(identity_of(cert_with(g, 1, "a"), &peer), CG_ERR_LIMIT);
	}
	assert_int_equal(identity_of(cert_with(names(gn_dir(),
	    gn_text(GEN_DNS, "a.example", 9), NULL), 1, "a"), &peer), 0);
	assert_int_equal(peer.ndns, 1);
	tls_peer_clear(&peer);

	/* A value of TLS_PEER_MAX_VALUE bytes, then one more, for each text type. */
	memset(big, 'a', sizeof(big));
	for (k = 0; k < 3; k++) {
		static const int types[] = { GEN_DNS, GEN_URI, GEN_EMAIL };

		assert_int_equal(identity_of(cert_with(names(gn_text(types[k], big,
		    TLS_PEER_MAX_VALUE), NULL), 1, "a"), &peer), 0);
		assert_int_equal(peer.ndns + peer.nuri + peer.nemail, 1);
		tls_peer_clear(&peer);
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k], big,
		    TLS_PEER_MAX_VALUE + 1), NULL), 1, "a"), &peer), CG_ERR_LIMIT);
		/* A NUL inside, at the start, at the end. */
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k],
		    "evil.example\0.good.example", 26), NULL), 1, "a"), &peer),
		    CG_ERR_FORMAT);
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k],
		    "\0a", 2), NULL), 1, "a"), &peer), CG_ERR_FORMAT);
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k],
		    "a\0", 2), NULL), 1, "a"), &peer), CG_ERR_FORMAT);
		/* Control and non-ASCII bytes, and an empty value. */
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k],
		    "a\nb", 3), NULL), 1, "a"), &peer), CG_ERR_FORMAT);
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k],
		    "a\x7f", 2), NULL), 1, "a"), &peer), CG_ERR_FORMAT);
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k],
		    "caf\xc3\xa9", 5), NULL), 1, "a"), &peer), CG_ERR_FORMAT);
		assert_int_equal(identity_of(cert_with(names(gn_text(types[k],
		    "", 0), NULL), 1, "a"), &peer), CG_ERR_FORMAT);
	}
	/* One bad name spoils good ones before and after it. */
	assert_int_equal(identity_of(cert_with(names(gn_text(GEN_DNS, "ok", 2),
	    gn_text(GEN_URI, "x\0y", 3), gn_text(GEN_DNS, "ok2", 3), NULL), 1, "a"),
	    &peer), CG_ERR_FORMAT);
	/* iPAddress: 4 or 16 bytes only. */
	assert_int_equal(identity_of(cert_with(names(gn_ip(v4, 4), NULL), 1, "a"),
	    &peer), 0);
	assert_int_equal(peer.nip, 1);
	assert_string_equal(peer.ip[0], "192.0.2.1");
	tls_peer_clear(&peer);
	assert_int_equal(identity_of(cert_with(names(gn_ip(v5, 5), NULL), 1, "a"),
	    &peer), CG_ERR_FORMAT);
	assert_int_equal(identity_of(cert_with(names(gn_ip(v5, 0), NULL), 1, "a"),
	    &peer), CG_ERR_FORMAT);
	/* Two subjectAltName extensions: which one would policy see?  Neither. */
	assert_int_equal(identity_of(cert_with(names(gn_text(GEN_DNS, "a", 1), NULL),
	    2, "a"), &peer), CG_ERR_FORMAT);
}

static void
test_spiffe_id(void **state)
{
	const struct {
		const char *uris[3];
		int want;	/* index of the SPIFFE ID, -1 none */
	} cases[] = {
		{ { SPIFFE_ID }, 0 },
		{ { "https://example.org/x", SPIFFE_ID }, 1 },
		{ { SPIFFE_ID, "spiffe://example.org/other" }, -1 },
		{ { "SPIFFE://example.org/upper", SPIFFE_ID }, -1 },
		{ { "spiffe:/example.org/a" }, -1 },
		{ { "https://example.org/x" }, -1 },
		/* The one URI of the scheme must be a SPIFFE ID. */
		{ { "SPIFFE://example.org/upper" }, -1 },
		{ { "spiffe://Example.org/a" }, -1 },
		{ { "spiffe://example.org/a/" }, -1 },
		{ { "spiffe://example.org:8443/a" }, -1 },
		{ { "https://example.org/x", "spiffe://example.org" }, 1 },
	};
	struct tls_peer peer;
	GENERAL_NAMES *g;
	size_t i, k;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		g = names(NULL);
		for (k = 0; k < 3 && cases[i].uris[k] != NULL; k++)
			ossl_check(sk_GENERAL_NAME_push(g, gn_text(GEN_URI,
			    cases[i].uris[k], strlen(cases[i].uris[k]))) > 0, "push");
		assert_int_equal(identity_of(cert_with(g, 1, "a"), &peer), 0);
		assert_int_equal(peer.nuri, k);
		if (cases[i].want < 0) {
			assert_null(peer.spiffe_id);
			assert_null(peer.spiffe);
		} else {
			assert_ptr_equal(peer.spiffe_id, peer.uri[cases[i].want]);
			assert_non_null(peer.spiffe);
			assert_string_equal(peer.spiffe->trust_domain, "example.org");
			assert_memory_equal(peer.spiffe_id + strlen("spiffe://example.org"),
			    peer.spiffe->path, strlen(peer.spiffe->path) + 1);
		}
		/* Only a listener's trust domains make an SVID. */
		assert_false(peer.svid);
		assert_null(peer.trust_domain);
		tls_peer_clear(&peer);
	}
}

/* The subject: RFC 2253 escapes, UTF-8 kept, control bytes escaped. */
static void
test_subject(void **state)
{
	const struct {
		const char *cn;
		const char *want;
	} cases[] = {
		{ "plain", "CN=plain" },
		{ "a,b+c", "CN=a\\,b\\+c" },
		{ "J\xc3\xbcrgen", "CN=J\xc3\xbcrgen" },
		{ "line\nbreak", "CN=line\\0Abreak" },
	};
	struct tls_peer peer;
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		assert_int_equal(identity_of(cert_with(names(NULL), 0, cases[i].cn),
		    &peer), 0);
		assert_string_equal(peer.subject, cases[i].want);
		tls_peer_clear(&peer);
	}
}

static void
test_error_string(void **state)
{
	char buf[256], small[8];

	(void)state;
	ERR_clear_error();
	assert_string_equal(tls_error_string(buf, sizeof(buf)), "unknown error");
	ERR_raise_data(ERR_LIB_SSL, SSL_R_NO_CIPHER_MATCH, "in %s", "a\nb");
	ERR_raise(ERR_LIB_SSL, SSL_R_NO_CIPHER_MATCH);
	ERR_raise(ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH);
	assert_string_equal(tls_error_string(buf, sizeof(buf)),
	    "no cipher match (in a?b): no cipher match: key values mismatch");
	assert_int_equal(ERR_peek_error(), 0);
	ERR_raise(ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH);
	assert_string_equal(tls_error_string(small, sizeof(small)), "key val");
	assert_int_equal(ERR_peek_error(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_ctx_loads),
		cmocka_unit_test(test_server_ctx_refusals),
		cmocka_unit_test(test_client_ctx),
		cmocka_unit_test(test_verify_server),
		cmocka_unit_test(test_sni_and_ip),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_min_version),
		cmocka_unit_test(test_client_certs),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_peer_identity_early),
		cmocka_unit_test(test_svid_listener),
		cmocka_unit_test(test_svid_rotation),
		cmocka_unit_test(test_cert_identity_bounds),
		cmocka_unit_test(test_spiffe_id),
		cmocka_unit_test(test_subject),
		cmocka_unit_test(test_error_string),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
