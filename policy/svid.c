/*
 * svid.c: trust bundles of X.509 authorities, and X.509-SVIDs verified
 * against them.
 *
 * Owns the loading of a bundle into a store and the verification of one
 * leaf and its chain against one store.  It does not pick the trust domain
 * (the caller does, from spiffe_leaf_id()), watch files, publish stores to
 * threads, or decide policy.
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "policy/svid.h"

/* pem_password_cb: an encrypted key in a bundle is refused, never asked for. */
static int
svid_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int
svid_bundle_load(const char *pem, size_t len, X509_STORE **out, size_t *ncerts,
    char *err, size_t errlen)
{
	STACK_OF(X509_INFO) *infos = NULL;
	X509_STORE *store = NULL;
	BIO *bio = NULL;
	size_t n = 0;
	int i, r;

	*out = NULL;
	if (ncerts != NULL)
		*ncerts = 0;
	ERR_clear_error();
	if (pem == NULL || len == 0) {
		cg_errf(err, errlen, "empty: a bundle holds PEM certificates");
		return CG_ERR_FORMAT;
	}
	if (len > INT_MAX) {
		cg_errf(err, errlen, "too large");
		return CG_ERR_FORMAT;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL ||
	    (store = X509_STORE_new()) == NULL) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	if ((infos = PEM_X509_INFO_read_bio(bio, NULL, svid_no_passphrase, NULL)) == NULL) {
		unsigned long e = ERR_peek_last_error();
		const char *why = ERR_reason_error_string(e);

		cg_errf(err, errlen, "not a PEM bundle: %s", why != NULL ? why :
		    "a block does not parse");
		r = CG_ERR_FORMAT;
		goto out;
	}
	for (i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *in = sk_X509_INFO_value(infos, i);

		if (in->x_pkey != NULL || in->enc_data != NULL) {
			cg_errf(err, errlen, "holds a private key: a trust bundle holds "
			    "certificates only");
			r = CG_ERR_FORMAT;
			goto out;
		}
		if (in->crl != NULL) {
			cg_errf(err, errlen, "holds a CRL: a trust bundle holds certificates only");
			r = CG_ERR_FORMAT;
			goto out;
		}
		if (in->x509 == NULL)
			continue;
		n++;
		/* A leaf among the authorities would be trusted as itself. */
		if (X509_check_ca(in->x509) == 0) {
			cg_errf(err, errlen, "certificate %zu is not a CA certificate "
			    "(basicConstraints cA)", n);
			r = CG_ERR_FORMAT;
			goto out;
		}
		if (X509_STORE_add_cert(store, in->x509) != 1) {
			unsigned long e = ERR_peek_last_error();

			/* The same authority twice is harmless. */
			if (ERR_GET_REASON(e) == X509_R_CERT_ALREADY_IN_HASH_TABLE) {
				ERR_clear_error();
				continue;
			}
			cg_errf(err, errlen, "certificate %zu cannot be added", n);
			r = CG_ERR_NOMEM;
			goto out;
		}
	}
	if (n == 0) {
		cg_errf(err, errlen, "holds no PEM certificate");
		r = CG_ERR_FORMAT;
		goto out;
	}
	/*
	 * Every authority is an anchor, self-signed or not, and a chain is
	 * checked for client authentication.
	 */
	if (X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN) != 1 ||
	    X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT) != 1) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	*out = store;
	store = NULL;
	if (ncerts != NULL)
		*ncerts = n;
	r = 0;
 out:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	X509_STORE_free(store);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int
svid_bundle_load_file(const char *path, X509_STORE **out, size_t *ncerts, struct stat *st,
    char *err, size_t errlen)
{
	struct cg_file f;
	char why[512];
	int r;

	*out = NULL;
	if (ncerts != NULL)
		*ncerts = 0;
	if (st != NULL)
		memset(st, 0, sizeof(*st));
	/* A bundle is public: ordinary memory, any mode, links followed. */
	if ((r = cg_file_read(path, CG_FILE_FOLLOW, SVID_BUNDLE_MAX_FILE, 0, &f, why,
	    sizeof(why))) != 0) {
		cg_errf(err, errlen, "%s", why);
		return r == CG_ERR_UNSUPPORTED ? CG_ERR_IO : r;
	}
	if (st != NULL)
		*st = f.st;
	if ((r = svid_bundle_load(f.data, f.len, out, ncerts, why, sizeof(why))) != 0)
		cg_errf(err, errlen, "%s: %s", path, why);
	cg_file_free(&f);
	return r;
}

int
svid_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *untrusted, int64_t now_s,
    int64_t max_lifetime_s, struct spiffe_id *out, int *x509_err, char *err,
    size_t errlen)
{
	X509_STORE_CTX *ctx = NULL;
	struct spiffe_id id;
	int r, e;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (x509_err != NULL)
		*x509_err = X509_V_ERR_APPLICATION_VERIFICATION;
	if (store == NULL || out == NULL) {
		cg_errf(err, errlen, "no trust bundle");
		return CG_ERR_FORMAT;
	}
	/* The leaf's own rules first: they cost no signature check. */
	if ((r = spiffe_svid_check(leaf, now_s, max_lifetime_s, &id, err, errlen)) != 0) {
		if (r == CG_ERR_EXPIRED && x509_err != NULL)
			*x509_err = X509_cmp_time(X509_get0_notBefore(leaf),
			    &(time_t){ (time_t)now_s }) > 0 ? X509_V_ERR_CERT_NOT_YET_VALID :
			    X509_V_ERR_CERT_HAS_EXPIRED;
		goto out;
	}
	ERR_clear_error();
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		cg_errf(err, errlen, "out of memory");
		r = CG_ERR_NOMEM;
		goto out;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now_s);
	if (X509_verify_cert(ctx) != 1) {
		e = X509_STORE_CTX_get_error(ctx);
		if (x509_err != NULL)
			*x509_err = e;
		cg_errf(err, errlen, "certificate chain, depth %d: %s",
		    X509_STORE_CTX_get_error_depth(ctx), X509_verify_cert_error_string(e));
		r = CG_ERR_VERIFY;
		goto out;
	}
	*out = id;
	if (x509_err != NULL)
		*x509_err = X509_V_OK;
	r = 0;
 out:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return r;
}
