/*
 * test_json.c: cg_json_strict_load(): one value, bounded depth, no
 * duplicate keys, no NUL in strings, nothing after the value.
 */
#include "tests/unit/unit.h"

#include <string.h>

#include "common.h"

struct json_case {
	const char *text;
	size_t len;		/* 0: strlen(text) */
	int depth;
	int r;
};

#define T(s, d, r) { s, 0, d, r }
#define TN(s, d, r) { s, sizeof(s) - 1, d, r }

static const struct json_case json_cases[] = {
	T("{}", 1, 0),
	T("{}", 0, CG_ERR_LIMIT),
	T("[]", 1, 0),
	T("42", 0, 0),			/* any value, not only containers */
	T("\"x\"", 0, 0),
	T("null", 0, 0),
	T("{\"a\":1,\"b\":[1,2,{\"c\":true}]}", 3, 0),
	T("{\"a\":1,\"b\":[1,2,{\"c\":true}]}", 2, CG_ERR_LIMIT),
	T("[[[[]]]]", 4, 0),
	T("[[[[]]]]", 3, CG_ERR_LIMIT),
	T("[[],[],[[]]]", 3, 0),	/* siblings do not add up */
	T("[[],[],[[]]]", 2, CG_ERR_LIMIT),
	/* Brackets inside strings do not count, escaped quotes included. */
	T("{\"a\":\"[[[[{{{{\"}", 1, 0),
	T("[\"\\\"[[[[\"]", 1, 0),
	T("[\"\\\\\",[[]]]", 2, CG_ERR_LIMIT),
	T("{\"a\":1,\"a\":2}", 4, CG_ERR_FORMAT),	/* duplicate keys */
	T("{\"a\":{\"b\":1,\"b\":1}}", 4, CG_ERR_FORMAT),
	T("{\"a\":1} x", 4, CG_ERR_FORMAT),		/* trailing garbage */
	T("{\"a\":1}{}", 4, CG_ERR_FORMAT),
	T("1 2", 4, CG_ERR_FORMAT),
	T("{\"a\":1}  \n", 4, 0),			/* trailing space is fine */
	TN("{\"a\":1}\0", 4, CG_ERR_FORMAT),		/* trailing NUL */
	TN("[\"a\\u0000b\"]", 4, CG_ERR_FORMAT),	/* NUL in a string */
	T("", 4, CG_ERR_FORMAT),
	T("{", 4, CG_ERR_FORMAT),
	T("{\"a\":}", 4, CG_ERR_FORMAT),
	T("[1,]", 4, CG_ERR_FORMAT),
	T("{'a':1}", 4, CG_ERR_FORMAT),
	T("\"\xff\"", 4, CG_ERR_FORMAT),		/* not UTF-8 */
};

static void
test_json_table(void **state)
{
	json_t *v;
	size_t i, len;
	int r;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(json_cases); i++) {
		const struct json_case *c = &json_cases[i];

		len = c->len != 0 ? c->len : strlen(c->text);
		v = (json_t *)0x1;
		r = cg_json_strict_load(c->text, len, c->depth, &v);
		if (r != c->r)
			fail_msg("case %zu (%s): got %d want %d", i, c->text, r, c->r);
		if (r == 0)
			assert_non_null(v);
		else
			assert_null(v);
		json_decref(v);
	}
}

static void
test_json_deep_input(void **state)
{
	char buf[20001];
	json_t *v;

	(void)state;
	/* Far deeper than jansson's own limit: refused before parsing. */
	memset(buf, '[', 10000);
	memset(buf + 10000, ']', 10000);
	buf[20000] = '\0';
	assert_int_equal(cg_json_strict_load(buf, 20000, 16, &v), CG_ERR_LIMIT);
	assert_null(v);
	/* Unbalanced closers must not hide depth. */
	assert_int_equal(cg_json_strict_load("]]][[[[]]]]", 11, 3, &v),
	    CG_ERR_LIMIT);
}

static void
test_json_explicit_len(void **state)
{
	json_t *v;

	(void)state;
	/* Only len bytes are parsed. */
	assert_int_equal(cg_json_strict_load("{\"a\":1}garbage", 7, 2, &v), 0);
	assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
	json_decref(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_table),
		cmocka_unit_test(test_json_deep_input),
		cmocka_unit_test(test_json_explicit_len),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
