/*
 * fuzz_oidc.c: libFuzzer harness for the documents a key set fetcher reads
 * from an issuer: the OIDC discovery document (oidc_discovery_parse()),
 * the JWKS (jwks_load_mem()) and a Cache-Control value
 * (http_cache_max_age()).
 *
 * The first byte picks the parser.  The contracts checked: a reason on
 * every refusal and nothing handed out; a jwks_uri only when it is an https
 * URL within the bound; a key set only when it holds a key, with its
 * symmetric entries counted and equal to itself; a freshness never
 * negative and within its cap.  The seed corpus (corpus/oidc/) holds real
 * shapes of each.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "policy/policy.h"
#include "policy/oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	struct jwks *ks = NULL;
	char err[256], *uri = NULL, *cc;
	int64_t secs;
	size_t n = size - 1;
	int r;

	if (size == 0 || size > 2 * 1024 * 1024)
		return 0;
	switch (data[0] % 3) {
	case 0:
		r = oidc_discovery_parse(in, n, "https://issuer.example", &uri, err,
		    sizeof(err));
		if (r > 0 || (r == 0) != (uri != NULL) || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		if (uri != NULL && (strncasecmp(uri, "https://", 8) != 0 ||
		    strlen(uri) > OIDC_URL_MAX || strpbrk(uri, " \r\n\t") != NULL))
			abort();
		free(uri);
		break;
	case 1:
		r = jwks_load_mem(in, n, &ks, err, sizeof(err));
		if (r > 0 || (r == 0) != (ks != NULL))
			abort();
		if (ks != NULL && (jwks_count(ks) == 0 || !jwks_same(ks, ks) ||
		    jwks_skipped_symmetric(ks) > n))
			abort();
		jwks_free(ks);
		break;
	default:
		if ((cc = malloc(n + 1)) == NULL)
			return 0;
		memcpy(cc, in, n);
		cc[n] = '\0';
		secs = -1;
		r = http_cache_max_age(cc, &secs);
		if ((r != 0 && r != CG_ERR_NOTFOUND) || secs < 0 ||
		    secs > (int64_t)10 * 365 * 24 * 3600)
			abort();
		free(cc);
		break;
	}
	return 0;
}
