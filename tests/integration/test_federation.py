"""Issuers whose keys credgate fetches: OIDC discovery, jwks_uri, the
Kubernetes API server, rotation, the unknown-kid rate limit, outages and
every refusal of a fetch, against the OIDC test server over HTTPS with a
CA made at test time, in front of real nginx."""

import os
import re
import signal
import time

import pytest

from conftest import (AUDIENCE, Metrics, Pki, admin_get, free_port, run_credgate,
                      wait_for, write_file)
from oidc_server import DISCOVERY_PATH, K8S_JWKS_PATH, OidcServer, oct_jwk, public_jwk_rsa


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki", "oidc")


@pytest.fixture
def oidc(pki):
    crt, key, _ = pki.server("oidc")
    srv = OidcServer(cert=crt, key=key).start()
    srv.add_key("ES256", kid="k1")
    yield srv
    srv.stop()


def start(make_stack, srv, pki, admin=True, route_over=None, **issuer):
    """credgate in front of nginx, trusting srv's issuer by discovery (or
    as issuer says), with an admin endpoint."""
    extra = {"issuer": srv.issuer, "jwks_file": None, "ca_file": pki.ca_file,
             "algorithms": ["RS256", "ES256", "EdDSA"]}
    extra.update(issuer)
    cg = {}
    port = None
    if admin:
        port = free_port()
        cg["admin"] = {"listen": f"127.0.0.1:{port}"}
    s = make_stack(issuer_extra=extra, credgate_extra=cg, route_over=route_over)
    s.admin_port = port
    return s


def metrics(s):
    st, body = admin_get(s.admin_port, "/metrics")
    assert st == 200, body
    return Metrics(body)


def mint(srv, **claims):
    """A token of srv that the routes' rule lets in (repository acme/*,
    branch main)."""
    claims.setdefault("repository", "acme/app")
    claims.setdefault("ref", "refs/heads/main")
    return srv.mint(**claims)


def get(s, token):
    return s.request(token=token).status


def refused_for(s, reason):
    """Whether a deny event with reason was written (it may follow the
    answer by a moment)."""
    return wait_for(lambda: any(e.get("event") == "decision" and
                                e["decision"]["result"] == "deny" and
                                e["decision"]["reason"] == reason
                                for e in s.cg.audit()), timeout=5)


def test_discovery_finds_the_keys(make_stack, oidc, pki):
    s = start(make_stack, oidc, pki)
    assert get(s, mint(oidc, aud=AUDIENCE)) == 200, s.dump()
    assert oidc.hits(DISCOVERY_PATH) == 1
    assert oidc.hits("/keys") == 1
    # What the fetches looked like: GETs asking for JSON, no credentials.
    for r in oidc.requests():
        assert r["method"] == "GET"
        assert r["headers"].get("accept") == "application/json"
        assert "authorization" not in r["headers"]
    st, body = admin_get(s.admin_port, "/readyz")
    assert st == 200, body
    m = metrics(s)
    assert m("credgate_issuer_keys", issuer="test") == 1
    assert m("credgate_issuer_key_fetches_total", issuer="test", result="ok") == 1
    assert m("credgate_issuer_key_fetches_total", issuer="test", result="failed") == 0
    assert 0 <= m("credgate_issuer_keys_age_seconds", issuer="test") < 30
    # Many requests, two workers' worth: no more fetches.
    for _ in range(10):
        assert get(s, mint(oidc, aud=AUDIENCE)) == 200
    assert oidc.hits() == 2
    assert "msg=issuer_keys_updated issuer=test keys=1" in s.cg.stderr()


def test_jwks_uri_skips_discovery(make_stack, oidc, pki):
    oidc.add_key("RS256", kid="r1")
    oidc.add_key("EdDSA", kid="e1")
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url)
    for kid in ("k1", "r1", "e1"):
        assert get(s, mint(oidc, kid=kid)) == 200, (kid, s.dump())
    assert oidc.hits(DISCOVERY_PATH) == 0
    assert oidc.hits("/keys") == 1
    # A token of another issuer, signed by a published key, is refused.
    assert get(s, mint(oidc, iss="https://other.example")) == 401


def test_a_new_kid_is_fetched_once_and_a_dropped_key_stops_passing(make_stack, oidc, pki):
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, kid_refetch_interval="0s",
              refresh_min="1s", refresh_max="2s", max_key_age="1h")
    old = mint(oidc, kid="k1")
    assert get(s, old) == 200, s.dump()
    assert wait_for(lambda: oidc.hits("/keys") >= 1)
    # The issuer rotates: a token under the new key waits for one fetch
    # and passes, the first time.
    oidc.add_key("ES256", kid="k2")
    before = oidc.hits("/keys")
    t0 = time.monotonic()
    assert get(s, mint(oidc, kid="k2")) == 200, s.dump()
    assert time.monotonic() - t0 < 3
    assert oidc.hits("/keys") == before + 1
    assert get(s, mint(oidc, kid="k2")) == 200
    assert oidc.hits("/keys") == before + 1
    # The old key leaves the set: once the refresh saw it, the very token
    # that passed before (cached as verified) is verified again and refused.
    oidc.unpublish("k1")
    assert wait_for(lambda: get(s, old) == 401, timeout=8), s.dump()
    assert refused_for(s, "invalid token: unknown key id"), s.dump()
    assert get(s, mint(oidc, kid="k2")) == 200
    m = metrics(s)
    assert m("credgate_issuer_key_changes_total", issuer="test") >= 3


def test_a_new_kid_during_a_fetch_gets_a_fetch_of_its_own(make_stack, oidc, pki):
    """A fetch already in flight may have read the key set before the new
    key was published: a caller who asked meanwhile waits for the next
    fetch, not for that one."""
    import threading
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, kid_refetch_interval="0s")
    assert get(s, mint(oidc)) == 200, s.dump()
    before = oidc.hits("/keys")
    oidc.delay = 1.0
    slow = threading.Thread(target=lambda: get(s, mint(oidc, kid="made-up", key_kid="k1")))
    slow.start()
    assert wait_for(lambda: oidc.hits("/keys") == before + 1, timeout=5)
    oidc.add_key("ES256", kid="k3")     # after that fetch read the set
    oidc.delay = 0
    assert get(s, mint(oidc, kid="k3")) == 200, s.dump()
    slow.join(10)
    assert oidc.hits("/keys") == before + 2


def test_a_flood_of_made_up_kids_costs_one_fetch(make_stack, oidc, pki):
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, kid_refetch_interval="1h",
              refresh_min="1h", refresh_max="1h", max_key_age="24h")
    assert get(s, mint(oidc, kid="k1")) == 200, s.dump()
    before = oidc.hits("/keys")
    t0 = time.monotonic()
    for i in range(30):
        assert get(s, mint(oidc, kid=f"made-up-{i}", key_kid="k1")) == 401
    took = time.monotonic() - t0
    assert oidc.hits("/keys") == before + 1, oidc.requests()
    assert took < 10, took
    m = metrics(s)
    assert m("credgate_issuer_unknown_kid_total", issuer="test", action="fetched") == 1
    assert m("credgate_issuer_unknown_kid_total", issuer="test",
             action="rate_limited") == 29
    # A real new key during the limit is not fetched early either; the
    # caller is refused at once rather than left waiting.
    oidc.add_key("ES256", kid="k2")
    assert get(s, mint(oidc, kid="k2")) == 401
    assert oidc.hits("/keys") == before + 1
    assert get(s, mint(oidc, kid="k1")) == 200


def test_last_good_keys_serve_through_an_outage_until_max_key_age(make_stack, oidc, pki):
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, refresh_min="1s",
              refresh_max="2s", max_key_age="10s")
    assert get(s, mint(oidc)) == 200, s.dump()
    oidc.fail_status = 503
    down = time.monotonic()
    assert wait_for(lambda: "msg=issuer_keys_fetch_failed issuer=test" in s.cg.stderr(),
                    timeout=6), s.dump()
    assert "HTTP status 503" in s.cg.stderr()
    assert "keys=last_good_kept" in s.cg.stderr()
    # Kept: tokens pass and the process stays ready.
    assert get(s, mint(oidc)) == 200
    assert admin_get(s.admin_port, "/readyz")[0] == 200
    m = metrics(s)
    assert m("credgate_issuer_key_fetches_total", issuer="test", result="failed") >= 1
    assert m("credgate_issuer_keys", issuer="test") == 1
    # Past max_key_age since the last good fetch: dropped, refused, not ready.
    assert wait_for(lambda: get(s, mint(oidc)) == 401, timeout=15), s.dump()
    assert time.monotonic() - down >= 7
    assert refused_for(s, "invalid token: issuer has no keys"), s.dump()
    st, body = admin_get(s.admin_port, "/readyz")
    assert st == 503 and "issuer test: keys older than max_key_age" in body, body
    assert "HTTP status 503" in body
    assert "msg=issuer_keys_expired issuer=test" in s.cg.stderr()
    assert metrics(s)("credgate_issuer_keys", issuer="test") == 0
    # The issuer is back: the next retry (at most refresh_min away) loads.
    oidc.fail_status = None
    assert wait_for(lambda: get(s, mint(oidc)) == 200, timeout=6), s.dump()
    assert admin_get(s.admin_port, "/readyz")[0] == 200


def test_a_discovery_naming_another_issuer_is_refused(make_stack, oidc, pki):
    oidc.discovery_issuer = "https://evil.example"
    s = start(make_stack, oidc, pki)
    assert wait_for(lambda: "discovery document names another issuer" in s.cg.stderr(),
                    timeout=5), s.dump()
    assert get(s, mint(oidc)) == 401
    assert oidc.hits("/keys") == 0      # its jwks_uri was never fetched
    st, body = admin_get(s.admin_port, "/readyz")
    assert st == 503, body
    assert "issuer test: keys not fetched yet: discovery document names another issuer" \
        in body
    # Corrected at the issuer: the next try loads the keys.
    oidc.discovery_issuer = None
    assert wait_for(lambda: get(s, mint(oidc)) == 200, timeout=8), s.dump()


def test_a_discovered_jwks_uri_with_credentials_is_refused_unlogged(make_stack, oidc, pki):
    oidc.jwks_uri_override = oidc.jwks_url.replace("https://", "https://ci:s3cr3t-pw@")
    s = start(make_stack, oidc, pki)
    assert wait_for(lambda: "jwks_uri is not an https URL without credentials"
                    in s.cg.stderr(), timeout=5), s.dump()
    assert oidc.hits("/keys") == 0
    assert "s3cr3t-pw" not in s.cg.stderr() + open(s.cg.audit_file).read()
    assert get(s, mint(oidc)) == 401


def test_redirects_stay_on_the_host(make_stack, oidc, pki):
    # On the same host: followed.
    oidc.redirects = {"/old-keys": oidc.url + "/keys"}
    s = start(make_stack, oidc, pki, jwks_uri=oidc.url + "/old-keys")
    assert get(s, mint(oidc)) == 200, s.dump()
    assert oidc.hits("/old-keys") == 1 and oidc.hits("/keys") == 1


def test_a_redirect_off_the_host_is_refused(make_stack, oidc, pki):
    # The same server under another name is another host.
    other = oidc.url.replace("localhost", "127.0.0.1")
    oidc.redirects = {"/keys": other + "/moved"}
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url)
    assert wait_for(lambda: "redirect off https://localhost:" in s.cg.stderr(),
                    timeout=5), s.dump()
    assert oidc.hits("/moved") == 0
    assert get(s, mint(oidc)) == 401


def test_redirect_loops_end(make_stack, oidc, pki):
    oidc.redirects = {"/a": oidc.url + "/b", "/b": oidc.url + "/a"}
    s = start(make_stack, oidc, pki, jwks_uri=oidc.url + "/a")
    assert wait_for(lambda: "more than 3 redirects" in s.cg.stderr(), timeout=5), s.dump()
    assert oidc.hits("/a") + oidc.hits("/b") == 4


def test_slow_oversized_and_malformed_key_sets_fail_the_fetch(make_stack, oidc, pki):
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, refresh_min="1s",
              refresh_max="1s", fetch_timeout="1s")
    assert get(s, mint(oidc)) == 200, s.dump()
    cases = [("delay", 3.0, "timed out"),
             ("oversize", 2 * 1024 * 1024, "answer too large"),
             ("raw_jwks", b'{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}',
              "key set refused: keys[0]: RSA"),
             ("raw_jwks", b"<html>oops</html>", "key set refused: not strict JSON"),
             ("extra_entries", [public_jwk_rsa(1024, kid="weak")],
              "RSA modulus shorter than 2048 bits")]
    for attr, value, text in cases:
        saved = getattr(oidc, attr)
        setattr(oidc, attr, value)
        assert wait_for(lambda: text in s.cg.stderr(), timeout=8), (attr, s.dump())
        setattr(oidc, attr, saved)
    # The last good keys served all along.
    assert get(s, mint(oidc)) == 200


def test_a_symmetric_key_is_ignored_with_a_warning(make_stack, oidc, pki):
    oidc.extra_entries = [oct_jwk(kid="shared")]
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url)
    assert get(s, mint(oidc)) == 200, s.dump()
    assert "msg=issuer_keys_symmetric_ignored issuer=test count=1" in s.cg.stderr()
    assert metrics(s)("credgate_issuer_keys", issuer="test") == 1
    # A token signed with that secret (HS256) is never accepted.
    assert get(s, mint(oidc, kid="shared", headers={"alg": "HS256"}, key_kid="k1")) == 401


def test_kubernetes_api_server_with_a_bearer_token(make_stack, oidc, pki, tmp_path):
    oidc.k8s = True
    oidc.bearer_token = "sa-token-" + os.urandom(8).hex()
    tok = write_file(str(tmp_path / "sa-token"), (oidc.bearer_token + "\n").encode(), 0o600)
    s = start(make_stack, oidc, pki, jwks_uri=oidc.url + K8S_JWKS_PATH,
              bearer_token_file=tok,
              refresh_min="1s", refresh_max="1s", max_key_age="1h")
    sub = "system:serviceaccount:payments:api"
    token = mint(oidc, sub=sub, **{"kubernetes.io": {"namespace": "payments",
                                                     "serviceaccount": {"name": "api"}}})
    assert get(s, token) == 200, s.dump()
    got = [r for r in oidc.requests() if r["path"] == K8S_JWKS_PATH]
    assert got and all(r["headers"].get("authorization") == "Bearer " + oidc.bearer_token
                       for r in got)
    # The token file rotates (a projected token does): the next fetch
    # sends the new one.
    oidc.bearer_token = "sa-token-" + os.urandom(8).hex()
    write_file(str(tmp_path / "sa-token.new"), oidc.bearer_token.encode(), 0o600)
    os.rename(str(tmp_path / "sa-token.new"), tok)
    mark = len(oidc.requests())
    assert wait_for(lambda: any(r["status"] == 200 for r in oidc.requests()[mark:]),
                    timeout=6), oidc.requests()[mark:]
    # The token never reaches the logs.
    assert oidc.bearer_token not in s.cg.stderr()


def test_the_bearer_token_goes_only_to_the_configured_host(make_stack, oidc, pki, tmp_path):
    # Discovery on the issuer's host names a key set on another host: the
    # token goes to the first, never to the second.
    crt, key, _ = pki.server("elsewhere")
    other = OidcServer(cert=crt, key=key, host_name="127.0.0.1").start()
    try:
        kid = other.add_key("ES256", kid="o1")
        other.issuer = oidc.issuer
        oidc.jwks_uri_override = other.jwks_url
        tok = write_file(str(tmp_path / "tok"), b"bearer-secret-123", 0o600)
        s = start(make_stack, oidc, pki, bearer_token_file=tok)
        assert get(s, mint(other, kid=kid)) == 200, s.dump()
        disc = [r for r in oidc.requests() if r["path"] == DISCOVERY_PATH]
        assert disc and disc[0]["headers"].get("authorization") == "Bearer bearer-secret-123"
        assert other.hits("/keys") == 1
        assert all("authorization" not in r["headers"] for r in other.requests())
    finally:
        other.stop()


def test_cache_control_sets_the_refresh_within_bounds(make_stack, oidc, pki):
    oidc.cache_control = "public, max-age=1"
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, refresh_min="1s",
              refresh_max="1h")
    assert get(s, mint(oidc)) == 200
    assert wait_for(lambda: oidc.hits("/keys") >= 3, timeout=6), oidc.requests()
    # max-age far above refresh_max: refresh_max wins.
    oidc.cache_control = "max-age=86400"
    s2 = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url + "?b", refresh_min="1s",
               refresh_max="2s")
    assert get(s2, mint(oidc)) == 200
    n = len([r for r in oidc.requests() if r["query"] == "b"])
    assert wait_for(lambda: len([r for r in oidc.requests() if r["query"] == "b"]) >= n + 1,
                    timeout=5)
    # max-age=0 (and no-cache): refresh_min holds the fetches apart.
    oidc.cache_control = "no-cache"
    s3 = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url + "?c", refresh_min="3s",
               refresh_max="1h")
    assert get(s3, mint(oidc)) == 200
    time.sleep(2)
    times = [r["time"] for r in oidc.requests() if r["query"] == "c"]
    assert len(times) == 1, times


def test_a_reload_keeps_the_keys_without_fetching_again(make_stack, oidc, pki):
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, refresh_max="1h")
    assert get(s, mint(oidc)) == 200
    n = oidc.hits()
    s.cg.signal(signal.SIGHUP)
    assert wait_for(lambda: "msg=reloaded" in s.cg.stderr(), timeout=5), s.dump()
    assert get(s, mint(oidc)) == 200
    assert oidc.hits() == n
    # A reload that changes how the keys are fetched fetches at once.
    text = open(s.cg.conf_file).read().replace('refresh_max = "1h"', 'refresh_max = "30m"')
    s.cg.write_config(text)
    s.cg.signal(signal.SIGHUP)
    assert wait_for(lambda: oidc.hits() == n + 1, timeout=5), s.dump()
    assert get(s, mint(oidc)) == 200


def test_a_caller_waits_for_the_first_fetch(make_stack, oidc, pki):
    """The issuer answers slowly at start: the first caller waits for that
    fetch (it takes as long), then passes, and costs no fetch of its own."""
    oidc.delay = 2.0
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url)
    t0 = time.monotonic()
    assert get(s, mint(oidc)) == 200, s.dump()
    assert time.monotonic() - t0 > 0.5
    oidc.delay = 0
    assert oidc.hits("/keys") == 1


def test_check_refuses_bad_fetch_settings(credgate_bin, tmp_path):
    base = """credgate = { audit = { stdout = false; }; };
secrets = { backend = "file"; file = "%s"; };
routes = ( { name = "r"; listen = "127.0.0.1:1"; upstream = { host = "127.0.0.1"; port = 2; };
             owner = "o"; purpose = "p"; environment = "dev"; expires = "2099-01-01";
             credential = { path = "a"; inject = "basic"; };
             allow = ( { name = "all"; issuer = "i"; } ); } );
issuers = ( { name = "i"; audiences = ["a"]; %s } );
"""
    secrets_file = write_file(str(tmp_path / "s.json"), b'{"a":{"username":"u","password":"x"}}', 0o600)
    jwks = write_file(str(tmp_path / "k.json"), b'{"keys":[]}', 0o644)
    cases = [
        ('issuer = "https://i"; jwks_uri = "http://i/keys";',
         "issuers.[0].jwks_uri", "not an https URL"),
        ('issuer = "https://i"; jwks_uri = "https://i/k"; jwks_file = "%s";' % jwks,
         "issuers.[0].jwks_uri", "not both"),
        ('issuer = "corp-issuer";',
         "issuers.[0].issuer", "OIDC discovery, which needs an https issuer"),
        ('issuer = "https://i"; jwks_uri = "https://ci-bot:hunter2@i/keys";',
         "issuers.[0].jwks_uri", "without credentials"),
        ('issuer = "https://i"; refresh_min = "2h"; refresh_max = "1h";',
         "issuers.[0].refresh_min", "longer than refresh_max"),
        ('issuer = "https://i"; refresh_min = "10m"; max_key_age = "15m";',
         "issuers.[0].max_key_age", "twice refresh_min"),
        ('issuer = "https://i"; bearer_token_file = "%s";' % (tmp_path / "nope"),
         "issuers.[0].bearer_token_file", "nope"),
        ('issuer = "https://i"; ca_file = "%s";' % (tmp_path / "none.pem"),
         "issuers.[0].ca_file", "none.pem"),
    ]
    for i, (issuer, path, text) in enumerate(cases):
        conf = write_file(str(tmp_path / f"c{i}.conf"),
                          (base % (secrets_file, issuer)).encode(), 0o644)
        code, out, err = run_credgate(credgate_bin, ["-t", "-c", conf])
        out += err
        assert code != 0, (issuer, out)
        line = [l for l in out.splitlines() if path in l]
        assert line and text in line[0], (issuer, out)
        assert re.search(r"c%d\.conf:\d+" % i, line[0]), line
        assert "hunter2" not in out
    # Fetch rows beside a jwks_file are reported as ignored, not refused.
    good = write_file(str(tmp_path / "good.json"),
                      b'{"keys":[{"kty":"OKP","crv":"Ed25519",'
                      b'"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}', 0o644)
    conf = write_file(str(tmp_path / "w.conf"),
                      (base % (secrets_file, 'issuer = "https://i"; jwks_file = "%s"; '
                               'refresh_max = "2h";' % good)).encode(), 0o644)
    code, out, err = run_credgate(credgate_bin, ["-t", "-c", conf])
    assert code == 0, out + err
    assert "issuers.[0].refresh_max" in out + err
    assert "keys come from jwks_file" in out + err


def test_a_postgres_login_waits_for_a_rotated_key(make_pg_stack, oidc, pki):
    """The PostgreSQL front goes through the same wait: a login whose token
    names a new key is held for one fetch, then logs in upstream; a made-up
    kid is refused with 28P01."""
    s = make_pg_stack(lambda s: [s.route("tls", tls=True)],
                      issuer={"issuer": oidc.issuer, "jwks_file": None,
                              "ca_file": pki.ca_file, "jwks_uri": oidc.jwks_url,
                              "kid_refetch_interval": "0s"})
    assert s.psql_ok("tls", "select current_user", token=mint(oidc),
                     sslmode="verify-full").strip() == "svc_scram"
    oidc.add_key("EdDSA", kid="k2")
    before = oidc.hits("/keys")
    assert s.psql_ok("tls", "select current_user", token=mint(oidc, kid="k2"),
                     sslmode="verify-full").strip() == "svc_scram"
    assert oidc.hits("/keys") == before + 1
    rc, out, err = s.psql("tls", "select 1", token=mint(oidc, kid="nope", key_kid="k2"),
                          sslmode="verify-full")
    assert rc != 0 and "password authentication failed" in err, err


def test_jwt_svids_against_a_fetched_spiffe_bundle(make_stack, oidc, pki):
    """An issuer with trust_domain and a jwks_uri: a SPIFFE bundle's JWT
    keys (use jwt-svid; its X.509 authorities skipped) verify JWT-SVIDs
    without iss, whose SPIFFE ID the rules and the audit see."""
    oidc.add_key("ES256", kid="jwt-1", use="jwt-svid")
    x509 = oidc.jwk("k1")
    x509.update({"kid": "x509-1", "use": "x509-svid", "x5c": ["MIIBdGVzdA=="]})
    x509.pop("alg", None)
    oidc.extra_entries = [x509]
    rule = {"name": "billing-svids", "issuer": "test",
            "spiffe_id": "spiffe://prod.example.org/ns/billing/*"}
    s = start(make_stack, oidc, pki, jwks_uri=oidc.jwks_url, issuer=None,
              trust_domain="prod.example.org", route_over={"legacy": {"allow": [rule]}})
    sub = "spiffe://prod.example.org/ns/billing/sa/invoicer"
    assert get(s, oidc.mint(kid="jwt-1", iss=None, sub=sub)) == 200, s.dump()
    ev = s.cg.audit_where(lambda e: e.get("event") == "decision" and
                          e["decision"]["result"] == "allow")
    assert ev and ev[-1]["identity"]["spiffe_id"] == sub, ev
    assert ev[-1]["identity"]["method"] == "jwt-svid"
    assert ev[-1]["decision"]["rule"] == "billing-svids"
    # Another namespace: verified, but no rule lets it in.
    other = "spiffe://prod.example.org/ns/payments/sa/api"
    assert get(s, oidc.mint(kid="jwt-1", iss=None, sub=other)) == 403
    # Another trust domain: no issuer for it.
    assert get(s, oidc.mint(kid="jwt-1", iss=None,
                            sub="spiffe://staging.example.org/ns/billing/sa/x")) == 401
    assert refused_for(s, "invalid token: unknown trust domain"), s.dump()
    # The bundle's X.509 authority is no JWT key.
    assert get(s, oidc.mint(kid="x509-1", key_kid="k1", iss=None, sub=sub)) == 401
    assert metrics(s)("credgate_issuer_keys", issuer="test") == 2
