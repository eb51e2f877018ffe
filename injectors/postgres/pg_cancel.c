/*
 * pg_cancel.c: the process-wide map of cancel keys (pg_cancel.h).
 *
 * Buckets by credgate's pid, which is random: a lookup walks one short
 * chain under the lock and compares keys in constant time.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <openssl/rand.h>

#include "injectors/postgres/pg_cancel.h"

#define BUCKETS	1024

static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inj_pg_cancel *cancel_map[BUCKETS];

static struct inj_pg_cancel **
cancel_bucket(uint32_t pid)
{
	return &cancel_map[pid % BUCKETS];
}

static bool
cancel_listed_locked(uint32_t pid)
{
	const struct inj_pg_cancel *e;

	for (e = *cancel_bucket(pid); e != NULL; e = e->next)
		if (e->pid == pid)
			return true;
	return false;
}

int
inj_pg_cancel_add(struct inj_pg_cancel *e, size_t keylen)
{
	unsigned char pid[4];

	if (keylen != INJ_PG_KEY_V30 && keylen != INJ_PG_KEY_V32)
		return CG_ERR_FORMAT;
	e->keylen = keylen;
	if (RAND_bytes(e->key, (int)keylen) != 1)
		return CG_ERR_INTERNAL;
	pthread_mutex_lock(&cancel_lock);
	/* A pid is positive (clients print it) and, here, unique: a caller
	 * that guesses one still has to guess its key. */
	do {
		if (RAND_bytes(pid, sizeof(pid)) != 1) {
			pthread_mutex_unlock(&cancel_lock);
			return CG_ERR_INTERNAL;
		}
		e->pid = ((uint32_t)pid[0] << 24 | (uint32_t)pid[1] << 16 |
		    (uint32_t)pid[2] << 8 | pid[3]) & 0x7fffffffu;
	} while (e->pid == 0 || cancel_listed_locked(e->pid));
	e->next = *cancel_bucket(e->pid);
	*cancel_bucket(e->pid) = e;
	e->listed = true;
	pthread_mutex_unlock(&cancel_lock);
	return 0;
}

void
inj_pg_cancel_del(struct inj_pg_cancel *e)
{
	struct inj_pg_cancel **pp;

	if (e == NULL)
		return;
	if (e->listed) {
		pthread_mutex_lock(&cancel_lock);
		for (pp = cancel_bucket(e->pid); *pp != NULL; pp = &(*pp)->next)
			if (*pp == e) {
				*pp = e->next;
				break;
			}
		pthread_mutex_unlock(&cancel_lock);
		e->listed = false;
	}
	cg_wipe(e->key, sizeof(e->key));
	cg_wipe(e->up_key, sizeof(e->up_key));
	e->next = NULL;
}

bool
inj_pg_cancel_find(uint32_t pid, const void *key, size_t keylen, const char *upstream,
    struct inj_pg_cancel *out)
{
	const struct inj_pg_cancel *e;
	bool found = false;

	pthread_mutex_lock(&cancel_lock);
	for (e = *cancel_bucket(pid); e != NULL; e = e->next) {
		if (e->pid != pid || e->keylen != keylen)
			continue;
		if (cg_ct_equal(e->key, key, keylen) && strcmp(e->upstream, upstream) == 0) {
			out->up_pid = e->up_pid;
			memcpy(out->up_key, e->up_key, e->up_keylen);
			out->up_keylen = e->up_keylen;
			found = true;
		}
		break;	/* pids are unique */
	}
	pthread_mutex_unlock(&cancel_lock);
	return found;
}
