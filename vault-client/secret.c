/*
 * secret.c: the secret type and the generic backend handle.
 *
 * Owns struct secret: one block of secure memory holding the header, the
 * field table and every string (path, version, names, values), so that a
 * single secmem_free() wipes all of it.  A secret is immutable once built
 * and shared by reference count (atomic: workers may hold references while
 * the control thread drops its own).
 *
 * Must not format, log or copy a value anywhere but secure memory.  Knows
 * nothing about where secrets come from (file_backend.c, later vault) or
 * how long they are kept (cache.c).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vault-client/vault.h"

struct secret_field {
	const char *name;	/* NUL-terminated, inside the block */
	const char *value;	/* value_len bytes plus a NUL, inside the block */
	size_t value_len;
};

struct secret {
	int refs;		/* __atomic_* only */
	const char *path;	/* inside the block */
	const char *version;	/* inside the block; "" when none was given */
	size_t nfields;
	struct secret_field fields[];	/* then the strings */
};

/* a += b, false on overflow. */
static bool
size_add(size_t *a, size_t b)
{
	if (*a > SIZE_MAX - b)
		return false;
	*a += b;
	return true;
}

/* Copies n bytes of s and a NUL to *p, advancing it; returns the copy. */
static const char *
put_str(char **p, const char *s, size_t n)
{
	char *r = *p;

	if (n > 0)
		memcpy(r, s, n);
	r[n] = '\0';
	*p += n + 1;
	return r;
}

int
secret_new(const char *path, const char *version, size_t nfields,
    const char *const *names, const char *const *values, const size_t *value_lens,
    struct secret **out)
{
	struct secret *s = NULL;
	size_t total, i, j, vlen;
	char *p;

	*out = NULL;
	if (path == NULL || (nfields > 0 && (names == NULL || values == NULL)))
		return CG_ERR_INTERNAL;
	if (version == NULL)
		version = "";

	total = sizeof(*s);
	if (nfields > (SIZE_MAX - total) / sizeof(s->fields[0]))
		return CG_ERR_LIMIT;
	total += nfields * sizeof(s->fields[0]);
	if (!size_add(&total, strlen(path) + 1) ||
	    !size_add(&total, strlen(version) + 1))
		return CG_ERR_LIMIT;
	for (i = 0; i < nfields; i++) {
		if (names[i] == NULL)
			return CG_ERR_INTERNAL;
		vlen = value_lens != NULL ? value_lens[i] :
		    (values[i] != NULL ? strlen(values[i]) : 0);
		if (values[i] == NULL && vlen > 0)
			return CG_ERR_INTERNAL;
		/* One value per name: a lookup must not depend on order. */
		for (j = 0; j < i; j++) {
			if (strcmp(names[i], names[j]) == 0)
				return CG_ERR_FORMAT;
		}
		if (!size_add(&total, strlen(names[i]) + 1) ||
		    !size_add(&total, vlen) || !size_add(&total, 1))
			return CG_ERR_LIMIT;
	}

	if ((s = secmem_alloc(total)) == NULL)
		return CG_ERR_NOMEM;
	p = (char *)&s->fields[nfields];
	s->path = put_str(&p, path, strlen(path));
	s->version = put_str(&p, version, strlen(version));
	for (i = 0; i < nfields; i++) {
		vlen = value_lens != NULL ? value_lens[i] :
		    (values[i] != NULL ? strlen(values[i]) : 0);
		s->fields[i].name = put_str(&p, names[i], strlen(names[i]));
		s->fields[i].value = put_str(&p, values[i], vlen);
		s->fields[i].value_len = vlen;
	}
	s->nfields = nfields;
	__atomic_store_n(&s->refs, 1, __ATOMIC_RELEASE);
	*out = s;
	return 0;
}

struct secret *
secret_ref(struct secret *s)
{
	int prev;

	if (s == NULL)
		return NULL;
	prev = __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
	if (prev <= 0)
		abort();	/* a reference to a freed secret */
	return s;
}

void
secret_unref(struct secret *s)
{
	int prev;

	if (s == NULL)
		return;
	prev = __atomic_fetch_sub(&s->refs, 1, __ATOMIC_ACQ_REL);
	if (prev <= 0)
		abort();	/* unref past zero */
	if (prev == 1)
		secmem_free(s);	/* wipes the whole block */
}

const char *
secret_path(const struct secret *s)
{
	return s->path;
}

const char *
secret_version(const struct secret *s)
{
	return s->version;
}

size_t
secret_nfields(const struct secret *s)
{
	return s->nfields;
}

const char *
secret_field_name(const struct secret *s, size_t i)
{
	if (i >= s->nfields)
		return NULL;
	return s->fields[i].name;
}

const char *
secret_field(const struct secret *s, const char *name, size_t *len)
{
	size_t i;

	if (len != NULL)
		*len = 0;
	if (s == NULL || name == NULL)
		return NULL;
	for (i = 0; i < s->nfields; i++) {
		if (strcmp(s->fields[i].name, name) == 0) {
			if (len != NULL)
				*len = s->fields[i].value_len;
			return s->fields[i].value;
		}
	}
	return NULL;
}

void
secret_backend_free(struct secret_backend *b)
{
	if (b == NULL)
		return;
	if (b->ops != NULL && b->ops->free != NULL)
		b->ops->free(b->ctx);
	free(b);
}
