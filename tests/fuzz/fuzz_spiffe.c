/*
 * fuzz_spiffe.c: libFuzzer harness for spiffe_id_parse(),
 * spiffe_id_match(), spiffe_pattern_check() and
 * spiffe_trust_domain_check().
 *
 * The input is a candidate SPIFFE ID, and as text a candidate pattern.  A
 * refusal must leave the struct empty; an ID that parses must print back
 * to exactly the input (nothing dropped, nothing rewritten), keep the
 * bounds of policy/spiffe.h, be a pattern the configuration accepts and
 * match itself as one (an ID holds no glob bytes), have a trust domain
 * that checks on its own, and go through a fixed glob pattern without
 * harm.  A pattern the check accepts must go through spiffe_id_match()
 * without harm.  The seed corpus (corpus/spiffe/) holds valid IDs and one
 * of each refusal.
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
	static char back[SPIFFE_ID_MAX + 64], text[4 * SPIFFE_ID_MAX + 1];
	static const struct spiffe_id fixed = { "example.org", "/ns/prod/sa/api" };
	struct spiffe_id id;
	char err[256];
	size_t tdlen, plen;
	bool m;
	int r;

	if (size > 4 * SPIFFE_ID_MAX)
		return 0;
	/* As a pattern: the text up to a NUL, as the configuration has it. */
	memcpy(text, data, size);
	text[size] = '\0';
	r = spiffe_pattern_check(text, err, sizeof(err));
	if (r > 0 || memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	if (r == 0)
		(void)spiffe_id_match(&fixed, text);
	r = spiffe_trust_domain_check(text, strlen(text), err, sizeof(err));
	if (r > 0 || (r == 0 && strpbrk(text, "/:*?") != NULL))
		abort();

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
	if (spiffe_pattern_check(back, err, sizeof(err)) != 0 ||
	    spiffe_trust_domain_check(id.trust_domain, tdlen, err, sizeof(err)) != 0)
		abort();
	m = spiffe_id_match(&id, "spiffe://example.org/ns/*/sa/?*");
	if (m && strcmp(id.trust_domain, "example.org") != 0)
		abort();
	return 0;
}
