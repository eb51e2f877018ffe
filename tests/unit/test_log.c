/*
 * test_log.c: log line shape, one write per line, truncation, levels and
 * cg_log_quote().
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static int pfd[2] = { -1, -1 };

static int
setup(void **state)
{
	(void)state;
	if (pipe(pfd) != 0)
		return -1;
	/* Never block the test on a full pipe. */
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	fcntl(pfd[1], F_SETFL, O_NONBLOCK);
	cg_log_set_fd(pfd[1]);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	cg_log_set_fd(-1);
	close(pfd[0]);
	close(pfd[1]);
	return 0;
}

/* Reads what is in the pipe; returns its length. */
static size_t
drain(char *buf, size_t size)
{
	ssize_t n;
	size_t off = 0;

	while (off + 1 < size && (n = read(pfd[0], buf + off, size - 1 - off)) > 0)
		off += (size_t)n;
	buf[off] = '\0';
	return off;
}

static bool
is_timestamp(const char *s)
{
	/* 2026-11-24T08:44:01.123Z */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t i;

	for (i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	}
	return true;
}

static void
test_line_shape(void **state)
{
	char buf[8192];
	size_t n;

	(void)state;
	cg_log(CG_LOG_WARN, "event=%s n=%d", "test", 42);
	n = drain(buf, sizeof(buf));
	assert_int_equal(n, 24 + strlen(" level=warn event=test n=42\n"));
	assert_true(is_timestamp(buf));
	assert_string_equal(buf + 24, " level=warn event=test n=42\n");

	cg_err("x=1");
	n = drain(buf, sizeof(buf));
	assert_string_equal(buf + 24, " level=error x=1\n");
}

static void
test_level_filter(void **state)
{
	char buf[256];
	int saved = cg_log_level_get();

	(void)state;
	cg_log_level_set(CG_LOG_INFO);
	cg_debug("hidden=1");
	assert_int_equal(drain(buf, sizeof(buf)), 0);
	cg_info("shown=1");
	drain(buf, sizeof(buf));
	assert_string_equal(buf + 24, " level=info shown=1\n");
	cg_log_level_set(CG_LOG_WARN);
	cg_info("hidden=2");
	assert_int_equal(drain(buf, sizeof(buf)), 0);
	cg_log_level_set(saved);
}

/*
 * Workers check the level on every cg_info()/cg_debug() while a reload on
 * the control thread sets it.  The level is an atomic, so this is no data
 * race (ThreadSanitizer reports one on a plain int).
 */
#define RACE_ROUNDS 20000

static void *
level_reader(void *arg)
{
	int i, seen = 0;

	(void)arg;
	for (i = 0; i < RACE_ROUNDS; i++) {
		cg_debug("race=%d", i);	/* to /dev/null */
		seen |= 1 << cg_log_level_get();
	}
	return (void *)(intptr_t)seen;
}

static void
test_level_across_threads(void **state)
{
	int saved = cg_log_level_get(), devnull, i, k;
	pthread_t t[2];
	void *seen;

	(void)state;
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(devnull >= 0);
	cg_log_set_fd(devnull);
	for (k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, level_reader, NULL), 0);
	for (i = 0; i < RACE_ROUNDS; i++)
		cg_log_level_set(i % 2 ? CG_LOG_DEBUG : CG_LOG_WARN);
	for (k = 0; k < 2; k++) {
		assert_int_equal(pthread_join(t[k], &seen), 0);
		/* Only levels that were set, never a torn value. */
		assert_int_equal((intptr_t)seen & ~((1 << CG_LOG_DEBUG) |
		    (1 << CG_LOG_WARN) | (1 << saved)), 0);
	}
	cg_log_set_fd(pfd[1]);
	close(devnull);
	cg_log_level_set(saved);
	assert_int_equal(cg_log_level_get(), saved);
}

static void
test_no_line_forgery(void **state)
{
	char buf[256];

	(void)state;
	cg_log(CG_LOG_INFO, "user=%s", "bob\nlevel=error fake=1\r");
	drain(buf, sizeof(buf));
	assert_string_equal(buf + 24, " level=info user=bob level=error fake=1 \n");
	assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

static void
test_truncation(void **state)
{
	static char big[10000], buf[16384];
	size_t n;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	cg_log(CG_LOG_INFO, "v=%s", big);
	n = drain(buf, sizeof(buf));
	assert_int_equal(n, 4096);
	assert_memory_equal(buf + n - 4, "...\n", 4);
	assert_int_equal(buf[n - 5], 'x');
	/* One line only. */
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);

	/* Exactly filling the line is not truncated. */
	memset(big, 'y', sizeof(big));
	big[4096 - 1 - 24 - strlen(" level=info ")] = '\0';
	cg_log(CG_LOG_INFO, "%s", big);
	n = drain(buf, sizeof(buf));
	assert_int_equal(n, 4096);
	assert_memory_equal(buf + n - 4, "yyy\n", 4);
	memset(big, 0, sizeof(big));
}

static void
test_levels(void **state)
{
	static const struct {
		const char *name;
		int level;
	} cases[] = {
		{ "error", CG_LOG_ERROR }, { "warn", CG_LOG_WARN },
		{ "info", CG_LOG_INFO }, { "debug", CG_LOG_DEBUG },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		assert_int_equal(cg_log_level_parse(cases[i].name), cases[i].level);
		assert_string_equal(cg_log_level_name(cases[i].level), cases[i].name);
	}
	assert_int_equal(cg_log_level_parse("INFO"), -1);
	assert_int_equal(cg_log_level_parse("warning"), -1);
	assert_int_equal(cg_log_level_parse(""), -1);
	assert_int_equal(cg_log_level_parse(NULL), -1);
	assert_string_equal(cg_log_level_name(4), "unknown");
	assert_string_equal(cg_log_level_name(-1), "unknown");
}

struct quote_case {
	const char *in;
	size_t len;		/* 0: strlen(in) */
	size_t size;
	const char *out;
};

static const struct quote_case quote_cases[] = {
	{ "abc", 0, 64, "abc" },
	{ "a-b_c.d:e/f@g+h", 0, 64, "a-b_c.d:e/f@g+h" },
	{ "", 0, 64, "\"\"" },
	{ "a b", 0, 64, "\"a b\"" },
	{ "say \"hi\"", 0, 64, "\"say \\\"hi\\\"\"" },
	{ "back\\slash", 0, 64, "\"back\\\\slash\"" },
	{ "l1\nl2", 0, 64, "\"l1\\x0al2\"" },
	{ "nul\0x", 5, 64, "\"nul\\x00x\"" },
	{ "\x7f\xff", 0, 64, "\"\\x7f\\xff\"" },
	{ "a=b", 0, 64, "\"a=b\"" },
	/* Bare, exactly fitting and one byte over. */
	{ "abcdefg", 0, 8, "abcdefg" },
	{ "abcdefgh", 0, 8, "abcd..." },
	{ "abcdefgh", 0, 3, ".." },
	/* Quoted, exactly fitting and over. */
	{ "a bcde", 0, 9, "\"a bcde\"" },
	{ "a bcdef", 0, 9, "\"a b...\"" },
	{ "\n\n\n", 0, 15, "\"\\x0a\\x0a\\x0a\"" },
	{ "\n\n\n", 0, 14, "\"\\x0a\\x0a...\"" },
	{ "\n\n\n", 0, 13, "\"\\x0a...\"" },	/* never half an escape */
	{ "\n\n\n", 0, 12, "\"\\x0a...\"" },
	{ "a b", 0, 4, "\"\"" },
	{ "a b", 0, 2, "" },
};

static void
test_quote(void **state)
{
	char out[64];
	size_t i, len;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(quote_cases); i++) {
		const struct quote_case *c = &quote_cases[i];

		len = c->len != 0 ? c->len : strlen(c->in);
		memset(out, '#', sizeof(out));
		assert_ptr_equal(cg_log_quote(out, c->size, c->in, len), out);
		if (strcmp(out, c->out) != 0)
			fail_msg("case %zu: got [%s] want [%s]", i, out, c->out);
		assert_true(strlen(out) < c->size);
		/* Nothing written past size. */
		if (c->size < sizeof(out))
			assert_int_equal(out[c->size], '#');
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_shape),
		cmocka_unit_test(test_level_filter),
		cmocka_unit_test(test_level_across_threads),
		cmocka_unit_test(test_no_line_forgery),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_quote),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
