"""Policy decisions, dry-run, route expiry, upstream and secret failures,
and the audit events that record them."""

import json
import os
import secrets
import signal
import time

import pytest

from conftest import ISSUER, read_text, wait_for


def decision_for(stack, rid):
    ev = stack.cg.audit_where(lambda e: e.get("request_id") == rid and
                              e.get("event") == "decision")
    assert ev, f"no decision event with request_id {rid}"
    assert len(ev) == 1, ev
    return ev[0]


def rid():
    return "t-" + secrets.token_hex(8)


def test_deny_rule_wins_over_allow(stack):
    mark = stack.nginx.mark()
    i = rid()
    r = stack.curl("-H", "X-Request-Id: " + i, path="/admin/x.txt")
    assert r.status == 403, r
    stack.nginx.assert_untouched(mark)
    d = decision_for(stack, i)["decision"]
    assert d["result"] == "deny" and d["rule"] == "no-admin", d


def test_no_matching_rule_is_403(stack):
    mark = stack.nginx.mark()
    i = rid()
    r = stack.curl("-H", "X-Request-Id: " + i, token=stack.token(repository="other/app"))
    assert r.status == 403, r
    stack.nginx.assert_untouched(mark)
    d = decision_for(stack, i)["decision"]
    assert d["result"] == "deny" and d.get("rule") in (None, ""), d
    assert d["reason"] == "no rule matched"


def test_method_outside_rule_is_403(stack):
    mark = stack.nginx.mark()
    r = stack.curl("-X", "DELETE")
    assert r.status == 403, r
    stack.nginx.assert_untouched(mark)


def test_missing_claim_is_403(stack):
    mark = stack.nginx.mark()
    r = stack.curl(token=stack.token(repository=None))
    assert r.status == 403, r
    stack.nginx.assert_untouched(mark)


def test_rules_on_request_attributes(make_stack):
    # methods and paths are conditions on HTTP's method and path attributes;
    # a rule may name the attributes themselves.
    allow = [{"name": "getters", "issuer": "test",
              "attributes": [{"attribute": "method", "value": ["GET", "HEAD"]},
                             {"attribute": "path", "value": "/a*"}]}]
    deny = [{"name": "no-b", "attributes": [{"attribute": "path", "value": "/b.txt"}]}]
    s = make_stack(route_over={"legacy": {"allow": allow, "deny": deny}})
    i = rid()
    r = s.curl("-H", "X-Request-Id: " + i)
    assert r.status == 200, r
    d = decision_for(s, i)["decision"]
    assert d["result"] == "allow" and d["rule"] == "getters", d
    mark = s.nginx.mark()
    assert s.curl("-X", "POST").status == 403
    i = rid()
    assert s.curl("-H", "X-Request-Id: " + i, path="/b.txt").status == 403
    assert decision_for(s, i)["decision"]["rule"] == "no-b"
    assert s.curl(path="/c.txt").status == 403
    s.nginx.assert_untouched(mark)


def test_allow_records_rule(stack):
    i = rid()
    r = stack.curl("-H", "X-Request-Id: " + i)
    assert r.status == 200
    d = decision_for(stack, i)["decision"]
    assert d == {**d, "result": "allow", "rule": "readers", "mode": "enforce"}, d


def test_dry_run_forwards_and_records_would_deny(make_stack):
    s = make_stack(routes=("dryrun",))
    mark = s.nginx.mark()
    i = rid()
    r = s.curl("-H", "X-Request-Id: " + i, route="dryrun",
               token=s.token(repository="other/app"))
    assert r.status == 200, r
    assert r.text == s.nginx.files["/a.txt"]
    line = s.nginx.since(mark)[0]
    assert line["user"] == "svc" and line["status"] == "200"
    d = decision_for(s, i)["decision"]
    assert d["result"] == "would_deny", d
    assert d["mode"] == "dry-run", d


def test_dry_run_still_requires_a_valid_identity(make_stack):
    s = make_stack(routes=("dryrun",))
    mark = s.nginx.mark()
    r = s.curl(route="dryrun", token=s.token(aud="nobody"))
    assert r.status == 401, r
    s.nginx.assert_untouched(mark)


@pytest.mark.parametrize("route", ["expired", "expired-dry"])
def test_expired_route_refuses(make_stack, route):
    s = make_stack(routes=(route,))
    mark = s.nginx.mark()
    i = rid()
    r = s.curl("-H", "X-Request-Id: " + i, route=route)
    assert r.status == 403, r
    s.nginx.assert_untouched(mark)
    d = decision_for(s, i)["decision"]
    assert d["result"] == "deny", d
    assert d["reason"] == "route expired", d


def test_upstream_unreachable_is_502(make_stack):
    s = make_stack(routes=("down",))
    r = s.curl(route="down")
    assert r.status == 502, r


def test_missing_secret_is_503(make_stack):
    s = make_stack(routes=("nosecret",))
    mark = s.nginx.mark()
    r = s.curl(route="nosecret")
    assert r.status == 503, r
    s.nginx.assert_untouched(mark)


def test_audit_event_fields(stack):
    i = rid()
    token = stack.token("ES256", jti="jti-" + i)
    r = stack.curl("-H", "X-Request-Id: " + i, token=token, path="/b.txt")
    assert r.status == 200
    e = decision_for(stack, i)
    for k in ("time", "event", "request_id", "route", "client", "identity", "request",
              "decision", "credential", "upstream"):
        assert k in e, f"audit event lacks {k}: {e}"
    assert e["event"] == "decision" and e["route"] == "legacy"
    assert e["client"]["addr"] == "127.0.0.1"
    assert isinstance(e["client"]["port"], int) and e["client"]["port"] > 0
    assert e["client"]["tls"] is False
    ident = e["identity"]
    for k in ("method", "issuer", "iss", "sub", "aud", "jti", "alg", "kid", "claims"):
        assert k in ident, f"identity lacks {k}: {ident}"
    assert ident["iss"] == ISSUER and ident["jti"] == "jti-" + i
    assert ident["kid"] == "ec-1" and ident["alg"] == "ES256"
    assert ident["claims"] == {"repository": "acme/app"}, "only audit_claims are copied"
    assert e["request"]["method"] == "GET" and e["request"]["path"] == "/b.txt"
    for k in ("result", "rule", "reason", "mode"):
        assert k in e["decision"]
    cred = e["credential"]
    for k in ("source", "path", "version", "inject"):
        assert k in cred, f"credential lacks {k}: {cred}"
    assert cred["path"] == "legacy/app" and cred["version"] == "1" and cred["inject"] == "basic"
    assert e["upstream"]["addr"] == f"127.0.0.1:{stack.nginx.port}"
    assert "status" in e["upstream"]
    assert time.strptime(e["time"][:19], "%Y-%m-%dT%H:%M:%S")
    assert token not in read_text(stack.cg.audit_file)


def test_session_end_event_when_connection_closes(stack):
    c = stack.raw()
    token = stack.token()
    for _ in range(2):
        c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n\r\n"
               .encode())
        assert c.read_response().status == 200
    c.close()
    ends = stack.cg.audit_where(lambda e: e.get("event") == "session_end")
    assert len(ends) == 1, ends
    e = ends[0]
    for k in ("time", "event", "route", "client", "upstream", "bytes", "duration_ms"):
        assert k in e, f"session_end lacks {k}: {e}"
    assert e["route"] == "legacy" and e["client"]["addr"] == "127.0.0.1"
    assert e["bytes"]["out"] > 0 and e["bytes"]["in"] > 0
    assert isinstance(e["duration_ms"], (int, float)) and e["duration_ms"] >= 0
    assert e["upstream"]["status"] == 200


@pytest.mark.parametrize("case", ["missing_token", "bad_token", "deny", "framing"])
def test_session_end_after_refusal_is_well_formed(stack, case):
    token = {"missing_token": None, "bad_token": "a.b.c"}.get(case, stack.token())
    path = "/admin/x.txt" if case == "deny" else "/a.txt"
    head = f"GET {path} HTTP/1.1\r\nHost: legacy\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    if case == "framing":
        head += "X-A : 1\r\n"
    c = stack.raw()
    c.send((head + "\r\n").encode())
    r = c.read_response()
    assert r.status in (400, 401, 403)
    c.close()
    ends = stack.cg.audit_where(lambda e: e.get("event") == "session_end")
    assert len(ends) == 1, ends
    reason = ends[0].get("reason")
    if reason is not None:
        assert isinstance(reason, str) and reason.isprintable() and reason.isascii(), \
            f"session_end reason is not text: {reason!r}"


def test_sigusr1_reopens_audit_file(stack):
    assert stack.curl().status == 200
    # Both events of that request (decision, then session_end at close)
    # are written before the file is moved.
    assert wait_for(lambda: [e for e in stack.cg.audit() if e.get("event") == "session_end"])
    rotated = stack.cg.audit_file + ".1"
    os.rename(stack.cg.audit_file, rotated)
    before = len(stack.cg.audit(rotated))
    stack.cg.signal(signal.SIGUSR1)
    # The reopen happens on the event loop: retry until a request lands in a
    # new file (bounded), never in the rotated one.
    deadline = time.monotonic() + 5
    while not os.path.exists(stack.cg.audit_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.curl().status == 200
    assert wait_for(lambda: os.path.exists(stack.cg.audit_file) and stack.cg.audit()), \
        "no new audit file after SIGUSR1"
    assert len(stack.cg.audit(rotated)) == before, "events still go to the rotated file"
    mode = os.stat(stack.cg.audit_file).st_mode & 0o777
    assert mode & 0o007 == 0, f"audit file is world-accessible: {oct(mode)}"


@pytest.mark.parametrize("policy", ["deny", "allow"])
def test_audit_sink_failure(make_stack, policy):
    s = make_stack(start=False)
    s.start(credgate_extra={"audit": {"file": "/dev/full"}},
            route_over={"legacy": {"audit_failure": policy}})
    mark = s.nginx.mark()
    r = s.curl()
    if policy == "deny":
        assert r.status >= 500, r
        s.nginx.assert_untouched(mark)
    else:
        assert r.status == 200, r
        assert wait_for(lambda: "level=error" in s.cg.stderr()), \
            "no error logged for the failed audit write"


def test_log_lines_are_key_value(stack):
    assert stack.curl().status == 200
    lines = [l for l in stack.cg.stderr().splitlines() if l.strip()]
    assert any("msg=listening" in l and "route=legacy" in l for l in lines), lines
    for l in lines:
        ts, _, rest = l.partition(" ")
        assert ts.endswith("Z") and "T" in ts, l
        assert rest.startswith("level="), l


def test_secrets_file_is_reread_when_it_changes(make_stack):
    s = make_stack(secrets_extra={"cache_ttl": "0s"})
    first = s.curl("-H", "X-Request-Id: v1-" + secrets.token_hex(4))
    assert first.status == 200
    with open(s.cg.secrets_file) as f:
        doc = json.load(f)
    doc["legacy/app"]["version"] = "2"
    tmp = s.cg.secrets_file + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, s.cg.secrets_file)

    def version_now():
        i = "v2-" + secrets.token_hex(4)
        assert s.curl("-H", "X-Request-Id: " + i).status == 200
        ev = s.cg.audit_where(lambda e: e.get("request_id") == i and
                              e.get("event") == "decision")
        return ev and ev[0]["credential"]["version"] == "2"

    # cache_ttl is 0 here: the next fetch must see the new file.
    assert wait_for(version_now, timeout=5, interval=0.2), \
        "credgate kept the old secret version after the file changed"
