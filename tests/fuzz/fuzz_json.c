/*
 * fuzz_json.c: libFuzzer harness for cg_json_strict_load(), the parser of
 * every JSON document credgate reads from outside (token headers and
 * payloads, JWKS, secret files, policy test cases).
 *
 * It is differential: jansson's own parser, with the flags the strict
 * parser promises to match (duplicates refused, any value at the top), is
 * the reference.  Both must refuse an input, or both must accept it and
 * build equal values.  Inputs deeper than the limit are refused as
 * such (CG_ERR_LIMIT) and are not compared.  A NUL byte is never valid
 * JSON and must be refused; jansson is not asked, since it skips a NUL
 * that follows a number or a literal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common.h"

#define FUZZ_DEPTH 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	json_error_t jerr;
	json_t *ours = NULL, *ref;
	int r;

	r = cg_json_strict_load(buf, size, FUZZ_DEPTH, &ours);
	if (r == CG_ERR_LIMIT)
		return 0;
	if (memchr(buf, '\0', size) != NULL) {
		if (r == 0)
			abort();
		return 0;
	}
	ref = json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	if ((r == 0) != (ref != NULL))
		abort();
	/* json_equal() also tells an integer from a real, at every level. */
	if (r == 0 && !json_equal(ours, ref))
		abort();
	json_decref(ours);
	json_decref(ref);
	return 0;
}
