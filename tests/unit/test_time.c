/*
 * test_time.c: durations and calendar times, both directions; the
 * number and address formatters beside them.
 */
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <string.h>

#include "common.h"

struct dur_case {
	const char *s;
	int r;
	int64_t ms;
};

static const struct dur_case dur_cases[] = {
	{ "0", 0, 0 },
	{ "1", 0, 1000 },
	{ "30", 0, 30000 },
	{ "250ms", 0, 250 },
	{ "0ms", 0, 0 },
	{ "5s", 0, 5000 },
	{ "10m", 0, 600000 },
	{ "1h", 0, 3600000 },
	{ "2d", 0, 172800000 },
	{ "1h30m", 0, 5400000 },
	{ "1d2h3m4s5ms", 0, 93784005 },
	{ "1m500ms", 0, 60500 },
	{ "90s", 0, 90000 },
	{ "007s", 0, 7000 },
	{ "", CG_ERR_FORMAT, 0 },
	{ "-5s", CG_ERR_FORMAT, 0 },
	{ "+5s", CG_ERR_FORMAT, 0 },
	{ "5", 0, 5000 },
	{ "5x", CG_ERR_FORMAT, 0 },
	{ "5 s", CG_ERR_FORMAT, 0 },
	{ " 5s", CG_ERR_FORMAT, 0 },
	{ "5s ", CG_ERR_FORMAT, 0 },
	{ "s", CG_ERR_FORMAT, 0 },
	{ "h1", CG_ERR_FORMAT, 0 },
	{ "1.5h", CG_ERR_FORMAT, 0 },
	{ "5S", CG_ERR_FORMAT, 0 },
	{ "1h30", CG_ERR_FORMAT, 0 },		/* bare number only on its own */
	{ "1s1s", CG_ERR_FORMAT, 0 },		/* unit twice */
	{ "1s1h", CG_ERR_FORMAT, 0 },		/* units out of order */
	{ "1w", CG_ERR_FORMAT, 0 },
	{ "9223372036854775807ms", 0, INT64_MAX },
	{ "9223372036854775808ms", CG_ERR_LIMIT, 0 },
	{ "9223372036854775807", CG_ERR_LIMIT, 0 },
	{ "106751991168d", CG_ERR_LIMIT, 0 },
	{ "106751991167d", 0, 106751991167LL * 86400000 },
	{ "106751991167d7h12m55s806ms", 0, INT64_MAX - 1 },
	{ "106751991167d7h12m55s807ms", 0, INT64_MAX },
	{ "106751991167d7h12m55s808ms", CG_ERR_LIMIT, 0 },
	{ "106751991167d7h13m", CG_ERR_LIMIT, 0 },
	{ "99999999999999999999999s", CG_ERR_LIMIT, 0 },
};

static void
test_duration_parse(void **state)
{
	size_t i;
	int64_t ms;
	int r;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(dur_cases); i++) {
		ms = -1;
		r = cg_duration_parse(dur_cases[i].s, &ms);
		if (r != dur_cases[i].r || ms != dur_cases[i].ms)
			fail_msg("\"%s\": got %d/%lld, want %d/%lld", dur_cases[i].s,
			    r, (long long)ms, dur_cases[i].r,
			    (long long)dur_cases[i].ms);
	}
}

static void
test_duration_format(void **state)
{
	static const struct {
		int64_t ms;
		const char *s;
	} cases[] = {
		{ 0, "0s" },
		{ 1, "1ms" },
		{ 999, "999ms" },
		{ 1000, "1s" },
		{ 1500, "1s500ms" },
		{ 90000, "1m30s" },
		{ 3600000, "1h" },
		{ 5400000, "1h30m" },
		{ 86400000, "1d" },
		{ 93784005, "1d2h3m4s5ms" },
		{ -2000, "-2s" },
		{ INT64_MAX, "106751991167d7h12m55s807ms" },
	};
	char out[64];
	int64_t back;
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		assert_string_equal(cg_duration_format(cases[i].ms, out,
		    sizeof(out)), cases[i].s);
		if (cases[i].ms >= 0 && strlen(cases[i].s) == 24) {
			assert_int_equal(cg_duration_parse(out, &back), 0);
			assert_int_equal(back, cases[i].ms);
		}
	}
	/* A short buffer stays terminated. */
	cg_duration_format(93784005, out, 4);
	assert_true(strlen(out) < 4);
}

struct time_case {
	const char *s;
	int r;
	int64_t t;
};

static const struct time_case time_cases[] = {
	{ "1970-01-01T00:00:00Z", 0, 0 },
	{ "1970-01-01", 0, 86399 },
	{ "2026-11-24", 0, 1795564799 },
	{ "2026-11-24T08:44:01Z", 0, 1795509841 },
	{ "2026-11-24t08:44:01z", 0, 1795509841 },
	{ "2026-11-24T08:44:01.123Z", 0, 1795509841 },
	{ "2026-11-24T08:44:01.123456789Z", 0, 1795509841 },
	{ "2026-11-24T10:44:01+02:00", 0, 1795509841 },
	{ "2026-11-24T03:14:01-05:30", 0, 1795509841 },
	{ "2026-11-24T08:44:01+00:00", 0, 1795509841 },
	{ "2000-02-29", 0, 951868799 },		/* leap year (div 400) */
	{ "2024-02-29T12:00:00Z", 0, 1709208000 },
	{ "1900-02-29", CG_ERR_FORMAT, 0 },	/* not leap (div 100) */
	{ "2023-02-29", CG_ERR_FORMAT, 0 },
	{ "2023-04-31", CG_ERR_FORMAT, 0 },
	{ "2023-12-31", 0, 1704067199 },
	{ "2023-13-01", CG_ERR_FORMAT, 0 },
	{ "2023-00-10", CG_ERR_FORMAT, 0 },
	{ "2023-01-00", CG_ERR_FORMAT, 0 },
	{ "2023-01-32", CG_ERR_FORMAT, 0 },
	{ "2023-1-05", CG_ERR_FORMAT, 0 },
	{ "23-01-05", CG_ERR_FORMAT, 0 },
	{ "2023-01-05T24:00:00Z", CG_ERR_FORMAT, 0 },
	{ "2023-01-05T23:60:00Z", CG_ERR_FORMAT, 0 },
	{ "2023-01-05T23:59:61Z", CG_ERR_FORMAT, 0 },
	{ "2016-12-31T23:59:60Z", 0, 1483228800 },	/* leap second */
	{ "2023-01-05T10:00:00", CG_ERR_FORMAT, 0 },	/* no offset */
	{ "2023-01-05T10:00Z", CG_ERR_FORMAT, 0 },
	{ "2023-01-05T10:00:00.Z", CG_ERR_FORMAT, 0 },
	{ "2023-01-05T10:00:00+0100", CG_ERR_FORMAT, 0 },
	{ "2023-01-05T10:00:00+24:00", CG_ERR_FORMAT, 0 },
	{ "2023-01-05T10:00:00Zjunk", CG_ERR_FORMAT, 0 },
	{ "2023-01-05 10:00:00Z", CG_ERR_FORMAT, 0 },
	{ "2023-01-05 ", CG_ERR_FORMAT, 0 },
	{ "", CG_ERR_FORMAT, 0 },
	{ "tomorrow", CG_ERR_FORMAT, 0 },
};

static void
test_time_parse(void **state)
{
	size_t i;
	int64_t t;
	int r;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(time_cases); i++) {
		t = -1;
		r = cg_time_parse(time_cases[i].s, &t);
		if (r != time_cases[i].r || t != time_cases[i].t)
			fail_msg("\"%s\": got %d/%lld, want %d/%lld",
			    time_cases[i].s, r, (long long)t, time_cases[i].r,
			    (long long)time_cases[i].t);
	}
}

static void
test_time_format(void **state)
{
	static const struct {
		int64_t ms;
		const char *s;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1795509841123, "2026-11-24T08:44:01.123Z" },
		{ 951868799999, "2000-02-29T23:59:59.999Z" },
		{ 1709208000000, "2024-02-29T12:00:00.000Z" },
		{ 253402300799000, "9999-12-31T23:59:59.000Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ 253402300800000, "10000-01-01T00:00:00.000Z" },
		{ -62167219200001, "-001-12-31T23:59:59.999Z" },
	};
	char out[40];
	int64_t t;
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		assert_string_equal(cg_time_format_ms(cases[i].ms, out,
		    sizeof(out)), cases[i].s);
		if (cases[i].ms >= 0 && strlen(cases[i].s) == 24) {
			assert_int_equal(cg_time_parse(out, &t), 0);
			assert_int_equal(t, cases[i].ms / 1000);
		}
	}
}

static void
test_format_short_buffer(void **state)
{
	char out[12];

	(void)state;
	/* Too small: cut short like snprintf, always terminated. */
	memset(out, '#', sizeof(out));
	assert_string_equal(cg_time_format_ms(1795509841123, out, sizeof(out)), "2026-11-24T");
	assert_string_equal(cg_time_format_ms(1795509841123, out, 1), "");
}

static void
test_fmt_u64(void **state)
{
	static const struct {
		uint64_t v;
		const char *s;
	} cases[] = {
		{ 0, "0" }, { 7, "7" }, { 10, "10" }, { 1234567890, "1234567890" },
		{ UINT64_MAX, "18446744073709551615" },
	};
	char out[24];
	size_t i, n;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		memset(out, '#', sizeof(out));
		n = cg_fmt_u64(out, cases[i].v);
		assert_int_equal(n, strlen(cases[i].s));
		assert_memory_equal(out, cases[i].s, n);
		assert_int_equal(out[n], '#');
	}
}

/* Every octet value in every position, against inet_ntop(). */
static void
test_fmt_ipv4(void **state)
{
	unsigned char a[4];
	char want[INET_ADDRSTRLEN], out[INET_ADDRSTRLEN + 4];
	unsigned v, pos;
	size_t n;

	(void)state;
	for (pos = 0; pos < 4; pos++)
		for (v = 0; v < 256; v++) {
			a[0] = 127; a[1] = 0; a[2] = 10; a[3] = 255;
			a[pos] = (unsigned char)v;
			assert_non_null(inet_ntop(AF_INET, a, want, sizeof(want)));
			memset(out, '#', sizeof(out));
			n = cg_fmt_ipv4(out, a);
			assert_int_equal(n, strlen(want));
			assert_string_equal(out, want);
		}
	memset(a, 255, sizeof(a));
	assert_int_equal(cg_fmt_ipv4(out, a), INET_ADDRSTRLEN - 1);
}

static void
test_fmt_hex64(void **state)
{
	static const struct {
		uint64_t v;
		const char *s;
	} cases[] = {
		{ 0, "0000000000000000" }, { 0xa, "000000000000000a" },
		{ 0x0123456789abcdefULL, "0123456789abcdef" },
		{ 0xfedcba9876543210ULL, "fedcba9876543210" },
		{ UINT64_MAX, "ffffffffffffffff" },
	};
	char out[20];
	size_t i;

	(void)state;
	for (i = 0; i < CG_ARRAY_LEN(cases); i++) {
		memset(out, '#', sizeof(out));
		cg_fmt_hex64(out, cases[i].v);
		assert_memory_equal(out, cases[i].s, 16);
		assert_int_equal(out[16], '#');
	}
}

static void
test_round_trip_days(void **state)
{
	char out[40];
	int64_t t, ms;

	(void)state;
	/* Every day from 1970 to 2100 formats and parses back. */
	for (ms = 0; ms < 4102444800000LL; ms += 86400000LL + 3723004) {
		cg_time_format_ms(ms, out, sizeof(out));
		assert_int_equal(cg_time_parse(out, &t), 0);
		assert_int_equal(t, ms / 1000);
	}
}

static void
test_clocks(void **state)
{
	int64_t a, b;

	(void)state;
	a = cg_now_ms();
	assert_true(a > 1600000000000LL);
	a = cg_mono_ms();
	b = cg_mono_ms();
	assert_true(b >= a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_time_parse),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_format_short_buffer),
		cmocka_unit_test(test_fmt_u64),
		cmocka_unit_test(test_fmt_ipv4),
		cmocka_unit_test(test_fmt_hex64),
		cmocka_unit_test(test_round_trip_days),
		cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
