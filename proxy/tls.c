/*
 * tls.c: OpenSSL contexts for listeners and upstreams, per-connection
 * client settings (SNI, host name to verify), and the identity a peer's
 * certificate carries, extracted into bounded, owned strings for policy.
 *
 * Owns no connection and no event loop: it builds SSL_CTX and SSL objects
 * and reads certificates; proxy/conn.c and proxy/server.c drive the
 * handshakes.  Reads private keys but never logs, copies or keeps their
 * bytes beyond the load (the read buffer is wiped).
 *
 * Session resumption on listeners: no session tickets.  A ticket key would
 * have to be shared by every worker and every instance behind a load
 * balancer and rotated on a schedule, and OpenSSL's built-in key lives as
 * long as the context, so whoever obtains it can decrypt every recorded
 * session since start.  Instead each context keeps a bounded server-side
 * session cache (TLS 1.2 session IDs, TLS 1.3 stateful tickets) whose
 * entries expire after TLS_SESSION_TIMEOUT and vanish with the context on
 * reload, which also keeps a resumed session from outliving a change of
 * client_ca.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "proxy/conf.h"
#include "proxy/tls.h"
#include "proxy/trust.h"

#define TLS_MAX_KEY_FILE	(1024 * 1024)	/* bytes of a PEM key file */
#define TLS_MAX_PEM_FILE	(16 * 1024 * 1024) /* of a certificate chain or CA bundle */
#define TLS_SESSION_CACHE	4096		/* sessions per listener context */
#define TLS_SESSION_TIMEOUT	300		/* seconds */
#define TLS_SESSION_TICKETS	1		/* TLS 1.3 stateful tickets per handshake */
#define TLS_MAX_HOST		255		/* bytes of an SNI host name */

static const unsigned char tls_sid_ctx[] = "credgate";
static const char tls_alpn_http11[] = "http/1.1";

enum tls_san_kind { TLS_SAN_DNS, TLS_SAN_URI, TLS_SAN_EMAIL, TLS_SAN_IP, TLS_SAN_OTHER };

/* ------------------------------------------------------------------ */
/* Error text                                                          */
/* ------------------------------------------------------------------ */

static void tls_sslerrf(char *err, size_t errlen, const char *fmt, ...) CG_PRINTF(3, 4);

/* Formats err as "<fmt>: <OpenSSL's reasons>", draining the queue. */
static void
tls_sslerrf(char *err, size_t errlen, const char *fmt, ...)
{
	char reason[256];
	size_t used;
	va_list ap;

	tls_error_string(reason, sizeof(reason));
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	cg_verrf(err, errlen, fmt, ap);
	va_end(ap);
	used = strlen(err);
	if (used < errlen)
		snprintf(err + used, errlen - used, ": %s", reason);
}

const char *
tls_error_string(char *buf, size_t len)
{
	char one[256], code[128], prev[256] = "";
	const char *data, *reason;
	unsigned long e;
	size_t used = 0, i;
	int flags;

	if (buf == NULL || len == 0) {
		ERR_clear_error();
		return buf;
	}
	buf[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if ((reason = ERR_reason_error_string(e)) == NULL) {
			ERR_error_string_n(e, code, sizeof(code));
			reason = code;
		}
		if ((flags & ERR_TXT_STRING) != 0 && data != NULL && *data != '\0')
			snprintf(one, sizeof(one), "%s (%s)", reason, data);
		else
			snprintf(one, sizeof(one), "%s", reason);
		if (strcmp(one, prev) == 0)
			continue;	/* the same reason raised at two levels */
		memcpy(prev, one, sizeof(prev));
		if (used < len - 1)
			snprintf(buf + used, len - used, "%s%s",
			    used > 0 ? ": " : "", one);
		used = strlen(buf);
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "unknown error");
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	return buf;
}

const char *
tls_verify_reason(const SSL *ssl)
{
	return X509_verify_cert_error_string(SSL_get_verify_result(ssl));
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/*
 * Reads file whole through the common reader: certificates and CA bundles
 * into ordinary memory, private keys (flags CG_FILE_SECURE) into the
 * secure pool.  Symbolic links are followed (certificate tools and
 * mounted secrets link keys and certificates in place).  The message is
 * "<what> <file>: <problem>"; a file that is not regular is CG_ERR_IO.
 */
static int
tls_read_file(const char *what, const char *file, unsigned flags, size_t max,
    struct cg_file *out, char *err, size_t errlen)
{
	char why[512];
	int r;

	if ((r = cg_file_read(file, flags | CG_FILE_FOLLOW, max, 0, out, why,
	    sizeof(why))) != 0) {
		cg_errf(err, errlen, "%s %s", what, why);
		return r == CG_ERR_UNSUPPORTED ? CG_ERR_IO : r;
	}
	return 0;
}

/* A BIO over f's bytes, which must outlive it. */
static BIO *
tls_mem_bio(const struct cg_file *f)
{
	if (f->len > INT_MAX)
		return NULL;
	return BIO_new_mem_buf(f->data, (int)f->len);
}

/* pem_password_cb: encrypted keys are refused, never prompted for. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (u != NULL)
		*(int *)u = 1;
	return -1;
}

/* True when OpenSSL's last error says the PEM input simply ended. */
static bool
tls_pem_ended(void)
{
	unsigned long e = ERR_peek_last_error();

	return ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/*
 * Reads the PEM private key in file.  The file must be a regular file
 * without world access (group access is allowed, as Debian's ssl-cert
 * group uses it), at most TLS_MAX_KEY_FILE bytes, and not encrypted.  Its
 * bytes are read into the secure pool and wiped when parsed.
 */
static int
tls_load_key(const char *what, const char *file, EVP_PKEY **out, char *err,
    size_t errlen)
{
	struct cg_file f;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	int encrypted = 0, r;

	*out = NULL;
	if ((r = tls_read_file(what, file, CG_FILE_SECURE | CG_FILE_NO_WORLD,
	    TLS_MAX_KEY_FILE, &f, err, errlen)) != 0)
		return r;
	if ((bio = tls_mem_bio(&f)) == NULL) {
		cg_errf(err, errlen, "%s %s: out of memory", what, file);
		r = CG_ERR_NOMEM;
		goto out;
	}
	ERR_clear_error();
	pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, &encrypted);
	if (pkey == NULL) {
		if (encrypted)
			cg_errf(err, errlen, "%s %s: the key is encrypted; "
			    "credgate needs it unencrypted", what, file);
		else
			tls_sslerrf(err, errlen, "%s %s: no PEM private key",
			    what, file);
		r = CG_ERR_FORMAT;
		goto out;
	}
	*out = pkey;
	r = 0;
 out:
	BIO_free(bio);
	cg_file_free(&f);	/* wipes */
	return r;
}

/*
 * The PEM certificate chain in file, leaf first, as
 * SSL_CTX_use_certificate_chain_file() reads it, but from the bytes the
 * common reader read.
 */
static int
tls_use_chain(SSL_CTX *ctx, const char *what, const char *file, char *err,
    size_t errlen)
{
	struct cg_file f;
	X509 *x = NULL;
	BIO *bio = NULL;
	int r;

	if ((r = tls_read_file(what, file, 0, TLS_MAX_PEM_FILE, &f, err,
	    errlen)) != 0)
		return r;
	ERR_clear_error();
	if ((bio = tls_mem_bio(&f)) == NULL) {
		cg_errf(err, errlen, "%s %s: out of memory", what, file);
		r = CG_ERR_NOMEM;
		goto out;
	}
	if ((x = PEM_read_bio_X509_AUX(bio, NULL, tls_no_passphrase, NULL)) == NULL ||
	    SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_clear_chain_certs(ctx) != 1) {
		tls_sslerrf(err, errlen, "%s %s", what, file);
		r = CG_ERR_FORMAT;
		goto out;
	}
	X509_free(x);
	while ((x = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			tls_sslerrf(err, errlen, "%s %s", what, file);
			r = CG_ERR_FORMAT;
			goto out;
		}
		x = NULL;	/* the context's now */
	}
	if (!tls_pem_ended()) {
		tls_sslerrf(err, errlen, "%s %s", what, file);
		r = CG_ERR_FORMAT;
		goto out;
	}
	ERR_clear_error();
	r = 0;
 out:
	X509_free(x);
	BIO_free(bio);
	cg_file_free(&f);
	return r;
}

/* Whether list holds name already (a bundle has few names). */
static bool
tls_has_name(const STACK_OF(X509_NAME) *list, const X509_NAME *name)
{
	int i;

	for (i = 0; i < sk_X509_NAME_num(list); i++)
		if (X509_NAME_cmp(sk_X509_NAME_value(list, i), name) == 0)
			return true;
	return false;
}

/*
 * The certificates (and CRLs) of the PEM bundle in file go into ctx's
 * trust store, as SSL_CTX_load_verify_file() puts them; with names not
 * NULL, *names also gets the certificates' subjects, each once, as
 * SSL_load_client_CA_file() lists them, in the file's order.  A bundle
 * without a certificate is an error.
 */
static int
tls_load_ca(SSL_CTX *ctx, const char *what, const char *file,
    STACK_OF(X509_NAME) **names, char *err, size_t errlen)
{
	STACK_OF(X509_INFO) *infos = NULL;
	STACK_OF(X509_NAME) *list = NULL;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_NAME *name = NULL;
	struct cg_file f;
	BIO *bio = NULL;
	int ncerts = 0, r, i;

	if (names != NULL)
		*names = NULL;
	if ((r = tls_read_file(what, file, 0, TLS_MAX_PEM_FILE, &f, err,
	    errlen)) != 0)
		return r;
	ERR_clear_error();
	if ((bio = tls_mem_bio(&f)) == NULL ||
	    (names != NULL && (list = sk_X509_NAME_new_null()) == NULL)) {
		cg_errf(err, errlen, "%s %s: out of memory", what, file);
		r = CG_ERR_NOMEM;
		goto out;
	}
	if ((infos = PEM_X509_INFO_read_bio(bio, NULL, tls_no_passphrase,
	    NULL)) == NULL) {
		tls_sslerrf(err, errlen, "%s %s", what, file);
		r = CG_ERR_FORMAT;
		goto out;
	}
	for (i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *in = sk_X509_INFO_value(infos, i);

		if (in->crl != NULL && X509_STORE_add_crl(store, in->crl) != 1) {
			tls_sslerrf(err, errlen, "%s %s", what, file);
			r = CG_ERR_FORMAT;
			goto out;
		}
		if (in->x509 == NULL)
			continue;
		if (X509_STORE_add_cert(store, in->x509) != 1) {
			tls_sslerrf(err, errlen, "%s %s", what, file);
			r = CG_ERR_FORMAT;
			goto out;
		}
		ncerts++;
		if (list == NULL)
			continue;
		if ((name = X509_NAME_dup(X509_get_subject_name(in->x509))) == NULL) {
			cg_errf(err, errlen, "%s %s: out of memory", what, file);
			r = CG_ERR_NOMEM;
			goto out;
		}
		if (tls_has_name(list, name)) {
			X509_NAME_free(name);
			name = NULL;
			continue;
		}
		if (sk_X509_NAME_push(list, name) <= 0) {
			cg_errf(err, errlen, "%s %s: out of memory", what, file);
			r = CG_ERR_NOMEM;
			goto out;
		}
		name = NULL;
	}
	if (ncerts == 0) {
		cg_errf(err, errlen, "%s %s: no certificate", what, file);
		r = CG_ERR_FORMAT;
		goto out;
	}
	if (names != NULL) {
		*names = list;
		list = NULL;
	}
	ERR_clear_error();
	r = 0;
 out:
	X509_NAME_free(name);
	sk_X509_NAME_pop_free(list, X509_NAME_free);
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	BIO_free(bio);
	cg_file_free(&f);
	return r;
}

/* The certificate chain in cert_file with the key in key_file, which must
 * match the leaf. */
static int
tls_use_cert_key(SSL_CTX *ctx, const char *prefix, const char *cert_file,
    const char *key_file, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	char what[64];
	X509 *leaf;
	int r;

	snprintf(what, sizeof(what), "%s.cert", prefix);
	if ((r = tls_use_chain(ctx, what, cert_file, err, errlen)) != 0)
		return r;
	snprintf(what, sizeof(what), "%s.key", prefix);
	if ((r = tls_load_key(what, key_file, &pkey, err, errlen)) != 0)
		return r;
	if ((leaf = SSL_CTX_get0_certificate(ctx)) == NULL ||
	    X509_check_private_key(leaf, pkey) != 1) {
		tls_sslerrf(err, errlen, "%s %s does not match the certificate "
		    "in %s", what, key_file, cert_file);
		r = CG_ERR_VERIFY;
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_sslerrf(err, errlen, "%s %s", what, key_file);
		r = CG_ERR_VERIFY;
		goto out;
	}
	r = 0;
 out:
	EVP_PKEY_free(pkey);
	return r;
}

/* ------------------------------------------------------------------ */
/* Contexts                                                            */
/* ------------------------------------------------------------------ */

/*
 * OpenSSL skips TLS 1.3 suite names it does not know; a typo would then
 * quietly leave fewer suites, or none, than the setting says.  Every name
 * must be one the context now holds, and a TLS 1.3-only context needs one.
 */
static int
tls_check_suites(SSL_CTX *ctx, const char *prefix, const char *list,
    int min_version, char *err, size_t errlen)
{
	STACK_OF(SSL_CIPHER) *have = SSL_CTX_get_ciphers(ctx);
	const char *p = list, *end;
	size_t len;
	int i, n = sk_SSL_CIPHER_num(have);
	bool found;

	while (*p != '\0') {
		end = strchr(p, ':');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		found = false;
		for (i = 0; i < n && !found; i++) {
			const char *name = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(have, i));

			found = strlen(name) == len && memcmp(name, p, len) == 0;
		}
		if (!found && len > 0) {
			cg_errf(err, errlen, "%s.ciphersuites \"%s\": unknown "
			    "suite \"%.*s\"", prefix, list, (int)(len > 64 ? 64 : len), p);
			return CG_ERR_FORMAT;
		}
		p += len;
		if (*p == ':')
			p++;
	}
	if (*list == '\0' && min_version == TLS1_3_VERSION) {
		cg_errf(err, errlen, "%s.ciphersuites: empty, but min_version is "
		    "TLSv1.3", prefix);
		return CG_ERR_FORMAT;
	}
	return 0;
}

/* What both sides share: versions and cipher settings. */
static int
tls_ctx_common(SSL_CTX *ctx, const char *prefix, const char *min_version,
    const char *ciphers, const char *ciphersuites, char *err, size_t errlen)
{
	int v, r;

	if (min_version == NULL || *min_version == '\0')
		min_version = TLS_DEFAULT_MIN_VERSION;
	if (strcmp(min_version, "TLSv1.2") == 0)
		v = TLS1_2_VERSION;
	else if (strcmp(min_version, "TLSv1.3") == 0)
		v = TLS1_3_VERSION;
	else {
		cg_errf(err, errlen, "%s.min_version \"%s\": not TLSv1.2 or "
		    "TLSv1.3", prefix, min_version);
		return CG_ERR_FORMAT;
	}
	if (SSL_CTX_set_min_proto_version(ctx, v) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, 0) != 1) {
		tls_sslerrf(err, errlen, "%s.min_version \"%s\"", prefix, min_version);
		return CG_ERR_FORMAT;
	}
	if (ciphers == NULL)
		ciphers = TLS_DEFAULT_CIPHERS;
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		tls_sslerrf(err, errlen, "%s.ciphers \"%s\"", prefix, ciphers);
		return CG_ERR_FORMAT;
	}
	if (ciphersuites != NULL) {
		if (SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1) {
			tls_sslerrf(err, errlen, "%s.ciphersuites \"%s\"", prefix,
			    ciphersuites);
			return CG_ERR_FORMAT;
		}
		if ((r = tls_check_suites(ctx, prefix, ciphersuites, v, err,
		    errlen)) != 0)
			return r;
	}
	/* An idle connection gives its record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

/* Picks the listener's protocol (arg, "http/1.1" when NULL) from the
 * client's ALPN list; without it, no ALPN. */
static int
tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	const char *alpn = arg != NULL ? arg : tls_alpn_http11;
	const size_t want = strlen(alpn);
	unsigned int i = 0, n;

	(void)ssl;
	while (i < inlen) {
		n = in[i];
		if (n == 0 || n > inlen - i - 1)
			break;
		if (n == want && memcmp(in + i + 1, alpn, want) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

void
tls_server_ctx_alpn(SSL_CTX *ctx, const char *alpn)
{
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, (void *)(uintptr_t)alpn);
}

int
tls_server_ctx_new(const struct cg_tls_server *cfg, SSL_CTX **out, char *err,
    size_t errlen)
{
	STACK_OF(X509_NAME) *names = NULL;
	SSL_CTX *ctx = NULL;
	char *curves;		/* not const: OpenSSL's macro casts it */
	int r, mode;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	ERR_clear_error();
	if (cfg->cert == NULL || cfg->key == NULL) {
		cg_errf(err, errlen, "tls: cert and key are both required");
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_sslerrf(err, errlen, "tls: cannot create a context");
		r = CG_ERR_NOMEM;
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	if ((r = tls_ctx_common(ctx, "tls", cfg->min_version, cfg->ciphers,
	    cfg->ciphersuites, err, errlen)) != 0)
		goto out;
	curves = cfg->curves != NULL ? cfg->curves : TLS_DEFAULT_CURVES;
	if (SSL_CTX_set1_groups_list(ctx, curves) != 1) {
		tls_sslerrf(err, errlen, "tls.curves \"%s\"", curves);
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((r = tls_use_cert_key(ctx, "tls", cfg->cert, cfg->key, err, errlen)) != 0)
		goto out;

	if (cfg->verify_client != CG_TLS_VERIFY_NONE) {
		if (cfg->client_ca == NULL && cfg->ntrust_domains == 0) {
			cg_errf(err, errlen, "tls.client_ca: required when "
			    "verify_client is optional or required");
			r = CG_ERR_FORMAT;
			goto out;
		}
		if (cfg->client_ca != NULL && cfg->ntrust_domains > 0) {
			cg_errf(err, errlen, "tls.trust_domains: cannot go with client_ca");
			r = CG_ERR_FORMAT;
			goto out;
		}
		/*
		 * Trusted, and the CA names the server sends so that a
		 * client can pick.  Trust domains' bundles are verified
		 * against by trust_ctx_install()'s callback, which names no
		 * CA: their bundles change while the context serves.
		 */
		if (cfg->client_ca != NULL && (r = tls_load_ca(ctx, "tls.client_ca",
		    cfg->client_ca, &names, err, errlen)) != 0)
			goto out;
		if (names != NULL)
			SSL_CTX_set_client_CA_list(ctx, names);
		names = NULL;
		mode = SSL_VERIFY_PEER;
		if (cfg->verify_client == CG_TLS_VERIFY_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);

	/*
	 * Resumption from the context's own cache only (see the top); none
	 * where trust domains' bundles decide, which may change under a
	 * session that a resumption would not check again.
	 */
	SSL_CTX_set_session_cache_mode(ctx, cfg->ntrust_domains > 0 ? SSL_SESS_CACHE_OFF :
	    SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE);
	SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT);
	if (SSL_CTX_set_num_tickets(ctx, cfg->ntrust_domains > 0 ? 0 :
	    TLS_SESSION_TICKETS) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, tls_sid_ctx,
	    sizeof(tls_sid_ctx) - 1) != 1) {
		tls_sslerrf(err, errlen, "tls: session settings");
		r = CG_ERR_INTERNAL;
		goto out;
	}

	*out = ctx;
	ctx = NULL;
	r = 0;
 out:
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int
tls_client_ctx_new(const struct cg_tls_client *cfg, SSL_CTX **out, char *err,
    size_t errlen)
{
	SSL_CTX *ctx = NULL;
	int r;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	ERR_clear_error();
	if ((cfg->cert == NULL) != (cfg->key == NULL)) {
		cg_errf(err, errlen, "upstream.tls: cert and key go together; "
		    "%s is missing", cfg->cert == NULL ? "cert" : "key");
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_sslerrf(err, errlen, "upstream.tls: cannot create a context");
		r = CG_ERR_NOMEM;
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if ((r = tls_ctx_common(ctx, "upstream.tls", cfg->min_version,
	    cfg->ciphers, cfg->ciphersuites, err, errlen)) != 0)
		goto out;
	if (cfg->ca != NULL) {
		if ((r = tls_load_ca(ctx, "upstream.tls.ca", cfg->ca, NULL,
		    err, errlen)) != 0)
			goto out;
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_sslerrf(err, errlen, "upstream.tls: the system CA store");
		r = CG_ERR_IO;
		goto out;
	}
	SSL_CTX_set_verify(ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (cfg->cert != NULL && (r = tls_use_cert_key(ctx, "upstream.tls",
	    cfg->cert, cfg->key, err, errlen)) != 0)
		goto out;

	*out = ctx;
	ctx = NULL;
	r = 0;
 out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

SSL *
tls_client_ssl_new(SSL_CTX *ctx, const struct cg_tls_client *cfg,
    const char *default_host)
{
	unsigned char addr[sizeof(struct in6_addr)];
	char host[TLS_MAX_HOST + 1];
	const char *name;
	bool is_ip;
	SSL *ssl;
	size_t len;

	name = cfg->server_name != NULL && cfg->server_name[0] != '\0' ?
	    cfg->server_name : default_host;
	if (name == NULL || name[0] == '\0') {
		if (cfg->verify)
			return NULL;	/* nothing to check the certificate against */
		return SSL_new(ctx);
	}
	len = strlen(name);
	if (len > 2 && name[0] == '[' && name[len - 1] == ']') {
		name++;
		len -= 2;
	}
	if (len > TLS_MAX_HOST)
		return NULL;
	memcpy(host, name, len);
	host[len] = '\0';
	is_ip = inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1;
	/* "db.example." is db.example: neither SNI nor certificates carry
	 * the root's dot. */
	if (!is_ip && len > 1 && host[len - 1] == '.')
		host[--len] = '\0';

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	/* RFC 6066: SNI carries host names only, never literal addresses. */
	if (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1)
		goto fail;
	if (cfg->verify && cfg->verify_name) {
		if (is_ip) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			    host) != 1)
				goto fail;
		} else {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(ssl, host) != 1)
				goto fail;
		}
	}
	return ssl;
 fail:
	SSL_free(ssl);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Peer identity                                                       */
/* ------------------------------------------------------------------ */

void
tls_peer_clear(struct tls_peer *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->subject);
	for (i = 0; i < p->ndns; i++)
		free(p->dns[i]);
	free(p->dns);
	for (i = 0; i < p->nuri; i++)
		free(p->uri[i]);
	free(p->uri);
	for (i = 0; i < p->nemail; i++)
		free(p->email[i]);
	free(p->email);
	for (i = 0; i < p->nip; i++)
		free(p->ip[i]);
	free(p->ip);
	free(p->spiffe);
	free(p->trust_domain);
	memset(p, 0, sizeof(*p));
}

/* The subject in RFC 2253 form, UTF-8 kept as is, control bytes escaped by
 * OpenSSL and refused if any got through. */
static int
tls_subject(X509 *cert, char **out)
{
	const unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
	X509_NAME *name;
	BIO *bio = NULL;
	char *p = NULL;
	long len;
	int r;

	*out = NULL;
	if ((name = X509_get_subject_name(cert)) == NULL)
		return 0;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return CG_ERR_NOMEM;
	if (X509_NAME_print_ex(bio, name, 0, flags) < 0) {
		r = CG_ERR_FORMAT;
		goto out;
	}
	if ((len = BIO_get_mem_data(bio, &p)) <= 0) {
		r = 0;		/* an empty subject */
		goto out;
	}
	if (len > TLS_PEER_MAX_SUBJECT) {
		r = CG_ERR_LIMIT;
		goto out;
	}
	for (long i = 0; i < len; i++) {
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
			r = CG_ERR_FORMAT;
			goto out;
		}
	}
	if ((*out = strndup(p, (size_t)len)) == NULL) {
		r = CG_ERR_NOMEM;
		goto out;
	}
	r = 0;
 out:
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

/* Checks one IA5String SAN value: non-empty, bounded, printable ASCII. */
static int
tls_san_text_ok(const ASN1_IA5STRING *s)
{
	const unsigned char *p;
	int len, i;

	if (s == NULL || (p = ASN1_STRING_get0_data(s)) == NULL)
		return CG_ERR_FORMAT;
	len = ASN1_STRING_length(s);
	if (len <= 0)
		return CG_ERR_FORMAT;
	if (len > TLS_PEER_MAX_VALUE)
		return CG_ERR_LIMIT;
	for (i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return CG_ERR_FORMAT;
	return 0;
}

/* Classifies and checks one name; *kind tells which array it goes to. */
static int
tls_san_check(const GENERAL_NAME *gn, enum tls_san_kind *kind)
{
	int len;

	switch (gn->type) {
	case GEN_DNS:
		*kind = TLS_SAN_DNS;
		return tls_san_text_ok(gn->d.dNSName);
	case GEN_URI:
		*kind = TLS_SAN_URI;
		return tls_san_text_ok(gn->d.uniformResourceIdentifier);
	case GEN_EMAIL:
		*kind = TLS_SAN_EMAIL;
		return tls_san_text_ok(gn->d.rfc822Name);
	case GEN_IPADD:
		*kind = TLS_SAN_IP;
		if (gn->d.iPAddress == NULL)
			return CG_ERR_FORMAT;
		len = ASN1_STRING_length(gn->d.iPAddress);
		return len == 4 || len == 16 ? 0 : CG_ERR_FORMAT;
	default:
		*kind = TLS_SAN_OTHER;
		return 0;
	}
}

/* The text of a name tls_san_check() accepted (malloc'd). */
static char *
tls_san_text(const GENERAL_NAME *gn, enum tls_san_kind kind)
{
	char buf[INET6_ADDRSTRLEN];
	const ASN1_STRING *s;
	int af;

	switch (kind) {
	case TLS_SAN_DNS:
		s = gn->d.dNSName;
		break;
	case TLS_SAN_URI:
		s = gn->d.uniformResourceIdentifier;
		break;
	case TLS_SAN_EMAIL:
		s = gn->d.rfc822Name;
		break;
	case TLS_SAN_IP:
		af = ASN1_STRING_length(gn->d.iPAddress) == 4 ? AF_INET : AF_INET6;
		if (inet_ntop(af, ASN1_STRING_get0_data(gn->d.iPAddress), buf,
		    sizeof(buf)) == NULL)
			return NULL;
		return strdup(buf);
	default:
		return NULL;
	}
	return strndup((const char *)ASN1_STRING_get0_data(s),
	    (size_t)ASN1_STRING_length(s));
}

int
tls_cert_identity(X509 *cert, struct tls_peer *out)
{
	char ***arrays[] = { &out->dns, &out->uri, &out->email, &out->ip };
	size_t *counts[] = { &out->ndns, &out->nuri, &out->nemail, &out->nip };
	size_t want[TLS_SAN_OTHER] = { 0 }, nspiffe = 0;
	GENERAL_NAMES *gens = NULL;
	enum tls_san_kind kind;
	const GENERAL_NAME *gn;
	int crit = -1, n, i, r;
	char *v;

	memset(out, 0, sizeof(*out));
	if (cert == NULL)
		return CG_ERR_FORMAT;
	if ((r = tls_subject(cert, &out->subject)) != 0)
		goto out;

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL) {
		/* -1: no such extension; -2: more than one; else unparsable. */
		r = crit == -1 ? 0 : CG_ERR_FORMAT;
		goto out;
	}
	if ((n = sk_GENERAL_NAME_num(gens)) < 0 || n > TLS_PEER_MAX_SANS) {
		r = n < 0 ? CG_ERR_FORMAT : CG_ERR_LIMIT;
		goto out;
	}
	/* First pass: check every name before taking any. */
	for (i = 0; i < n; i++) {
		if ((r = tls_san_check(sk_GENERAL_NAME_value(gens, i), &kind)) != 0)
			goto out;
		if (kind != TLS_SAN_OTHER)
			want[kind]++;
	}
	for (kind = TLS_SAN_DNS; kind < TLS_SAN_OTHER; kind++) {
		if (want[kind] == 0)
			continue;
		if ((*arrays[kind] = calloc(want[kind], sizeof(char *))) == NULL) {
			r = CG_ERR_NOMEM;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		if (tls_san_check(gn, &kind) != 0 || kind == TLS_SAN_OTHER)
			continue;
		if ((v = tls_san_text(gn, kind)) == NULL) {
			r = CG_ERR_NOMEM;
			goto out;
		}
		(*arrays[kind])[(*counts[kind])++] = v;
	}
	for (size_t j = 0; j < out->nuri; j++) {
		if (strncasecmp(out->uri[j], SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) == 0) {
			nspiffe++;
			out->spiffe_id = out->uri[j];
		}
	}
	if (nspiffe != 1)
		out->spiffe_id = NULL;
	/* Only an ID the SPIFFE rules accept is one. */
	if (out->spiffe_id != NULL) {
		if ((out->spiffe = malloc(sizeof(*out->spiffe))) == NULL) {
			r = CG_ERR_NOMEM;
			goto out;
		}
		if (spiffe_id_parse(out->spiffe_id, strlen(out->spiffe_id), out->spiffe, NULL,
		    0) != 0) {
			free(out->spiffe);
			out->spiffe = NULL;
			out->spiffe_id = NULL;
		}
	}
	r = 0;
 out:
	GENERAL_NAMES_free(gens);
	if (r != 0)
		tls_peer_clear(out);
	ERR_clear_error();
	return r;
}

int
tls_peer_identity(SSL *ssl, struct tls_peer *out)
{
	X509 *cert;
	int r;

	memset(out, 0, sizeof(*out));
	if (!SSL_is_init_finished(ssl))
		return CG_ERR_AGAIN;
	if ((cert = SSL_get0_peer_certificate(ssl)) == NULL)
		return 0;
	/* A result of X509_V_OK under SSL_VERIFY_NONE checked no host name;
	 * only a verification the handshake enforced counts. */
	if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) == 0 ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;
	if ((r = tls_cert_identity(cert, out)) != 0)
		return r;
	out->verified = true;
	/*
	 * On a listener of trust domains the verification was an SVID's: the
	 * certificate's one URI name is the SPIFFE ID, of one of them.
	 */
	if (trust_ssl_verifies(ssl)) {
		const char *name = out->spiffe != NULL ?
		    trust_ssl_domain(ssl, out->spiffe->trust_domain) : NULL;

		if (name == NULL || (out->trust_domain = strdup(name)) == NULL) {
			tls_peer_clear(out);
			return name == NULL ? CG_ERR_VERIFY : CG_ERR_NOMEM;
		}
		out->svid = true;
	}
	return 0;
}
