/*
 * fuzz_jwt.c: libFuzzer harness for jwt_verify() and jwks_load_mem().
 *
 * The first input byte picks the mode: even -> the rest is a token,
 * verified against one issuer holding the fixed public keys below; odd ->
 * the rest is a JWKS.  The seed corpus (corpus/jwt/) holds tokens that
 * really verify against these keys at FUZZ_NOW, so the fuzzer starts past
 * the signature and reaches the claim checks; the private halves were
 * thrown away.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "policy/policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1800000000

static const char fuzz_jwks[] =
	"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"4Mm325z6AS3z1i6ku6_68Y6aOx"
	"tS0T_eJnmxFu_p567WbRWKmAl7sigSORcU03CdFyFXNhyh3VebjxdeueQbbnz9t4"
	"SLgfcNjzgwdpVYx2o7T9kFXK9Kp4NvEe_2RRwAKfvYu0hjRB4bFOI9eVn2OXh6YO"
	"VDY5CtSvgdnN3GVs6L8sSJgiHXfW-BrKAn9N2LGcebl1ixkZIbtC4md9yadaWiLS"
	"HafOHj6hkWrgQP_7hgTDlXqTZIVJcX3ydyGI3bYRNqVqxz2bsr6fRq4CJMg3wHQF"
	"XPWriDxn__eb7HDgGjBbZpNkdJyInjaMKeIo2nkQjBrxz9dBUn_cAe9cIxDw\",\"e"
	"\":\"AQAB\"},{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"I_DdOU19xDDt"
	"9evmULj14l0Reh6oZaIpIZidWC_s1No\",\"y\":\"j_qGdgZLOmLPWo9yS3os25IHsY"
	"7tuv7IZVzJP10oupQ\"},{\"kty\":\"EC\",\"kid\":\"e2\",\"crv\":\"P-384\",\"x\":\"qm"
	"Sw2dhKqYCFZ0iQbaJH6wFyC-FNorkLoHgnhhzRZ1YyBrvgIGDux6FBBNItTsr_\","
	"\"y\":\"HYbv08oZYMvMrqFAVVJvkWAfl3TQgUd2cursj-tgzaIe6d0oB7NjB8Jv_3W"
	"pN_Fn\",\"alg\":\"ES384\"},{\"kty\":\"OKP\",\"kid\":\"o1\",\"crv\":\"Ed25519\",\"x"
	"\":\"zbj2t7Ssp52NnWvPgIUeX1eidXfoc0qSWR7pPK8H_D8\",\"use\":\"sig\"}]}";

static char *fuzz_audiences[] = { (char *)"api://credgate" };
static struct policy_issuer fuzz_issuer = {
	.name = (char *)"fuzz",
	.iss = (char *)"https://issuer.example",
	.audiences = fuzz_audiences,
	.naudiences = 1,
	.algs = JWT_ALG_ALL,
	.max_lifetime_s = 3600,
	.clock_skew_s = 60,
};
static struct policy_issuer *fuzz_issuers[] = { &fuzz_issuer };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct jwks *ks = NULL;
	char err[256];

	(void)argc;
	(void)argv;
	if (jwks_load_mem(fuzz_jwks, sizeof(fuzz_jwks) - 1, &ks,
	    err, sizeof(err)) != 0 || jwks_count(ks) != 4 ||
	    (fuzz_issuer.ring = policy_keyring_new(ks)) == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_identity *id = NULL;
	const char *reason = NULL;
	struct jwks *ks = NULL;
	char err[256];
	int r;

	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		r = jwt_verify(fuzz_issuers, 1, (const char *)data + 1, size - 1,
		    FUZZ_NOW, JWT_DEFAULT_MAX_LEN, &id, &reason, NULL);
		/* The contract: a reason always; an identity exactly on success. */
		if (reason == NULL || (r == 0) != (id != NULL) || r > 0)
			abort();
		if (id != NULL && (id->iss == NULL || id->claims == NULL ||
		    strcmp(id->iss, fuzz_issuer.iss) != 0))
			abort();
		policy_identity_free(id);
	} else {
		r = jwks_load_mem((const char *)data + 1, size - 1, &ks, err, sizeof(err));
		if ((r == 0) != (ks != NULL) || (r == 0 && jwks_count(ks) == 0) ||
		    memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		jwks_free(ks);
	}
	return 0;
}
