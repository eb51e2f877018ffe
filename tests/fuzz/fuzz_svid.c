/*
 * fuzz_svid.c: libFuzzer harness for the X.509-SVID verification and the
 * trust bundle loader (policy/svid.h).
 *
 * The first byte picks what the rest is.  Even: a DER certificate a
 * caller could present, read by spiffe_leaf_id() and verified by
 * svid_verify() against a bundle made at start (a certificate of the
 * harness' own authority can only verify if it was signed by its key, which
 * the input cannot be: so every one must be refused, and cleanly).  Odd:
 * the text of a bundle file, loaded by svid_bundle_load(), which must
 * either give a store with at least one certificate or a reason.  The seed
 * corpus (corpus/svid/) holds an SVID, a CA certificate, and a bundle.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "policy/svid.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static X509_STORE *store;

/* A self-signed authority for spiffe://example.org, made once. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	(void)argc;
	(void)argv;
	if (key == NULL || x == NULL || (store = X509_STORE_new()) == NULL)
		abort();
	name = X509_get_subject_name(x);
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"fuzz root", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 365 * 86400L) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		abort();
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
	    "critical,CA:TRUE")) == NULL || X509_add_ext(x, ext, -1) != 1)
		abort();
	X509_EXTENSION_free(ext);
	if (X509_sign(x, key, EVP_sha256()) <= 0 || X509_STORE_add_cert(store, x) != 1 ||
	    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN) != 1)
		abort();
	X509_free(x);
	EVP_PKEY_free(key);
	return 0;
}

static void
check_err(const char *err, size_t size)
{
	if (memchr(err, '\0', size) == NULL || err[0] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p;
	struct spiffe_id id;
	X509_STORE *loaded;
	X509 *cert;
	char err[512];
	size_t n;
	int r, xe;

	if (size < 1 || size > 64 * 1024)
		return 0;
	if ((data[0] & 1) != 0) {
		r = svid_bundle_load((const char *)data + 1, size - 1, &loaded, &n, err,
		    sizeof(err));
		if (r > 0 || (r == 0) != (loaded != NULL) || (r == 0 && n == 0))
			abort();
		if (r != 0)
			check_err(err, sizeof(err));
		X509_STORE_free(loaded);
		return 0;
	}
	p = data + 1;
	if ((cert = d2i_X509(NULL, &p, (long)(size - 1))) == NULL)
		return 0;
	memset(&id, 0xa5, sizeof(id));
	r = spiffe_leaf_id(cert, &id, err, sizeof(err));
	if (r > 0)
		abort();
	if (r != 0) {
		check_err(err, sizeof(err));
		if (id.trust_domain[0] != '\0')
			abort();
	} else if (id.trust_domain[0] == '\0')
		abort();
	memset(&id, 0xa5, sizeof(id));
	r = svid_verify(store, cert, NULL, 1800000000, 86400, &id, &xe, err, sizeof(err));
	/* Nothing the input holds was signed by the harness' key. */
	if (r == 0 || r > 0 || xe == X509_V_OK || id.trust_domain[0] != '\0')
		abort();
	check_err(err, sizeof(err));
	X509_free(cert);
	return 0;
}
