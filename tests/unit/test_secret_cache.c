/*
 * test_secret_cache.c: the secret cache (vault-client/cache.c) and the
 * workers' views of it (vault-client/view.c), in front of a backend
 * defined here, which counts fetches, renewals and revocations and answers
 * them from timers on the event loop: single flight (also across views on
 * their own threads), hits, expiry by TTL and by lease, refresh ahead,
 * serving stale, the negative cache, errors, cancel, re-entrant callbacks,
 * changed(), renewal and revocation of leases, readiness and freeing with
 * waits pending.  Time is a clock the tests move, except where the old
 * tests sleep.
 */
#include "config.h"

#include "tests/unit/unit.h"

#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
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

/* A renewal or revocation waiting for its answer. */
struct tb_op {
	struct test_backend *tb;
	struct event *ev;
	bool revoke;
	secret_renew_cb renew_cb;
	secret_done_cb done_cb;
	void *arg;
	TAILQ_ENTRY(tb_op) link;
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
	/* Leases: each answer gets "lease/<path>/<version>" when lease_ms
	 * is set. */
	int64_t lease_ms;
	bool renewable;
	bool hold;		/* answers wait for tb_release() */
	int renews;		/* renew() calls */
	int renew_err;		/* the renewal's answer */
	int64_t renew_grant_ms;	/* granted by a renewal */
	char last_renewed[128];
	int64_t last_increment;
	int revokes;		/* revoke() calls */
	char revoked[16][128];	/* their lease ids, in order */
	enum secret_backend_state state;
	TAILQ_HEAD(, tb_op) ops;
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
		char lease_id[192];
		struct secret_lease lease = { lease_id, tb->lease_ms, tb->renewable };

		snprintf(version, sizeof(version), "%d", ++tb->version);
		snprintf(value, sizeof(value), "pw-%s", f->path);
		snprintf(lease_id, sizeof(lease_id), "lease/%s/%s", f->path, version);
		assert_int_equal(secret_new_leased(f->path, version,
		    tb->lease_ms > 0 ? &lease : NULL, 1, names, values, NULL, &s), 0);
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
	if (!tb->hold)
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

/* Lets the held answers go (from the next loop iteration). */
static void
tb_release(struct test_backend *tb)
{
	static const struct timeval zero = { 0, 0 };
	struct tb_fetch *f;

	tb->hold = false;
	TAILQ_FOREACH(f, &tb->pending, link)
		assert_int_equal(evtimer_add(f->ev, &zero), 0);
}

static void
tb_op_answer(evutil_socket_t fd, short what, void *arg)
{
	struct tb_op *op = arg;
	struct test_backend *tb = op->tb;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&tb->ops, op, link);
	event_free(op->ev);
	if (op->revoke)
		op->done_cb(0, NULL, op->arg);
	else
		op->renew_cb(tb->renew_err, tb->renew_err == 0 ? tb->renew_grant_ms : 0,
		    tb->renew_err == 0 ? NULL : "lease not found", op->arg);
	free(op);
}

static struct tb_op *
tb_op_new(struct test_backend *tb, bool revoke, void *arg)
{
	static const struct timeval zero = { 0, 0 };
	struct tb_op *op = calloc(1, sizeof(*op));

	assert_non_null(op);
	op->tb = tb;
	op->revoke = revoke;
	op->arg = arg;
	op->ev = evtimer_new(tb->base, tb_op_answer, op);
	assert_non_null(op->ev);
	assert_int_equal(evtimer_add(op->ev, &zero), 0);
	TAILQ_INSERT_TAIL(&tb->ops, op, link);
	return op;
}

static int
tb_renew(void *ctx, const char *lease_id, int64_t increment_ms, secret_renew_cb cb,
    void *arg)
{
	struct test_backend *tb = ctx;

	tb->renews++;
	snprintf(tb->last_renewed, sizeof(tb->last_renewed), "%s", lease_id);
	tb->last_increment = increment_ms;
	tb_op_new(tb, false, arg)->renew_cb = cb;
	return 0;
}

static int
tb_revoke(void *ctx, const char *lease_id, secret_done_cb cb, void *arg)
{
	struct test_backend *tb = ctx;

	if (tb->revokes < (int)CG_ARRAY_LEN(tb->revoked))
		snprintf(tb->revoked[tb->revokes], sizeof(tb->revoked[0]), "%s", lease_id);
	tb->revokes++;
	tb_op_new(tb, true, arg)->done_cb = cb;
	return 0;
}

static enum secret_backend_state
tb_status(void *ctx, const char **reason)
{
	struct test_backend *tb = ctx;

	*reason = tb->state == SECRET_BACKEND_OK ? NULL : "test backend is unwell";
	return tb->state;
}

static void
tb_free(void *ctx)
{
	struct test_backend *tb = ctx;
	struct tb_fetch *f;
	struct tb_op *op;

	while ((f = TAILQ_FIRST(&tb->pending)) != NULL) {
		TAILQ_REMOVE(&tb->pending, f, link);
		event_free(f->ev);
		free(f->path);
		free(f);
	}
	while ((op = TAILQ_FIRST(&tb->ops)) != NULL) {
		TAILQ_REMOVE(&tb->ops, op, link);
		event_free(op->ev);
		free(op);
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

/* The same with leases and a status. */
static const struct secret_backend_ops tb_lease_ops = {
	.name = "test-leases",
	.fetch = tb_fetch,
	.changed = tb_changed,
	.renew = tb_renew,
	.revoke = tb_revoke,
	.status = tb_status,
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
	int64_t now;			/* the clock of fx_new_opts() caches */
};

static struct fx *
fx_make(const struct secret_cache_opts *o, bool leases)
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
	TAILQ_INIT(&fx->tb->ops);
	b->ops = leases ? &tb_lease_ops : &tb_ops;
	b->ctx = fx->tb;
	if (leases)
		assert_int_equal(secret_cache_new_opts(fx->base, b, o, &fx->c), 0);
	else
		assert_int_equal(secret_cache_new(fx->base, b, o->ttl_ms, &fx->c), 0);
	return fx;
}

static struct fx *
fx_new(int64_t ttl_ms)
{
	struct secret_cache_opts o = { ttl_ms, 0, 0 };

	return fx_make(&o, false);
}

static int64_t
fx_clock(void *arg)
{
	return ((struct fx *)arg)->now;
}

/* A cache with all its times set, a backend with leases, and a clock
 * that moves only when the test says. */
static struct fx *
fx_new_opts(int64_t ttl_ms, int64_t max_stale_ms, int64_t negative_ttl_ms)
{
	struct secret_cache_opts o = { ttl_ms, max_stale_ms, negative_ttl_ms };
	struct fx *fx = fx_make(&o, true);

	fx->now = 1000000;
	secret_cache_set_clock(fx->c, fx_clock, fx);
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
	struct secret_view *free_view;	/* secret_view_free() it */
	bool stale;		/* the secret was handed out stale */
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
		wt->stale = secret_stale(s);
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
	if (wt->free_view != NULL)
		secret_view_free(wt->free_view);
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

/* ------------------------------------------------------------------ */
/* Leases, refresh ahead, stale, negative cache, views                 */
/* ------------------------------------------------------------------ */

/* Runs what is ready, a few rounds: views keep events of their own, so
 * the loop never runs dry. */
static void
pump(struct fx *fx)
{
	int i;

	for (i = 0; i < 20; i++)
		assert_int_not_equal(event_base_loop(fx->base, EVLOOP_NONBLOCK), -1);
}

static int
vget(struct secret_view *v, const char *path, struct waiter *wt, struct secret **out)
{
	return secret_view_get(v, path, out, waiter_cb, wt, &wt->w);
}

static uint64_t
stat_of(struct fx *fx, size_t off)
{
	struct secret_cache_stats st;

	secret_cache_stats(fx->c, &st);
	return *(const uint64_t *)((const char *)&st + off);
}
#define STAT(fx, f) stat_of((fx), offsetof(struct secret_cache_stats, f))

/* A hit, and which version it was; drops the reference. */
static const char *
hit_version(int r, struct secret **sp)
{
	static char v[16];
	struct secret *s = *sp;

	*sp = NULL;
	assert_int_equal(r, 0);
	assert_non_null(s);
	snprintf(v, sizeof(v), "%s", secret_version(s));
	secret_unref(s);
	return v;
}

static void
test_lease_expiry(void **state)
{
	struct fx *fx = fx_new_opts(60000, 0, 0);
	struct secret_cache_opts o = { 1000, 0, 0 };
	struct waiter wt = { 0 };
	struct secret *s = NULL;
	int64_t t0;

	(void)state;
	fx->tb->lease_ms = 3000;	/* not renewable */
	assert_int_equal(get(fx, "db/creds", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_string_equal(wt.version, "1");
	t0 = fx->now;

	/* Before its last quarter (of 2 s): a hit, nothing fetched. */
	fx->now = t0 + 1499;
	assert_string_equal(hit_version(get(fx, "db/creds", &wt, &s), &s), "1");
	assert_int_equal(fx->tb->fetches, 1);

	/* At two thirds of the lease it has expired, though cache_ttl
	 * (60 s) is far; its lease goes with it. */
	fx->now = t0 + 2000;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "db/creds", &wt, &s), CG_ERR_AGAIN);
	assert_int_equal(fx->tb->fetches, 2);
	assert_int_equal(fx->tb->revokes, 1);
	assert_string_equal(fx->tb->revoked[0], "lease/db/creds/1");
	run(fx);
	assert_string_equal(wt.version, "2");

	/* A cache_ttl shorter than two thirds of the lease wins. */
	assert_int_equal(secret_cache_configure(fx->c, &o), 0);
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "db/other", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	t0 = fx->now;
	fx->now = t0 + 999;
	assert_string_equal(hit_version(get(fx, "db/other", &wt, &s), &s), "3");
	fx->now = t0 + 1000;
	assert_int_equal(get(fx, "db/other", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	/* Bad times are refused and change nothing. */
	o.ttl_ms = -1;
	assert_int_equal(secret_cache_configure(fx->c, &o), CG_ERR_LIMIT);
	fx_free(fx);
}

static void
test_refresh_ahead(void **state)
{
	struct fx *fx = fx_new_opts(1000, 0, 0);
	struct secret_view *v[2];
	struct waiter wt = { 0 }, a = { 0 }, b = { 0 };
	struct secret *s = NULL;
	int64_t t0;
	int i;

	(void)state;
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	t0 = fx->now;

	/* Before the last quarter of its life: nothing. */
	fx->now = t0 + 749;
	assert_string_equal(hit_version(get(fx, "p", &wt, &s), &s), "1");
	assert_int_equal(fx->tb->fetches, 1);
	/* In it: served from the cache at once, and one refresh starts. */
	fx->now = t0 + 750;
	assert_string_equal(hit_version(get(fx, "p", &wt, &s), &s), "1");
	assert_int_equal(fx->tb->fetches, 2);
	fx->now = t0 + 900;
	assert_string_equal(hit_version(get(fx, "p", &wt, &s), &s), "1");
	assert_int_equal(fx->tb->fetches, 2);	/* exactly one */
	assert_int_equal(STAT(fx, refreshes), 1);
	run(fx);
	assert_string_equal(hit_version(get(fx, "p", &wt, &s), &s), "2");
	assert_int_equal(fx->tb->fetches, 2);
	assert_int_equal(wt.calls, 1);		/* the first fetch only */

	/* The same through two views: each hit in the last quarter asks
	 * once, the cache refreshes once, and both views get the new
	 * version without asking.  (What one view asked for reaches the
	 * other too: its first use is a hit.) */
	for (i = 0; i < 2; i++)
		assert_int_equal(secret_view_new(fx->c, fx->base, &v[i]), 0);
	assert_int_equal(vget(v[0], "q", &a, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.version, "3");
	assert_string_equal(hit_version(vget(v[1], "q", &b, &s), &s), "3");
	assert_int_equal(fx->tb->fetches, 3);
	assert_int_equal(STAT(fx, view_requests), 1);
	t0 = fx->now;
	fx->now = t0 + 800;
	for (i = 0; i < 3; i++) {
		assert_string_equal(hit_version(vget(v[0], "q", &a, &s), &s), "3");
		assert_string_equal(hit_version(vget(v[1], "q", &b, &s), &s), "3");
	}
	pump(fx);
	assert_int_equal(fx->tb->fetches, 4);
	assert_string_equal(hit_version(vget(v[0], "q", &a, &s), &s), "4");
	assert_string_equal(hit_version(vget(v[1], "q", &b, &s), &s), "4");
	assert_int_equal(STAT(fx, view_requests), 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	for (i = 0; i < 2; i++)
		secret_view_free(v[i]);
	fx_free(fx);
}

/* A worker: its own thread, event base and view. */
#define NTHREADS 4
struct vthread {
	struct event_base *base;
	struct secret_view *v;
	pthread_t thread;
	int r1, r2;		/* the first get, and the one after its answer */
	int calls, err;
	char version[16], version2[16];
	int asked, done;	/* atomic */
};

static void
vthread_cb(int err, struct secret *s, const char *reason, void *arg)
{
	struct vthread *t = arg;

	(void)reason;
	t->calls++;
	t->err = err;
	if (s != NULL)
		snprintf(t->version, sizeof(t->version), "%s", secret_version(s));
	event_base_loopbreak(t->base);
}

static void *
vthread_main(void *arg)
{
	struct vthread *t = arg;
	struct secret_wait *w;
	struct secret *s = NULL;

	t->r1 = secret_view_get(t->v, "svc/db", &s, vthread_cb, t, &w);
	__atomic_store_n(&t->asked, 1, __ATOMIC_RELEASE);
	if (t->r1 == CG_ERR_AGAIN)
		event_base_dispatch(t->base);
	t->r2 = secret_view_get(t->v, "svc/db", &s, vthread_cb, t, &w);
	if (t->r2 == 0) {
		snprintf(t->version2, sizeof(t->version2), "%s", secret_version(s));
		secret_unref(s);
	}
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool
all_set(struct vthread *t, size_t field_off)
{
	int i;

	for (i = 0; i < NTHREADS; i++)
		if (!__atomic_load_n((int *)((char *)&t[i] + field_off), __ATOMIC_ACQUIRE))
			return false;
	return true;
}

static void
test_views_single_flight_threads(void **state)
{
	struct fx *fx = fx_new(60000);
	struct vthread t[NTHREADS];
	int i, spins;

	(void)state;
	memset(t, 0, sizeof(t));
	fx->tb->hold = true;
	for (i = 0; i < NTHREADS; i++) {
		assert_non_null(t[i].base = event_base_new());
		assert_int_equal(secret_view_new(fx->c, t[i].base, &t[i].v), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i].thread, NULL, vthread_main, &t[i]), 0);
	for (spins = 0; !all_set(t, offsetof(struct vthread, asked)) && spins < 5000; spins++)
		sleep_ms(1);
	/* Every worker asked; the cache takes their requests, and the
	 * backend holds its answer until all have joined the one fetch. */
	for (spins = 0; STAT(fx, view_requests) < NTHREADS && spins < 5000; spins++) {
		pump(fx);
		sleep_ms(1);
	}
	assert_int_equal(STAT(fx, view_requests), NTHREADS);
	assert_int_equal(fx->tb->fetches, 1);
	tb_release(fx->tb);
	for (spins = 0; !all_set(t, offsetof(struct vthread, done)) && spins < 5000; spins++) {
		pump(fx);
		sleep_ms(1);
	}
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(t[i].thread, NULL), 0);
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(t[i].r1, CG_ERR_AGAIN);
		assert_int_equal(t[i].calls, 1);
		assert_int_equal(t[i].err, 0);
		assert_string_equal(t[i].version, "1");
		/* Then a hit in the worker's own view. */
		assert_int_equal(t[i].r2, 0);
		assert_string_equal(t[i].version2, "1");
	}
	assert_int_equal(fx->tb->fetches, 1);
	assert_int_equal(fx->tb->answered, 1);
	assert_int_equal(STAT(fx, view_requests), NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		secret_view_free(t[i].v);
		event_base_free(t[i].base);
	}
	fx_free(fx);
}

static void
test_max_stale(void **state)
{
	struct fx *fx = fx_new_opts(1000, 500, 100);
	struct secret_view *v;
	struct waiter wt = { 0 }, vw = { 0 };
	struct secret *s = NULL;
	const char *why;
	int64_t t0;

	(void)state;
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	t0 = fx->now;
	fx->tb->fail_with = CG_ERR_IO;

	/* Expired, and the fetch that should replace it fails: its waiter
	 * gets the old secret, marked stale. */
	fx->now = t0 + 1000;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt.calls, 1);
	assert_int_equal(wt.err, 0);
	assert_true(wt.stale);
	assert_string_equal(wt.version, "1");
	assert_int_equal(fx->tb->fetches, 2);
	/* From then on served stale at once; retried once per negative_ttl. */
	assert_int_equal(get(fx, "p", &wt, &s), 0);
	assert_true(secret_stale(s));
	assert_string_equal(secret_field(s, "password", NULL), "pw-p");
	secret_unref(s);
	assert_int_equal(fx->tb->fetches, 2);
	assert_int_equal(secret_cache_check(fx->c, "p", &why), 0);
	fx->now = t0 + 1100;
	assert_int_equal(get(fx, "p", &wt, &s), 0);
	assert_true(secret_stale(s));
	secret_unref(s);
	assert_int_equal(fx->tb->fetches, 3);
	run(fx);
	fx->now = t0 + 1499;
	assert_int_equal(get(fx, "p", &wt, &s), 0);
	assert_true(secret_stale(s));
	secret_unref(s);
	run(fx);
	assert_int_equal(fx->tb->fetches, 4);

	/* max_stale after the expiry: refused from then on, with the
	 * failure remembered for negative_ttl. */
	fx->now = t0 + 1500;
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_IO);
	assert_null(s);
	assert_int_not_equal(secret_cache_check(fx->c, "p", &why), 0);
	fx->now = t0 + 1600;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "p", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt.err, CG_ERR_IO);
	assert_true(STAT(fx, stale) >= 4);

	/* Through a view: the stale secret reaches the worker, which
	 * serves it without asking until it should retry. */
	fx->tb->fail_with = 0;
	assert_int_equal(secret_view_new(fx->c, fx->base, &v), 0);
	assert_int_equal(vget(v, "q", &vw, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(vw.calls, 1);
	assert_false(vw.stale);
	t0 = fx->now;
	fx->tb->fail_with = CG_ERR_IO;
	fx->now = t0 + 1000;
	memset(&vw, 0, sizeof(vw));
	assert_int_equal(vget(v, "q", &vw, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(vw.calls, 1);
	assert_int_equal(vw.err, 0);
	assert_true(vw.stale);
	assert_int_equal(vget(v, "q", &vw, &s), 0);
	assert_true(secret_stale(s));
	secret_unref(s);
	/* The store is back: the next ask after negative_ttl is still
	 * served stale at once, and the refresh it starts reaches the view. */
	fx->tb->fail_with = 0;
	fx->now = t0 + 1100;
	memset(&vw, 0, sizeof(vw));
	assert_int_equal(vget(v, "q", &vw, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(vw.calls, 1);
	assert_true(vw.stale);
	assert_int_equal(vget(v, "q", &vw, &s), 0);
	assert_false(secret_stale(s));
	assert_int_equal(atoi(secret_version(s)), fx->tb->version);
	secret_unref(s);
	secret_view_free(v);
	fx_free(fx);
}

/* Stale serving never outlives the lease. */
static void
test_stale_within_lease(void **state)
{
	struct fx *fx = fx_new_opts(60000, 60000, 0);
	struct waiter wt = { 0 };
	struct secret *s = NULL;
	int64_t t0;

	(void)state;
	fx->tb->lease_ms = 3000;	/* expires at 2000, ends at 3000 */
	assert_int_equal(get(fx, "db", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	t0 = fx->now;
	fx->tb->fail_with = CG_ERR_IO;
	fx->now = t0 + 2000;
	assert_int_equal(get(fx, "db", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_true(wt.stale);
	fx->now = t0 + 2999;
	assert_int_equal(get(fx, "db", &wt, &s), 0);
	assert_true(secret_stale(s));
	secret_unref(s);
	run(fx);
	fx->now = t0 + 3000;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "db", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt.err, CG_ERR_IO);
	assert_int_equal(fx->tb->revokes, 1);	/* dropped at its end */
	fx_free(fx);
}

static void
test_negative_cache(void **state)
{
	struct fx *fx = fx_new_opts(60000, 0, 1000);
	struct secret_view *v;
	struct waiter wt = { 0 }, vw = { 0 };
	struct secret *s = NULL;
	int64_t t0;

	(void)state;
	fx->tb->fail_with = CG_ERR_NOTFOUND;
	assert_int_equal(get(fx, "missing", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt.err, CG_ERR_NOTFOUND);
	t0 = fx->now;

	/* Within negative_ttl: the same error at once, the backend not asked. */
	assert_int_equal(get(fx, "missing", &wt, &s), CG_ERR_NOTFOUND);
	fx->now = t0 + 999;
	assert_int_equal(get(fx, "missing", &wt, &s), CG_ERR_NOTFOUND);
	assert_int_equal(fx->tb->fetches, 1);
	assert_int_equal(STAT(fx, negative), 2);

	/* Workers get it through their views, with the store's reason. */
	assert_int_equal(secret_view_new(fx->c, fx->base, &v), 0);
	assert_int_equal(vget(v, "missing", &vw, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(vw.calls, 1);
	assert_int_equal(vw.err, CG_ERR_NOTFOUND);
	assert_string_equal(vw.reason, "test backend says no");
	assert_int_equal(vget(v, "missing", &vw, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(vw.calls, 2);
	assert_int_equal(fx->tb->fetches, 1);

	/* After it: asked again. */
	fx->now = t0 + 1000;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "missing", &wt, &s), CG_ERR_AGAIN);
	assert_int_equal(fx->tb->fetches, 2);
	pump(fx);
	assert_int_equal(wt.err, CG_ERR_NOTFOUND);

	/* The source changed (the secret was added): not remembered. */
	fx->tb->fail_with = 0;
	fx->tb->changed = true;
	assert_int_equal(get(fx, "missing", &wt, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(wt.err, 0);
	assert_int_equal(hit_version(vget(v, "missing", &vw, &s), &s)[0] != '\0', 1);
	secret_view_free(v);
	fx_free(fx);
}

static void
test_view_cancel(void **state)
{
	struct fx *fx = fx_new_opts(60000, 0, 0);
	struct secret_view *v, *v2;
	struct waiter a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 }, f = { 0 };
	struct waiter g[2];
	struct secret *s = NULL;

	(void)state;
	assert_int_equal(secret_view_new(fx->c, fx->base, &v), 0);
	/* One of two cancels: only the other is called. */
	assert_int_equal(vget(v, "p", &a, &s), CG_ERR_AGAIN);
	assert_int_equal(vget(v, "p", &b, &s), CG_ERR_AGAIN);
	secret_view_cancel(a.w);
	secret_view_cancel(NULL);
	pump(fx);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(fx->tb->fetches, 1);

	/* The only one cancels: no callback, but the answer lands in the
	 * view. */
	assert_int_equal(vget(v, "solo", &c, &s), CG_ERR_AGAIN);
	secret_view_cancel(c.w);
	pump(fx);
	assert_int_equal(c.calls, 0);
	assert_string_equal(hit_version(vget(v, "solo", &c, &s), &s), "2");
	assert_int_equal(fx->tb->fetches, 2);

	/* A view freed before the cache took its requests: no callback,
	 * and nothing is fetched for it. */
	assert_int_equal(secret_view_new(fx->c, fx->base, &v2), 0);
	assert_int_equal(vget(v2, "x", &d, &s), CG_ERR_AGAIN);
	assert_int_equal(vget(v2, "y", &e, &s), CG_ERR_AGAIN);
	secret_view_free(v2);
	pump(fx);
	assert_int_equal(d.calls, 0);
	assert_int_equal(e.calls, 0);
	assert_int_equal(fx->tb->fetches, 2);

	/* A view freed while its fetch is in flight: no callback later. */
	assert_int_equal(secret_view_new(fx->c, fx->base, &v2), 0);
	fx->tb->hold = true;
	assert_int_equal(vget(v2, "z", &f, &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(fx->tb->fetches, 3);
	secret_view_free(v2);
	tb_release(fx->tb);
	pump(fx);
	assert_int_equal(f.calls, 0);

	/* A callback frees its own view: the next waiter is not called. */
	assert_int_equal(secret_view_new(fx->c, fx->base, &v2), 0);
	memset(g, 0, sizeof(g));
	g[0].free_view = v2;
	assert_int_equal(vget(v2, "w", &g[0], &s), CG_ERR_AGAIN);
	assert_int_equal(vget(v2, "w", &g[1], &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(g[0].calls, 1);
	assert_int_equal(g[1].calls, 0);

	secret_view_free(v);
	secret_view_free(NULL);
	fx_free(fx);	/* every reference back: secure memory as before */
}

static void
test_renew_and_revoke(void **state)
{
	struct fx *fx = fx_new_opts(60000, 0, 0);
	struct waiter wt = { 0 };
	struct secret *s = NULL;
	int64_t t0, t1;

	(void)state;
	fx->tb->lease_ms = 3000;
	fx->tb->renewable = true;
	fx->tb->renew_grant_ms = 3000;
	assert_int_equal(get(fx, "db/rw", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	t0 = fx->now;

	/* Renewed at three fifths of the lease, ahead of its two-thirds
	 * expiry, for the lease's own duration, when it was used from half
	 * its lease on. */
	fx->now = t0 + 1500;
	assert_string_equal(hit_version(get(fx, "db/rw", &wt, &s), &s), "1");
	fx->now = t0 + 1799;
	secret_cache_tick(fx->c);
	assert_int_equal(fx->tb->renews, 0);
	fx->now = t0 + 1800;
	secret_cache_tick(fx->c);
	secret_cache_tick(fx->c);
	assert_int_equal(fx->tb->renews, 1);
	assert_string_equal(fx->tb->last_renewed, "lease/db/rw/1");
	assert_int_equal(fx->tb->last_increment, 3000);
	run(fx);
	assert_int_equal(STAT(fx, renewals), 1);
	/* Past the old expiry: the same credential, nothing fetched (a
	 * renewable lease is not refreshed by fetching); in use again from
	 * half its renewed lease on. */
	fx->now = t0 + 3300;
	assert_string_equal(hit_version(get(fx, "db/rw", &wt, &s), &s), "1");
	assert_int_equal(fx->tb->fetches, 1);
	fx->now = t0 + 3600;
	secret_cache_tick(fx->c);
	assert_int_equal(fx->tb->renews, 2);
	/* The store lost the lease: the entry goes, not revoked again. */
	fx->tb->renew_err = CG_ERR_NOTFOUND;
	run(fx);
	assert_int_equal(STAT(fx, renew_failures), 1);
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "db/rw", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_string_equal(wt.version, "2");
	assert_int_equal(fx->tb->revokes, 0);
	fx->tb->renew_err = 0;

	/* Unused to its end: dropped, and its lease revoked then. */
	fx->tb->renewable = false;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "db/ro", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	t1 = fx->now;
	fx->now = t1 + 1500;
	assert_string_equal(hit_version(get(fx, "db/rw", &wt, &s), &s), "2");
	fx->now = t1 + 1999;
	secret_cache_tick(fx->c);	/* renews db/rw (version 2), in use */
	run(fx);
	assert_int_equal(fx->tb->renews, 3);
	assert_int_equal(fx->tb->revokes, 0);
	fx->now = t1 + 2000;
	secret_cache_tick(fx->c);
	assert_int_equal(fx->tb->revokes, 1);
	assert_string_equal(fx->tb->revoked[0], "lease/db/ro/3");

	/* At shutdown: every lease held is revoked, and can be waited for. */
	assert_int_equal(secret_cache_revoke_all(fx->c), 2);	/* one still in flight */
	assert_true(secret_cache_busy(fx->c));
	assert_int_equal(fx->tb->revokes, 2);
	assert_string_equal(fx->tb->revoked[1], "lease/db/rw/2");
	run(fx);
	assert_false(secret_cache_busy(fx->c));
	assert_int_equal(STAT(fx, revocations), 2);
	assert_int_equal(STAT(fx, revoke_failures), 0);

	/* And freeing the cache revokes what is left. */
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "db/last", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	fx_free(fx);
	/* (the backend is gone with the cache: its counter was checked by
	 * tb_revoke before; see test_revoke_on_free) */
}

/* A renewable lease that nobody used since it was stored (or last
 * renewed) is not renewed: it is dropped and revoked at its renewal time;
 * one that is used goes on. */
static void
test_unused_lease_is_revoked_not_renewed(void **state)
{
	struct fx *fx = fx_new_opts(60000, 0, 0);
	struct waiter wt = { 0 };
	struct secret *s = NULL;
	int64_t t0;

	(void)state;
	fx->tb->lease_ms = 3000;
	fx->tb->renewable = true;
	fx->tb->renew_grant_ms = 3000;
	assert_int_equal(get(fx, "db/rw", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	t0 = fx->now;
	/* A use before half the lease does not count: it was just fetched. */
	fx->now = t0 + 1000;
	assert_string_equal(hit_version(get(fx, "db/rw", &wt, &s), &s), "1");
	fx->now = t0 + 1800;
	secret_cache_tick(fx->c);
	run(fx);
	assert_int_equal(fx->tb->renews, 0);
	assert_int_equal(fx->tb->revokes, 1);
	assert_string_equal(fx->tb->revoked[0], "lease/db/rw/1");
	/* The next use fetches a new credential. */
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(get(fx, "db/rw", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_string_equal(wt.version, "2");
	assert_int_equal(fx->tb->fetches, 2);
	fx_free(fx);
}

static int free_revokes;

static int
tb_revoke_counting(void *ctx, const char *lease_id, secret_done_cb cb, void *arg)
{
	free_revokes++;
	return tb_revoke(ctx, lease_id, cb, arg);
}

static void
test_revoke_on_free(void **state)
{
	static struct secret_backend_ops ops;
	struct fx *fx = fx_new_opts(60000, 0, 0);
	struct waiter wt = { 0 };
	struct secret *s = NULL;
	struct secret_backend *b;
	struct secret_cache *c;
	size_t before, total;

	(void)state;
	/* A cache of its own whose backend counts into a static. */
	ops = tb_lease_ops;
	ops.revoke = tb_revoke_counting;
	b = calloc(1, sizeof(*b));
	assert_non_null(b);
	fx->tb->lease_ms = 3000;
	secmem_stats(&before, &total);
	{
		struct test_backend *tb = calloc(1, sizeof(*tb));
		struct secret_cache_opts o = { 60000, 0, 0 };

		assert_non_null(tb);
		tb->base = fx->base;
		tb->lease_ms = 3000;
		TAILQ_INIT(&tb->pending);
		TAILQ_INIT(&tb->ops);
		b->ops = &ops;
		b->ctx = tb;
		assert_int_equal(secret_cache_new_opts(fx->base, b, &o, &c), 0);
		secret_cache_set_clock(c, fx_clock, fx);
	}
	assert_int_equal(secret_cache_get(c, "a", &s, waiter_cb, &wt, &wt.w), CG_ERR_AGAIN);
	assert_int_equal(secret_cache_get(c, "b", &s, waiter_cb, &wt, &wt.w), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(wt.calls, 2);
	free_revokes = 0;
	secret_cache_free(c);
	assert_int_equal(free_revokes, 2);
	run(fx);
	fx_free(fx);
}

static void
test_views_follow_changes(void **state)
{
	struct fx *fx = fx_new(60000);
	struct secret_view *v[2];
	struct waiter wt[2];
	struct secret *s = NULL;
	int i, spins;

	(void)state;
	memset(wt, 0, sizeof(wt));
	for (i = 0; i < 2; i++) {
		assert_int_equal(secret_view_new(fx->c, fx->base, &v[i]), 0);
		assert_int_equal(vget(v[i], "p", &wt[i], &s), CG_ERR_AGAIN);
	}
	pump(fx);
	assert_int_equal(fx->tb->fetches, 1);
	for (i = 0; i < 2; i++)
		assert_string_equal(hit_version(vget(v[i], "p", &wt[i], &s), &s), "1");

	/* The source changes: the cache, watching it, drops what it had
	 * (the views too: the old secret is not served any more) and
	 * fetches again... */
	assert_int_equal(secret_cache_watch(fx->c, 1), 0);
	fx->tb->hold = true;
	fx->tb->changed = true;
	for (spins = 0; fx->tb->fetches < 2 && spins < 5000; spins++) {
		pump(fx);
		sleep_ms(1);
	}
	pump(fx);
	assert_int_equal(fx->tb->fetches, 2);
	memset(wt, 0, sizeof(wt));
	assert_int_equal(vget(v[0], "p", &wt[0], &s), CG_ERR_AGAIN);
	pump(fx);
	assert_int_equal(wt[0].calls, 0);
	/* ...and both views get the new secret: the one that asked through
	 * its callback, the other without asking. */
	tb_release(fx->tb);
	pump(fx);
	assert_int_equal(wt[0].calls, 1);
	assert_string_equal(wt[0].version, "2");
	assert_int_equal(fx->tb->fetches, 2);
	for (i = 0; i < 2; i++)
		assert_string_equal(hit_version(vget(v[i], "p", &wt[i], &s), &s), "2");
	assert_int_equal(STAT(fx, view_requests), 3);
	assert_int_equal(secret_cache_watch(fx->c, 0), 0);
	for (i = 0; i < 2; i++)
		secret_view_free(v[i]);
	fx_free(fx);
}

static void
test_readiness(void **state)
{
	struct fx *fx = fx_new_opts(60000, 0, 5000);
	struct waiter wt = { 0 };
	struct secret *s = NULL;
	const char *why = NULL;
	int i;

	(void)state;
	/* Never fetched: not ready, and a fetch starts. */
	assert_int_equal(secret_cache_check(fx->c, "p", &why), CG_ERR_AGAIN);
	assert_string_equal(why, "not fetched yet");
	assert_int_equal(fx->tb->fetches, 1);
	run(fx);
	assert_int_equal(secret_cache_check(fx->c, "p", &why), 0);
	assert_int_equal(fx->tb->fetches, 1);
	assert_int_equal(secret_cache_status(fx->c, &why), SECRET_BACKEND_OK);
	fx->tb->state = SECRET_BACKEND_DEGRADED;
	assert_int_equal(secret_cache_status(fx->c, &why), SECRET_BACKEND_DEGRADED);
	assert_string_equal(why, "test backend is unwell");
	fx->tb->state = SECRET_BACKEND_OK;

	/* Removed from the store: once the change is seen, not ready, and
	 * probes do not ask the store again within negative_ttl. */
	fx->tb->fail_with = CG_ERR_NOTFOUND;
	fx->tb->changed = true;
	assert_int_equal(get(fx, "other", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	for (i = 0; i < 3; i++) {
		assert_int_equal(secret_cache_check(fx->c, "p", &why), CG_ERR_NOTFOUND);
		assert_string_equal(why, "test backend says no");
	}
	assert_int_equal(fx->tb->fetches, 3);
	/* Back: ready once the change is seen. */
	fx->tb->fail_with = 0;
	fx->tb->changed = true;
	assert_int_equal(get(fx, "other", &wt, &s), CG_ERR_AGAIN);
	run(fx);
	assert_int_equal(secret_cache_check(fx->c, "p", &why), 0);
	fx_free(fx);
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
		cmocka_unit_test(test_lease_expiry),
		cmocka_unit_test(test_refresh_ahead),
		cmocka_unit_test(test_views_single_flight_threads),
		cmocka_unit_test(test_max_stale),
		cmocka_unit_test(test_stale_within_lease),
		cmocka_unit_test(test_negative_cache),
		cmocka_unit_test(test_view_cancel),
		cmocka_unit_test(test_renew_and_revoke),
		cmocka_unit_test(test_unused_lease_is_revoked_not_renewed),
		cmocka_unit_test(test_revoke_on_free),
		cmocka_unit_test(test_views_follow_changes),
		cmocka_unit_test(test_readiness),
	};

	/* Room for the eviction test's 4096 cached secrets. */
	if (secmem_init(8 * 1024 * 1024, false) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
