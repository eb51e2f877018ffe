/*
 * fuzz_pg.c: libFuzzer harness for the PostgreSQL wire parsers
 * (injectors/postgres/pg_parse.c): a startup packet, then messages, each
 * given to every body parser.  Every span a parser returns must lie in
 * the input, and a packet it takes must fit in what it was given.  The
 * data of a server's SCRAM messages goes to the SCRAM client, in an
 * exchange started with a fixed nonce.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "injectors/postgres/pg_parse.h"
#include "injectors/postgres/pg_scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *buf, size_t size, const struct inj_pg_str *s)
{
	if (s->p == NULL)
		return;
	if (s->p < buf || s->p + s->len > buf + size)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct inj_pg_startup s;
	struct inj_pg_error e;
	struct inj_pg_msg m;
	struct inj_pg_auth a;
	struct inj_pg_notice n;
	struct inj_pg_str x, y;
	struct inj_pg_scram sc;
	struct inj_pg_scram_keys keys;
	unsigned char salt[INJ_PG_SCRAM_SALT_MAX];
	char out[INJ_PG_SCRAM_MSG_MAX];
	unsigned iter;
	uint32_t pid;
	size_t off = 0, i, len;
	int r;

	memset(&sc, 0, sizeof(sc));
	memset(&keys, 7, sizeof(keys));
	if (inj_pg_scram_first(&sc, "", false, NULL, 0, "fuzznonce", out, sizeof(out), &len) != 0)
		abort();

	r = inj_pg_parse_startup(buf, size, INJ_PG_STARTUP_MAX, &s, &e);
	if (r == INJ_PG_ERROR && (e.sqlstate == NULL || e.reason == NULL))
		abort();
	if (r == INJ_PG_DONE) {
		if (s.len < 8 || s.len > size)
			abort();
		for (i = 0; i < s.nparams; i++) {
			inside(buf, s.len, &s.params[i].name);
			inside(buf, s.len, &s.params[i].value);
			if (s.params[i].name.len == 0)
				abort();
		}
		inside(buf, s.len, &s.key);
		off = s.len;
	}
	while (off < size) {
		r = inj_pg_parse_msg(buf + off, size - off, 65536, &m, &e);
		if (r != INJ_PG_DONE)
			break;
		if (m.len < 5 || m.len > size - off)
			abort();
		inside(buf + off, m.len, &m.body);
		if (inj_pg_password(&m, &x, &e) == 0)
			inside(buf + off, m.len, &x);
		if (inj_pg_parse_auth(&m, &a, &e) == 0) {
			inside(buf + off, m.len, &a.data);
			/* The server's SCRAM messages; no derivation (it costs
			 * thousands of rounds): the keys are fixed. */
			if (a.code == INJ_PG_AUTH_SASL_CONTINUE &&
			    inj_pg_scram_server_first(&sc, a.data.p, a.data.len, salt, &len,
			    &iter) == 0) {
				if (len == 0 || len > INJ_PG_SCRAM_SALT_MAX || iter == 0 ||
				    iter > INJ_PG_SCRAM_ITER_MAX)
					abort();
				if (inj_pg_scram_final(&sc, &keys, out, sizeof(out), &len) != 0 ||
				    len >= sizeof(out))
					abort();
			}
			if (a.code == INJ_PG_AUTH_SASL_FINAL)
				(void)inj_pg_scram_server_final(&sc, a.data.p, a.data.len);
		}
		if (inj_pg_parse_notice(&m, &n, &e) == 0) {
			inside(buf + off, m.len, &n.severity);
			inside(buf + off, m.len, &n.sqlstate);
			inside(buf + off, m.len, &n.message);
		}
		if (inj_pg_parse_key(&m, &pid, &x, &e) == 0)
			inside(buf + off, m.len, &x);
		if (inj_pg_parse_param_status(&m, &x, &y, &e) == 0) {
			inside(buf + off, m.len, &x);
			inside(buf + off, m.len, &y);
		}
		off += m.len;
	}
	return 0;
}
