/*
 * fake_host.h: the engine's side of a session, faked, to drive a
 * protocol's real state machine (its struct inj_ops) without sockets,
 * TLS, timers or the pipeline: for unit tests and fuzz harnesses.
 *
 * Each side has an input and an output evbuffer, and a "wire": what its
 * peer sent that the engine has not read yet.  fh_send() puts bytes on a
 * wire; fh_run() plays the event loop: while a side is read (the
 * protocol asked for it with reading()) and has bytes or an end on its
 * wire, they move to its input and readable() (or eof()) is called.  The
 * protocol's output stays in the output buffers for the test to read.
 *
 * The fake keeps to the engine's contract (injectors/injector.h, and
 * proxy/conn.c's behaviour), so that what a test or a fuzzer does is
 * something the engine could do:
 *   - after close() or finish() the protocol is called no more (the
 *     drivers below do nothing then), but free();
 *   - a side's input and output are NULL while it has no connection
 *     (the upstream's before connect() and after it is dropped, released
 *     or fails), as the engine's are;
 *   - allowed() and refuse() only after proof() (or refuse() inside
 *     begin() when begin_rc says the route is withdrawn); a timeout
 *     while deciding is the engine's own and refuses (unavailable);
 *   - connected() only after connect() said it follows, tls_done() only
 *     after start_tls(), connected(false) for a failed upstream
 *     handshake, with the upstream freed first;
 *   - start_tls(INJ_CLIENT) makes params.tls true at once, and the bytes
 *     not read yet belong to the handshake;
 *   - an upstream's object (up_data) is freed with the protocol's
 *     up_data_free() when its connection closes, or goes to the pool
 *     with done(true); the route slot is freed with slot_free().
 * No cmocka here: a broken invariant of the fake itself aborts.
 */
#ifndef CG_TEST_FAKE_HOST_H
#define CG_TEST_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "injectors/injector.h"

/* What connect() does. */
enum fh_connect {
	FH_CONNECT_LATER = 0,	/* 0, *connected false: fh_connected() follows */
	FH_CONNECT_FAIL,	/* CG_ERR_IO */
	FH_CONNECT_POOLED,	/* 0, *connected true, up_data from the pool */
};

/* A credential with the fields "username" and "password" (either may
 * be NULL: absent). */
struct fh_cred {
	struct inj_cred cred;
	const char *username;
	const char *password;
};

void fh_cred_init(struct fh_cred *c, const char *username, const char *password);

struct fake_host {
	/* --- Set by the test (before fh_start(), or any time after). --- */
	const struct inj_ops *ops;
	struct inj_params params;	/* what start() and begin() get */
	enum fh_connect connect_mode;
	int begin_rc;			/* begin()'s result; not 0: refuse()
					   (unavailable) runs inside it */
	int start_tls_rc;		/* start_tls()'s result */
	unsigned char binding[64];	/* tls_binding(INJ_UPSTREAM) */
	size_t binding_len;
	bool draining;
	bool slot_on;			/* route_slot() lends &slot, else NULL */
	void *slot;			/* freed with ops->slot_free() */
	/* An idle pooled connection (FH_CONNECT_POOLED takes it, done(true)
	 * puts one back) and its up_data; fh_pool_move() hands it over. */
	bool pool_conn;
	void *pool_data;

	/* --- The session. --- */
	void *st;
	struct evbuffer *in[2], *out[2];
	struct evbuffer *wire[2];	/* sent by each side's peer, not read yet */
	bool wire_eof[2], wire_error[2];
	bool up_open;			/* an upstream connection exists */
	bool connecting;		/* connect() said connected() follows */
	bool deciding;			/* proof() given, no outcome yet */
	bool ended;			/* close() or finish() was called */
	void *up_data;

	/* --- What the protocol did. --- */
	enum inj_read reading[2];
	unsigned reading_calls[2];
	int64_t armed_ms;		/* the last arm() */
	unsigned arms;
	unsigned start_tls[2];
	bool tls_pending[2];		/* start_tls() without tls_done() yet */
	unsigned connects;
	bool connect_cred;		/* the last connect() had a credential */
	bool connect_pooled;		/* ... and was served from the pool */
	char tag[INJ_TAG_MAX + 8];	/* its tag ("" for none) */
	unsigned drops;
	unsigned begins, begins_null;
	char database[256], user[256];	/* the last begin()'s attributes */
	size_t nattrs;
	bool peer;			/* a verified client certificate: peer_proof()
					   starts a decision */
	unsigned peer_proofs;		/* peer_proof() calls */
	char *proof;			/* the last proof() (malloc'd copy) */
	size_t proof_len;
	unsigned proofs;
	unsigned denies;
	char deny_code[16], deny_reason[160];
	unsigned audit_errors;
	char audit_reason[256];
	unsigned refusals;
	int refused_status;
	char refused_reason[160];
	unsigned answers;
	int answered_status;
	unsigned dones;
	bool reusable;			/* the last done()'s */
	unsigned finishes;
	bool linger;
	unsigned closes;
	char end_reason[160];		/* finish()'s or close()'s */
	unsigned counts[INJ_COUNT_KEY_CACHED + 1];	/* count(), by what */
	unsigned late_calls;		/* calls after close() or finish() that
					   start something (connect, proof...) */
	char log[4096];			/* the notable calls, in order, each
					   followed by a space */
	unsigned char scratch[16384];
};

/* A host with its buffers, for ops; params zeroed but for sane limits. */
struct fake_host *fh_new(const struct inj_ops *ops);
/* ops->free() (if started), then everything the engine would free. */
void fh_free(struct fake_host *fh);

/* The protocol's state (ops->state_size bytes, zeroed), then start(). */
int fh_start(struct fake_host *fh);

/* The peer of side sends bytes / closes (error: not cleanly); fh_run()
 * delivers them when the side is read. */
void fh_send(struct fake_host *fh, enum inj_side side, const void *data, size_t len);
void fh_peer_close(struct fake_host *fh, enum inj_side side, bool error);
/* The event loop: delivers what the wires hold while their sides are
 * read; returns when nothing moves.  Every driver below ends with it. */
void fh_run(struct fake_host *fh);

/* The engine's events, each only where the engine would send it (else
 * nothing happens; the return says whether it was sent). */
bool fh_allow(struct fake_host *fh, const struct inj_cred *cred);
bool fh_refuse(struct fake_host *fh, enum inj_refusal why, const char *reason);
bool fh_connected(struct fake_host *fh, bool ok, const char *reason);
bool fh_tls_done(struct fake_host *fh, enum inj_side side);
bool fh_timeout(struct fake_host *fh);
/* output(side) is at or under the low watermark: writable(). */
bool fh_writable(struct fake_host *fh, enum inj_side side);
bool fh_drain(struct fake_host *fh, bool *may_close);

/* Hands src's idle pooled connection (and its up_data) to dst. */
void fh_pool_move(struct fake_host *dst, struct fake_host *src);

/* The host of a fake, as the protocol sees it. */
struct inj_host *fh_host(struct fake_host *fh);

#endif /* CG_TEST_FAKE_HOST_H */
