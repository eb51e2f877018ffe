/*
 * test_secret_cache.c: the secret cache (vault-client/cache.c) in front of
 * a backend defined here, which counts fetches and answers them from a
 * timer on the event loop: single flight, hits, expiry, errors, cancel,
 * re-entrant callbacks, changed() and freeing with waits pending.
 */
#include "config.h"

#include "tests/unit/unit.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "common.h"
#include "vault-client/vault.h"

/* ------------------------------------------------------------------ */
/* A backend that answers from the event loop.                         */
/* ------------------------------------------------------------------ */
struct tb_fetch {
	struct test_backend *tb;
	struct event *ev;
	char *path;
	secret_cb cb;
	void *arg;
	TAILQ_ENTRY(tb_fetch) link;
};

struct test_backend {
	struct event_base *base;
	int fetches;		/* accepted fetch() calls */
	int answered;		/* callbacks made */
	int version;		/* bumped at each answer */
	int fail_with;		/* answer with this error if non-zero */
	int refuse_with;	/* fetch() returns this if non-zero */
	bool changed;		/* reported once by changed() */
	bool *freed;		/* set by free() */
	char last_path[128];
	TAILQ_HEAD(, tb_fetch) pending;
};

static void
tb_answer(evutil_socket_t fd, short what, void *arg)
{
	struct tb_fetch *f = arg;
	struct test_backend *tb = f->tb;
	struct secret *s = NULL;
	char version[16], value[160];
	const char *names[] = { "password" };
	const char *values[] = { value };
	int err = tb->fail_with;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&tb->pending, f, link);
	event_free(f->ev);
	tb->answered++;
	if (err == 0) {
		snprintf(version, sizeof(version), "%d", ++tb->version);
		snprintf(value, sizeof(value), "pw-%s", f->path);
		assert_int_equal(secret_new(f->path, version, 1, names, values,
		    NULL, &s), 0);
		f->cb(0, s, NULL, f->arg);
		secret_unref(s);	/* the reference was only lent */
	} else
		f->cb(err, NULL, "test backend says no", f->arg);
	free(f->path);
	free(f);
}

static int
tb_fetch(void *ctx, const char *path, secret_cb cb, void *arg)
{
	static const struct timeval zero = { 0, 0 };
	struct test_backend *tb = ctx;
	struct tb_fetch *f;

	snprintf(tb->last_path, sizeof(tb->last_path), "%s", path);
	if (tb->refuse_with != 0)
		return tb->refuse_with;
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->tb = tb;
	f->path = strdup(path);
	f->cb = cb;
	f->arg = arg;
	f->ev = evtimer_new(tb->base, tb_answer, f);
	assert_non_null(f->ev);
	assert_int_equal(evtimer_add(f->ev, &zero), 0);
	TAILQ_INSERT_TAIL(&tb->pending, f, link);
	tb->fetches++;
	return 0;
}

static bool
tb_changed(void *ctx)
{
	struct test_backend *tb = ctx;
	bool r = tb->changed;

	tb->changed = false;
	return r;
}

static void
tb_free(void *ctx)
{
	struct test_backend *tb = ctx;
	struct tb_fetch *f;

	while ((f = TAILQ_FIRST(&tb->pending)) != NULL) {
		TAILQ_REMOVE(&tb->pending, f, link);
		event_free(f->ev);
		free(f->path);
		free(f);
	}
	if (tb->freed != NULL)
		*tb->freed = true;
	free(tb);
}

static const struct secret_backend_ops tb_ops = {
	.name = "test",
	.fetch = tb_fetch,
	.changed = tb_changed,
	.free = tb_free,
};

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */
struct fx {
	struct event_base *base;
	struct test_backend *tb;	/* owned by the cache */
	struct secret_cache *c;
	bool freed;
	size_t secmem_before;
};

static struct fx *
fx_new(int64_t ttl_ms)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct secret_backend *b = calloc(1, sizeof(*b));
	size_t total;

	assert_non_null(fx);
	assert_non_null(b);
	secmem_stats(&fx->secmem_before, &total);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->tb = calloc(1, sizeof(*fx->tb));
	assert_non_null(fx->tb);
	fx->tb->base = fx->base;
	fx->tb->freed = &fx->freed;
	TAILQ_INIT(&fx->tb->pending);
	b->ops = &tb_ops;
	b->ctx = fx->tb;
	assert_int_equal(secret_cache_new(fx->base, b, ttl_ms, &fx->c), 0);
	return fx;
}

static void
fx_free(struct fx *fx)
{
	size_t after, total;

	secret_cache_free(fx->c);
	assert_true(fx->freed);
	event_base_free(fx->base);
	secmem_stats(&after, &total);
	assert_int_equal(after, fx->secmem_before);
	free(fx);
}

/* Runs the loop until nothing is pending. */
static void
run(struct fx *fx)
{
	assert_int_not_equal(event_base_dispatch(fx->base), -1);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* One waiter's view. */
struct waiter {
	struct fx *fx;
	int id;
	int calls;
	int err;
	char reason[64];
	char version[16];
	char value[160];
	struct secret_wait *w;
	int *order;		/* shared log of ids, in call order */
	int *norder;
	/* re-entrant actions taken inside the callback */
	const char *get_path;	/* secret_cache_get() this path */
	int get_r;
	struct secret *get_s;
	struct waiter *get_waiter;
	struct waiter *cancel;	/* cancel this one's wait */
	bool free_cache;	/* secret_cache_free() */
};

static void waiter_cb(int err, struct secret *s, const char *reason, void *arg);

static void
waiter_cb(int err, struct secret *s, const char *reason, void *arg)
{
	struct waiter *wt = arg;
	const char *v;

	wt->calls++;
	wt->err = err;
	if (wt->order != NULL)
		wt->order[(*wt->norder)++] = wt->id;
	if (err == 0) {
		assert_non_null(s);
		assert_null(reason);
		snprintf(wt->version, sizeof(wt->version), "%s", secret_version(s));
		v = secret_field(s, "password", NULL);
		assert_non_null(v);
		snprintf(wt->value, sizeof(wt->value), "%s", v);
	} else {
		assert_null(s);
		assert_non_null(reason);
		snprintf(wt->reason, sizeof(wt->reason), "%s", reason);
	}
	if (wt->cancel != NULL)
		secret_cache_cancel(wt->cancel->w);
	if (wt->get_path != NULL) {
		wt->get_r = secret_cache_get(wt->fx->c, wt->get_path,
		    &wt->get_s, waiter_cb, wt->get_waiter,
		    wt->get_waiter != NULL ? &wt->get_waiter->w : NULL);
	}
	if (wt->free_cache) {
		secret_cache_free(wt->fx->c);
		wt->fx->c = NULL;
	}
}

static int
get(struct fx *fx, const char *path, struct waiter *wt, struct secret **out)
{
	wt->fx = fx;
	return secret_cache_get(fx->c, path, out, waiter_cb, wt, &wt->w);
}

static void
stats_are(struct fx *fx, uint64_t hits, uint64_t misses, uint64_t fetches,
    uint64_t errors)
{
	struct secret_cache_stats st;

	secret_cache_stats(fx->c, &st);
	assert_int_equal(st.hits, hits);
	assert_int_equal(st.misses, misses);
	assert_int_equal(st.fetches, fetches);
	assert_int_equal(st.errors, errors);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */
static void
test_single_flight(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[10];
	struct secret *s;
	int order[16], norder = 0, i;

	(void)state;
	memset(wt, 0, sizeof(wt));
	for (i = 0; i < 10; i++) {
		wt[i].id = i;
		wt[i].order = order;
		wt[i].norder = &norder;
		s = (struct secret *)&s;
		assert_int_equal(get(fx, "svc/db", &wt[i], &s), CG_ERR_AGAIN);
		assert_null(s);
		assert_non_null(wt[i].w);
	}
	assert_int_equal(fx->tb->fetches, 1);
	assert_string_equal(fx->tb->last_path, "svc/db");
	for (i = 0; i < 10; i++)
		assert_int_equal(wt[i].calls, 0);	/* never inside get */
	stats_are(fx, 0, 10, 1, 0);

	run(fx);
	assert_int_equal(fx->tb->answered, 1);
	assert_int_equal(norder, 10);
	for (i = 0; i < 10; i++) {
		assert_int_equal(order[i], i);	/* in the order they came */
		assert_int_equal(wt[i].calls, 1);
		assert_int_equal(wt[i].err, 0);
		assert_string_equal(wt[i].value, "pw-svc/db");
		assert_string_equal(wt[i].version, "1");
	}

	/* Fresh: a hit, a new reference, no callback, no fetch. */
	memset(&wt[0], 0, sizeof(wt[0]));
	assert_int_equal(get(fx, "svc/db", &wt[0], &s), 0);
	assert_non_null(s);
	assert_null(wt[0].w);
	assert_string_equal(secret_field(s, "password", NULL), "pw-svc/db");
	assert_string_equal(secret_version(s), "1");
	run(fx);
	assert_int_equal(wt[0].calls, 0);
	assert_int_equal(fx->tb->fetches, 1);
	stats_are(fx, 1, 10, 1, 0);

	/* The reference outlives the cache. */
	secret_cache_free(fx->c);
	fx->c = NULL;
	assert_true(fx->freed);
	assert_string_equal(secret_field(s, "password", NULL), "pw-svc/db");
	secret_unref(s);
	fx_free(fx);
}

static void
test_paths_are_separate(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter a = { 0 }, b = { 0 }, a2 = { 0 };
	struct secret *s;

	(void)state;
	assert_int_equal(get(fx, "a", &a, &s), CG_ERR_AGAIN);
	assert_int_equal(get(fx, "b", &b, &s), CG_ERR_AGAIN);
	assert_int_equal(get(fx, "a", &a2, &s), CG_ERR_AGAIN);
	assert_int_equal(fx->tb->fetches, 2);
	run(fx);
	assert_string_equal(a.value, "pw-a");
	assert_string_equal(a2.value, "pw-a");
	assert_string_equal(b.value, "pw-b");
	assert_int_equal(get(fx, "b", &b, &s), 0);
	assert_string_equal(secret_path(s), "b");
	secret_unref(s);
	fx_free(fx);
}

static void
test_expiry(void **state)
{
	struct fx *fx = fx_new(40);
	struct waiter wt = { 0 };
	struct secret *s = NULL;

	(void)state;
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_string_equal(wt.version, "1");
	assert_int_equal(get(fx, "p", &wt, &s), 0);
	secret_unref(s);

	sleep_ms(60);
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	assert_null(s);
	assert_int_equal(fx->tb->fetches, 2);
	run(fx);
	assert_int_equal(wt.calls, 1);
	assert_string_equal(wt.version, "2");	/* a new fetch, a new answer */
	assert_int_equal(get(fx, "p", &wt, &s), 0);
	assert_string_equal(secret_version(s), "2");
	secret_unref(s);
	stats_are(fx, 2, 2, 2, 0);
	fx_free(fx);
}

static void
test_ttl_zero_never_hits(void **state)
{
	struct fx *fx = fx_new(0);
	struct waiter wt = { 0 };
	struct secret *s = NULL;

	(void)state;
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(fx->tb->fetches, 2);
	assert_int_equal(wt.calls, 2);
	fx_free(fx);
}

static void
test_errors_not_cached(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[3];
	struct secret *s = NULL;
	int i;

	(void)state;
	memset(wt, 0, sizeof(wt));
	fx->tb->fail_with = CG_ERR_IO;
	for (i = 0; i < 3; i++)
		assert_int_equal(get(fx, "p", &wt[i], &s), CG_ERR_AGAIN);
	run(fx);
	for (i = 0; i < 3; i++) {
		assert_int_equal(wt[i].calls, 1);
		assert_int_equal(wt[i].err, CG_ERR_IO);
		assert_string_equal(wt[i].reason, "test backend says no");
	}
	stats_are(fx, 0, 3, 1, 1);

	/* Asked again: fetched again, and this time it works. */
	fx->tb->fail_with = 0;
	memset(&wt[0], 0, sizeof(wt[0]));
	assert_int_equal(get(fx, "p", &wt[0], &s), CG_ERR_AGAIN);
	assert_int_equal(fx->tb->fetches, 2);
	run(fx);
	assert_int_equal(wt[0].err, 0);
	assert_int_equal(get(fx, "p", &wt[0], &s), 0);
	secret_unref(s);

	/* A fetch the backend refuses at once is an immediate error,
	 * without a wait or a callback. */
	fx->tb->refuse_with = CG_ERR_UNSUPPORTED;
	memset(&wt[1], 0, sizeof(wt[1]));
	wt[1].w = (struct secret_wait *)&wt[1];
	assert_int_equal(get(fx, "q", &wt[1], &s), CG_ERR_UNSUPPORTED);
	assert_null(wt[1].w);
	assert_null(s);
	run(fx);
	assert_int_equal(wt[1].calls, 0);
	stats_are(fx, 1, 5, 2, 2);
	/* And the refusal left nothing behind: the next try fetches. */
	fx->tb->refuse_with = 0;
	assert_int_equal(get(fx, "q", &wt[1], &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt[1].calls, 1);
	assert_int_equal(wt[1].err, 0);
	fx_free(fx);
}

static void
test_cancel(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[4];
	struct secret *s = NULL;
	int i;

	(void)state;
	memset(wt, 0, sizeof(wt));

	/* The only waiter cancels: no callback, but the fetch still lands
	 * in the cache. */
	assert_int_equal(get(fx, "solo", &wt[0], &s), CG_ERR_AGAIN);
	secret_cache_cancel(wt[0].w);
	run(fx);
	assert_int_equal(wt[0].calls, 0);
	assert_int_equal(fx->tb->answered, 1);
	assert_int_equal(get(fx, "solo", &wt[0], &s), 0);
	secret_unref(s);
	assert_int_equal(fx->tb->fetches, 1);

	/* One of several. */
	memset(wt, 0, sizeof(wt));
	for (i = 0; i < 4; i++)
		assert_int_equal(get(fx, "many", &wt[i], &s), CG_ERR_AGAIN);
	secret_cache_cancel(wt[2].w);
	secret_cache_cancel(NULL);
	run(fx);
	assert_int_equal(wt[0].calls, 1);
	assert_int_equal(wt[1].calls, 1);
	assert_int_equal(wt[2].calls, 0);
	assert_int_equal(wt[3].calls, 1);
	assert_int_equal(fx->tb->fetches, 2);
	fx_free(fx);
}

static void
test_reentrant(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[4], other = { 0 }, again = { 0 };
	struct secret *s = NULL;
	int i;

	(void)state;
	memset(wt, 0, sizeof(wt));
	for (i = 0; i < 4; i++)
		wt[i].id = i;
	/* wt[0] asks for the same path again (a hit by now) and cancels
	 * wt[1]; wt[2] asks for another path (a new flight). */
	wt[0].get_path = "p";
	wt[0].get_waiter = &again;
	wt[0].cancel = &wt[1];
	wt[2].get_path = "other";
	wt[2].get_waiter = &other;
	for (i = 0; i < 4; i++)
		assert_int_equal(get(fx, "p", &wt[i], &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt[0].calls, 1);
	assert_int_equal(wt[0].get_r, 0);
	assert_non_null(wt[0].get_s);
	assert_string_equal(secret_path(wt[0].get_s), "p");
	secret_unref(wt[0].get_s);
	assert_int_equal(again.calls, 0);
	assert_int_equal(wt[1].calls, 0);	/* cancelled from inside */
	assert_int_equal(wt[2].calls, 1);
	assert_int_equal(wt[2].get_r, CG_ERR_AGAIN);
	assert_int_equal(wt[3].calls, 1);
	/* dispatch ran until idle: the nested fetch has answered too */
	assert_int_equal(other.calls, 1);
	assert_string_equal(other.value, "pw-other");
	assert_int_equal(fx->tb->fetches, 2);
	fx_free(fx);
}

static void
test_reentrant_after_error(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[2], retry = { 0 };
	struct secret *s = NULL;

	(void)state;
	memset(wt, 0, sizeof(wt));
	/* After a failure the first waiter retries at once: a new flight,
	 * which the second waiter of the old one must not join. */
	fx->tb->fail_with = CG_ERR_IO;
	wt[0].get_path = "p";
	wt[0].get_waiter = &retry;
	assert_int_equal(get(fx, "p", &wt[0], &s), CG_ERR_AGAIN);
	assert_int_equal(get(fx, "p", &wt[1], &s), CG_ERR_AGAIN);
	assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
	assert_int_equal(wt[0].calls, 1);
	assert_int_equal(wt[1].calls, 1);
	assert_int_equal(wt[1].err, CG_ERR_IO);
	assert_int_equal(wt[0].get_r, CG_ERR_AGAIN);
	assert_int_equal(retry.calls, 0);
	assert_int_equal(fx->tb->fetches, 2);
	fx->tb->fail_with = 0;
	run(fx);
	assert_int_equal(retry.calls, 1);
	assert_int_equal(retry.err, 0);
	assert_int_equal(wt[1].calls, 1);
	fx_free(fx);
}

static void
test_cancel_self_in_callback(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[2];
	struct secret *s = NULL;

	(void)state;
	memset(wt, 0, sizeof(wt));
	wt[0].cancel = &wt[0];	/* harmless: its callback is running */
	assert_int_equal(get(fx, "p", &wt[0], &s), CG_ERR_AGAIN);
	assert_int_equal(get(fx, "p", &wt[1], &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt[0].calls, 1);
	assert_int_equal(wt[1].calls, 1);
	fx_free(fx);
}

static void
test_changed_drops_entries(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt = { 0 }, late = { 0 };
	struct secret *s = NULL, *kept = NULL;

	(void)state;
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	assert_int_equal(get(fx, "q", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(get(fx, "p", &wt, &kept), 0);

	fx->tb->changed = true;
	assert_int_equal(get(fx, "q", &wt, &s), CG_ERR_AGAIN);
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	assert_int_equal(fx->tb->fetches, 4);
	run(fx);
	assert_int_equal(get(fx, "p", &wt, &s), 0);
	assert_string_equal(secret_version(s), "4");
	secret_unref(s);
	/* A reference taken before the change is still whole. */
	assert_string_equal(secret_field(kept, "password", NULL), "pw-p");
	secret_unref(kept);

	/* A fetch that started before a change delivers its answer but
	 * does not store it: it may be from the old source. */
	assert_int_equal(get(fx, "r", &late, &s), CG_ERR_AGAIN);
	fx->tb->changed = true;
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(late.calls, 1);
	assert_int_equal(late.err, 0);
	memset(&late, 0, sizeof(late));
	assert_int_equal(get(fx, "r", &late, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(late.calls, 1);
	/* p was fetched after the change, so it stays. */
	assert_int_equal(get(fx, "p", &wt, &s), 0);
	secret_unref(s);
	fx_free(fx);
}

static void
test_free_with_pending(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[5];
	struct secret *s = NULL;
	int i;

	(void)state;
	memset(wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "cached", &wt[4], &s), CG_ERR_AGAIN);
	run(fx);
	for (i = 0; i < 4; i++)
		assert_int_equal(get(fx, i % 2 ? "a" : "b", &wt[i], &s),
		    CG_ERR_AGAIN);
	secret_cache_free(fx->c);
	fx->c = NULL;
	assert_true(fx->freed);
	run(fx);
	for (i = 0; i < 4; i++)
		assert_int_equal(wt[i].calls, 0);
	fx_free(fx);	/* secure memory back where it was */
}

static void
test_free_from_callback(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt[3], x = { 0 };
	struct secret *s = NULL;
	int i;

	(void)state;
	memset(wt, 0, sizeof(wt));
	for (i = 0; i < 3; i++)
		assert_int_equal(get(fx, "p", &wt[i], &s), CG_ERR_AGAIN);
	assert_int_equal(get(fx, "x", &x, &s), CG_ERR_AGAIN);
	wt[1].free_cache = true;
	/* Answer "p" only: the freed backend drops "x". */
	assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE), 0);
	assert_true(fx->freed);
	assert_null(fx->c);
	assert_int_equal(wt[0].calls, 1);
	assert_int_equal(wt[1].calls, 1);
	assert_int_equal(wt[2].calls, 0);
	run(fx);
	assert_int_equal(x.calls, 0);
	fx_free(fx);
}

static void
test_eviction(void **state)
{
	struct fx *fx = fx_new(60000);
	struct waiter wt = { 0 };
	struct secret *s = NULL;
	char path[32];
	int i, n = 4097;

	(void)state;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "p/%d", i);
		assert_int_equal(get(fx, path, &wt, &s), CG_ERR_AGAIN);
		run(fx);
	}
	assert_int_equal(wt.calls, n);
	/* The oldest went, the newest and the second oldest stayed. */
	assert_int_equal(get(fx, "p/4096", &wt, &s), 0);
	secret_unref(s);
	assert_int_equal(get(fx, "p/1", &wt, &s), 0);
	secret_unref(s);
	assert_int_equal(get(fx, "p/0", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(fx->tb->fetches, n + 1);
	fx_free(fx);
}

static void
test_bad_arguments(void **state)
{
	struct secret_backend *b = calloc(1, sizeof(*b));
	struct secret_cache *c = (struct secret_cache *)&c;
	struct test_backend *tb = calloc(1, sizeof(*tb));
	bool freed = false;

	(void)state;
	assert_non_null(b);
	assert_non_null(tb);
	TAILQ_INIT(&tb->pending);
	tb->freed = &freed;
	b->ops = &tb_ops;
	b->ctx = tb;
	/* A refused cache still takes (and frees) the backend. */
	assert_int_not_equal(secret_cache_new(NULL, b, -1, &c), 0);
	assert_null(c);
	assert_true(freed);
	secret_cache_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_paths_are_separate),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_ttl_zero_never_hits),
		cmocka_unit_test(test_errors_not_cached),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_reentrant),
		cmocka_unit_test(test_reentrant_after_error),
		cmocka_unit_test(test_cancel_self_in_callback),
		cmocka_unit_test(test_changed_drops_entries),
		cmocka_unit_test(test_free_with_pending),
		cmocka_unit_test(test_free_from_callback),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_bad_arguments),
	};

	/* Room for the eviction test's 4096 cached secrets. */
	if (secmem_init(8 * 1024 * 1024, false) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
