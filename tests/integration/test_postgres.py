"""The PostgreSQL front: real PostgreSQL, real clients (psql, pgbench,
psycopg2) and raw sockets for what no client sends.

One PostgreSQL server serves the whole module (conftest's pg fixture),
and one credgate with a route per kind of login (pg_stack below); the
tests that reload, drain or rotate start a credgate of their own.  Each
refused login is checked for what the caller gets (the SQLSTATE of a
FATAL ErrorResponse), what the audit records, and that PostgreSQL never
saw a connection for it."""

import os
import random
import re
import secrets
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import (PG_GSSENC_REQUEST, PG_SSL_REQUEST, PgStack, free_port, pg_client,
                      pg_fields, pg_msg, pg_startup, stack_problems, wait_for)

psycopg2 = pytest.importorskip("psycopg2", reason="no psycopg2 (Debian: python3-psycopg2)")
import psycopg2.errors  # noqa: E402


# ----------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------
def standard_routes(s):
    """The routes of the module's credgate; see each comment."""
    pg = s.pg
    upstream_tls = {"host": "127.0.0.1", "port": pg.port,
                    "tls": {"enabled": True, "ca": pg.pki.ca_file, "server_name": "localhost"}}
    plain = {"allow_plaintext_token": True}
    return [
        # Caller TLS; a token only over TLS (the default).
        s.route("tls", tls=True),
        # No caller TLS, tokens allowed in the clear; the caller names the
        # database (ledger or other).
        s.route("plain", database=None, databases=["ledger", "other"], postgres_over=plain),
        # One route per upstream login method.
        s.route("md5", account="svc_md5", postgres_over=plain),
        s.route("password", account="svc_plain", postgres_over=plain),
        # TLS towards PostgreSQL, verified with its CA.
        s.route("uptls", upstream=upstream_tls, postgres_over=plain),
        # Dry run: its rule allows no database the tests use.
        s.route("dry", mode="dry-run", databases=["nothing"], postgres_over=plain),
        # Pooled logins, reset by the default reset_query.
        s.route("reuse", postgres_over=plain),
        # Upstream failures: nothing listens; a password PostgreSQL refuses.
        s.route("down", upstream={"host": "127.0.0.1", "port": free_port()},
                postgres_over=plain),
        s.route("badcred", account="wrong", postgres_over=plain),
    ]


@pytest.fixture(scope="module")
def pg_stack(pg, keys, credgate_bin, tmp_path_factory):
    """The module's credgate in front of pg; at the end of the module its
    teardown checks (leaks, sanitizers, audit) must pass."""
    s = PgStack(tmp_path_factory.mktemp("pgstack"), keys, credgate_bin, pg)
    s.cg.put_secrets({"pg/wrong": {"username": "svc_scram", "version": "1",
                                   "password": "not-" + pg.passwords["svc_scram"]}})
    try:
        s.start(standard_routes(s))
    except AssertionError:
        print(s.dump())
        raise
    yield s
    problems = stack_problems(s)
    assert not problems, "; ".join(problems)


@pytest.fixture(autouse=True)
def _close_clients(request):
    """Each test's clients of the module's credgate end with the test."""
    yield
    if "pg_stack" in request.fixturenames:
        request.getfixturevalue("pg_stack").close_clients()


def caller():
    """A caller user name of its own, to find the login's audit events."""
    return "ci-" + secrets.token_hex(5)


def decision(s, user, timeout=5.0):
    ev = s.cg.audit_where(lambda e: e.get("event") == "decision" and
                          (e.get("request") or {}).get("user") == user, timeout)
    assert ev, f"no decision event for caller user {user}"
    assert len(ev) == 1, ev
    return ev[0]


def session_end(s, d, timeout=5.0):
    """The session_end event of the connection of decision event d."""
    ev = s.cg.audit_where(lambda e: e.get("event") == "session_end" and
                          e.get("route") == d["route"] and
                          e["client"]["port"] == d["client"]["port"], timeout)
    assert ev, f"no session_end event for the connection of {d}"
    return ev[-1]


def assert_untouched(pg, before, settle=0.3):
    """PostgreSQL saw no new TCP connection since before."""
    time.sleep(settle)
    now = pg.tcp_connections()
    assert now == before, f"PostgreSQL got {now - before} connection(s) for a refused login"


def assert_logged_login(s, d, database, user):
    """credgate's log line of the login of decision d names database and
    user as the caller sent them.  It is written when the session ends,
    long after the login: what it names must still be there then."""
    rid = d["request_id"]
    lines = wait_for(lambda: [l for l in s.cg.stderr().splitlines()
                              if "msg=request " in l and f"rid={rid} " in l])
    assert lines, f"no log line of request {rid}"
    assert f" database={database} user={user} " in lines[0], lines[0]


def backend_pid(s, route, **kw):
    out = s.psql_ok(route, "select pg_backend_pid()", **kw)
    return int(out.strip())


# ======================================================================
# Logging in
# ======================================================================
def test_psql_over_tls_gets_the_service_account(pg_stack):
    s, user = pg_stack, caller()
    out = s.psql_ok("tls", "select current_user, current_database()", user=user,
                    sslmode="verify-full")
    assert out.strip() == "svc_scram|ledger"
    d = decision(s, user)
    assert d["client"]["tls"] is True, d["client"]
    assert d["decision"]["result"] == "allow" and d["decision"]["rule"] == "ci-db", d
    assert d["credential"]["path"] == "pg/svc_scram", d["credential"]


def test_psql_with_a_plaintext_token_where_the_route_allows_it(pg_stack):
    """allow_plaintext_token: sslmode=disable works; with no database set on
    the route, the caller's database is the one logged in to."""
    s = pg_stack
    out = s.psql_ok("plain", "select current_user, current_database()", dbname="other")
    assert out.strip() == "svc_scram|other"
    out = s.psql_ok("plain", "select current_user, current_database()", dbname="ledger")
    assert out.strip() == "svc_scram|ledger"


@pytest.mark.parametrize("route,account,method", [
    ("tls", "svc_scram", "scram-sha-256"),
    ("md5", "svc_md5", "md5"),
    ("password", "svc_plain", "password"),
])
def test_each_upstream_login_method(pg_stack, route, account, method):
    s, pg = pg_stack, pg_stack.pg
    sslmode = "require" if route == "tls" else "disable"
    out = s.psql_ok(route, "select current_user, current_database()", sslmode=sslmode)
    assert out.strip() == f"{account}|ledger"
    # pg_hba.conf gives each account one method: PostgreSQL logged it.
    assert re.search(rf'identity="{account}" method={re.escape(method)}\b', pg.log_text()), \
        f"PostgreSQL logged no {method} login of {account}"


def test_tls_towards_postgres(pg_stack):
    out = pg_stack.psql_ok("uptls", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
    assert out.strip() == "t", "the upstream login of a route with upstream.tls is not TLS"
    out = pg_stack.psql_ok("plain", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
    assert out.strip() == "f"


# ======================================================================
# Sessions
# ======================================================================
def test_transaction_commits_and_rolls_back(pg_stack):
    s = pg_stack
    table = "t_" + secrets.token_hex(4)
    c = s.connect("plain")
    try:
        s.query(c, f"create table {table} (id int primary key, note text)")
        c.commit()
        s.query(c, f"insert into {table} values (1, 'kept')")
        c.commit()
        s.query(c, f"insert into {table} values (2, 'dropped')")
        c.rollback()
    finally:
        c.close()
    c = s.connect("plain")
    try:
        assert s.query(c, f"select id, note from {table} order by id") == [(1, "kept")]
        c.rollback()
    finally:
        c.close()
    assert s.pg.sql(f"select count(*) from {table}", db="ledger") == "1"


def test_copy_in_and_out(pg_stack):
    s = pg_stack
    table = "c_" + secrets.token_hex(4)
    src = os.path.join(s.tmp, f"{table}.in")
    dst = os.path.join(s.tmp, f"{table}.out")
    rows = [f"{i}\tline {i} {secrets.token_hex(8)}" for i in range(5000)]
    with open(src, "w") as f:
        f.write("\n".join(rows) + "\n")
    s.psql_ok("plain", [f"create table {table} (id int, t text)",
                        f"\\copy {table} from '{src}'",
                        f"\\copy (select * from {table} order by id) to '{dst}'"])
    with open(dst) as f:
        assert f.read().splitlines() == rows
    assert s.pg.sql(f"select count(*) from {table}", db="ledger") == "5000"


def test_large_result_arrives_whole(pg_stack):
    s = pg_stack
    n = 200000
    out = s.psql_ok("plain", f"select i, repeat('x', 40) || i from generate_series(1, {n}) i")
    lines = out.splitlines()
    assert len(lines) == n, f"{len(lines)} rows of {n}"
    assert lines[0] == "1|" + "x" * 40 + "1"
    assert lines[-1] == f"{n}|" + "x" * 40 + str(n)
    for k in random.sample(range(n), 200):
        assert lines[k] == f"{k + 1}|" + "x" * 40 + str(k + 1)


def test_cancel_reaches_the_running_query(pg_stack):
    s, user = pg_stack, caller()
    c = s.connect("plain", user=user)
    try:
        timer = threading.Timer(0.5, c.cancel)
        t0 = time.monotonic()
        timer.start()
        with pytest.raises(psycopg2.errors.QueryCanceled) as e:
            s.query(c, "select pg_sleep(30)")
        elapsed = time.monotonic() - t0
        timer.join()
        assert e.value.pgcode == "57014"
        assert elapsed < 5, f"the cancel took {elapsed:.1f}s"
        c.rollback()
        assert s.query(c, "select 1") == [(1,)], "the session is unusable after a cancel"
    finally:
        c.close()
    assert_logged_login(s, decision(s, user), "ledger", user)


def test_a_cancel_with_an_unknown_key_is_dropped(pg_stack):
    """A CancelRequest with a key credgate never gave is neither answered
    nor forwarded."""
    s, pg = pg_stack, pg_stack.pg
    before = pg.tcp_connections()
    r = s.raw("plain")
    r.send(struct.pack("!IIII", 16, 80877102, 12345, 67890))
    assert r.closed_within(3), "credgate kept a bad CancelRequest's connection open"
    assert_untouched(pg, before)


def test_pgbench_select_only_with_a_connection_per_transaction(pg_stack):
    s, pg = pg_stack, pg_stack.pg
    pgbench = pg_client(pg.bindir, "pgbench")
    init = s.run([pgbench, "-i", "-q", "-s", "1", "-h", pg.sockdir, "-p", str(pg.port),
                  "-U", "postgres", "ledger"], timeout=120)
    assert init[0] == 0, f"pgbench -i failed: {init[2]}"
    rc, out, err = s.run([pgbench, "-n", "-S", "-C", "-c", "4", "-j", "2", "-t", "50",
                          "-h", "127.0.0.1", "-p", str(s.ports["plain"]), "-U", "bench",
                          "ledger"], token=s.token(), timeout=120)
    assert rc == 0, f"pgbench through credgate failed ({rc}): {err}"
    assert "number of transactions actually processed: 200/200" in out, out
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m is None or m.group(1) == "0", out


# ======================================================================
# Refusals: the SQLSTATE, the audit, and nothing upstream
# ======================================================================
def refused_login(s, route, token, sqlstate, user, database="ledger", tls=False):
    """A raw login with token that must end in a FATAL sqlstate; returns
    the fields of the ErrorResponse."""
    r = s.raw(route)
    try:
        if tls:
            assert r.request(PG_SSL_REQUEST) == b"S"
            r.start_tls(s.pki.ca_file)
        r.send(pg_startup([("user", user), ("database", database)]))
        kind, body = r.read_msg()
        if kind == "R":
            assert body == struct.pack("!I", 3), body
            r.send(pg_msg(b"p", token.encode() + b"\0"))
            return r.expect_error(sqlstate)
        assert kind == "E", (kind, body)
        f = pg_fields(body)
        assert f.get("C") == sqlstate, f
        assert r.closed_within(5)
        return f
    finally:
        r.close()


def expired_token(s):
    now = int(time.time())
    return s.token(iat=now - 900, exp=now - 600)


@pytest.mark.parametrize("kind", ["garbage", "expired", "unknown_key", "wrong_audience"])
def test_bad_token_is_28P01(pg_stack, keys, kind):
    s, pg = pg_stack, pg_stack.pg
    token = {"garbage": lambda: "a.b.c",
             "expired": lambda: expired_token(s),
             "unknown_key": lambda: s.token(key=keys.other_ec),
             "wrong_audience": lambda: s.token(aud="someone-else")}[kind]()
    user = caller()
    before = pg.tcp_connections()
    f = refused_login(s, "plain", token, "28P01", user)
    assert f["M"] == f'password authentication failed for user "{user}"', f
    assert token not in repr(f)
    assert_untouched(pg, before)
    d = decision(s, user)
    assert d["decision"]["result"] == "deny", d
    assert d["decision"]["code"] == "28P01", d
    assert d["request"]["database"] == "ledger" and d["request"]["user"] == user, d


def test_bad_token_over_tls_is_28P01(pg_stack):
    """The refusal reaches a caller over TLS too, before the close."""
    s, pg = pg_stack, pg_stack.pg
    user = caller()
    before = pg.tcp_connections()
    refused_login(s, "tls", expired_token(s), "28P01", user, tls=True)
    assert_untouched(pg, before)
    assert decision(s, user)["decision"]["code"] == "28P01"


def test_policy_refusal_over_tls_is_28000(pg_stack):
    s, pg = pg_stack, pg_stack.pg
    user = caller()
    before = pg.tcp_connections()
    refused_login(s, "tls", s.token(), "28000", user, database="other", tls=True)
    assert_untouched(pg, before)


def test_bad_token_through_psql(pg_stack):
    s, pg = pg_stack, pg_stack.pg
    before = pg.tcp_connections()
    rc, out, err = s.psql("tls", "select 1", token=expired_token(s), sslmode="require")
    assert rc == 2, (rc, err)
    assert "FATAL:  password authentication failed" in err, err
    assert_untouched(pg, before)


@pytest.mark.parametrize("case", ["deny_rule", "no_rule", "database"])
def test_policy_refusal_is_28000(pg_stack, case):
    s, pg = pg_stack, pg_stack.pg
    user = "intruder-" + secrets.token_hex(4) if case == "deny_rule" else caller()
    token = s.token(repository="other/app") if case == "no_rule" else s.token()
    database = "postgres" if case == "database" else "ledger"
    before = pg.tcp_connections()
    refused_login(s, "plain", token, "28000", user, database=database)
    assert_untouched(pg, before)
    d = decision(s, user)
    assert d["decision"]["result"] == "deny" and d["decision"]["code"] == "28000", d
    assert d["decision"]["rule"] == ("no-intruder" if case == "deny_rule" else None), d
    assert d["request"] == {"database": database, "user": user}, d


def test_policy_refusal_through_psql(pg_stack):
    s, pg = pg_stack, pg_stack.pg
    before = pg.tcp_connections()
    rc, out, err = s.psql("tls", "select 1", sslmode="verify-full", dbname="other")
    assert rc == 2 and "FATAL:" in err, (rc, err)
    rc, out, err = s.psql("plain", "select 1", dbname="template1")
    assert rc == 2 and "FATAL:" in err, (rc, err)
    assert_untouched(pg, before)


def test_token_over_plain_tcp_is_refused_without_allow_plaintext_token(pg_stack):
    s, pg = pg_stack, pg_stack.pg
    user = caller()
    before = pg.tcp_connections()
    r = s.raw("tls")
    r.send(pg_startup([("user", user), ("database", "ledger")]))
    # Refused before the token is asked for: it never crosses in the clear.
    kind, body = r.read_msg()
    assert kind == "E", f"credgate asked a caller without TLS for its token: {kind!r} {body!r}"
    f = pg_fields(body)
    assert f["C"] == "28000" and f["S"] == "FATAL", f
    assert r.closed_within(5)
    r.close()
    d = decision(s, user)
    assert d["decision"]["result"] == "deny" and d["decision"]["code"] == "28000", d
    rc, out, err = s.psql("tls", "select 1", sslmode="disable")
    assert rc == 2 and "FATAL:" in err and "TLS" in err, (rc, err)
    assert_untouched(pg, before)


@pytest.mark.parametrize("route", ["down", "badcred"])
def test_upstream_failure_is_08006(pg_stack, route):
    """An unreachable upstream, or one that refuses credgate's login:
    08006 for the caller, nothing of PostgreSQL's own answer; the audit's
    error event says why."""
    s, user = pg_stack, caller()
    r = s.raw(route)
    r.send(pg_startup([("user", user), ("database", "ledger")]))
    assert r.read_msg() == ("R", struct.pack("!I", 3))
    r.send(pg_msg(b"p", s.token().encode() + b"\0"))
    f = r.expect_error("08006")
    assert "svc_scram" not in repr(f) and "password" not in f["M"], f
    d = decision(s, user)
    assert d["decision"]["result"] == "allow", d
    err = s.cg.audit_where(lambda e: e.get("event") == "error" and e["route"] == route and
                           e["client"]["port"] == d["client"]["port"])
    assert err, "no error event for the failed upstream login"
    if route == "badcred":
        assert "28P01" in err[0]["reason"], err[0]


def test_connection_limit_is_53300(make_pg_stack):
    """Over credgate.max_connections a caller waits, then gets what
    PostgreSQL says when it is full."""
    s = make_pg_stack(lambda s: [s.route("one", postgres_over={"allow_plaintext_token": True})],
                      extra={"max_connections": 1})
    c = s.connect("one")
    assert s.query(c, "select 1") == [(1,)]
    r = s.raw("one", timeout=10)
    r.send(pg_startup([("user", "ci"), ("database", "ledger")]))
    t0 = time.monotonic()
    r.expect_error("53300", timeout=8)
    assert time.monotonic() - t0 <= 5
    assert s.query(c, "select 2") == [(2,)], "the session in place was disturbed"


def test_idle_timeout_ends_a_session_with_57P05(make_pg_stack):
    s = make_pg_stack(lambda s: [s.route("idle", postgres_over={
        "allow_plaintext_token": True, "idle_timeout": "1s"})])
    r = s.raw("idle", timeout=5)
    r.login(s.token())
    assert r.query("select 1") == [["1"]]
    t0 = time.monotonic()
    f = r.expect_error("57P05", timeout=5)
    assert 0.8 <= time.monotonic() - t0 <= 3, f


# ======================================================================
# The protocol, over raw sockets
# ======================================================================
@pytest.mark.parametrize("params", [
    [("user", "ci"), ("database", "ledger"), ("user", "svc_scram")],
    [("user", "ci"), ("application_name", "a"), ("APPLICATION_NAME", "b")],
    [("user", "ci"), ("database", "ledger"), ("Database", "other")],
], ids=["user", "application_name", "database"])
def test_duplicate_startup_parameter_is_08P01(pg_stack, params):
    r = pg_stack.raw("plain")
    r.send(pg_startup(params))
    r.expect_error("08P01")


def test_protocol_2_is_0A000(pg_stack):
    r = pg_stack.raw("plain")
    r.send(pg_startup([("user", "ci"), ("database", "ledger")], major=2, minor=0))
    r.expect_error("0A000")


def test_startup_packet_over_10000_bytes_is_08P01(pg_stack):
    r = pg_stack.raw("plain")
    # The length alone refuses it: credgate does not wait for the bytes.
    r.send(struct.pack("!IHH", 10001, 3, 0))
    r.expect_error("08P01")
    r = pg_stack.raw("plain")
    pkt = pg_startup([("user", "ci"), ("database", "ledger"), ("application_name", "x" * 10000)])
    r.send(pkt)
    r.expect_error("08P01")


def test_gssenc_request_is_answered_N(pg_stack):
    r = pg_stack.raw("plain")
    assert r.request(PG_GSSENC_REQUEST) == b"N"
    # And nothing else: the login goes on in the clear.
    r.login(pg_stack.token())
    assert r.query("select current_user") == [["svc_scram"]]
    r.terminate()


def test_ssl_request_to_a_route_without_caller_tls_is_answered_N(pg_stack):
    r = pg_stack.raw("plain")
    assert r.request(PG_SSL_REQUEST) == b"N"
    r.login(pg_stack.token())
    assert r.query("select 1") == [["1"]]
    r.terminate()


def test_ssl_request_to_a_tls_route_is_answered_S(pg_stack):
    r = pg_stack.raw("tls")
    assert r.request(PG_SSL_REQUEST) == b"S"
    r.start_tls(pg_stack.pki.ca_file)
    r.login(pg_stack.token())
    assert r.query("select current_database()") == [["ledger"]]
    r.terminate()


def test_direct_tls_with_alpn_postgresql(pg_stack):
    """PostgreSQL 17's sslnegotiation=direct: a ClientHello first, with
    ALPN "postgresql", and the login over it."""
    import ssl
    r = pg_stack.raw("tls")
    ctx = ssl.create_default_context(cafile=pg_stack.pki.ca_file)
    ctx.set_alpn_protocols(["postgresql"])
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    assert r.sock.selected_alpn_protocol() == "postgresql"
    r.login(pg_stack.token())
    assert r.query("select current_database()") == [["ledger"]]
    r.terminate()


def test_direct_tls_to_a_route_without_tls_is_closed(pg_stack):
    import ssl
    r = pg_stack.raw("plain")
    ctx = ssl.create_default_context(cafile=pg_stack.pki.ca_file)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    r.close()


def test_unknown_protocol_option_is_negotiated(pg_stack):
    r = pg_stack.raw("plain")
    r.send(pg_startup([("user", "ci"), ("database", "ledger"), ("_pq_.foo", "1")], minor=2))
    kind, body = r.read_msg()
    assert kind == "v", f"expected NegotiateProtocolVersion, got {kind!r} {body!r}"
    minor, n = struct.unpack("!II", body[:8])
    assert minor == 2 and n == 1, (minor, n)
    assert body[8:] == b"_pq_.foo\0", body
    kind, body = r.read_msg()
    assert (kind, body) == ("R", struct.pack("!I", 3)), (kind, body)
    r.send(pg_msg(b"p", pg_stack.token().encode() + b"\0"))
    msgs = []
    while True:
        kind, body = r.read_msg()
        assert kind != "E", pg_fields(body)
        msgs.append((kind, body))
        if kind == "Z":
            break
    # 3.2: a cancel key longer than 3.0's four bytes.
    keys = [b for k, b in msgs if k == "K"]
    assert keys and len(keys[0]) > 8, f"no 3.2 BackendKeyData: {keys}"
    r.terminate()


def test_newer_minor_is_negotiated_down_to_3_2(pg_stack):
    r = pg_stack.raw("plain")
    r.send(pg_startup([("user", "ci"), ("database", "ledger")], minor=9))
    kind, body = r.read_msg()
    assert kind == "v" and struct.unpack("!II", body[:8]) == (2, 0), (kind, body)
    kind, body = r.read_msg()
    assert (kind, body) == ("R", struct.pack("!I", 3))
    r.close()


def test_password_over_max_token_bytes_is_08P01(pg_stack):
    s, pg = pg_stack, pg_stack.pg
    user = caller()
    before = pg.tcp_connections()
    r = s.raw("plain")
    r.send(pg_startup([("user", user), ("database", "ledger")]))
    assert r.read_msg() == ("R", struct.pack("!I", 3))
    # credgate.limits.token_bytes is 8192 in these tests.
    r.send(pg_msg(b"p", b"x" * 9000 + b"\0"))
    r.expect_error("08P01")
    assert_untouched(pg, before)
    assert decision(s, user)["decision"]["code"] == "08P01"


def test_silence_after_startup_ends_at_the_auth_timeout(pg_stack):
    """timeouts.client_header (2s here) bounds the login: a caller that
    never sends its password gets 08P01 and the connection ends."""
    r = pg_stack.raw("plain", timeout=10)
    r.send(pg_startup([("user", "ci"), ("database", "ledger")]))
    assert r.read_msg() == ("R", struct.pack("!I", 3))
    t0 = time.monotonic()
    f = r.expect_error("08P01", timeout=8)
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed <= 4, f"ended {elapsed:.1f}s after the password request"
    assert "timeout" in f["M"], f


def test_a_silent_connection_is_closed_at_the_auth_timeout(pg_stack):
    r = pg_stack.raw("plain", timeout=10)
    t0 = time.monotonic()
    assert r.closed_within(8), "a connection that says nothing was kept"
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed <= 4, f"closed after {elapsed:.1f}s"


# ======================================================================
# What reaches PostgreSQL of the caller's startup
# ======================================================================
def test_options_do_not_reach_postgres_and_application_name_does(pg_stack):
    s = pg_stack
    name = "app-" + secrets.token_hex(4)
    out = s.psql_ok("plain", ["show statement_timeout", "show search_path",
                              "show application_name"],
                    options="-c statement_timeout=1 -c search_path=evil",
                    application_name=name)
    assert out.splitlines() == ["0", '"$user", public', name], out
    # PGOPTIONS is the same startup parameter.
    rc, out, err = s.run([pg_client(s.pg.bindir, "psql"), "-X", "-A", "-t", "-q",
                          "-d", s.conninfo("plain"), "-c", "show statement_timeout"],
                         token=s.token(), env={"PGOPTIONS": "-c statement_timeout=7"})
    assert rc == 0 and out.strip() == "0", (rc, out, err)


def test_startup_settings_not_on_the_list_do_not_reach_postgres(pg_stack):
    """PostgreSQL takes any setting as a startup parameter; credgate passes
    only those on its list (application_name, client_encoding...)."""
    r = pg_stack.raw("plain")
    r.login(pg_stack.token(), params=[("statement_timeout", "1"), ("search_path", "evil"),
                                      ("client_encoding", "LATIN1"),
                                      ("application_name", "raw-app")])
    assert r.query("show statement_timeout") == [["0"]]
    assert r.query("show search_path") == [['"$user", public']]
    assert r.query("show client_encoding") == [["LATIN1"]]
    assert r.query("show application_name") == [["raw-app"]]
    r.terminate()


# ======================================================================
# Dry run and audit
# ======================================================================
def test_dry_run_logs_in_and_audits_would_deny(pg_stack):
    s, user = pg_stack, caller()
    out = s.psql_ok("dry", "select current_user", user=user)
    assert out.strip() == "svc_scram"
    d = decision(s, user)
    assert d["decision"]["result"] == "would_deny", d
    assert d["decision"]["mode"] == "dry-run", d
    assert d["request"] == {"database": "ledger", "user": user}, d
    # A bad token is refused in a dry run too.
    refused_login(s, "dry", "a.b.c", "28P01", caller())


def test_audit_of_a_session(pg_stack):
    s, user = pg_stack, caller()
    c = s.connect("plain", user=user, dbname="other")
    try:
        s.query(c, "select repeat('y', 100000)")
    finally:
        c.close()
    d = decision(s, user)
    assert d["request"] == {"database": "other", "user": user}, d
    assert d["decision"]["result"] == "allow" and "code" not in d["decision"], d
    assert d["credential"]["version"] == "1" and d["credential"]["path"] == "pg/svc_scram"
    assert d["upstream"]["addr"] == f"127.0.0.1:{s.pg.port}", d
    e = session_end(s, d)
    assert e["bytes"]["out"] > 100000 and e["bytes"]["in"] > 0, e
    assert isinstance(e["duration_ms"], int) and e["duration_ms"] >= 0, e
    assert_logged_login(s, d, "other", user)


# ======================================================================
# Reuse of upstream logins
# ======================================================================
def test_sequential_sessions_reuse_one_backend_reset(pg_stack):
    s, pg = pg_stack, pg_stack.pg
    before, logins = pg.tcp_connections(), pg.logins("svc_scram")
    name = "reuse-" + secrets.token_hex(4)
    users = [caller(), caller()]
    out = s.psql_ok("reuse", ["set statement_timeout = '7s'",
                              "create temp table scratch (x int)",
                              "select pg_backend_pid()"], application_name=name, user=users[0])
    pid1 = int(out.strip())
    # The first session ends (its login reset and pooled) before the second.
    session_end(s, decision(s, users[0]))
    out = s.psql_ok("reuse", ["select pg_backend_pid()", "show statement_timeout",
                              "select to_regclass('pg_temp.scratch') is null"],
                    application_name=name, user=users[1])
    pid2, timeout, gone = out.split()
    assert int(pid2) == pid1, "the second session got another backend"
    assert timeout == "0", "a SET of the first session reached the second"
    assert gone == "t", "a temp table of the first session reached the second"
    assert pg.tcp_connections() == before + 1, \
        f"{pg.tcp_connections() - before} upstream connections for two sequential sessions"
    assert pg.logins("svc_scram") == logins + 1, "PostgreSQL authorised more than one login"
    reused = [session_end(s, decision(s, u)).get("upstream_reused") for u in users]
    assert reused == [0, 1], f"session_end upstream_reused: {reused}"


def test_reused_login_is_not_shared_across_application_names(pg_stack):
    s = pg_stack
    a, b = "an-" + secrets.token_hex(4), "bn-" + secrets.token_hex(4)
    assert s.psql_ok("reuse", "show application_name", application_name=a).strip() == a
    assert s.psql_ok("reuse", "show application_name", application_name=b).strip() == b


def test_empty_reset_query_means_a_new_backend_each_time(make_pg_stack):
    s = make_pg_stack(lambda s: [s.route("fresh", postgres_over={
        "allow_plaintext_token": True, "reset_query": ""})])
    pg = s.pg
    before = pg.tcp_connections()
    pids = {backend_pid(s, "fresh") for _ in range(2)}
    assert len(pids) == 2, "a login was reused although reset_query is empty"
    assert pg.tcp_connections() == before + 2


def test_a_session_left_mid_transaction_is_not_reused(pg_stack):
    s = pg_stack
    name = "txn-" + secrets.token_hex(4)
    out = s.psql_ok("reuse", ["begin", "create temp table half (x int)",
                              "select pg_backend_pid()"], application_name=name)
    pid1 = int(out.strip())
    pid2 = backend_pid(s, "reuse", application_name=name)
    assert pid2 != pid1, "a login left inside a transaction was given to the next caller"


# ======================================================================
# Rotation, reload, drain: a credgate of the test's own
# ======================================================================
def test_rotated_password_logs_in_with_a_new_upstream_connection(make_pg_stack):
    s = make_pg_stack(lambda s: [s.route("rot", account="svc_rotate",
                                         postgres_over={"allow_plaintext_token": True})])
    pg = s.pg
    user = caller()
    pid1 = backend_pid(s, "rot", user=user)
    assert decision(s, user)["credential"]["version"] == "1"
    logins = pg.logins("svc_rotate")

    new = "pgpw-" + secrets.token_hex(16)
    reads = s.cg.stderr().count("event=secrets_reloaded")
    pg.set_password("svc_rotate", new)
    s.cg.put_secrets({"pg/svc_rotate": {"username": "svc_rotate", "password": new,
                                        "version": "2"}})
    assert wait_for(lambda: s.cg.stderr().count("event=secrets_reloaded") > reads,
                    timeout=10), "credgate did not read the changed secrets file"

    user = caller()
    pid2 = backend_pid(s, "rot", user=user)
    assert decision(s, user)["credential"]["version"] == "2"
    assert pid2 != pid1, "a login made with the old password served the new version"
    assert pg.logins("svc_rotate") == logins + 1


def test_reload_leaves_an_open_session_working(make_pg_stack):
    plain = {"allow_plaintext_token": True}
    s = make_pg_stack(lambda s: [s.route("r", postgres_over=plain)])
    user = caller()
    c = s.connect("r", user=user)
    try:
        assert s.query(c, "select 1") == [(1,)]
        c.commit()
        routes = [s.route("r", postgres_over=plain,
                          deny=[{"name": "no-ci", "attributes": [{"attribute": "user",
                                                                  "value": "ci-*"}]}])]
        s.rewrite(routes)
        ok = s.cg.stderr().count("msg=reloaded")
        s.cg.signal(signal.SIGHUP)
        assert wait_for(lambda: s.cg.stderr().count("msg=reloaded") > ok, timeout=10), \
            "the reload did not happen"
        refused_login(s, "r", s.token(), "28000", caller())
        assert s.query(c, "select current_user") == [("svc_scram",)], \
            "the open session stopped working after the reload"
        c.commit()
    finally:
        c.close()


def test_drain_lets_a_running_query_finish(make_pg_stack):
    plain = {"allow_plaintext_token": True}
    s = make_pg_stack(lambda s: [s.route("d", postgres_over=plain)],
                      extra={"shutdown_timeout": "4s"})
    c = s.connect("d")
    result = {}

    def run():
        try:
            result["rows"] = s.query(c, "select pg_sleep(1.5), 'done'")
        except Exception as e:      # noqa: BLE001 - reported below
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    s.cg.signal(signal.SIGTERM)
    t.join(10)
    assert result.get("rows") == [("", "done")], f"the running query was cut: {result}"
    try:
        socket_refused = wait_for(lambda: _refused(s.ports["d"]), timeout=2)
        assert socket_refused, "the listener still accepts while draining"
        rc = s.cg.proc.wait(timeout=10)
    finally:
        c.close()
    elapsed = time.monotonic() - t0
    assert rc == 0
    assert elapsed <= 6, f"credgate exited {elapsed:.1f}s after SIGTERM (deadline 4s)"


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def test_drain_deadline_ends_a_session(make_pg_stack):
    plain = {"allow_plaintext_token": True}
    s = make_pg_stack(lambda s: [s.route("d", postgres_over=plain)],
                      extra={"shutdown_timeout": "1s"})
    c = s.connect("d")
    try:
        assert s.query(c, "select 1") == [(1,)]
        c.commit()
        t0 = time.monotonic()
        s.cg.signal(signal.SIGTERM)
        rc = s.cg.proc.wait(timeout=8)
        elapsed = time.monotonic() - t0
        assert rc == 0
        assert 0.8 <= elapsed <= 3, f"exit {elapsed:.1f}s after SIGTERM, deadline 1s"
        with pytest.raises(psycopg2.OperationalError):
            s.query(c, "select 1")
    finally:
        c.close()


# ----------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------
def _metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}} in:\n{text}")


def test_metrics_count_logins_keys_and_reuse(make_pg_stack):
    """Logins by result, SCRAM keys by source, upstream connections opened
    and reused, and the idle ones kept, per route."""
    admin = free_port()
    s = make_pg_stack(lambda s: [s.route("m", postgres_over={"allow_plaintext_token": True})],
                      extra={"admin": {"listen": f"127.0.0.1:{admin}"}})

    def scrape():
        return _scrape(admin)

    assert wait_for(lambda: _try(scrape) is not None), "no admin endpoint"
    # Each login waits until the one before it is reset and back in the pool.
    for _ in range(3):
        backend_pid(s, "m")
        assert wait_for(lambda: _metric(scrape(), "credgate_upstream_connections_idle",
                                        route="m") == 1)
    refused_login(s, "m", "not-a-token", "28P01", caller())
    assert wait_for(lambda: _metric(scrape(), "credgate_logins_total", route="m",
                                    result="refused") == 1)
    text = scrape()
    assert _metric(text, "credgate_logins_total", route="m", result="ok") == 1
    assert _metric(text, "credgate_logins_total", route="m", result="reused") == 2
    assert _metric(text, "credgate_logins_total", route="m", result="failed") == 0
    # One derivation for the first login; the reused ones need none.
    assert _metric(text, "credgate_scram_keys_total", route="m", source="derived") == 1
    assert _metric(text, "credgate_upstream_connections_total", route="m", kind="opened") == 1
    assert _metric(text, "credgate_upstream_connections_total", route="m", kind="reused") == 2
    assert _metric(text, "credgate_upstream_connections_idle", route="m") == 1
    # psycopg2 sends other startup parameters than psql (its own
    # application_name): its logins are new ones, their keys from the cache.
    for _ in range(2):
        s.clients.append(psycopg2.connect(s.conninfo("m", user=caller()), password=s.token()))
    text = scrape()
    assert _metric(text, "credgate_scram_keys_total", route="m", source="cache") == 2
    assert _metric(text, "credgate_scram_keys_total", route="m", source="derived") == 1
    assert _metric(text, "credgate_upstream_connections_total", route="m", kind="opened") == 3
    assert _metric(text, "credgate_upstream_connections_idle", route="m") == 1
    assert _metric(text, "credgate_connections_open", route="m") == 2


def _scrape(port):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_a_kept_login_closes_after_upstream_idle_timeout(make_pg_stack):
    admin = free_port()
    s = make_pg_stack(lambda s: [s.route("i", postgres_over={"allow_plaintext_token": True},
                                         upstream={"host": "127.0.0.1", "port": s.pg.port,
                                                   "idle_timeout": "1s"})],
                      extra={"admin": {"listen": f"127.0.0.1:{admin}"}})
    assert wait_for(lambda: _try(lambda: _scrape(admin)) is not None)
    idle = lambda: _metric(_scrape(admin), "credgate_upstream_connections_idle", route="i")
    backend_pid(s, "i")
    assert wait_for(lambda: idle() == 1, timeout=0.9), "the login was not kept"
    assert wait_for(lambda: idle() == 0, timeout=3), "the kept login outlived idle_timeout"
    backend_pid(s, "i")
    text = _scrape(admin)
    assert _metric(text, "credgate_upstream_connections_total", route="i", kind="opened") == 2
    assert _metric(text, "credgate_upstream_connections_total", route="i", kind="reused") == 0


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


# ----------------------------------------------------------------------
# Upstream TLS: verify-full by default, verify-ca with verify_name = false
# ----------------------------------------------------------------------
def test_upstream_tls_name_is_verified_unless_verify_name_is_false(make_pg_stack):
    def routes(s):
        pg = s.pg

        def up(**tls):
            return {"host": "127.0.0.1", "port": pg.port,
                    "tls": {"enabled": True, "ca": pg.pki.ca_file,
                            "server_name": "not-this-server.example", **tls}}
        plain = {"allow_plaintext_token": True}
        return [s.route("full", upstream=up(), postgres_over=plain),
                s.route("ca", upstream=up(verify_name=False), postgres_over=plain)]
    s = make_pg_stack(routes)
    # The CA issued the server's certificate for localhost, not this name.
    assert s.psql_ok("ca", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
                     ).strip() == "t"
    user = caller()
    refused_login(s, "full", s.token(), "08006", user)
    d = decision(s, user)
    assert d["decision"]["result"] == "allow", d


# ----------------------------------------------------------------------
# A unix-socket listener
# ----------------------------------------------------------------------
def test_unix_socket_listener(make_pg_stack, tmp_path):
    """A route on a unix socket, added by a reload: psql reaches it by
    its folder and port as it would PostgreSQL's; a socket file a dead
    process left is replaced, anything else at the path refused."""
    plain = {"allow_plaintext_token": True}
    sockdir = tmp_path / "sock"
    sockdir.mkdir()
    path = str(sockdir / ".s.PGSQL.6543")
    # What a killed server leaves: a socket file nothing accepts on.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    s = make_pg_stack(lambda s: [s.route("t", postgres_over=plain)])
    routes = [s.route("t", postgres_over=plain),
              s.route("u", postgres_over=plain, listen="unix:" + path)]
    s.rewrite(routes)
    ok = s.cg.stderr().count("msg=reloaded")
    s.cg.signal(signal.SIGHUP)
    assert wait_for(lambda: s.cg.stderr().count("msg=reloaded") > ok, timeout=10), \
        "the reload did not happen:\n" + s.cg.stderr()[-2000:]
    assert oct(os.stat(path).st_mode & 0o777) == "0o666"
    user = caller()
    rc, out, err = s.run([pg_client(s.pg.bindir, "psql"), "-X", "-At", "-c",
                          "select current_user", "-d",
                          f"host={sockdir} port=6543 dbname=ledger user={user}"],
                         token=s.token())
    assert rc == 0, err
    assert out.strip() == "svc_scram"
    d = decision(s, user)
    assert d["client"]["addr"] == "unix" and d["client"]["tls"] is False, d

    # Anything but a socket at the path: the route cannot listen.
    other = tmp_path / "sock2"
    other.mkdir()
    (other / "x").write_text("not a socket")
    s.rewrite(routes[:1] + [s.route("v", postgres_over=plain,
                                    listen="unix:" + str(other / "x"))])
    s.cg.signal(signal.SIGHUP)
    assert wait_for(lambda: "not a socket" in s.cg.stderr(), timeout=10), \
        s.cg.stderr()[-2000:]
    assert (other / "x").read_text() == "not a socket"
    # Draining, credgate accepts no one: the socket file goes at once.
    assert os.path.exists(path)
    s.cg.stop()
    assert not os.path.exists(path), "the unix socket outlived credgate"


# ----------------------------------------------------------------------
# certificate_login: a client certificate instead of a token
# ----------------------------------------------------------------------
def test_certificate_login_needs_no_password(make_pg_stack):
    """With certificate_login, a verified client certificate that a rule
    names logs in without a password; without a certificate the token is
    asked for as ever; a certificate no rule names is refused (28000),
    even where another rule would let any caller in."""
    def routes(s):
        s.cli_crt, s.cli_key, _ = s.pki.issue("job", "ci-job", uris=["spiffe://test/ci/job"],
                                              client=True)
        s.other_crt, s.other_key, _ = s.pki.issue("other", "other-job",
                                                  uris=["spiffe://test/other"], client=True)
        r = s.route("c", tls=True, postgres_over={"certificate_login": True},
                    allow=[{"name": "ci-cert", "client_san": "uri:spiffe://test/ci/*",
                            "attributes": [{"attribute": "database", "value": "ledger"}]},
                           {"name": "ci-token", "issuer": "test"}])
        r["tls"].update(client_ca=s.pki.ca_file, verify_client="optional")
        return [r]
    s = make_pg_stack(routes)
    psql = pg_client(s.pg.bindir, "psql")

    def login(user, **conn):
        info = s.conninfo("c", user=user, sslmode="verify-full", **conn)
        return s.run([psql, "-X", "-At", "-w", "-c", "select current_user", "-d", info])

    user = caller()
    rc, out, err = login(user, sslcert=s.cli_crt, sslkey=s.cli_key)
    assert rc == 0, err
    assert out.strip() == "svc_scram"
    d = decision(s, user)
    assert d["decision"]["rule"] == "ci-cert" and d["identity"] is None, d
    assert d["client"]["tls"] is True, d

    # No certificate: the token is asked for (-w: none given, psql fails).
    rc, out, err = login(caller())
    assert rc != 0 and "password" in err, err
    rc, out, err = s.run([psql, "-X", "-At", "-c", "select 1", "-d",
                          s.conninfo("c", user=caller(), sslmode="verify-full")],
                         token=s.token())
    assert rc == 0 and out.strip() == "1", err

    # A certificate no rule names: refused, though "ci-token" names no
    # certificate and would hold for any caller with a token.
    user = caller()
    rc, out, err = login(user, sslcert=s.other_crt, sslkey=s.other_key)
    assert rc != 0, out
    d = decision(s, user)
    assert d["decision"]["result"] == "deny" and d["decision"]["code"] == "28000", d


# ----------------------------------------------------------------------
# A driver that speaks the protocol itself (no libpq), with a long token
# ----------------------------------------------------------------------
def test_asyncpg_with_a_4_kib_token(pg_stack):
    """asyncpg implements the wire protocol in Python: the cleartext
    password request, the extended query protocol, its own cancel.  Its
    token carries 4 KiB of claims, as CI providers' can."""
    asyncpg = pytest.importorskip("asyncpg", reason="no asyncpg (Debian: python3-asyncpg)")
    import asyncio
    s = pg_stack
    token = s.token(padding="x" * 3000, groups=["g%03d" % i for i in range(60)])
    assert 4096 <= len(token) <= 8192, len(token)
    user = caller()

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=s.ports["plain"], user=user,
                                     database="ledger", password=token, ssl=False,
                                     timeout=10)
        try:
            who = await conn.fetchval("select current_user")
            # Extended protocol: a prepared statement with parameters.
            n = await conn.fetchval("select count(*) from generate_series(1, $1::int)", 5000)
            try:
                await asyncio.wait_for(conn.execute("select pg_sleep(30)"), 1.0)
            except asyncio.TimeoutError:
                pass        # asyncpg cancels the query itself
            after = await conn.fetchval("select 42")
            return who, n, after
        finally:
            await conn.close()

    who, n, after = asyncio.run(run())
    assert (who, n, after) == ("svc_scram", 5000, 42)
    d = decision(s, user)
    assert d["decision"]["result"] == "allow", d
