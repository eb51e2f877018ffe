"""Tests of the OIDC discovery and JWKS test server by itself (no credgate).

The server stands in for OIDC providers and the Kubernetes API server in
the remote key set tests, so its documents must have the real shapes, its
keys must verify the tokens it mints with an independent JOSE library, and
every switch must do what it says on the next request.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from conftest import Pki
from oidc_server import (K8S_UNAUTHORIZED, KEY_ALGS, OidcServer, oct_jwk, public_jwk_ec,
                         public_jwk_okp, public_jwk_rsa)

DISCOVERY = "/.well-known/openid-configuration"
HERE = os.path.dirname(os.path.abspath(__file__))


class Resp:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self):
        return json.loads(self.raw)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


def fetch(url, headers=None, method="GET", ctx=None, timeout=5):
    """GET (or method) url with urllib, never through a proxy and never
    following a redirect; any status comes back as a Resp."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect(),
                                         urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with opener.open(req, timeout=timeout) as r:
            return Resp(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Resp(e.code, e.headers, e.read())


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(srv, token, jwk=None, **kw):
    """The claims of token, verified by PyJWT against the JWK the server
    publishes for the token's kid (or jwk)."""
    kid = jwt.get_unverified_header(token).get("kid")
    if jwk is None:
        jwk = [k for k in fetch(srv.jwks_url).json["keys"] if k.get("kid") == kid][0]
    alg = jwt.get_unverified_header(token)["alg"]
    return jwt.decode(token, jwt.PyJWK(jwk, algorithm=alg).key, algorithms=[alg],
                      audience=kw.pop("audience", "credgate"), issuer=srv.issuer, **kw)


@pytest.fixture
def srv():
    s = OidcServer()
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("oidc-pki"), "oidc")
    crt, key, _ = p.server("oidc-server")
    p.crt, p.keyf = crt, key
    return p


@pytest.fixture
def tls(pki):
    s = OidcServer(cert=pki.crt, key=pki.keyf)
    s.start()
    s.ctx = ssl.create_default_context(cafile=pki.ca_file)
    yield s
    s.stop()


# ----- lifecycle, transport ----------------------------------------------------

def test_https_with_test_certificate(tls):
    kid = tls.add_key("ES256")
    assert tls.url == "https://localhost:%d" % tls.port
    assert tls.issuer == tls.url
    r = fetch(tls.discovery_url, ctx=tls.ctx)
    assert r.status == 200 and r.json["issuer"] == tls.url
    r = fetch(r.json["jwks_uri"], ctx=tls.ctx)
    assert r.status == 200 and [k["kid"] for k in r.json["keys"]] == [kid]
    # The certificate is the test CA's, for localhost and 127.0.0.1.
    r = fetch("https://127.0.0.1:%d/keys" % tls.port, ctx=tls.ctx)
    assert r.status == 200
    with pytest.raises(urllib.error.URLError) as e:
        fetch(tls.jwks_url, ctx=ssl.create_default_context())
    assert isinstance(e.value.reason, ssl.SSLCertVerificationError)
    # A failed handshake does not stop it.
    assert fetch(tls.jwks_url, ctx=tls.ctx).status == 200


def test_plain_http_and_host_name():
    with OidcServer(host_name="127.0.0.1", prefix="/tenant-1") as s:
        assert s.url == "http://127.0.0.1:%d/tenant-1" % s.port
        assert s.jwks_url == s.url + "/keys"
        assert s.discovery_url == s.url + DISCOVERY
        assert fetch(s.discovery_url).json["jwks_uri"] == s.url + "/keys"
        assert fetch(s.jwks_url).json == {"keys": []}
        # Nothing is served outside the prefix.
        base = "http://127.0.0.1:%d" % s.port
        assert fetch(base + DISCOVERY).status == 404
        assert fetch(base + "/keys").status == 404
        assert s.hits("/keys") == 1 and s.hits() == 4
    with pytest.raises(ValueError):
        OidcServer(prefix="tenant")
    with pytest.raises(ValueError):
        OidcServer(prefix="/tenant/")
    with pytest.raises(ValueError):
        OidcServer(cert="only.crt")


def test_listens_on_loopback_only(srv):
    assert srv.httpd.server_address[0] == "127.0.0.1"
    for family, addr in ((socket.AF_INET, "127.0.0.2"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            try:
                rc = s.connect_ex((addr, srv.port))
            except OSError:
                rc = -1
            assert rc != 0, addr
    # The kernel's table of listening sockets agrees (where it has one).
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == srv.port:
                listening.append(local)
    assert listening in ([], ["0100007F:%04X" % srv.port])


def test_start_stop_idempotent_frees_port_and_joins():
    s = OidcServer()
    s.start()
    assert s.start() is s
    port = s.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/keys")
        r = conn.getresponse()
        assert r.status == 200 and r.read()
    # A request waiting out a delay does not hold stop up.
    s.delay = 30
    slow = threading.Thread(target=_swallow, args=(fetch, s.jwks_url), kwargs={"timeout": 10})
    slow.start()
    assert _wait(lambda: s.hits() == 4)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 3
    slow.join(5)
    assert not slow.is_alive()
    assert not s.thread.is_alive()
    assert conn.sock.recv(1) == b""
    conn.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("oidc-test")]
    s.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _swallow(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except OSError:
        return None


def _wait(pred, timeout=5):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_methods_and_unknown_paths(srv):
    srv.add_key("ES256")
    for method in ("HEAD", "POST", "PUT", "DELETE", "OPTIONS"):
        r = fetch(srv.jwks_url, method=method)
        assert r.status == 405, method
        assert r.headers["Allow"] == "GET"
    assert fetch(srv.url + "/nope").status == 404
    assert fetch(srv.url + "/keys/").status == 404
    # A HEAD answer has no body: the kept-alive connection stays in step.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("HEAD", "/keys")
    r = conn.getresponse()
    assert r.status == 405 and r.read() == b""
    conn.request("POST", "/keys", body=b'{"ignored": true}')
    r = conn.getresponse()
    assert r.status == 405 and r.read() == b"Method Not Allowed\n"
    conn.request("GET", "/keys?x=1")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["keys"]
    conn.close()
    assert srv.requests()[-1]["path"] == "/keys"
    assert srv.requests()[-1]["query"] == "x=1"


# ----- documents ---------------------------------------------------------------

def test_discovery_document(srv):
    srv.add_key("RS256", rsa_bits=1024)
    srv.add_key("ES256")
    r = fetch(srv.discovery_url)
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json"
    assert "Cache-Control" not in r.headers
    d = r.json
    assert d["issuer"] == srv.url
    assert d["jwks_uri"] == srv.url + "/keys"
    assert d["authorization_endpoint"].startswith(srv.url + "/")
    assert d["response_types_supported"] == ["id_token"]
    assert "public" in d["subject_types_supported"]
    assert d["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    for claim in ("iss", "sub", "aud", "exp", "iat", "repository", "ref", "workflow"):
        assert claim in d["claims_supported"]
    srv.jwks_path = "/.well-known/jwks"
    assert fetch(srv.discovery_url).json["jwks_uri"] == srv.url + "/.well-known/jwks"
    assert fetch(srv.url + "/.well-known/jwks").json["keys"]
    assert fetch(srv.url + "/keys").status == 404


def test_issuer_and_jwks_uri_overrides(srv):
    srv.add_key("ES256")
    srv.issuer = "https://issuer.test"
    assert fetch(srv.discovery_url).json["issuer"] == "https://issuer.test"
    assert jwt.decode(srv.mint(), options={"verify_signature": False})["iss"] == \
        "https://issuer.test"
    srv.discovery_issuer = "https://evil.test"
    d = fetch(srv.discovery_url).json
    assert d["issuer"] == "https://evil.test"
    # Tokens keep the issuer it claims.
    assert jwt.decode(srv.mint(), options={"verify_signature": False})["iss"] == \
        "https://issuer.test"
    srv.jwks_uri_override = "https://elsewhere.test/keys"
    assert fetch(srv.discovery_url).json["jwks_uri"] == "https://elsewhere.test/keys"
    srv.discovery_issuer = srv.jwks_uri_override = srv.issuer = None
    d = fetch(srv.discovery_url).json
    assert d["issuer"] == srv.url and d["jwks_uri"] == srv.url + "/keys"


def _int(text):
    return int.from_bytes(b64d(text), "big")


def test_jwks_members_per_alg(srv):
    kids = {alg: srv.add_key(alg, rsa_bits=1024 if alg == "PS256" else 2048)
            for alg in KEY_ALGS}
    r = fetch(srv.jwks_url)
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    keys = {k["kid"]: k for k in r.json["keys"]}
    assert list(keys) == list(kids.values())
    for alg, kid in kids.items():
        jwk, priv = keys[kid], srv.private_key(kid)
        assert jwk["kid"] == kid and jwk["use"] == "sig" and jwk["alg"] == alg
        pub = priv.public_key()
        if alg in ("RS256", "PS256"):
            nums = pub.public_numbers()
            assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
            assert jwk["kty"] == "RSA" and jwk["e"] == "AQAB"
            assert _int(jwk["n"]) == nums.n
            assert len(b64d(jwk["n"])) == (1024 if alg == "PS256" else 2048) // 8
        elif alg in ("ES256", "ES384"):
            size, crv = (32, "P-256") if alg == "ES256" else (48, "P-384")
            nums = pub.public_numbers()
            assert set(jwk) == {"kty", "kid", "use", "alg", "crv", "x", "y"}
            assert jwk["kty"] == "EC" and jwk["crv"] == crv
            assert len(b64d(jwk["x"])) == len(b64d(jwk["y"])) == size
            assert (_int(jwk["x"]), _int(jwk["y"])) == (nums.x, nums.y)
        else:
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            assert set(jwk) == {"kty", "kid", "use", "alg", "crv", "x"}
            assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
            assert b64d(jwk["x"]) == raw
        assert srv.jwk(kid) == jwk
    # Without use or alg, and a chosen kid.
    srv.add_key("ES256", kid="bare", use=None, alg_in_jwk=False)
    assert srv.jwk("bare")["kid"] == "bare"
    assert "use" not in srv.jwk("bare") and "alg" not in srv.jwk("bare")
    srv.add_key("ES256", kid="enc", use="enc")
    assert fetch(srv.jwks_url).json["keys"][-1]["use"] == "enc"
    with pytest.raises(ValueError):
        srv.add_key("ES256", kid="bare")
    with pytest.raises(ValueError):
        srv.add_key("HS256")


def test_publish_unpublish_remove(srv):
    a = srv.add_key("ES256")
    b = srv.add_key("EdDSA", publish=False)

    def served():
        return [k["kid"] for k in fetch(srv.jwks_url).json["keys"]]

    assert served() == [a] and srv.kids() == [a, b]
    assert srv.kids(published=False) == [b]
    srv.publish(b)
    assert served() == [a, b]
    srv.unpublish(a)
    assert served() == [b]
    assert fetch(srv.discovery_url).json["id_token_signing_alg_values_supported"] == \
        ["EdDSA"]
    srv.remove_key(b)
    assert served() == [] and srv.kids() == [a]
    for fn in (srv.publish, srv.unpublish, srv.remove_key):
        with pytest.raises(KeyError):
            fn("nope")


def test_extra_entries_and_helpers(srv):
    a = srv.add_key("ES256")
    weak = public_jwk_rsa(1024)
    srv.extra_entries = [oct_jwk(b"shared-secret", kid="hmac"), weak,
                         public_jwk_ec("P-521"), public_jwk_okp(kid="ed"),
                         {"kty": "RSA", "kid": "junk"}]
    keys = fetch(srv.jwks_url).json["keys"]
    assert [k["kid"] for k in keys] == [a, "hmac", weak["kid"], keys[3]["kid"], "ed",
                                        "junk"]
    assert keys[1] == {"kty": "oct", "k": b64url_nopad(b"shared-secret"), "kid": "hmac",
                       "use": "sig", "alg": "HS256"}
    assert keys[2]["kty"] == "RSA" and len(b64d(keys[2]["n"])) == 128
    assert keys[2]["alg"] == "RS256"
    assert keys[3]["crv"] == "P-521" and keys[3]["alg"] == "ES512"
    assert len(b64d(keys[3]["x"])) == 66
    assert keys[4]["kty"] == "OKP" and len(b64d(keys[4]["x"])) == 32
    # The helpers make keys PyJWT reads.
    for k in keys[2:5]:
        jwt.PyJWK(k)
    srv.extra_entries = []
    assert [k["kid"] for k in fetch(srv.jwks_url).json["keys"]] == [a]


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ----- tokens -----------------------------------------------------------------

@pytest.mark.parametrize("alg", KEY_ALGS)
def test_mint_verifies_with_published_jwk(srv, alg):
    kid = srv.add_key(alg)
    token = srv.mint()
    hdr = jwt.get_unverified_header(token)
    assert hdr == {"alg": alg, "typ": "JWT", "kid": kid}
    before = int(time.time())
    claims = verify(srv, token)
    assert claims["iss"] == srv.url
    assert claims["sub"] == "repo:acme/app:ref:refs/heads/main"
    assert claims["aud"] == "credgate"
    assert abs(claims["iat"] - before) <= 1 and claims["exp"] == claims["iat"] + 300
    assert set(claims) == {"iss", "sub", "aud", "iat", "exp"}
    # Another key's JWK does not verify it.
    other = srv.add_key(alg, publish=False)
    with pytest.raises(jwt.InvalidSignatureError):
        verify(srv, token, jwk=srv.jwk(other))


def test_mint_key_choice_claims_and_headers(srv):
    old = srv.add_key("ES256")
    new = srv.add_key("RS256", rsa_bits=1024)
    hidden = srv.add_key("EdDSA", publish=False)
    # The newest published key by default; kid picks an existing key.
    assert jwt.get_unverified_header(srv.mint())["kid"] == new
    assert verify(srv, srv.mint(kid=old))["sub"]
    t = srv.mint(kid=hidden)
    assert jwt.get_unverified_header(t) == {"alg": "EdDSA", "typ": "JWT", "kid": hidden}
    verify(srv, t, jwk=srv.jwk(hidden))
    # A kid naming no key goes into the header only.
    t = srv.mint(kid="unknown-kid", key_kid=old)
    assert jwt.get_unverified_header(t)["kid"] == "unknown-kid"
    verify(srv, t, jwk=srv.jwk(old))
    t = srv.mint(kid="unknown-kid")
    verify(srv, t, jwk=srv.jwk(new))
    # Claims: overrides, extras, None leaves one out.
    t = srv.mint(key_kid=old, sub="system:serviceaccount:ns:sa", aud=["a", "credgate"],
                 exp=None, repository="acme/app", jti="j-1")
    c = verify(srv, t, jwk=srv.jwk(old), options={"require": []})
    assert c["sub"] == "system:serviceaccount:ns:sa" and c["aud"] == ["a", "credgate"]
    assert "exp" not in c and c["repository"] == "acme/app" and c["jti"] == "j-1"
    # Header members: replaced, added, left out.
    t = srv.mint(key_kid=old, headers={"typ": "at+jwt", "kid": None, "x5u": "https://x"})
    assert jwt.get_unverified_header(t) == {"alg": "ES256", "typ": "at+jwt",
                                            "x5u": "https://x"}
    verify(srv, t, jwk=srv.jwk(old))
    # The header's alg may lie; the signature stays the key's.
    t = srv.mint(key_kid=old, headers={"alg": "ES384"})
    assert jwt.get_unverified_header(t)["alg"] == "ES384"
    with pytest.raises(jwt.InvalidSignatureError):
        verify(srv, t, jwk=srv.jwk(old))
    # An RSA key signs PS256 and RS256 alike.
    verify(srv, srv.mint(key_kid=new, alg="PS256"), jwk=srv.jwk(new))
    with pytest.raises(ValueError):
        srv.mint(key_kid=old, alg="RS256")
    with pytest.raises(KeyError):
        srv.mint(key_kid="nope")
    srv.unpublish(old)
    srv.unpublish(new)
    with pytest.raises(ValueError):
        srv.mint()


def test_mint_none_and_hmac_confusion(srv):
    kid = srv.add_key("RS256", rsa_bits=1024)
    t = srv.mint(alg="none")
    head, body, sig = t.split(".")
    assert sig == "" and json.loads(b64d(head))["alg"] == "none"
    assert jwt.decode(t, options={"verify_signature": False})["aud"] == "credgate"
    t = srv.mint(alg="HS256")
    head, body, sig = t.split(".")
    pem = srv.private_key(kid).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    want = hmac.new(pem, (head + "." + body).encode(), hashlib.sha256).digest()
    assert b64d(sig) == want


# ----- switches ----------------------------------------------------------------

def test_delay(srv):
    srv.add_key("ES256")
    srv.delay = 0.3
    for url in (srv.jwks_url, srv.discovery_url, srv.url + "/nope"):
        t0 = time.monotonic()
        fetch(url)
        assert time.monotonic() - t0 >= 0.3
    srv.delay = 0
    t0 = time.monotonic()
    assert fetch(srv.jwks_url).status == 200
    assert time.monotonic() - t0 < 0.3


@pytest.mark.parametrize("status", [500, 503, 429])
def test_fail_status(srv, status):
    srv.add_key("ES256")
    srv.fail_status = status
    srv.redirects = {"/keys": "https://elsewhere.test/keys"}
    for url in (srv.jwks_url, srv.discovery_url, srv.url + "/nope"):
        r = fetch(url)
        assert r.status == status
        assert 0 < len(r.raw) < 100
        assert "Location" not in r.headers
    srv.fail_status = None
    srv.redirects = {}
    assert fetch(srv.jwks_url).status == 200
    assert [e["status"] for e in srv.requests()] == [status] * 3 + [200]


def test_drop(srv):
    srv.add_key("ES256")
    srv.drop = True
    for url in (srv.jwks_url, srv.discovery_url):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError,
                            urllib.error.URLError)):
            fetch(url)
    srv.drop = False
    assert fetch(srv.jwks_url).status == 200
    assert [e["status"] for e in srv.requests()] == ["drop", "drop", 200]


def test_drop_over_tls(tls):
    tls.drop = True
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError,
                        ssl.SSLError, urllib.error.URLError)):
        fetch(tls.jwks_url, ctx=tls.ctx)
    tls.drop = False
    assert fetch(tls.jwks_url, ctx=tls.ctx).status == 200


def test_oversize(srv):
    kid = srv.add_key("ES256")
    normal = fetch(srv.jwks_url).raw
    srv.oversize = 300000
    r = fetch(srv.jwks_url)
    assert r.status == 200
    assert len(r.raw) >= len(normal) + 300000
    assert int(r.headers["Content-Length"]) == len(r.raw)
    assert [k["kid"] for k in r.json["keys"]] == [kid]
    assert len(r.json["x-padding"]) == 300000
    # Discovery is not padded.
    assert len(fetch(srv.discovery_url).raw) < 2000
    srv.oversize = 0
    assert fetch(srv.jwks_url).raw == normal


def test_cache_control(srv):
    srv.add_key("ES256")
    assert "Cache-Control" not in fetch(srv.jwks_url).headers
    srv.cache_control = "public, max-age=120"
    assert fetch(srv.jwks_url).headers["Cache-Control"] == "public, max-age=120"
    assert fetch(srv.discovery_url).headers["Cache-Control"] == "public, max-age=120"
    assert "Cache-Control" not in fetch(srv.url + "/nope").headers
    srv.cache_control = "no-store"
    assert fetch(srv.jwks_url).headers["Cache-Control"] == "no-store"
    srv.cache_control = None
    assert "Cache-Control" not in fetch(srv.discovery_url).headers


def test_redirects(srv):
    srv.add_key("ES256")
    srv.redirects = {"/keys": "https://elsewhere.test/keys",
                     DISCOVERY: srv.url + "/moved", "/old": "/keys"}
    r = fetch(srv.jwks_url)
    assert r.status == 302 and r.headers["Location"] == "https://elsewhere.test/keys"
    assert fetch(srv.discovery_url).headers["Location"] == srv.url + "/moved"
    assert fetch(srv.url + "/old").headers["Location"] == "/keys"
    srv.redirect_status = 307
    assert fetch(srv.jwks_url).status == 307
    # A client following redirects gets there.
    srv.redirects = {"/moved": srv.url + "/keys"}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(srv.url + "/moved", timeout=5) as r:
        assert json.loads(r.read())["keys"]
    srv.redirects = {}
    assert fetch(srv.jwks_url).status == 200


def test_bearer_token(srv):
    srv.add_key("ES256")
    srv.bearer_token = "sa-token-1"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sa-token-1"},
                    {"Authorization": "Basic c2EtdG9rZW4tMQ=="}):
        r = fetch(srv.jwks_url, headers=headers)
        assert r.status == 401
        assert r.headers["Content-Type"] == "application/json"
        assert r.json == K8S_UNAUTHORIZED
        assert r.json["kind"] == "Status" and r.json["code"] == 401
    r = fetch(srv.jwks_url, headers={"Authorization": "Bearer sa-token-1"})
    assert r.status == 200 and r.json["keys"]
    # Outside Kubernetes mode the discovery document stays open.
    assert fetch(srv.discovery_url).status == 200
    assert srv.requests()[-2]["headers"]["authorization"] == "Bearer sa-token-1"
    srv.bearer_token = None
    assert fetch(srv.jwks_url).status == 200


def test_k8s_mode(tls):
    kid = tls.add_key("RS256", rsa_bits=1024)
    assert fetch(tls.url + "/openid/v1/jwks", ctx=tls.ctx).status == 404
    tls.k8s = True
    tls.issuer = "https://kubernetes.default.svc.cluster.local"
    tls.bearer_token = "sa-token"
    auth = {"Authorization": "Bearer sa-token"}
    r = fetch(tls.url + "/openid/v1/jwks", ctx=tls.ctx)
    assert r.status == 401 and r.json == K8S_UNAUTHORIZED
    assert fetch(tls.discovery_url, ctx=tls.ctx).status == 401
    r = fetch(tls.url + "/openid/v1/jwks", headers=auth, ctx=tls.ctx)
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/jwk-set+json"
    assert [k["kid"] for k in r.json["keys"]] == [kid]
    d = fetch(tls.discovery_url, headers=auth, ctx=tls.ctx).json
    assert d == {"issuer": "https://kubernetes.default.svc.cluster.local",
                 "jwks_uri": tls.url + "/openid/v1/jwks",
                 "response_types_supported": ["id_token"],
                 "subject_types_supported": ["public"],
                 "id_token_signing_alg_values_supported": ["RS256"]}
    # The plain key set path is still served too.
    assert fetch(tls.jwks_url, headers=auth, ctx=tls.ctx).headers["Content-Type"] == \
        "application/json"
    tls.jwks_content_type = "application/json"
    r = fetch(tls.url + "/openid/v1/jwks", headers=auth, ctx=tls.ctx)
    assert r.headers["Content-Type"] == "application/json"
    t = tls.mint(sub="system:serviceaccount:default:app", aud="https://kubernetes.default.svc")
    c = verify(tls, t, jwk=r.json["keys"][0], audience="https://kubernetes.default.svc")
    assert c["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert tls.hits("/openid/v1/jwks") == 4


def test_raw_jwks(srv):
    srv.add_key("ES256")
    srv.k8s = True
    for raw in (b"{not json", b"", b'{"keys": {}}', b"\xff\xfe"):
        srv.raw_jwks = raw
        for path in ("/keys", "/openid/v1/jwks"):
            r = fetch(srv.url + path)
            assert (r.status, r.raw) == (200, raw)
    # Discovery is untouched.
    assert fetch(srv.discovery_url).json["jwks_uri"]
    srv.raw_jwks = None
    assert fetch(srv.jwks_url).json["keys"]


def test_switches_apply_on_next_request_of_kept_alive_connection(srv):
    srv.add_key("ES256")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)

    def get(path="/keys"):
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Cache-Control"), r.read()

    assert get()[0] == 200
    srv.cache_control = "max-age=5"
    assert get()[1] == "max-age=5"
    srv.fail_status = 503
    assert get()[0] == 503
    srv.fail_status = None
    srv.raw_jwks = b"[]"
    assert get()[2] == b"[]"
    srv.raw_jwks = None
    kid = srv.add_key("EdDSA")
    assert kid in get()[2].decode()
    conn.close()


# ----- observation, threads ------------------------------------------------------

def test_hits_requests_reset(srv):
    srv.add_key("ES256")
    fetch(srv.discovery_url, headers={"User-Agent": "credgate-test/1", "X-Test": "a"})
    fetch(srv.jwks_url)
    fetch(srv.jwks_url + "?v=2")
    fetch(srv.url + "/nope", method="POST")
    assert srv.hits() == 4
    assert srv.hits("/keys") == 2 and srv.hits(DISCOVERY) == 1
    assert srv.hits("/nope") == 1 and srv.hits("/other") == 0
    reqs = srv.requests()
    assert [(e["method"], e["path"], e["status"]) for e in reqs] == [
        ("GET", DISCOVERY, 200), ("GET", "/keys", 200), ("GET", "/keys", 200),
        ("POST", "/nope", 405)]
    assert reqs[0]["headers"]["user-agent"] == "credgate-test/1"
    assert reqs[0]["headers"]["x-test"] == "a"
    assert all(k == k.lower() for k in reqs[0]["headers"])
    assert reqs[0]["time"] <= reqs[1]["time"] <= time.time()
    # The log is a copy.
    reqs[0]["headers"]["x-test"] = "b"
    assert srv.requests()[0]["headers"]["x-test"] == "a"
    srv.reset()
    assert srv.hits() == 0 and srv.requests() == []
    assert srv.kids()
    fetch(srv.jwks_url)
    assert srv.hits("/keys") == 1


def test_hits_under_prefix():
    with OidcServer(prefix="/p") as s:
        fetch(s.jwks_url)
        fetch(s.discovery_url)
        assert s.hits("/keys") == 1 and s.hits(DISCOVERY) == 1
        assert s.requests()[0]["path"] == "/p/keys"


def test_concurrent_requests_while_keys_change(srv):
    first = srv.add_key("ES256")
    errors = []

    def client():
        try:
            for _ in range(15):
                keys = fetch(srv.jwks_url).json["keys"]
                assert keys and keys[0]["kid"] == first
                assert fetch(srv.discovery_url).json["issuer"] == srv.url
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(10):
        kid = srv.add_key("EdDSA")
        srv.unpublish(kid)
        srv.publish(kid)
        srv.remove_key(kid)
    for t in threads:
        t.join(20)
    assert not errors
    assert srv.hits() == 4 * 30


# ----- script mode -----------------------------------------------------------

def test_script_mode(tmp_path):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "oidc_server.py"),
                             "--port", "0", "--prefix", "/ci", "--alg", "EdDSA"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = {}
        for _ in range(3):
            name, value = proc.stderr.readline().split()
            info[name] = value
        token = proc.stdout.readline().strip()
        assert info["issuer"].startswith("http://localhost:") and \
            info["issuer"].endswith("/ci")
        assert info["jwks"] == info["issuer"] + "/keys"
        assert fetch(info["discovery"]).json["jwks_uri"] == info["jwks"]
        jwk = fetch(info["jwks"]).json["keys"][0]
        claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["EdDSA"],
                            audience="credgate", issuer=info["issuer"])
        assert claims["exp"] - claims["iat"] == 3600
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
