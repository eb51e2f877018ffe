/*
 * test_glob.c: cg_glob_match(), cg_glob_has_magic() and cg_strcase_eq().
 */
#include "tests/unit/unit.h"

#include <string.h>

#include "common.h"

struct glob_case {
	const char *pat;
	const char *s;
	bool match;
};

static const struct glob_case glob_cases[] = {
	{ "", "", true },
	{ "", "a", false },
	{ "a", "", false },
	{ "*", "", true },
	{ "*", "anything/at/all", true },
	{ "**", "", true },
	{ "?", "", false },
	{ "?", "a", true },
	{ "?", "ab", false },
	{ "??", "ab", true },
	{ "abc", "abc", true },
	{ "abc", "abd", false },
	{ "abc", "ab", false },
	{ "abc", "abcd", false },
	{ "ABC", "abc", false },		/* case-sensitive */
	{ "a*", "a", true },
	{ "a*", "abc", true },
	{ "a*", "ba", false },
	{ "*a", "a", true },
	{ "*a", "bba", true },
	{ "*a", "ab", false },
	{ "a*b", "ab", true },
	{ "a*b", "axxxb", true },
	{ "a*b", "axxxbc", false },
	{ "a*b*c", "abc", true },
	{ "a*b*c", "aXbYbZc", true },
	{ "a*b*c", "aXbYbZ", false },
	{ "*ab*ab", "xabyabzab", true },	/* needs backtracking */
	{ "*aab", "aaab", true },
	{ "/api/*", "/api/", true },
	{ "/api/*", "/api/v1/users", true },	/* '*' crosses '/' */
	{ "/api/*", "/api", false },
	{ "/api/v?/x", "/api/v2/x", true },
	{ "\\*", "*", true },
	{ "\\*", "a", false },
	{ "\\?", "?", true },
	{ "\\?", "x", false },
	{ "\\\\", "\\", true },
	{ "a\\*b", "a*b", true },
	{ "a\\*b", "axb", false },
	{ "*\\*", "abc*", true },
	{ "*\\*", "abc", false },
	{ "\\a", "a", true },			/* escaping a plain byte */
	{ "a\\", "a\\", true },			/* trailing backslash is literal */
	{ "a\\", "a", false },
};

static void
test_glob_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(glob_cases); i++) {
		const struct glob_case *c = &glob_cases[i];

		if (cg_glob_match(c->pat, c->s, strlen(c->s)) != c->match)
			fail_msg("case %zu: \"%s\" vs \"%s\" expected %d", i,
			    c->pat, c->s, c->match);
	}
}

static void
test_glob_explicit_len(void **state)
{
	(void)state;
	/* s need not be NUL-terminated and may hold NUL bytes. */
	assert_true(cg_glob_match("abc", "abcdef", 3));
	assert_false(cg_glob_match("abc", "abcdef", 2));
	assert_true(cg_glob_match("a?c", "a\0c", 3));
	assert_true(cg_glob_match("*", NULL, 0));
	assert_false(cg_glob_match("a", NULL, 0));
	assert_false(cg_glob_match(NULL, "a", 1));
}

static void
test_glob_pathological(void **state)
{
	char s[4001], pat[64];
	size_t i;

	(void)state;
	/* An exponential matcher would never finish this. */
	memset(s, 'a', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	strcpy(pat, "");
	for (i = 0; i < 20; i++)
		strcat(pat, "*a");
	strcat(pat, "*b");
	assert_false(cg_glob_match(pat, s, strlen(s)));
	s[sizeof(s) - 2] = 'b';
	assert_true(cg_glob_match(pat, s, strlen(s)));
}

static void
test_glob_has_magic(void **state)
{
	static const struct {
		const char *pat;
		bool magic;
	} cases[] = {
		{ "", false }, { "abc", false }, { "*", true }, { "a?c", true },
		{ "\\*", false }, { "\\?", false }, { "\\\\*", true },
		{ "a\\", false }, { "/api/v1", false }, { "x\\*y*", true },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		if (cg_glob_has_magic(cases[i].pat) != cases[i].magic)
			fail_msg("has_magic(\"%s\")", cases[i].pat);
	}
	assert_false(cg_glob_has_magic(NULL));
}

static void
test_strcase_eq(void **state)
{
	(void)state;
	assert_true(cg_strcase_eq("Content-Length", 14, "content-length", 14));
	assert_true(cg_strcase_eq("", 0, "", 0));
	assert_false(cg_strcase_eq("abc", 3, "abcd", 4));
	assert_false(cg_strcase_eq("abc", 3, "abd", 3));
	/* Only ASCII letters fold: '@' (0x40) is not '`' (0x60). */
	assert_false(cg_strcase_eq("@", 1, "`", 1));
	assert_false(cg_strcase_eq("[", 1, "{", 1));
	assert_false(cg_strcase_eq("\xc0", 1, "\xe0", 1));
}

static void
test_strerror(void **state)
{
	int e;

	(void)state;
	for (e = CG_ERR_UNSUPPORTED; e <= CG_OK; e++) {
		assert_non_null(cg_strerror(e));
		assert_string_not_equal(cg_strerror(e), "unknown error");
	}
	assert_string_equal(cg_strerror(CG_ERR_NOMEM), "out of memory");
	assert_string_equal(cg_strerror(-1000), "unknown error");
	assert_string_equal(cg_strerror(5), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob_table),
		cmocka_unit_test(test_glob_explicit_len),
		cmocka_unit_test(test_glob_pathological),
		cmocka_unit_test(test_glob_has_magic),
		cmocka_unit_test(test_strcase_eq),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
