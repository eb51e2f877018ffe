/*
 * fuzz_pg_front.c: libFuzzer harness for the PostgreSQL front's state
 * machine (injectors/postgres/pg_front.c), driven through its operations
 * by the fake engine of the unit tests (tests/unit/fake_host.h), which
 * only ever does what the engine could.
 *
 * The input: two bytes of settings (TLS offered or at accept, upstream
 * TLS, plaintext tokens, the route's database, reset query, channel
 * binding, limits, pool, drain, timers), then steps.  A step's first
 * byte picks the session (two may run, so that one can cancel the
 * other's query with the key it was given) and the event; bytes for a
 * side follow as a length and that many bytes:
 *   caller's bytes, upstream's bytes, allowed (one of three credentials),
 *   refuse (why), connected (ok or not), tls_done (side), timeout, a side
 *   closes, a side's peer reads all it was sent (writable), drain, and
 *   specials: a CancelRequest with the last key a caller was given, a
 *   large relayed message either way (backpressure).
 * A session that ended is started anew (a few times), from the pool its
 * predecessor left.
 *
 * Checked, besides ASan and leaks: everything the caller receives is
 * whole protocol messages (after the one-byte SSL and GSSENC answers);
 * everything the upstream receives is a startup or cancel packet (after
 * an optional SSLRequest), then messages; the route's password reaches
 * the caller only if the upstream itself sent those bytes; a login
 * counts once; nothing starts after the session ended.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common.h"
#include "injectors/postgres/pg.h"
#include "injectors/postgres/pg_parse.h"
#include "tests/unit/fake_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PASSWORD	"fz-Secret-pw9"
#define SESSIONS_MAX	6	/* sessions an input may start in all */
#define RELAY_MAX	0x40000001u	/* the framing pg_relay() lets pass */

struct sess {
	struct fake_host *fh;
	struct evbuffer *cli, *up;	/* what each side received, not parsed yet */
	bool cli_msgs;			/* a whole message reached the caller */
	bool up_started;		/* the upstream's first packet is parsed */
	bool up_ssl_seen;
};

struct run {
	const uint8_t *p, *end;
	struct inj_pg_cfg cfg;
	uint8_t conf[2];
	struct fh_cred creds[3];
	struct sess s[2];
	unsigned started;
	void *pool_data;		/* the pool, between sessions */
	bool pool_conn;
	struct evbuffer *sent[2];	/* all each side's peer sent */
	uint32_t key_pid;		/* the last BackendKeyData a caller got */
	unsigned char key[INJ_PG_KEY_MAX];
	size_t keylen;
};

static char *fz_params[] = { "application_name", "client_encoding", "DateStyle" };

static bool
next(struct run *r, uint8_t *b)
{
	if (r->p >= r->end)
		return false;
	*b = *r->p++;
	return true;
}

/* ------------------------------------------------------------------ */
/* What each side received                                             */
/* ------------------------------------------------------------------ */

static bool
contains(struct evbuffer *b, const char *s)
{
	struct evbuffer_ptr at = evbuffer_search(b, s, strlen(s), NULL);

	return at.pos != -1;
}

/* The caller's transcript: one-byte SSL/GSSENC answers, then messages. */
static void
check_client(struct run *r, struct sess *s, bool final)
{
	struct evbuffer *b = s->cli;
	struct inj_pg_error err;
	struct inj_pg_msg m;
	size_t avail;
	const char *p;
	int rc;

	while ((avail = evbuffer_get_length(b)) > 0) {
		p = (const char *)evbuffer_pullup(b, (ssize_t)(avail < 5 ? avail : 5));
		if (!s->cli_msgs && (p[0] == 'S' || p[0] == 'N')) {
			evbuffer_drain(b, 1);
			continue;
		}
		p = (const char *)evbuffer_pullup(b, -1);
		rc = inj_pg_parse_msg(p, avail, RELAY_MAX, &m, &err);
		if (rc == INJ_PG_ERROR)
			abort();
		if (rc == INJ_PG_NEED_MORE) {
			/* Only a relayed message may be cut short. */
			if (final && s->fh->answers == 0)
				abort();
			return;
		}
		if (m.type == 'K' && m.body.len >= 8 && m.body.len - 4 <= INJ_PG_KEY_MAX) {
			const unsigned char *k = (const unsigned char *)m.body.p;

			r->key_pid = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 |
			    (uint32_t)k[2] << 8 | k[3];
			r->keylen = m.body.len - 4;
			memcpy(r->key, k + 4, r->keylen);
		}
		s->cli_msgs = true;
		evbuffer_drain(b, m.len);
	}
}

/* The upstream's transcript: [SSLRequest] startup or cancel, messages. */
static void
check_upstream(struct sess *s, bool final)
{
	struct evbuffer *b = s->up;
	struct inj_pg_startup su;
	struct inj_pg_error err;
	struct inj_pg_msg m;
	size_t avail;
	const char *p;
	int rc;

	while ((avail = evbuffer_get_length(b)) > 0) {
		p = (const char *)evbuffer_pullup(b, -1);
		if (!s->up_started && !s->fh->connect_pooled) {
			rc = inj_pg_parse_startup(p, avail, INJ_PG_STARTUP_MAX, &su, &err);
			if (rc == INJ_PG_ERROR)
				abort();
			if (rc == INJ_PG_NEED_MORE) {
				if (final)
					abort();	/* credgate writes packets whole */
				return;
			}
			if (su.kind == INJ_PG_SSL_REQUEST) {
				if (s->up_ssl_seen)
					abort();
				s->up_ssl_seen = true;
			} else if (su.kind == INJ_PG_GSSENC_REQUEST)
				abort();
			else
				s->up_started = true;
			evbuffer_drain(b, su.len);
			continue;
		}
		rc = inj_pg_parse_msg(p, avail, RELAY_MAX, &m, &err);
		if (rc == INJ_PG_ERROR)
			abort();
		if (rc == INJ_PG_NEED_MORE) {
			if (final && s->fh->answers == 0)
				abort();
			return;
		}
		evbuffer_drain(b, m.len);
	}
}

/* The route's password reaches the caller only when a peer sent those
 * bytes itself: the upstream (relayed), or the caller (quoted back, as
 * a user name). */
static void
check_secret(const struct run *r, const struct fake_host *fh)
{
	if (contains(fh->out[INJ_CLIENT], PASSWORD) &&
	    !contains(r->sent[INJ_UPSTREAM], PASSWORD) && !contains(r->sent[INJ_CLIENT], PASSWORD))
		abort();
}

/* What the session wrote to side is received by its peer. */
static void
capture(struct run *r, struct sess *s, enum inj_side side)
{
	struct fake_host *fh = s->fh;

	if (side == INJ_CLIENT) {
		check_secret(r, fh);
		evbuffer_add_buffer(s->cli, fh->out[INJ_CLIENT]);
		check_client(r, s, false);
	} else {
		evbuffer_add_buffer(s->up, fh->out[INJ_UPSTREAM]);
		check_upstream(s, false);
	}
}

/* Checks after every event: a login counted once, nothing late. */
static void
check_counts(const struct fake_host *fh)
{
	if (fh->late_calls != 0 || fh->begins > 1 || fh->dones > 1 ||
	    (fh->begins > 0 && fh->dones + fh->refusals > 1) || fh->connects > 1 ||
	    fh->proofs > 1)
		abort();
	if (fh->ended && (fh->up_open || fh->up_data != NULL))
		abort();
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

static void
sess_end(struct run *r, struct sess *s)
{
	if (s->fh == NULL)
		return;
	capture(r, s, INJ_CLIENT);
	capture(r, s, INJ_UPSTREAM);
	check_client(r, s, true);
	check_upstream(s, true);
	/* The pool outlives the session. */
	if (s->fh->pool_conn) {
		if (r->pool_data != NULL)
			inj_pg_ops.up_data_free(r->pool_data);
		r->pool_data = s->fh->pool_data;
		r->pool_conn = true;
		s->fh->pool_data = NULL;
		s->fh->pool_conn = false;
	}
	fh_free(s->fh);
	evbuffer_free(s->cli);
	evbuffer_free(s->up);
	memset(s, 0, sizeof(*s));
}

static bool
sess_get(struct run *r, unsigned i, struct sess **out)
{
	struct sess *s = &r->s[i];
	struct fake_host *fh;

	*out = s;
	if (s->fh != NULL && !s->fh->ended)
		return true;
	if (r->started >= SESSIONS_MAX)
		return s->fh != NULL;
	sess_end(r, s);
	fh = s->fh = fh_new(&inj_pg_ops);
	s->cli = evbuffer_new();
	s->up = evbuffer_new();
	if (s->cli == NULL || s->up == NULL)
		abort();
	fh->params.cfg = &r->cfg;
	fh->params.tls_offered = r->conf[0] & 0x01;
	fh->params.tls = r->conf[0] & 0x02;
	fh->params.upstream_tls = r->conf[0] & 0x04;
	fh->params.max_proof = r->conf[0] & 0x80 ? 16 : 4096;
	if (r->conf[0] & 0x40) {
		memset(fh->binding, 0x5c, 32);
		fh->binding_len = 32;
	}
	/* The first session connects as the settings say; later ones take
	 * the pool, when their predecessor left a login there. */
	fh->connect_mode = r->started == 0 ? (enum fh_connect)((r->conf[1] & 3) % 3) :
	    FH_CONNECT_POOLED;
	fh->draining = r->conf[1] & 0x04;
	fh->slot_on = !(r->conf[1] & 0x40);
	fh->start_tls_rc = r->conf[1] & 0x80 ? CG_ERR_IO : 0;
	if (r->conf[1] & 0x08)
		fh->params.proof_expires = cg_now_ms() / 1000 - 1;
	fh->pool_conn = r->pool_conn;
	fh->pool_data = r->pool_data;
	r->pool_conn = false;
	r->pool_data = NULL;
	r->started++;
	(void)fh_start(fh);
	return true;
}

/* A SCRAM server asking for more iterations than a fuzzer has time for
 * (each costs a round of PBKDF2): such an input is not run. */
static bool
too_slow(const uint8_t *p, size_t len)
{
	size_t i, k;
	unsigned long v;

	for (i = 0; i + 2 < len; i++) {
		if (p[i] != 'i' || p[i + 1] != '=')
			continue;
		for (k = i + 2, v = 0; k < len && p[k] >= '0' && p[k] <= '9' && v < 100000; k++)
			v = v * 10 + (p[k] - '0');
		if (v > 4096)
			return true;
	}
	return false;
}

/* Sends a chunk of the input to side. */
static bool
send_chunk(struct run *r, struct sess *s, enum inj_side side)
{
	uint8_t n;
	size_t len;

	if (!next(r, &n))
		return false;
	len = (size_t)(r->end - r->p) < n ? (size_t)(r->end - r->p) : n;
	if (side == INJ_UPSTREAM && too_slow(r->p, len))
		return false;
	if (evbuffer_add(r->sent[side], r->p, len) != 0)
		abort();
	fh_send(s->fh, side, r->p, len);
	r->p += len;
	fh_run(s->fh);
	return true;
}

/* A large message either way: backpressure. */
static void
send_big(struct run *r, struct sess *s, enum inj_side side, uint8_t kib)
{
	size_t body = ((size_t)kib + 1) * 2048;
	unsigned char *b = malloc(body + 5);

	if (b == NULL)
		abort();
	b[0] = side == INJ_CLIENT ? 'd' : 'D';
	b[1] = (unsigned char)((body + 4) >> 24);
	b[2] = (unsigned char)((body + 4) >> 16);
	b[3] = (unsigned char)((body + 4) >> 8);
	b[4] = (unsigned char)(body + 4);
	memset(b + 5, 'x', body);
	fh_send(s->fh, side, b, body + 5);
	free(b);
	fh_run(s->fh);
}

static void
send_cancel(struct run *r, struct sess *s)
{
	unsigned char b[12 + INJ_PG_KEY_MAX];
	size_t n = 12 + r->keylen;

	if (r->keylen == 0)
		return;
	b[0] = (unsigned char)(n >> 24);
	b[1] = (unsigned char)(n >> 16);
	b[2] = (unsigned char)(n >> 8);
	b[3] = (unsigned char)n;
	b[4] = 0x04;
	b[5] = 0xd2;
	b[6] = 0x16;
	b[7] = 0x2e;
	b[8] = (unsigned char)(r->key_pid >> 24);
	b[9] = (unsigned char)(r->key_pid >> 16);
	b[10] = (unsigned char)(r->key_pid >> 8);
	b[11] = (unsigned char)r->key_pid;
	memcpy(b + 12, r->key, r->keylen);
	fh_send(s->fh, INJ_CLIENT, b, n);
	fh_run(s->fh);
}

static bool
step(struct run *r)
{
	struct sess *s;
	struct fake_host *fh;
	uint8_t c, x = 0;
	unsigned op, arg;
	bool may;

	if (!next(r, &c))
		return false;
	op = (c >> 3) & 15;
	arg = c & 7;
	if (!sess_get(r, c >> 7, &s) || s->fh->ended)
		return r->p < r->end;
	fh = s->fh;
	switch (op) {
	case 0: case 1: case 2: case 3:
		if (!send_chunk(r, s, INJ_CLIENT))
			return false;
		break;
	case 4: case 5: case 6:
		if (!send_chunk(r, s, INJ_UPSTREAM))
			return false;
		break;
	case 7:
		(void)fh_allow(fh, &r->creds[arg % 3].cred);
		break;
	case 8:
		(void)fh_refuse(fh, (enum inj_refusal)(arg % 5), "refused by the fuzzer");
		break;
	case 9:
		(void)fh_connected(fh, arg & 1, "connection refused");
		break;
	case 10:
		(void)fh_tls_done(fh, (enum inj_side)(arg & 1));
		break;
	case 11:
		(void)fh_timeout(fh);
		break;
	case 12:
		fh_peer_close(fh, (enum inj_side)(arg & 1), arg & 2);
		fh_run(fh);
		break;
	case 13:
		capture(r, s, (enum inj_side)(arg & 1));
		(void)fh_writable(fh, (enum inj_side)(arg & 1));
		break;
	case 14:
		(void)fh_drain(fh, &may);
		break;
	case 15:
		if (arg == 0)
			send_cancel(r, s);
		else if (arg == 1 || arg == 2) {
			if (!next(r, &x))
				return false;
			send_big(r, s, arg == 1 ? INJ_CLIENT : INJ_UPSTREAM, x);
		} else if (arg == 3)
			fh->draining = !fh->draining;
		else if (arg == 4)
			fh->begin_rc = CG_ERR_NOTFOUND;
		break;
	}
	check_counts(fh);
	/* What is queued for the caller is parsed once it reads it
	 * (writable) or the session ends; the secret is looked for now. */
	check_secret(r, fh);
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r;
	struct sess *s;
	int i;

	if (size < 2)
		return 0;
	memset(&r, 0, sizeof(r));
	r.p = data + 2;
	r.end = data + size;
	r.conf[0] = data[0];
	r.conf[1] = data[1];
	r.cfg.username_field = "username";
	r.cfg.password_field = "password";
	r.cfg.allow_plaintext_token = data[0] & 0x08;
	r.cfg.database = data[0] & 0x10 ? "db1" : NULL;
	r.cfg.reset_query = data[0] & 0x20 ? "" : "DISCARD ALL";
	r.cfg.startup_parameters = fz_params;
	r.cfg.nstartup_parameters = sizeof(fz_params) / sizeof(fz_params[0]);
	r.cfg.idle_timeout_ms = data[1] & 0x10 ? 1 : 3600 * 1000;
	r.cfg.max_session_ms = data[1] & 0x20 ? 1 : 0;
	r.cfg.end_at_token_expiry = data[1] & 0x08;
	fh_cred_init(&r.creds[0], "svc", PASSWORD);
	fh_cred_init(&r.creds[1], "svc", NULL);
	fh_cred_init(&r.creds[2], NULL, PASSWORD);
	for (i = 0; i < 2; i++)
		if ((r.sent[i] = evbuffer_new()) == NULL)
			abort();
	if (sess_get(&r, 0, &s))
		while (step(&r))
			;
	for (i = 0; i < 2; i++)
		sess_end(&r, &r.s[i]);
	if (r.pool_data != NULL)
		inj_pg_ops.up_data_free(r.pool_data);
	evbuffer_free(r.sent[0]);
	evbuffer_free(r.sent[1]);
	return 0;
}
