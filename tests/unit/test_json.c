/*
 * test_json.c: cg_json_strict_load(): one value, bounded depth, no
 * duplicate keys, no NUL in strings, nothing after the value; and the
 * same answer and the same value as jansson's own parser, on tricky
 * inputs and on many mutations of them.
 */
#include "tests/unit/unit.h"

#include <stdint.h>
#include <stdio.h>
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
	/* Far deeper than the limit: refused once the limit is passed, without
	 * reading on. */
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

/*
 * What jansson's parser says of buf with the flags credgate's parser must
 * match: 1 and *out when it accepts, 0 when it refuses.
 */
static int
jansson_load(const char *buf, size_t len, json_t **out)
{
	json_error_t jerr;

	*out = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	return *out != NULL;
}

/*
 * Both parsers agree on buf: both refuse it, or both build equal values.
 * A NUL byte is never valid JSON, and ours must refuse it; jansson is not
 * asked then, since it skips a NUL that follows a number or a literal.
 */
static void
check_same(const char *buf, size_t len)
{
	json_t *a = NULL, *b = NULL;
	int r, ok;

	r = cg_json_strict_load(buf, len, 64, &a);
	if (memchr(buf, '\0', len) != NULL) {
		assert_int_not_equal(r, 0);
		return;
	}
	ok = jansson_load(buf, len, &b);
	if ((r == 0) != ok || (ok && !json_equal(a, b))) {
		char shown[200];
		size_t i, n = 0;

		for (i = 0; i < len && n + 5 < sizeof(shown); i++)
			n += (size_t)snprintf(shown + n, sizeof(shown) - n,
			    (unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f ?
			    "%c" : "\\x%02x", (unsigned char)buf[i]);
		fail_msg("ours %d, jansson %s: %s", r, ok ? "accepts" : "refuses",
		    shown);
	}
	if (r == 0 && json_is_real(a)) {
		/* json_equal() already tells a real from an integer; this says
		 * so on its own for the top level. */
		assert_true(json_is_real(b));
	}
	json_decref(a);
	json_decref(b);
}

static const char *const same_cases[] = {
	"{\"iss\":\"https://a\",\"aud\":[\"x\",\"y\"],\"exp\":1796409997,\"n\":-0}",
	"[0,-0,1,-1,10,0.5,-0.5,1e3,1E-3,1e+3,-1.5e-300,123456789012345678]",
	"[9223372036854775807,-9223372036854775808]",
	"[9223372036854775808]", "[-9223372036854775809]",
	"[1e309]", "[-1e309]", "[1e-400]", "[1.7976931348623157e308]",
	"[01]", "[-]", "[1.]", "[.5]", "[1e]", "[1e+]", "[+1]", "[0x10]",
	"[1.5e2.3]", "[--1]", "[-01]", "[00]", "[1 2]",
	"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\u20ac\"",
	"\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\"", "\"\\ud83d\"",
	"\"\\ude00\"", "\"\\ud83dx\"", "\"\\ud83d\\u0041\"", "\"\\ud83d\\ud83d\"",
	"\"\\u0000\"", "\"\\u00\"", "\"\\u00g0\"", "\"\\x41\"", "\"\\\"",
	"\"a\x01\"", "\"a\x1f\"", "\"a\x7f\"", "\"\t\"",
	"\"\xc3\xa9\"", "\"\xe2\x82\xac\"", "\"\xf0\x9f\x98\x80\"",
	"\"\xc0\x80\"", "\"\xc1\xbf\"", "\"\xe0\x80\x80\"", "\"\xed\xa0\x80\"",
	"\"\xf0\x80\x80\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",
	"\"\x80\"", "\"\xc3\"", "\"\xe2\x82\"", "\"\xc3\xc3\"",
	"\xc3\xa9", "{\"\xc3\xa9\":1}", "[\"a\",\xc3\xa9]",
	"true", "false", "null", "tru", "truex", "nul", "True", "[true,false,null]",
	"{\"a\":1,\"a\":1}", "{\"a\":1,\"\\u0061\":2}", "{\"a\":{}, \"b\":[]}",
	"{\"\":1}", "{\"a\" : 1 , \"b\" : 2 }", " \t\r\n{}\n ", "{,}", "[,]",
	"{\"a\"}", "{\"a\":1,}", "{1:1}", "{\"a\":1 \"b\":2}", "[1,,2]", "[",
	"]", "}", "{]", "[}", "", " ", "\"", "\"abc", "[\"a\\\"]", "\xef\xbb\xbf{}",
	"[1]x", "[1] [2]", "/* */[]", "[1]//", "NaN", "Infinity", "-Infinity",
};

static void
test_json_same_as_jansson(void **state)
{
	static const char *const seeds[] = {
		"{\"iss\":\"https://issuer.example\",\"sub\":\"a\\u00e9\\ud83d\\ude00\","
		    "\"aud\":[\"x\",\"y\"],\"exp\":1796409997,\"r\":-1.5e-3,"
		    "\"o\":{\"t\":true,\"f\":false,\"n\":null,\"\xc3\xa9\":[0]}}",
		"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",12,-0.0e+1,\"\xf0\x9f\x98\x80\"]",
	};
	static const char alphabet[] = "{}[]\":,\\u0123456789abcdefABCDEF.eE+-"
	    " \t\r\ntrufalsn\x01\x1f\x7f\x80\xbf\xc3\xed\xf0\xf4\xff\0";
	char buf[512];
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i, k, len, pos;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(same_cases); i++)
		check_same(same_cases[i], strlen(same_cases[i]));
	check_same("[\"a\0b\"]", 7);
	check_same("{\"a\":1}\0", 8);
	check_same("2\0", 2);
	check_same("[2\0]", 5);
	check_same("[true\0]", 7);

	/* Mutations: bytes replaced, inserted and removed, and cuts. */
	for (i = 0; i < 200000; i++) {
		const char *seed = seeds[i % CG_ARRAY_LEN(seeds)];
		unsigned ops;

		len = strlen(seed);
		memcpy(buf, seed, len);
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		for (ops = 1 + x % 3; ops > 0; ops--) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			pos = len > 0 ? (size_t)(x >> 8) % len : 0;
			k = (size_t)(x >> 40) % (sizeof(alphabet) - 1);
			switch (x % 4) {
			case 0:
				if (len > 0)
					buf[pos] = alphabet[k];
				break;
			case 1:
				if (len + 1 < sizeof(buf)) {
					memmove(buf + pos + 1, buf + pos, len - pos);
					buf[pos] = alphabet[k];
					len++;
				}
				break;
			case 2:
				if (len > 0) {
					memmove(buf + pos, buf + pos + 1, len - pos - 1);
					len--;
				}
				break;
			default:
				len = pos;
				break;
			}
		}
		check_same(buf, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_table),
		cmocka_unit_test(test_json_deep_input),
		cmocka_unit_test(test_json_explicit_len),
		cmocka_unit_test(test_json_same_as_jansson),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
