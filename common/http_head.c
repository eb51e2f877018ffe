/*
 * http_head.c: read-only lookups over a parsed HTTP/1.1 head (find and
 * count fields, walk list-valued fields, token characters).  The parsing
 * itself lives in proxy/; nothing here allocates.
 */
#include "config.h"

#include <string.h>

#include "common.h"

const struct http_field *
http_head_find(const struct http_head *h, const char *name, size_t *iter)
{
	size_t i, nlen;

	if (h == NULL || name == NULL)
		return NULL;
	nlen = strlen(name);
	for (i = iter != NULL ? *iter : 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];

		if (cg_strcase_eq(f->name.p, f->name.len, name, nlen)) {
			if (iter != NULL)
				*iter = i + 1;
			return f;
		}
	}
	if (iter != NULL)
		*iter = h->nfields;
	return NULL;
}

size_t
http_head_count(const struct http_head *h, const char *name)
{
	size_t i, nlen, n = 0;

	if (h == NULL || name == NULL)
		return 0;
	nlen = strlen(name);
	for (i = 0; i < h->nfields; i++) {
		if (cg_strcase_eq(h->fields[i].name.p, h->fields[i].name.len,
		    name, nlen))
			n++;
	}
	return n;
}

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool
http_list_next(const struct http_span *value, size_t *pos, struct http_span *elem)
{
	const char *p;
	size_t i, len, start, end;
	bool quoted;

	elem->p = NULL;
	elem->len = 0;
	if (value == NULL || value->p == NULL)
		return false;
	p = value->p;
	len = value->len;
	i = *pos;

	while (i < len) {
		/* Skip OWS and empty elements. */
		while (i < len && (is_ows(p[i]) || p[i] == ','))
			i++;
		if (i >= len)
			break;
		start = i;
		quoted = false;
		while (i < len) {
			if (quoted) {
				if (p[i] == '\\' && i + 1 < len)
					i++;
				else if (p[i] == '"')
					quoted = false;
			} else if (p[i] == '"')
				quoted = true;
			else if (p[i] == ',')
				break;
			i++;
		}
		end = i;
		while (end > start && is_ows(p[end - 1]))
			end--;
		if (i < len)
			i++;		/* past the comma */
		*pos = i;
		elem->p = p + start;
		elem->len = end - start;
		return true;
	}
	*pos = len;
	return false;
}

/* tchar (RFC 9110 5.6.2): the bytes of a token, such as a field name. */
const bool http_tchar[256] = {
	['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true,
	['\''] = true, ['*'] = true, ['+'] = true, ['-'] = true, ['.'] = true,
	['^'] = true, ['_'] = true, ['`'] = true, ['|'] = true, ['~'] = true,
	['0' ... '9'] = true, ['A' ... 'Z'] = true, ['a' ... 'z'] = true,
};
