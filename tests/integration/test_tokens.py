"""Identity: which tokens get through, and that every other one is refused
with 401 before a single byte reaches the legacy service."""

import re
import time

import jwt
import pytest

from conftest import AUDIENCE, ISSUER, Keys, public_jwk

REASON_WORDS = re.compile(r"\b(expired?|signature|audience|aud|kid|issuer|iss|alg|algorithm|"
                          r"lifetime|nbf|exp|jwks?)\b", re.I)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_valid_token_reaches_legacy_with_injected_basic(stack, alg):
    token = stack.token(alg)
    mark = stack.nginx.mark()
    r = stack.curl(token=token, path="/a.txt")
    assert r.status == 200, r
    assert r.text == stack.nginx.files["/a.txt"]
    lines = stack.nginx.since(mark)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["status"] == "200"
    assert line["user"] == "svc"
    assert line["auth"].startswith("Basic ")
    assert token not in str(line), "the caller's token reached the legacy service"
    assert "Bearer" not in line["auth"]


def test_audit_records_verified_identity(stack):
    token = stack.token("RS256", sub="repo:acme/app:ref:refs/heads/main", jti="jti-audit-1")
    r = stack.curl(token=token, path="/a.txt")
    assert r.status == 200
    ev = stack.cg.audit_where(lambda e: e.get("event") == "decision")
    assert ev, "no decision event"
    ident = ev[-1]["identity"]
    assert ident["iss"] == ISSUER
    assert ident["sub"] == "repo:acme/app:ref:refs/heads/main"
    assert ident["jti"] == "jti-audit-1"
    assert ident["alg"] == "RS256"
    assert ident["kid"] == "rsa-1"
    assert ident["issuer"] == "test"
    assert ident["claims"].get("repository") == "acme/app"
    assert token not in str(ev)


def test_token_just_under_size_limit_is_accepted(make_stack):
    s = make_stack(credgate_extra={"limits": {"token_bytes": 4096}})
    pad = "x" * 2600
    token = s.token("ES256", padding=pad)
    assert 3000 < len(token) < 4096
    r = s.curl(token=token)
    assert r.status == 200, r


def _forged(keys, case):
    now = int(time.time())
    if case == "expired":
        return keys.mint("ES256", iat=now - 900, exp=now - 300)
    if case == "wrong_aud":
        return keys.mint("ES256", aud="someone-else")
    if case == "wrong_aud_list":
        return keys.mint("ES256", aud=["a", "b"])
    if case == "wrong_iss":
        return keys.mint("ES256", iss="https://evil.test")
    if case == "iss_prefix":
        return keys.mint("ES256", iss=ISSUER + "/")
    if case == "bad_signature":
        return keys.mint("ES256", key=keys.other_ec, kid="ec-1")
    if case == "tampered_payload":
        h, p, sig = keys.mint("ES256").split(".")
        other = keys.mint("ES256", repository="acme/admin").split(".")[1]
        assert other != p
        return ".".join([h, other, sig])
    if case == "alg_none":
        return Keys.unsigned({"alg": "none", "typ": "JWT"}, keys.claims())
    if case == "alg_none_with_kid":
        return Keys.unsigned({"alg": "none", "kid": "ec-1"}, keys.claims())
    if case == "hs256_with_public_key":
        secret = public_jwk(keys.rsa, "rsa-1")["n"].encode()
        return jwt.encode(keys.claims(), secret, algorithm="HS256", headers={"kid": "rsa-1"})
    if case == "alg_key_mismatch":
        # An RS256 header naming the EC key.
        return keys.mint("RS256", key=keys.rsa, kid="ec-1")
    if case == "unknown_kid":
        return keys.mint("ES256", key=keys.other_ec, kid="ghost")
    if case == "embedded_jwk":
        jwk = public_jwk(keys.other_ec, "attacker")
        return keys.mint("ES256", key=keys.other_ec, kid="", headers={"jwk": jwk})
    if case == "jku_header":
        return keys.mint("ES256", key=keys.other_ec, kid="attacker",
                         headers={"jku": "http://127.0.0.1:1/jwks.json"})
    if case == "crit_header":
        return keys.mint("ES256", headers={"crit": ["exp"]})
    if case == "too_large":
        return keys.mint("ES256", padding="y" * 9000)
    if case == "lifetime_too_long":
        return keys.mint("ES256", iat=now, exp=now + 7200)
    if case == "not_yet_valid":
        return keys.mint("ES256", nbf=now + 900)
    if case == "missing_exp":
        return keys.mint("ES256", exp=None)
    if case == "string_exp":
        return keys.mint("ES256", exp=str(now + 300))
    if case == "missing_iss":
        return keys.mint("ES256", iss=None)
    if case == "malformed":
        return "not-a-jwt"
    if case == "malformed_segments":
        return "aaaa.bbbb.cccc"
    if case == "padded_base64":
        h, p, sig = keys.mint("ES256").split(".")
        return ".".join([h, p, sig + "=" * ((4 - len(sig) % 4) % 4 or 4)])
    raise ValueError(case)


INVALID = ["expired", "wrong_aud", "wrong_aud_list", "wrong_iss", "iss_prefix",
           "bad_signature", "tampered_payload", "alg_none", "alg_none_with_kid",
           "hs256_with_public_key", "alg_key_mismatch", "unknown_kid", "embedded_jwk",
           "jku_header", "crit_header", "too_large", "lifetime_too_long", "not_yet_valid",
           "missing_exp", "string_exp", "missing_iss", "malformed", "malformed_segments",
           "padded_base64"]


def assert_refused_401(stack, r, mark, error):
    assert r.status == 401, r
    challenge = r.header("WWW-Authenticate")
    assert challenge is not None, f"401 without WWW-Authenticate: {r.headers}"
    assert challenge.startswith("Bearer"), challenge
    if error:
        assert 'error="invalid_token"' in challenge, challenge
    else:
        assert "error=" not in challenge, challenge
    assert len(r.body) < 256, r.body
    assert not REASON_WORDS.search(r.text), f"the 401 body gives a reason away: {r.text!r}"
    stack.nginx.assert_untouched(mark)


@pytest.mark.parametrize("case", INVALID)
def test_invalid_token_is_refused_401(stack, keys, case):
    token = _forged(keys, case)
    mark = stack.nginx.mark()
    path = f"/tok-{case}.txt"
    r = stack.curl(token=token, path=path)
    assert_refused_401(stack, r, mark, error=True)
    # The precise reason goes to the audit event, not to the caller.
    ev = stack.cg.audit_where(lambda e: (e.get("request") or {}).get("path") == path)
    assert ev, f"no audit event for the refused request {path}"
    dec = ev[0].get("decision") or {}
    assert dec.get("result") == "deny", ev[0]
    assert dec.get("reason"), ev[0]


@pytest.mark.parametrize("where", ["query", "cookie", "other_header", "no_header"])
def test_token_outside_authorization_is_not_read(stack, where):
    token = stack.token()
    mark = stack.nginx.mark()
    args, query = [], ""
    if where == "query":
        query = "?access_token=" + token
    elif where == "cookie":
        args = ["-H", "Cookie: access_token=" + token]
    elif where == "other_header":
        args = ["-H", "X-Auth-Token: Bearer " + token]
    r = stack.curl(*args, auth=False, query=query)
    assert_refused_401(stack, r, mark, error=False)


@pytest.mark.parametrize("value", ["Basic c3ZjOnB3", "Bearer", "Bearer  ", "Token abc.def.ghi"])
def test_other_authorization_forms_are_refused(stack, value):
    mark = stack.nginx.mark()
    r = stack.curl("-H", "Authorization: " + value, auth=False)
    assert r.status == 401, r
    assert (r.header("WWW-Authenticate") or "").startswith("Bearer")
    stack.nginx.assert_untouched(mark)


def test_two_authorization_headers_are_400(stack):
    token = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send((f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n").encode())
    r = c.read_response()
    c.close()
    assert r.status == 400, r
    stack.nginx.assert_untouched(mark)


def test_bearer_scheme_is_case_insensitive(stack):
    r = stack.curl("-H", "Authorization: bearer " + stack.token(), auth=False)
    assert r.status == 200, r


def test_array_audience_containing_ours_is_accepted(stack):
    r = stack.curl(token=stack.token("EdDSA", aud=["other", AUDIENCE]))
    assert r.status == 200, r


def test_token_within_clock_skew_is_accepted(stack):
    now = int(time.time())
    r = stack.curl(token=stack.token("ES256", iat=now - 300, exp=now - 20))
    assert r.status == 200, r
