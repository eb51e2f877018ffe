/*
 * secret.c: the secret type and the generic backend handle.
 *
 * Owns struct secret: one block of secure memory holding the header, the
 * field table and every string (path, version, lease id, names, values),
 * so that a single secmem_free() wipes all of it.  A secret is immutable
 * once built and shared by reference count (atomic: workers may hold
 * references while the control thread drops its own).  The stale copy the
 * cache hands out past expiry is a second block, built whole.
 *
 * Must not format, log or copy a value anywhere but secure memory.  Knows
 * nothing about where secrets come from (file_backend.c, later vault) or
 * how long they are kept (cache.c).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vault-client/cache_int.h"
#include "vault-client/vault.h"

struct secret_field {
	const char *name;	/* NUL-terminated, inside the block */
	const char *value;	/* value_len bytes plus a NUL, inside the block */
	size_t value_len;
};

struct secret {
	int refs;		/* __atomic_* only */
	size_t size;		/* of the whole block */
	const char *path;	/* inside the block */
	const char *version;	/* inside the block; "" when none was given */
	bool has_lease;		/* lease.id inside the block, or NULL */
	bool stale;		/* a copy handed out past expiry */
	struct secret_lease lease;
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
	return secret_new_leased(path, version, NULL, nfields, names, values,
	    value_lens, out);
}

int
secret_new_leased(const char *path, const char *version,
    const struct secret_lease *lease, size_t nfields, const char *const *names,
    const char *const *values, const size_t *value_lens, struct secret **out)
{
	struct secret *s = NULL;
	size_t total, i, j, vlen;
	const char *lease_id = NULL;
	char *p;

	*out = NULL;
	if (path == NULL || (nfields > 0 && (names == NULL || values == NULL)))
		return CG_ERR_INTERNAL;
	if (version == NULL)
		version = "";
	if (lease != NULL && lease->duration_ms < 0)
		return CG_ERR_INTERNAL;
	if (lease != NULL && lease->id != NULL && lease->id[0] != '\0')
		lease_id = lease->id;

	total = sizeof(*s);
	if (nfields > (SIZE_MAX - total) / sizeof(s->fields[0]))
		return CG_ERR_LIMIT;
	total += nfields * sizeof(s->fields[0]);
	if (!size_add(&total, strlen(path) + 1) ||
	    !size_add(&total, strlen(version) + 1) ||
	    (lease_id != NULL && !size_add(&total, strlen(lease_id) + 1)))
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
	s->size = total;
	p = (char *)&s->fields[nfields];
	s->path = put_str(&p, path, strlen(path));
	s->version = put_str(&p, version, strlen(version));
	if (lease != NULL && (lease_id != NULL || lease->duration_ms > 0)) {
		s->has_lease = true;
		s->lease.id = lease_id != NULL ?
		    put_str(&p, lease_id, strlen(lease_id)) : NULL;
		s->lease.duration_ms = lease->duration_ms;
		s->lease.renewable = lease->renewable && lease_id != NULL;
	}
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

/* p, a pointer into the block of from, moved to the same place in to. */
static const char *
rebase(const struct secret *from, struct secret *to, const char *p)
{
	if (p == NULL)
		return NULL;
	return (const char *)to + (p - (const char *)from);
}

int
secret_stale_copy(const struct secret *s, struct secret **out)
{
	struct secret *c;
	size_t i;

	*out = NULL;
	if (s == NULL)
		return CG_ERR_INTERNAL;
	if ((c = secmem_alloc(s->size)) == NULL)
		return CG_ERR_NOMEM;
	/* All but the count, which other threads may be changing. */
	memcpy((char *)c + offsetof(struct secret, size),
	    (const char *)s + offsetof(struct secret, size),
	    s->size - offsetof(struct secret, size));
	c->path = rebase(s, c, s->path);
	c->version = rebase(s, c, s->version);
	c->lease.id = rebase(s, c, s->lease.id);
	for (i = 0; i < s->nfields; i++) {
		c->fields[i].name = rebase(s, c, s->fields[i].name);
		c->fields[i].value = rebase(s, c, s->fields[i].value);
	}
	c->stale = true;
	__atomic_store_n(&c->refs, 1, __ATOMIC_RELEASE);
	*out = c;
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

const struct secret_lease *
secret_lease(const struct secret *s)
{
	return s != NULL && s->has_lease ? &s->lease : NULL;
}

bool
secret_stale(const struct secret *s)
{
	return s != NULL && s->stale;
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

enum secret_backend_state
secret_backend_status(const struct secret_backend *b, const char **reason)
{
	enum secret_backend_state st = SECRET_BACKEND_OK;
	const char *why = NULL;

	if (b != NULL && b->ops != NULL && b->ops->status != NULL)
		st = b->ops->status(b->ctx, &why);
	if (reason != NULL)
		*reason = why != NULL ? why : secret_backend_state_name(st);
	return st;
}

const char *
secret_backend_state_name(enum secret_backend_state st)
{
	switch (st) {
	case SECRET_BACKEND_OK:		return "ok";
	case SECRET_BACKEND_DEGRADED:	return "degraded";
	case SECRET_BACKEND_DOWN:	return "down";
	}
	return "down";
}
