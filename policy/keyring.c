/*
 * keyring.c: an issuer's current key set, shared by the workers and
 * replaced as a whole by the control thread (see policy.h, "Key rings").
 *
 * The mutex guards only the pointer swap and the reference a reader takes,
 * never a signature check or any I/O: a worker holds it for a load and an
 * atomic increment.  The address of the current set is also kept in an
 * atomic word so that the token cache can compare against it without the
 * lock.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "common.h"
#include "policy.h"

struct policy_keyring {
	pthread_mutex_t lock;
	struct jwks *keys;		/* a reference; under lock */
	const struct jwks *current;	/* == keys; __atomic_* only */
	uint64_t serial;		/* __atomic_* only */
	uint64_t started;		/* fetches started; __atomic_* only */
	uint64_t answered;		/* the last fetch ended; likewise */
	uint64_t refusals;		/* likewise */
	unsigned refs;			/* __atomic_* only */
	bool want;			/* a fetch was asked for; under lock */
	void (*waker)(void *);		/* under lock */
	void *waker_arg;
};

struct policy_keyring *
policy_keyring_new(struct jwks *ks)
{
	struct policy_keyring *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		jwks_free(ks);
		return NULL;
	}
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r);
		jwks_free(ks);
		return NULL;
	}
	r->keys = ks;
	r->current = ks;
	r->refs = 1;
	return r;
}

struct policy_keyring *
policy_keyring_ref(struct policy_keyring *r)
{
	if (r != NULL)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

void
policy_keyring_unref(struct policy_keyring *r)
{
	if (r == NULL || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	jwks_free(r->keys);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void
policy_keyring_set(struct policy_keyring *r, struct jwks *ks)
{
	struct jwks *old;

	pthread_mutex_lock(&r->lock);
	old = r->keys;
	r->keys = ks;
	__atomic_store_n(&r->current, ks, __ATOMIC_RELEASE);
	__atomic_add_fetch(&r->serial, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&r->lock);
	jwks_free(old);
}

uint64_t
policy_keyring_fetch_start(struct policy_keyring *r)
{
	return __atomic_add_fetch(&r->started, 1, __ATOMIC_ACQ_REL);
}

void
policy_keyring_fetch_done(struct policy_keyring *r, uint64_t fetch)
{
	/* One fetcher numbers and ends fetches in order: no lower id
	 * ends after a higher one. */
	if (fetch > __atomic_load_n(&r->answered, __ATOMIC_ACQUIRE))
		__atomic_store_n(&r->answered, fetch, __ATOMIC_RELEASE);
}

void
policy_keyring_refuse(struct policy_keyring *r)
{
	__atomic_add_fetch(&r->refusals, 1, __ATOMIC_RELEASE);
}

uint64_t
policy_keyring_started(const struct policy_keyring *r)
{
	return r == NULL ? 0 : __atomic_load_n(&r->started, __ATOMIC_ACQUIRE);
}

uint64_t
policy_keyring_answered(const struct policy_keyring *r)
{
	return r == NULL ? 0 : __atomic_load_n(&r->answered, __ATOMIC_ACQUIRE);
}

uint64_t
policy_keyring_refusals(const struct policy_keyring *r)
{
	return r == NULL ? 0 : __atomic_load_n(&r->refusals, __ATOMIC_ACQUIRE);
}

struct jwks *
policy_keyring_get(struct policy_keyring *r)
{
	struct jwks *ks;

	if (r == NULL)
		return NULL;
	pthread_mutex_lock(&r->lock);
	ks = jwks_ref(r->keys);
	pthread_mutex_unlock(&r->lock);
	return ks;
}

const struct jwks *
policy_keyring_current(const struct policy_keyring *r)
{
	return r == NULL ? NULL : __atomic_load_n(&r->current, __ATOMIC_ACQUIRE);
}

uint64_t
policy_keyring_serial(const struct policy_keyring *r)
{
	return r == NULL ? 0 : __atomic_load_n(&r->serial, __ATOMIC_ACQUIRE);
}

void
policy_keyring_set_waker(struct policy_keyring *r, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&r->lock);
	r->waker = fn;
	r->waker_arg = arg;
	pthread_mutex_unlock(&r->lock);
}

bool
policy_keyring_want(struct policy_keyring *r)
{
	void (*fn)(void *);
	void *arg;

	if (r == NULL)
		return false;
	pthread_mutex_lock(&r->lock);
	fn = r->waker;
	arg = r->waker_arg;
	if (fn != NULL)
		r->want = true;
	pthread_mutex_unlock(&r->lock);
	if (fn == NULL)
		return false;
	fn(arg);	/* writes an eventfd: no lock of ours held */
	return true;
}

bool
policy_keyring_take_want(struct policy_keyring *r)
{
	bool w;

	pthread_mutex_lock(&r->lock);
	w = r->want;
	r->want = false;
	pthread_mutex_unlock(&r->lock);
	return w;
}
