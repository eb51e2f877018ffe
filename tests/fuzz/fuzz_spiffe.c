/*
 * fuzz_spiffe.c: libFuzzer harness for spiffe_id_parse() and
 * spiffe_id_match().
 *
 * The input is a candidate SPIFFE ID.  A refusal must leave the struct
 * empty; an ID that parses must print back to exactly the input (nothing
 * dropped, nothing rewritten), keep the bounds of policy/spiffe.h, match
 * itself as a pattern (an ID holds no glob bytes), and go through a fixed
 * glob pattern without harm.  The seed corpus (corpus/spiffe/) holds valid
 * IDs and one of each refusal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "policy/spiffe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char back[SPIFFE_ID_MAX + 64];
	struct spiffe_id id;
	char err[256];
	size_t tdlen, plen;
	bool m;
	int r;

	if (size > 4 * SPIFFE_ID_MAX)
		return 0;
	r = spiffe_id_parse((const char *)data, size, &id, err, sizeof(err));
	if (r > 0)
		abort();
	if (r != 0) {
		if (id.trust_domain[0] != '\0' || id.path[0] != '\0' ||
		    memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	tdlen = strnlen(id.trust_domain, sizeof(id.trust_domain));
	plen = strnlen(id.path, sizeof(id.path));
	if (tdlen == 0 || tdlen > SPIFFE_TD_MAX || plen > SPIFFE_PATH_MAX ||
	    size > SPIFFE_ID_MAX)
		abort();
	if (SPIFFE_SCHEME_LEN + tdlen + plen != size)
		abort();
	memcpy(back, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN);
	memcpy(back + SPIFFE_SCHEME_LEN, id.trust_domain, tdlen);
	memcpy(back + SPIFFE_SCHEME_LEN + tdlen, id.path, plen + 1);
	if (memcmp(back, data, size) != 0)
		abort();
	if (!spiffe_id_match(&id, back))
		abort();
	m = spiffe_id_match(&id, "spiffe://example.org/ns/*/sa/?*");
	if (m && strcmp(id.trust_domain, "example.org") != 0)
		abort();
	return 0;
}
