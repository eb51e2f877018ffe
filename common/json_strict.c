/*
 * json_strict.c: cg_json_strict_load(), the only way credgate turns outside
 * bytes into JSON: one value, bounded depth, no duplicate keys, no NUL in
 * strings, nothing after the value.  Which allocator jansson uses is
 * secmem.c's business.
 */
#include "config.h"

#include "common.h"

/*
 * Returns the deepest nesting of arrays and objects in buf, counting
 * brackets outside strings.  Stops early once max is exceeded.
 */
static int
json_depth(const char *buf, size_t len, int max)
{
	size_t i;
	int depth = 0, deepest = 0;
	bool in_str = false;

	for (i = 0; i < len; i++) {
		char c = buf[i];

		if (in_str) {
			if (c == '\\')
				i++;	/* the escaped byte cannot end the string */
			else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			break;
		case '[':
		case '{':
			if (++depth > deepest) {
				deepest = depth;
				if (deepest > max)
					return deepest;
			}
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return deepest;
}

int
cg_json_strict_load(const char *buf, size_t len, int max_depth, json_t **out)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	if (buf == NULL || max_depth < 0)
		return CG_ERR_FORMAT;
	if (json_depth(buf, len, max_depth) > max_depth)
		return CG_ERR_LIMIT;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	if (root == NULL)
		return CG_ERR_FORMAT;
	*out = root;
	return 0;
}
