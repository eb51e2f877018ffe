"""Revocation reaches open connections: after a reload, the next request
on a connection opened before it is decided under the new configuration
(a withdrawn signing key, allow rule or route, a route whose expiry has
passed), and no connection lives forever (keepalive_requests and
keepalive_time)."""

import json
import time

from test_production import get, launch, rewrite, route_for, sighup


def keepalive(r):
    return not r.has_token("Connection", "close")


def test_withdrawn_key_applies_to_open_connections(make_stack, keys):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1}, admin=False)
    c = s.raw()
    cached = s.token("ES256")
    assert get(c, "/a.txt", cached).status == 200
    assert get(c, "/a.txt", cached).status == 200       # now in the token cache
    jwks = keys.jwks()
    jwks["keys"] = [k for k in jwks["keys"] if k["kid"] != "ec-1"]
    with open(s.cg.jwks_file, "w") as f:
        json.dump(jwks, f)
    sighup(s, "reloaded")
    r = get(c, "/a.txt", s.token("ES256"))
    assert r.status == 401, f"a fresh token signed by the withdrawn key passed: {r}"
    c.close()
    c = s.raw()
    assert get(c, "/a.txt", cached).status == 401, "a cached token of the withdrawn key passed"
    c.close()
    c = s.raw()
    assert get(c, "/a.txt", s.token("RS256")).status == 200, "a key still published fails"
    c.close()


def test_withdrawn_rule_applies_to_open_connections(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], admin=False)
    token = s.token()
    c = s.raw()
    assert get(c, "/a.txt", token).status == 200
    # The only allow rule now wants another repository.
    rewrite(s, [route_for(s, allow=[{"name": "others", "issuer": "test",
                                      "claims": [{"claim": "repository",
                                                  "value": "acme/other"}]}])])
    sighup(s, "reloaded")
    r = get(c, "/a.txt", token)
    assert r.status == 403, f"the withdrawn rule still allows on an open connection: {r}"
    c.close()
    d = s.cg.audit_where(lambda e: e.get("event") == "decision" and
                         e["decision"]["result"] == "deny")
    assert d and d[-1]["decision"]["rule"] is None, d


def test_expired_route_applies_to_open_connections(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], admin=False)
    token = s.token()
    c = s.raw()
    assert get(c, "/a.txt", token).status == 200
    rewrite(s, [route_for(s, expires="2001-01-01")])
    sighup(s, "reloaded")
    assert get(c, "/a.txt", token).status == 403, "an expired route still serves"
    c.close()


def test_withdrawn_route_refuses_open_connections(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "other")], admin=False)
    token = s.token()
    c = s.raw()
    assert get(c, "/a.txt", token).status == 200
    mark = len(s.nginx.since(0, count=1))   # nginx logs after it answers
    rewrite(s, [route_for(s, "other")])
    sighup(s, "reloaded")
    r = get(c, "/a.txt", token)
    assert r.status == 503, r
    assert not keepalive(r)
    assert c.closed_within(2)
    c.close()
    s.nginx.assert_untouched(mark)
    d = s.cg.audit_where(lambda e: e.get("event") == "decision" and
                         e["decision"]["reason"] == "route withdrawn")
    assert d and d[-1]["route"] == "legacy", d


def test_keepalive_requests_closes_after_the_last(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s, keepalive_requests=3)], admin=False)
    token = s.token()
    c = s.raw()
    statuses = []
    for i in range(3):
        r = get(c, "/a.txt", token)
        statuses.append((r.status, keepalive(r)))
    assert statuses == [(200, True), (200, True), (200, False)], statuses
    assert c.closed_within(2), "the connection outlived keepalive_requests"
    c.close()


def test_keepalive_time_closes_an_old_busy_connection(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s, keepalive_time="1s")], admin=False)
    token = s.token()
    c = s.raw()
    r = get(c, "/a.txt", token)
    assert (r.status, keepalive(r)) == (200, True)
    time.sleep(1.1)
    r = get(c, "/a.txt", token)
    assert (r.status, keepalive(r)) == (200, False), "an old connection was kept alive"
    assert c.closed_within(2)
    c.close()
