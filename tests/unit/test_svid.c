/*
 * test_svid.c: trust bundles (svid_bundle_load(), svid_bundle_load_file())
 * and X.509-SVIDs verified against them (spiffe_leaf_id(), svid_verify()),
 * with EC P-256 authorities and leaves made at test time.
 */
#include "config.h"

#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tests/unit/unit.h"
#include "common.h"
#include "policy/svid.h"

#define NOW	((int64_t)1800000000)	/* 2027-01-15, any fixed instant */
#define HOUR	((int64_t)3600)
#define DAY	(24 * HOUR)

#define ID	"spiffe://prod.example.org/ns/prod/sa/api"
#define KU	"critical,digitalSignature"

/* An authority or a leaf, with its key. */
struct cert {
	X509 *x;
	EVP_PKEY *key;
};

static struct cert root, other_root, inter, old_inter;

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for cn, valid from nb to na (Unix seconds), signed by
 * issuer (NULL: itself), with the extensions given in OpenSSL's
 * configuration syntax (NULL: none of that kind).
 */
static struct cert
make(const char *cn, const struct cert *issuer, int64_t nb, int64_t na, const char *san,
    const char *bc, const char *ku, const char *eku)
{
	static long serial = 1;
	struct cert c;
	X509_NAME *name;

	c.key = EVP_EC_gen("P-256");
	assert_non_null(c.key);
	c.x = X509_new();
	assert_non_null(c.x);
	assert_int_equal(X509_set_version(c.x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(c.x), serial++), 1);
	name = X509_get_subject_name(c.x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(c.x, issuer != NULL ?
	    X509_get_subject_name(issuer->x) : name), 1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(c.x), (time_t)nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(c.x), (time_t)na));
	assert_int_equal(X509_set_pubkey(c.x, c.key), 1);
	if (san != NULL)
		add_ext(c.x, issuer != NULL ? issuer->x : c.x, NID_subject_alt_name, san);
	if (bc != NULL)
		add_ext(c.x, issuer != NULL ? issuer->x : c.x, NID_basic_constraints, bc);
	if (ku != NULL)
		add_ext(c.x, issuer != NULL ? issuer->x : c.x, NID_key_usage, ku);
	if (eku != NULL)
		add_ext(c.x, issuer != NULL ? issuer->x : c.x, NID_ext_key_usage, eku);
	assert_true(X509_sign(c.x, issuer != NULL ? issuer->key : c.key, EVP_sha256()) > 0);
	return c;
}

static struct cert
make_ca(const char *cn, const struct cert *issuer, int64_t nb, int64_t na)
{
	return make(cn, issuer, nb, na, "URI:spiffe://prod.example.org", "critical,CA:TRUE",
	    "critical,keyCertSign,cRLSign", NULL);
}

/* A leaf SVID for ID, valid an hour either side of NOW. */
static struct cert
make_leaf(const struct cert *issuer)
{
	return make("api", issuer, NOW - HOUR, NOW + HOUR, "URI:" ID, "critical,CA:FALSE", KU,
	    NULL);
}

static void
cert_free(struct cert *c)
{
	X509_free(c->x);
	EVP_PKEY_free(c->key);
	memset(c, 0, sizeof(*c));
}

/* The PEM of the certificates given, NULL-terminated, as one text. */
static char *
pem_of(X509 *first, ...)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	va_list ap;
	long n;

	assert_non_null(bio);
	va_start(ap, first);
	for (X509 *x = first; x != NULL; x = va_arg(ap, X509 *))
		assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	va_end(ap);
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	assert_non_null(out);
	BIO_free(bio);
	return out;
}

static X509_STORE *
bundle(X509 *first, ...)
{
	BIO *bio = BIO_new(BIO_s_mem());
	X509_STORE *store;
	char *data, err[256];
	va_list ap;
	long n;

	assert_non_null(bio);
	va_start(ap, first);
	for (X509 *x = first; x != NULL; x = va_arg(ap, X509 *))
		assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	va_end(ap);
	n = BIO_get_mem_data(bio, &data);
	if (svid_bundle_load(data, (size_t)n, &store, NULL, err, sizeof(err)) != 0)
		fail_msg("bundle: %s", err);
	BIO_free(bio);
	return store;
}

static int
setup(void **state)
{
	(void)state;
	root = make_ca("root", NULL, NOW - DAY, NOW + 30 * DAY);
	other_root = make_ca("root", NULL, NOW - DAY, NOW + 30 * DAY);
	inter = make_ca("intermediate", &root, NOW - DAY, NOW + 7 * DAY);
	old_inter = make_ca("old intermediate", &root, NOW - 7 * DAY, NOW - DAY);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	cert_free(&root);
	cert_free(&other_root);
	cert_free(&inter);
	cert_free(&old_inter);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Bundles                                                             */
/* ------------------------------------------------------------------ */

static void
load_case(const char *what, const char *pem, int code, size_t ncerts, const char *want)
{
	X509_STORE *store = (X509_STORE *)(uintptr_t)1;
	char err[256] = "";
	size_t n = 99;
	int r;

	r = svid_bundle_load(pem, pem != NULL ? strlen(pem) : 0, &store, &n, err, sizeof(err));
	if (r != code)
		fail_msg("%s: got %d (%s), want %d", what, r, err, code);
	if (r == 0) {
		assert_non_null(store);
		assert_int_equal(n, ncerts);
		X509_STORE_free(store);
		return;
	}
	assert_null(store);
	assert_int_equal(n, 0);
	if (strstr(err, want) == NULL)
		fail_msg("%s: reason \"%s\" lacks \"%s\"", what, err, want);
}

static void
test_bundle_load(void **state)
{
	struct cert leaf = make_leaf(&root);
	char *one = pem_of(root.x, NULL), *two = pem_of(root.x, inter.x, NULL);
	char *twice = pem_of(root.x, root.x, NULL), *with_leaf = pem_of(root.x, leaf.x, NULL);
	char *bad, *text, *keyed, *crl_pem;
	BIO *bio;
	X509_CRL *crl;
	long n;

	(void)state;
	load_case("one authority", one, 0, 1, NULL);
	load_case("two authorities", two, 0, 2, NULL);
	load_case("the same twice", twice, 0, 2, NULL);
	load_case("empty", "", CG_ERR_FORMAT, 0, "empty");
	load_case("NULL", NULL, CG_ERR_FORMAT, 0, "empty");
	load_case("not PEM", "{\"keys\": []}\n", CG_ERR_FORMAT, 0, "holds no PEM certificate");
	load_case("a leaf among the authorities", with_leaf, CG_ERR_FORMAT, 0,
	    "certificate 2 is not a CA certificate");

	/* Comments around the blocks are fine. */
	assert_true(asprintf(&text, "# prod.example.org authorities\n%s\nend\n", one) > 0);
	load_case("text around the blocks", text, 0, 1, NULL);
	free(text);

	/* A block whose base64 is damaged. */
	bad = strdup(one);
	assert_non_null(bad);
	memset(strchr(bad, '\n') + 5, '!', 8);
	load_case("damaged block", bad, CG_ERR_FORMAT, 0, "not a PEM bundle");
	free(bad);

	/* A private key has no place in a bundle. */
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509(bio, root.x), 1);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, root.key, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &text);
	keyed = strndup(text, (size_t)n);
	BIO_free(bio);
	load_case("with a private key", keyed, CG_ERR_FORMAT, 0, "holds a private key");
	assert_non_null(strstr(keyed, "PRIVATE KEY"));
	free(keyed);

	/* Nor a CRL. */
	crl = X509_CRL_new();
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(root.x)), 1);
	{
		ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)NOW);

		assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
		ASN1_TIME_free(t);
	}
	assert_true(X509_CRL_sign(crl, root.key, EVP_sha256()) > 0);
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509(bio, root.x), 1);
	assert_int_equal(PEM_write_bio_X509_CRL(bio, crl), 1);
	n = BIO_get_mem_data(bio, &text);
	crl_pem = strndup(text, (size_t)n);
	BIO_free(bio);
	X509_CRL_free(crl);
	load_case("with a CRL", crl_pem, CG_ERR_FORMAT, 0, "holds a CRL");
	free(crl_pem);

	free(one);
	free(two);
	free(twice);
	free(with_leaf);
	cert_free(&leaf);
}

static void
test_bundle_load_file(void **state)
{
	char dir[] = "/tmp/test_svid.XXXXXX", path[64], err[512];
	char *one = pem_of(root.x, NULL);
	X509_STORE *store;
	struct stat st, want;
	size_t n;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/prod.pem", dir);

	/* Missing: the reason starts with the path. */
	assert_int_equal(svid_bundle_load_file(path, &store, &n, &st, err, sizeof(err)),
	    CG_ERR_NOTFOUND);
	assert_null(store);
	assert_memory_equal(err, path, strlen(path));

	/* A folder is not a bundle. */
	assert_int_equal(svid_bundle_load_file(dir, &store, &n, NULL, err, sizeof(err)),
	    CG_ERR_IO);

	/* Loaded, with the stat of what was read. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(one, f);
	fclose(f);
	assert_int_equal(svid_bundle_load_file(path, &store, &n, &st, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(stat(path, &want), 0);
	assert_int_equal(st.st_ino, want.st_ino);
	assert_int_equal(st.st_size, want.st_size);
	X509_STORE_free(store);

	/* Empty: read (its stat is known), but no bundle. */
	f = fopen(path, "w");
	fclose(f);
	assert_int_equal(svid_bundle_load_file(path, &store, &n, &st, err, sizeof(err)),
	    CG_ERR_FORMAT);
	assert_null(store);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_ino, want.st_ino);
	assert_memory_equal(err, path, strlen(path));
	assert_non_null(strstr(err, "empty"));

	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	free(one);
}

/* ------------------------------------------------------------------ */
/* The ID that picks the trust domain                                  */
/* ------------------------------------------------------------------ */

static void
test_leaf_id(void **state)
{
	static const struct {
		const char *san;
		int code;
		const char *want;	/* the path, or a fragment of the reason */
	} t[] = {
		{ "URI:" ID, 0, "/ns/prod/sa/api" },
		{ "DNS:api.example.org,URI:" ID, 0, "/ns/prod/sa/api" },
		{ "URI:spiffe://prod.example.org", 0, "" },
		{ "DNS:api.example.org", CG_ERR_VERIFY, "0 URI subjectAltNames" },
		{ NULL, CG_ERR_VERIFY, "0 URI subjectAltNames" },
		{ "URI:" ID ",URI:spiffe://prod.example.org/b", CG_ERR_VERIFY,
		  "2 URI subjectAltNames" },
		{ "URI:https://prod.example.org/x", CG_ERR_VERIFY, "does not start with" },
		{ "URI:spiffe://Prod.example.org/x", CG_ERR_VERIFY, "uppercase" },
	};
	struct spiffe_id id;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(t); i++) {
		struct cert c = make("x", &root, NOW - HOUR, NOW + HOUR, t[i].san, NULL, KU, NULL);
		int r;

		memset(&id, 0xa5, sizeof(id));
		r = spiffe_leaf_id(c.x, &id, err, sizeof(err));
		cert_free(&c);
		if (r != t[i].code)
			fail_msg("case %zu: got %d (%s), want %d", i, r, err, t[i].code);
		if (r == 0) {
			assert_string_equal(id.trust_domain, "prod.example.org");
			assert_string_equal(id.path, t[i].want);
			continue;
		}
		assert_string_equal(id.trust_domain, "");
		if (strstr(err, t[i].want) == NULL)
			fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, err, t[i].want);
	}
	assert_int_equal(spiffe_leaf_id(NULL, &id, err, sizeof(err)), CG_ERR_FORMAT);
}

/* ------------------------------------------------------------------ */
/* Verification                                                        */
/* ------------------------------------------------------------------ */

enum chain { LEAF_ONLY, WITH_INTER, WITH_OLD_INTER, NO_CHAIN };

struct verify_case {
	const char *name;
	struct cert *issuer;	/* of the leaf */
	const char *san, *bc, *ku, *eku;
	int64_t nb, na;		/* relative to NOW */
	enum chain chain;	/* what the peer sends with the leaf */
	int store;		/* 0: root; 1: the intermediate alone; 2: other root */
	int64_t max_lifetime;
	int code;
	int x509_err;
	const char *want;	/* fragment of the reason */
};

static void
test_verify(void **state)
{
	const struct verify_case t[] = {
		{ "leaf of the root", &root, "URI:" ID, NULL, KU, NULL, -HOUR, HOUR, LEAF_ONLY,
		  0, 0, 0, X509_V_OK, NULL },
		{ "leaf of an intermediate, sent along", &inter, "URI:" ID, NULL, KU, NULL,
		  -HOUR, HOUR, WITH_INTER, 0, 0, 0, X509_V_OK, NULL },
		{ "clientAuth usage", &root, "URI:" ID, NULL, KU, "clientAuth,serverAuth",
		  -HOUR, HOUR, LEAF_ONLY, 0, 0, 0, X509_V_OK, NULL },
		{ "an intermediate as the bundle's anchor", &inter, "URI:" ID, NULL, KU, NULL,
		  -HOUR, HOUR, LEAF_ONLY, 1, 0, 0, X509_V_OK, NULL },
		{ "lifetime at the limit", &root, "URI:" ID, NULL, KU, NULL, -HOUR, HOUR,
		  LEAF_ONLY, 0, 2 * HOUR, 0, X509_V_OK, NULL },

		{ "intermediate not sent", &inter, "URI:" ID, NULL, KU, NULL, -HOUR, HOUR,
		  NO_CHAIN, 0, 0, CG_ERR_VERIFY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
		  "certificate chain, depth 0: unable to get local issuer certificate" },
		{ "another trust domain's authority", &root, "URI:" ID, NULL, KU, NULL,
		  -HOUR, HOUR, LEAF_ONLY, 2, 0, CG_ERR_VERIFY, X509_V_ERR_CERT_SIGNATURE_FAILURE,
		  "certificate chain" },
		{ "signed by a look-alike root", &other_root, "URI:" ID, NULL, KU, NULL,
		  -HOUR, HOUR, LEAF_ONLY, 0, 0, CG_ERR_VERIFY, X509_V_ERR_CERT_SIGNATURE_FAILURE,
		  "certificate chain" },
		{ "expired intermediate", &old_inter, "URI:" ID, NULL, KU, NULL, -HOUR, HOUR,
		  WITH_OLD_INTER, 0, 0, CG_ERR_VERIFY, X509_V_ERR_CERT_HAS_EXPIRED,
		  "depth 1: certificate has expired" },
		{ "serverAuth only", &root, "URI:" ID, NULL, KU, "serverAuth", -HOUR, HOUR,
		  LEAF_ONLY, 0, 0, CG_ERR_VERIFY, X509_V_ERR_INVALID_PURPOSE,
		  "unsuitable certificate purpose" },
		{ "expired leaf", &root, "URI:" ID, NULL, KU, NULL, -2 * HOUR, -HOUR, LEAF_ONLY,
		  0, 0, CG_ERR_EXPIRED, X509_V_ERR_CERT_HAS_EXPIRED, "certificate expired" },
		{ "leaf not yet valid", &root, "URI:" ID, NULL, KU, NULL, HOUR, 2 * HOUR,
		  LEAF_ONLY, 0, 0, CG_ERR_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID,
		  "not yet valid" },
		{ "too long-lived", &root, "URI:" ID, NULL, KU, NULL, -HOUR, 2 * DAY, LEAF_ONLY,
		  0, DAY, CG_ERR_LIMIT, X509_V_ERR_APPLICATION_VERIFICATION,
		  "exceeds the 86400 s allowed" },
		{ "CA leaf", &root, "URI:" ID, "critical,CA:TRUE", KU, NULL, -HOUR, HOUR,
		  LEAF_ONLY, 0, 0, CG_ERR_VERIFY, X509_V_ERR_APPLICATION_VERIFICATION, "is a CA" },
		{ "two URI SANs", &root, "URI:" ID ",URI:spiffe://prod.example.org/b", NULL, KU,
		  NULL, -HOUR, HOUR, LEAF_ONLY, 0, 0, CG_ERR_VERIFY,
		  X509_V_ERR_APPLICATION_VERIFICATION, "2 URI subjectAltNames" },
		{ "no URI SAN", &root, "DNS:api.example.org", NULL, KU, NULL, -HOUR, HOUR,
		  LEAF_ONLY, 0, 0, CG_ERR_VERIFY, X509_V_ERR_APPLICATION_VERIFICATION,
		  "0 URI subjectAltNames" },
		{ "not a SPIFFE URI", &root, "URI:https://prod.example.org/x", NULL, KU, NULL,
		  -HOUR, HOUR, LEAF_ONLY, 0, 0, CG_ERR_VERIFY, X509_V_ERR_APPLICATION_VERIFICATION,
		  "does not start with" },
		{ "no key usage", &root, "URI:" ID, NULL, NULL, NULL, -HOUR, HOUR, LEAF_ONLY,
		  0, 0, CG_ERR_VERIFY, X509_V_ERR_APPLICATION_VERIFICATION, "no keyUsage" },
	};
	X509_STORE *stores[3];
	size_t i;

	(void)state;
	stores[0] = bundle(root.x, NULL);
	stores[1] = bundle(inter.x, NULL);
	stores[2] = bundle(other_root.x, NULL);
	for (i = 0; i < CG_ARRAY_LEN(t); i++) {
		struct cert leaf = make("api", t[i].issuer, NOW + t[i].nb, NOW + t[i].na,
		    t[i].san, t[i].bc, t[i].ku, t[i].eku);
		STACK_OF(X509) *chain = NULL;
		struct spiffe_id id;
		char err[256] = "";
		int r, xe = -1;

		if (t[i].chain != NO_CHAIN) {
			chain = sk_X509_new_null();
			assert_true(sk_X509_push(chain, leaf.x) > 0);
			if (t[i].chain == WITH_INTER)
				assert_true(sk_X509_push(chain, inter.x) > 0);
			if (t[i].chain == WITH_OLD_INTER)
				assert_true(sk_X509_push(chain, old_inter.x) > 0);
		}
		memset(&id, 0xa5, sizeof(id));
		r = svid_verify(stores[t[i].store], leaf.x, chain, NOW, t[i].max_lifetime, &id,
		    &xe, err, sizeof(err));
		sk_X509_free(chain);
		cert_free(&leaf);
		if (r != t[i].code)
			fail_msg("%s: got %d (%s), want %d", t[i].name, r, err, t[i].code);
		if (xe != t[i].x509_err)
			fail_msg("%s: X509 error %d (%s), want %d", t[i].name, xe,
			    X509_verify_cert_error_string(xe), t[i].x509_err);
		if (r == 0) {
			assert_string_equal(id.trust_domain, "prod.example.org");
			assert_string_equal(id.path, "/ns/prod/sa/api");
			continue;
		}
		assert_string_equal(id.trust_domain, "");
		if (strstr(err, t[i].want) == NULL)
			fail_msg("%s: reason \"%s\" lacks \"%s\"", t[i].name, err, t[i].want);
	}
	for (i = 0; i < 3; i++)
		X509_STORE_free(stores[i]);
}

/* The time is the caller's: the same leaf verifies at one instant and not
 * at another, and a missing store refuses. */
static void
test_verify_time(void **state)
{
	X509_STORE *store = bundle(root.x, NULL);
	struct cert leaf = make_leaf(&root);
	struct spiffe_id id;
	char err[256];

	(void)state;
	assert_int_equal(svid_verify(store, leaf.x, NULL, NOW, 0, &id, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(svid_verify(store, leaf.x, NULL, NOW + HOUR + 1, 0, &id, NULL, err,
	    sizeof(err)), CG_ERR_EXPIRED);
	/* The leaf's first second. */
	assert_int_equal(svid_verify(store, leaf.x, NULL, NOW - HOUR, 0, &id, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(svid_verify(NULL, leaf.x, NULL, NOW, 0, &id, NULL, err,
	    sizeof(err)), CG_ERR_FORMAT);
	X509_STORE_free(store);
	cert_free(&leaf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bundle_load),
		cmocka_unit_test(test_bundle_load_file),
		cmocka_unit_test(test_leaf_id),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_verify_time),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
