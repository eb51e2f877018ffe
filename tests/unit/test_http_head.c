/*
 * test_http_head.c: field lookup over a parsed head, list elements and
 * token characters.
 */
#include "tests/unit/unit.h"

#include <string.h>

#include "common.h"

#define F(n, v) { { n, sizeof(n) - 1 }, { v, sizeof(v) - 1 }, false }

static struct http_field fields[] = {
	F("Host", "example.com"),
	F("Authorization", "Bearer abc"),
	F("accept", "text/html"),
	F("X-Forwarded-For", "10.0.0.1"),
	F("ACCEPT", "application/json"),
	F("Accept-Encoding", "gzip"),
	F("Accep", "short"),
};

static const struct http_head head = {
	.nfields = CG_ARRAY_LEN(fields),
	.fields = fields,
};

static void
test_find(void **state)
{
	const struct http_field *f;
	size_t iter = 0;

	(void)state;
	f = http_head_find(&head, "authorization", &iter);
	assert_ptr_equal(f, &fields[1]);
	assert_int_equal(iter, 2);
	assert_null(http_head_find(&head, "authorization", &iter));

	/* Repeated fields, any case, in order; prefixes do not count. */
	iter = 0;
	assert_ptr_equal(http_head_find(&head, "Accept", &iter), &fields[2]);
	assert_ptr_equal(http_head_find(&head, "Accept", &iter), &fields[4]);
	assert_null(http_head_find(&head, "Accept", &iter));
	assert_null(http_head_find(&head, "Accept", &iter));

	iter = 0;
	assert_null(http_head_find(&head, "Cookie", &iter));
	assert_null(http_head_find(&head, "", &iter));
	assert_ptr_equal(http_head_find(&head, "HOST", NULL), &fields[0]);
}

static void
test_count(void **state)
{
	static const struct {
		const char *name;
		size_t n;
	} cases[] = {
		{ "accept", 2 }, { "ACCEPT", 2 }, { "host", 1 }, { "accep", 1 },
		{ "accept-encoding", 1 }, { "content-length", 0 }, { "", 0 },
	};
	struct http_head empty = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++)
		assert_int_equal(http_head_count(&head, cases[i].name), cases[i].n);
	assert_int_equal(http_head_count(&empty, "host"), 0);
}

struct list_case {
	const char *value;
	const char *elems[6];	/* NULL-terminated */
};

static const struct list_case list_cases[] = {
	{ "", { NULL } },
	{ "   ", { NULL } },
	{ ",", { NULL } },
	{ " , ,, ", { NULL } },
	{ "a", { "a", NULL } },
	{ "a,b", { "a", "b", NULL } },
	{ "a , b", { "a", "b", NULL } },
	{ "\ta\t,\tb\t", { "a", "b", NULL } },
	{ ",a,,b,", { "a", "b", NULL } },
	{ "gzip, chunked", { "gzip", "chunked", NULL } },
	{ "a, \"b,c\", d", { "a", "\"b,c\"", "d", NULL } },
	{ "\"x\\\",y\", z", { "\"x\\\",y\"", "z", NULL } },
	{ "a;q=0.5, b ; q=1", { "a;q=0.5", "b ; q=1", NULL } },
	{ "a b, c", { "a b", "c", NULL } },
	{ "\"unterminated, x", { "\"unterminated, x", NULL } },
};

static void
test_list(void **state)
{
	struct http_span v, e;
	size_t i, k, pos;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(list_cases); i++) {
		const struct list_case *c = &list_cases[i];

		v.p = c->value;
		v.len = strlen(c->value);
		pos = 0;
		for (k = 0; c->elems[k] != NULL; k++) {
			if (!http_list_next(&v, &pos, &e))
				fail_msg("case %zu: missing element %zu", i, k);
			if (e.len != strlen(c->elems[k]) ||
			    memcmp(e.p, c->elems[k], e.len) != 0)
				fail_msg("case %zu elem %zu: got [%.*s] want [%s]",
				    i, k, (int)e.len, e.p, c->elems[k]);
		}
		if (http_list_next(&v, &pos, &e))
			fail_msg("case %zu: extra element [%.*s]", i, (int)e.len, e.p);
		/* Stays at the end. */
		assert_false(http_list_next(&v, &pos, &e));
	}
}

static void
test_list_explicit_len(void **state)
{
	struct http_span v = { "a,b,c", 3 }, e;
	size_t pos = 0;

	(void)state;
	assert_true(http_list_next(&v, &pos, &e));
	assert_true(http_list_next(&v, &pos, &e));
	assert_int_equal(e.len, 1);
	assert_int_equal(e.p[0], 'b');
	assert_false(http_list_next(&v, &pos, &e));
}

static void
test_tchar(void **state)
{
	static const char tchars[] = "!#$%&'*+-.^_`|~"
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned c;

	(void)state;
	for (c = 0; c < 256; c++) {
		bool want = c != 0 && strchr(tchars, (int)c) != NULL;

		if (http_is_tchar((unsigned char)c) != want)
			fail_msg("byte 0x%02x", c);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_list_explicit_len),
		cmocka_unit_test(test_tchar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
