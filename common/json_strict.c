/*
 * json_strict.c: cg_json_strict_load(), the only way credgate turns outside
 * bytes into JSON: one value, bounded depth, no duplicate keys, no NUL in
 * strings, nothing after the value.  Which allocator jansson uses is
 * secmem.c's business.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * The parser.  It accepts exactly what jansson's json_loadb() accepts with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY (RFC 8259, strings in valid
 * UTF-8 without surrogates or \u0000, integers that fit a json_int_t,
 * reals that do not overflow) and builds the same values, but reads the
 * bytes in place instead of through a callback per byte.  Values come
 * from jansson's constructors, so they live where its allocator puts them
 * (secmem.c); scratch copies of strings and numbers are wiped.
 */
struct jp {
	const unsigned char *p;
	const unsigned char *end;
	int depth;		/* containers open */
	int max_depth;
};

/* Bytes that end a run of plain string bytes: controls, quote, backslash
 * and every byte of a multi-byte UTF-8 sequence. */
static const bool str_plain[256] = {
	[0x20 ... 0x21] = true, [0x23 ... 0x5b] = true, [0x5d ... 0x7f] = true,
};

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' ||
	    *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

/* A UTF-8 sequence at p (lead byte >= 0x80): its length, or 0 when it is
 * not valid (overlong, surrogate, past U+10FFFF, cut or stray). */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n, i;
	uint32_t v;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
	} else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) ||
	    v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	return n;
}

static int
hex4(const unsigned char *p, uint32_t *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		unsigned c = p[i];

		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else if (c >= 'A' && c <= 'F')
			c -= 'A' - 10;
		else
			return -1;
		*v = (*v << 4) | c;
	}
	return 0;
}

/*
 * Decodes the escape after a backslash at j->p into out (at most 4 bytes);
 * returns its length or 0 when it is not one we accept.
 */
static size_t
jp_escape(struct jp *j, unsigned char *out)
{
	uint32_t v, lo;

	if (j->p >= j->end)
		return 0;
	switch (*j->p++) {
	case '"': *out = '"'; return 1;
	case '\\': *out = '\\'; return 1;
	case '/': *out = '/'; return 1;
	case 'b': *out = '\b'; return 1;
	case 'f': *out = '\f'; return 1;
	case 'n': *out = '\n'; return 1;
	case 'r': *out = '\r'; return 1;
	case 't': *out = '\t'; return 1;
	case 'u': break;
	default: return 0;
	}
	if (j->end - j->p < 4 || hex4(j->p, &v) != 0)
		return 0;
	j->p += 4;
	if (v >= 0xdc00 && v <= 0xdfff)
		return 0;	/* a low surrogate alone */
	if (v >= 0xd800 && v <= 0xdbff) {
		/* A high surrogate takes a low one right after it. */
		if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
		    hex4(j->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
			return 0;
		j->p += 6;
		v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (v == 0)
		return 0;	/* no NUL inside strings */
	if (v < 0x80) {
		out[0] = (unsigned char)v;
		return 1;
	}
	if (v < 0x800) {
		out[0] = (unsigned char)(0xc0 | (v >> 6));
		out[1] = (unsigned char)(0x80 | (v & 0x3f));
		return 2;
	}
	if (v < 0x10000) {
		out[0] = (unsigned char)(0xe0 | (v >> 12));
		out[1] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (v & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | (v >> 18));
	out[1] = (unsigned char)(0x80 | ((v >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (v & 0x3f));
	return 4;
}

/*
 * The string whose opening quote is at j->p.  Sets *s and *n to its bytes:
 * in place when it has no escape, else in *scratch (allocated with
 * jansson's allocator, its size in *scratch_len; the caller wipes and
 * frees it).
 */
static int
jp_string(struct jp *j, const char **s, size_t *n, unsigned char **scratch,
    size_t *scratch_len)
{
	const unsigned char *start = ++j->p, *p;
	unsigned char *buf = NULL;
	size_t len = 0, k;
	json_malloc_t jm;
	json_free_t jf;

	*scratch = NULL;
	*scratch_len = 0;
	for (p = start;;) {
		while (p < j->end && str_plain[*p])
			p++;
		if (p >= j->end)
			return CG_ERR_FORMAT;
		if (*p == '"')
			break;
		if (*p == '\\')
			break;	/* escapes: decode below */
		if (*p < 0x20 || (k = utf8_len(p, j->end)) == 0)
			return CG_ERR_FORMAT;
		p += k;
	}
	if (*p == '"') {
		*s = (const char *)start;
		*n = (size_t)(p - start);
		j->p = p + 1;
		return 0;
	}

	/* Escaped: the decoded string is never longer than its text. */
	json_get_alloc_funcs(&jm, &jf);
	for (k = 0; p + k < j->end && p[k] != '"'; k++)
		if (p[k] == '\\' && p + k + 1 < j->end)
			k++;
	*scratch_len = (size_t)(p - start) + k + 1;
	if ((buf = jm(*scratch_len)) == NULL)
		return CG_ERR_NOMEM;
	*scratch = buf;
	memcpy(buf, start, (size_t)(p - start));
	len = (size_t)(p - start);
	j->p = p;
	for (;;) {
		while (j->p < j->end && str_plain[*j->p])
			buf[len++] = *j->p++;
		if (j->p >= j->end)
			return CG_ERR_FORMAT;
		if (*j->p == '"')
			break;
		if (*j->p == '\\') {
			j->p++;
			if ((k = jp_escape(j, buf + len)) == 0)
				return CG_ERR_FORMAT;
			len += k;
			continue;
		}
		if (*j->p < 0x20 || (k = utf8_len(j->p, j->end)) == 0)
			return CG_ERR_FORMAT;
		memcpy(buf + len, j->p, k);
		len += k;
		j->p += k;
	}
	j->p++;
	*s = (const char *)buf;
	*n = len;
	return 0;
}

static void
jp_scratch_free(unsigned char *scratch, size_t len)
{
	json_malloc_t jm;
	json_free_t jf;

	if (scratch == NULL)
		return;
	cg_wipe(scratch, len);
	json_get_alloc_funcs(&jm, &jf);
	jf(scratch);
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
jp_number(struct jp *j, json_t **out)
{
	const unsigned char *start = j->p;
	char tmp[64], *text = tmp, *endp;
	bool real = false;
	size_t n;
	int r = CG_ERR_FORMAT;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0') {
		j->p++;
		if (j->p < j->end && is_digit(*j->p))
			return CG_ERR_FORMAT;
	} else if (j->p < j->end && is_digit(*j->p)) {
		while (j->p < j->end && is_digit(*j->p))
			j->p++;
	} else
		return CG_ERR_FORMAT;
	if (j->p < j->end && *j->p == '.') {
		real = true;
		j->p++;
		if (j->p >= j->end || !is_digit(*j->p))
			return CG_ERR_FORMAT;
		while (j->p < j->end && is_digit(*j->p))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		real = true;
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || !is_digit(*j->p))
			return CG_ERR_FORMAT;
		while (j->p < j->end && is_digit(*j->p))
			j->p++;
	}

	n = (size_t)(j->p - start);
	if (n >= sizeof(tmp) && (text = malloc(n + 1)) == NULL)
		return CG_ERR_NOMEM;
	memcpy(text, start, n);
	text[n] = '\0';
	errno = 0;
	if (!real) {
		long long v = strtoll(text, &endp, 10);

		if (errno != ERANGE && endp == text + n)
			r = (*out = json_integer(v)) != NULL ? 0 : CG_ERR_NOMEM;
	} else {
		double v = strtod(text, &endp);

		if (!(errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL)) &&
		    endp == text + n)
			r = (*out = json_real(v)) != NULL ? 0 : CG_ERR_NOMEM;
	}
	cg_wipe(text, n);
	if (text != tmp)
		free(text);
	return r;
}

static bool
jp_word(struct jp *j, const char *w, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return false;
	j->p += n;
	return true;
}

static int jp_value(struct jp *j, json_t **out);

/* Takes c if it is next. */
static bool
jp_take(struct jp *j, unsigned char c)
{
	if (j->p >= j->end || *j->p != c)
		return false;
	j->p++;
	return true;
}

/* One "key": value member at j->p into obj; a key obj has is refused. */
static int
jp_member(struct jp *j, json_t *obj)
{
	unsigned char *scratch = NULL;
	size_t klen, slen = 0;
	const char *key;
	json_t *v;
	int r;

	if (j->p >= j->end || *j->p != '"')
		return CG_ERR_FORMAT;
	if ((r = jp_string(j, &key, &klen, &scratch, &slen)) != 0)
		goto out;
	r = CG_ERR_FORMAT;
	if (json_object_getn(obj, key, klen) != NULL)
		goto out;	/* a duplicate key */
	jp_ws(j);
	if (!jp_take(j, ':'))
		goto out;
	jp_ws(j);
	if ((r = jp_value(j, &v)) != 0)
		goto out;
	/* Takes v, also when it fails. */
	r = json_object_setn_new_nocheck(obj, key, klen, v) == 0 ? 0 : CG_ERR_NOMEM;
 out:
	jp_scratch_free(scratch, slen);
	return r;
}

/* The object or array whose opening bracket is at j->p. */
static int
jp_container(struct jp *j, bool is_object, json_t **out)
{
	unsigned char closer = is_object ? '}' : ']';
	json_t *c, *v;
	int r = 0;

	if ((c = is_object ? json_object() : json_array()) == NULL)
		return CG_ERR_NOMEM;
	j->p++;
	jp_ws(j);
	if (!jp_take(j, closer)) {
		for (;;) {
			if (is_object)
				r = jp_member(j, c);
			else if ((r = jp_value(j, &v)) == 0 &&
			    json_array_append_new(c, v) != 0)
				r = CG_ERR_NOMEM;
			if (r != 0)
				break;
			jp_ws(j);
			if (jp_take(j, ',')) {
				jp_ws(j);
				continue;
			}
			if (!jp_take(j, closer))
				r = CG_ERR_FORMAT;
			break;
		}
	}
	if (r != 0) {
		json_decref(c);
		return r;
	}
	*out = c;
	return 0;
}

/* One value at j->p, whitespace before it already skipped. */
static int
jp_value(struct jp *j, json_t **out)
{
	unsigned char *scratch;
	const char *s;
	size_t n, slen;
	int r;

	*out = NULL;
	if (j->p >= j->end)
		return CG_ERR_FORMAT;
	switch (*j->p) {
	case '{':
	case '[':
		if (++j->depth > j->max_depth)
			return CG_ERR_LIMIT;
		r = jp_container(j, *j->p == '{', out);
		j->depth--;
		return r;
	case '"':
		if ((r = jp_string(j, &s, &n, &scratch, &slen)) == 0)
			r = (*out = json_stringn_nocheck(s, n)) != NULL ? 0 :
			    CG_ERR_NOMEM;
		jp_scratch_free(scratch, slen);
		return r;
	case 't':
		if (!jp_word(j, "true", 4))
			return CG_ERR_FORMAT;
		*out = json_true();
		return 0;
	case 'f':
		if (!jp_word(j, "false", 5))
			return CG_ERR_FORMAT;
		*out = json_false();
		return 0;
	case 'n':
		if (!jp_word(j, "null", 4))
			return CG_ERR_FORMAT;
		*out = json_null();
		return 0;
	default:
		return jp_number(j, out);
	}
}

int
cg_json_strict_load(const char *buf, size_t len, int max_depth, json_t **out)
{
	struct jp j;
	json_t *root = NULL;
	int r;

	*out = NULL;
	if (buf == NULL || max_depth < 0)
		return CG_ERR_FORMAT;
	j.p = (const unsigned char *)buf;
	j.end = j.p + len;
	j.depth = 0;
	j.max_depth = max_depth;
	jp_ws(&j);
	if ((r = jp_value(&j, &root)) == 0) {
		jp_ws(&j);
		if (j.p == j.end) {
			*out = root;
			return 0;
		}
		json_decref(root);
		r = CG_ERR_FORMAT;
	}
	if (r == CG_ERR_NOMEM || r == CG_ERR_LIMIT)
		return r;
	/* The parser counts depth only as far as it got: a document refused
	 * for its syntax is still reported too deep when it is, on the
	 * failure path only, so that valid input is read once. */
	return json_depth(buf, len, max_depth) > max_depth ? CG_ERR_LIMIT :
	    CG_ERR_FORMAT;
}
