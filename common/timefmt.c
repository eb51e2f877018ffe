/*
 * timefmt.c: durations ("1h30m" <-> milliseconds), calendar times
 * ("YYYY-MM-DD", RFC 3339 <-> Unix time) and the two clocks.  All calendar
 * arithmetic is UTC and done here by hand, so no TZ or locale can change it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common.h"

struct dur_unit {
	const char *name;
	int64_t ms;
};

/* Longest names first so that "ms" is not read as "m" then "s". */
static const struct dur_unit dur_units[] = {
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60 * 1000 },
	{ "h", 60 * 60 * 1000 },
	{ "d", 24 * 60 * 60 * 1000 },
};

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int
cg_duration_parse(const char *s, int64_t *ms)
{
	int64_t total = 0, num, mult;
	const char *p = s;
	size_t i, ulen;
	int last_unit = (int)CG_ARRAY_LEN(dur_units);

	*ms = 0;
	if (s == NULL || *s == '\0')
		return CG_ERR_FORMAT;
	while (*p != '\0') {
		if (!is_digit(*p))
			return CG_ERR_FORMAT;
		num = 0;
		while (is_digit(*p)) {
			if (num > (INT64_MAX - (*p - '0')) / 10)
				return CG_ERR_LIMIT;
			num = num * 10 + (*p - '0');
			p++;
		}
		if (*p == '\0') {
			/* A bare number means seconds, and only on its own. */
			if (last_unit == (int)CG_ARRAY_LEN(dur_units)) {
				mult = 1000;
				goto add;
			}
			return CG_ERR_FORMAT;
		}
		for (i = 0; i < CG_ARRAY_LEN(dur_units); i++) {
			ulen = strlen(dur_units[i].name);
			if (strncmp(p, dur_units[i].name, ulen) == 0)
				break;
		}
		if (i == CG_ARRAY_LEN(dur_units))
			return CG_ERR_FORMAT;
		/* Units go from large to small, each at most once. */
		if ((int)i >= last_unit)
			return CG_ERR_FORMAT;
		last_unit = (int)i;
		mult = dur_units[i].ms;
		p += ulen;
 add:
		if (num > INT64_MAX / mult)
			return CG_ERR_LIMIT;
		num *= mult;
		if (total > INT64_MAX - num)
			return CG_ERR_LIMIT;
		total += num;
	}
	*ms = total;
	return 0;
}

char *
cg_duration_format(int64_t ms, char *out, size_t size)
{
	size_t i, off = 0;
	int64_t v;
	int n;
	bool neg = ms < 0;
	uint64_t u;

	if (out == NULL || size == 0)
		return out;
	out[0] = '\0';
	if (ms == 0) {
		snprintf(out, size, "0s");
		return out;
	}
	u = neg ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	if (neg) {
		n = snprintf(out, size, "-");
		off = n > 0 ? (size_t)n : 0;
	}
	/* Largest unit first; each unit used at most once. */
	for (i = CG_ARRAY_LEN(dur_units); i-- > 0 && u > 0;) {
		uint64_t unit = (uint64_t)dur_units[i].ms;

		if (u < unit)
			continue;
		v = (int64_t)(u / unit);
		u %= unit;
		if (off >= size)
			break;
		n = snprintf(out + off, size - off, "%lld%s", (long long)v,
		    dur_units[i].name);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	return out;
}

static bool
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int64_t y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 for a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Reads exactly n digits. */
static bool
read_digits(const char **pp, int n, int *out)
{
	const char *p = *pp;
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*pp = p + n;
	*out = v;
	return true;
}

int
cg_time_parse(const char *s, int64_t *unix_s)
{
	const char *p = s;
	int y, mo, d, h, mi, sec, oh, om, sign;
	int64_t t;

	*unix_s = 0;
	if (s == NULL)
		return CG_ERR_FORMAT;
	if (!read_digits(&p, 4, &y) || *p++ != '-' ||
	    !read_digits(&p, 2, &mo) || *p++ != '-' ||
	    !read_digits(&p, 2, &d))
		return CG_ERR_FORMAT;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return CG_ERR_FORMAT;
	if (*p == '\0') {
		*unix_s = days_from_civil(y, mo, d) * 86400 + 86399;
		return 0;
	}
	if (*p != 'T' && *p != 't')
		return CG_ERR_FORMAT;
	p++;
	if (!read_digits(&p, 2, &h) || *p++ != ':' ||
	    !read_digits(&p, 2, &mi) || *p++ != ':' ||
	    !read_digits(&p, 2, &sec))
		return CG_ERR_FORMAT;
	/* 60 is a leap second; Unix time folds it into the next one. */
	if (h > 23 || mi > 59 || sec > 60)
		return CG_ERR_FORMAT;
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return CG_ERR_FORMAT;
		while (is_digit(*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
		oh = om = 0;
		sign = 1;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		if (!read_digits(&p, 2, &oh) || *p++ != ':' ||
		    !read_digits(&p, 2, &om))
			return CG_ERR_FORMAT;
		if (oh > 23 || om > 59)
			return CG_ERR_FORMAT;
	} else
		return CG_ERR_FORMAT;
	if (*p != '\0')
		return CG_ERR_FORMAT;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= sign * (oh * 3600 + om * 60);
	*unix_s = t;
	return 0;
}

/* v (0 <= v < 10^n) in exactly n decimal digits. */
static void
put_digits(char *out, int v, int n)
{
	while (n-- > 0) {
		out[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

char *
cg_time_format_ms(int64_t ms, char *out, size_t size)
{
	int64_t days, rem, y;
	int m, d, msec;

	if (out == NULL || size == 0)
		return out;
	days = ms / 86400000;
	rem = ms % 86400000;
	if (rem < 0) {
		rem += 86400000;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	msec = (int)(rem % 1000);
	rem /= 1000;
	if (y < 0 || y > 9999 || size < 25) {
		snprintf(out, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    (long long)y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60),
		    (int)(rem % 60), msec);
		return out;
	}
	/* The common case without printf: one of these per audit event. */
	put_digits(out, (int)y, 4);
	out[4] = '-';
	put_digits(out + 5, m, 2);
	out[7] = '-';
	put_digits(out + 8, d, 2);
	out[10] = 'T';
	put_digits(out + 11, (int)(rem / 3600), 2);
	out[13] = ':';
	put_digits(out + 14, (int)(rem / 60 % 60), 2);
	out[16] = ':';
	put_digits(out + 17, (int)(rem % 60), 2);
	out[19] = '.';
	put_digits(out + 20, msec, 3);
	out[23] = 'Z';
	out[24] = '\0';
	return out;
}

size_t
cg_fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

size_t
cg_fmt_ipv4(char *out, const unsigned char addr[4])
{
	size_t n = 0;
	int i;

	for (i = 0; i < 4; i++) {
		if (i > 0)
			out[n++] = '.';
		n += cg_fmt_u64(out + n, addr[i]);
	}
	out[n] = '\0';
	return n;
}

void
cg_fmt_hex64(char *out, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
}

static int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
cg_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t
cg_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t
cg_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt)
{
	int64_t cap = base_ms > 0 ? base_ms : 1;
	uint32_t rnd = 0;

	while (attempt-- > 0 && cap < max_ms)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	if (cap < 1)
		cap = 1;
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = 0x7fffffff;
	return cap / 2 + (int64_t)(rnd % (uint64_t)(cap / 2 + 1));
}
