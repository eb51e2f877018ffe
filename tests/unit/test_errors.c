/*
 * test_errors.c: common/errors.c: the text of every CG_ERR_* code and
 * cg_errf(), the one formatter of reasons into a caller's buffer.
 */
#include "config.h"

#include "tests/unit/unit.h"

#include <string.h>

#include "common.h"

static void
test_strerror(void **state)
{
	int e;

	(void)state;
	for (e = CG_ERR_UNSUPPORTED - 1; e <= 1; e++)
		assert_non_null(cg_strerror(e));
	assert_string_equal(cg_strerror(CG_ERR_UNSUPPORTED), "unsupported");
}

static void
test_errf(void **state)
{
	char err[16];

	(void)state;
	/* NULL or no room: nothing written, nothing crashes. */
	cg_errf(NULL, 0, "%s", "x");
	cg_errf(NULL, 10, "%s", "x");
	memset(err, 'z', sizeof(err));
	cg_errf(err, 0, "%s", "x");
	assert_int_equal(err[0], 'z');

	/* One byte of room: an empty, terminated string. */
	cg_errf(err, 1, "%s: %d", "abc", 42);
	assert_int_equal(err[0], '\0');
	assert_int_equal(err[1], 'z');

	cg_errf(err, sizeof(err), "%s: %d", "abc", 42);
	assert_string_equal(err, "abc: 42");

	/* Cut to fit, always terminated. */
	cg_errf(err, sizeof(err), "%s", "0123456789abcdefghij");
	assert_string_equal(err, "0123456789abcde");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_errf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
