"""Tests of the Vault/OpenBao-compatible test server by itself (no credgate).

The server stands in for Vault in the Vault backend's integration tests, so
its answers must have the real servers' status codes, JSON shapes and error
strings; these tests pin them down endpoint by endpoint, with its control
interface (failure injection, latency, request log, counters).
"""

import http.client
import json
import socket
import ssl
import time

import pytest

from conftest import Pki
from vault_server import VaultServer, human_duration, parse_duration

ENVELOPE_KEYS = ["request_id", "lease_id", "renewable", "lease_duration", "data",
                 "wrap_info", "warnings", "auth"]
AUTH_KEYS = ["client_token", "accessor", "policies", "token_policies", "metadata",
             "lease_duration", "renewable", "entity_id", "token_type", "orphan",
             "mfa_requirement", "num_uses"]
HEALTH_KEYS = ["initialized", "sealed", "standby", "replication_performance_mode",
               "replication_dr_mode", "server_time_utc", "version", "cluster_name",
               "cluster_id"]
BAD_TOKEN = {"errors": ["permission denied"]}
POLICY_DENIED = {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}


class Resp:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.json = json.loads(raw) if raw else None


def call(srv, method, path, body=None, token=None, headers=None, context=None):
    if srv.scheme == "https":
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5,
                                           context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    hdrs = dict(headers or {})
    if token:
        hdrs["X-Vault-Token"] = token
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()


def assert_envelope(body):
    assert list(body) == ENVELOPE_KEYS
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert isinstance(body["lease_id"], str)
    assert isinstance(body["renewable"], bool)
    assert isinstance(body["lease_duration"], int)
    assert body["wrap_info"] is None
    assert body["warnings"] is None or all(isinstance(w, str) for w in body["warnings"])


def assert_auth(auth, lease_duration=3600):
    assert list(auth) == AUTH_KEYS
    assert auth["client_token"].startswith("s.")
    assert auth["policies"] == ["credgate-read", "default"]
    assert auth["token_policies"] == auth["policies"]
    assert auth["lease_duration"] == lease_duration
    assert auth["renewable"] is True
    assert auth["token_type"] == "service"
    assert auth["orphan"] is True
    assert auth["mfa_requirement"] is None
    assert auth["num_uses"] == 0
    assert isinstance(auth["entity_id"], str)


@pytest.fixture
def vault():
    srv = VaultServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def hvault():
    srv = VaultServer(flavor="vault")
    srv.start()
    yield srv
    srv.stop()


def approle_token(srv, **kw):
    srv.add_approle("credgate", "role-1", "secret-1", **kw)
    r = call(srv, "POST", "/v1/auth/approle/login",
             {"role_id": "role-1", "secret_id": "secret-1"})
    assert r.status == 200, r.raw
    return r.json["auth"]["client_token"]


# ----- helpers --------------------------------------------------------------

def test_durations():
    assert parse_duration("1h") == 3600
    assert parse_duration("1h30m") == 5400
    assert parse_duration(90) == 90
    assert parse_duration("45") == 45
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert human_duration(3600) == "1h"
    assert human_duration(1200) == "20m"
    assert human_duration(3690) == "1h1m30s"
    assert human_duration(30) == "30s"


# ----- lifecycle, headers -----------------------------------------------------

def test_start_stop_frees_port():
    srv = VaultServer().start()
    port = srv.port
    assert call(srv, "GET", "/v1/sys/health").status == 200
    srv.stop()
    assert not srv.thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_keepalive_and_stop_closes_it():
    srv = VaultServer().start()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/v1/sys/health")
        r = conn.getresponse()
        assert r.status == 200 and r.read()
    conn.request("PUT", "/v1/sys/leases/revoke", body=b'{"lease_id":"x"}',
                 headers={"X-Vault-Token": srv.root_token})
    r = conn.getresponse()
    assert (r.status, r.read()) == (204, b"")
    srv.stop()
    assert conn.sock.recv(1) == b""
    conn.close()


def test_response_headers(vault):
    r = call(vault, "GET", "/v1/secret/data/none", token=vault.root_token)
    assert r.status == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.json == {"errors": []}


# ----- sys/health --------------------------------------------------------------

def test_health_active(vault):
    r = call(vault, "GET", "/v1/sys/health")
    assert r.status == 200
    assert list(r.json) == HEALTH_KEYS
    assert r.json["initialized"] is True and r.json["sealed"] is False
    assert r.json["standby"] is False
    assert r.json["replication_performance_mode"] == "disabled"
    assert r.json["replication_dr_mode"] == "disabled"
    assert abs(r.json["server_time_utc"] - time.time()) < 5
    assert r.json["version"] == "2.6.2"
    head = call(vault, "HEAD", "/v1/sys/health")
    assert head.status == 200 and head.raw == b""


def test_health_states_and_overrides(vault):
    vault.standby = True
    r = call(vault, "GET", "/v1/sys/health")
    assert r.status == 429 and r.json["standby"] is True
    assert list(r.json) == HEALTH_KEYS
    assert call(vault, "GET", "/v1/sys/health?standbyok=true").status == 200
    assert call(vault, "GET", "/v1/sys/health?standbycode=299").status == 299
    vault.standby = False
    vault.sealed = True
    r = call(vault, "GET", "/v1/sys/health")
    assert r.status == 503
    assert r.json["sealed"] is True and r.json["standby"] is True
    assert r.json["replication_performance_mode"] == "unknown"
    assert r.json["replication_dr_mode"] == "unknown"
    assert "cluster_name" not in r.json and "cluster_id" not in r.json
    r2 = call(vault, "GET", "/v1/sys/health?sealedcode=200")
    assert r2.status == 200
    r2.json.pop("server_time_utc"), r.json.pop("server_time_utc")
    assert r2.json == r.json
    vault.initialized = False
    r = call(vault, "GET", "/v1/sys/health")
    assert r.status == 501 and r.json["initialized"] is False


def test_health_errors(vault):
    for q in ("standbycode=abc", "standbyok=maybe", "sealedcode="):
        r = call(vault, "GET", "/v1/sys/health?" + q)
        assert (r.status, r.json) == (400, {"errors": []}), q
    for method in ("POST", "PUT", "DELETE"):
        r = call(vault, method, "/v1/sys/health")
        assert (r.status, r.json) == (405, {"errors": []})
    r = call(vault, "GET", "/v1/sys/health", headers={"X-Vault-Namespace": "team1"})
    assert r.status == 400
    assert r.json == {"errors": ["operation unavailable in namespaces"]}


def test_health_vault_flavor(hvault):
    r = call(hvault, "GET", "/v1/sys/health")
    assert r.json["performance_standby"] is False
    hvault.perf_standby = True
    r = call(hvault, "GET", "/v1/sys/health")
    assert r.status == 473
    assert r.json["performance_standby"] is True and r.json["standby"] is True
    assert call(hvault, "GET", "/v1/sys/health?perfstandbyok=true").status == 200
    hvault.perf_standby = False
    hvault.dr_secondary = True
    r = call(hvault, "GET", "/v1/sys/health")
    assert r.status == 472 and r.json["replication_dr_mode"] == "secondary"


# ----- tokens -----------------------------------------------------------------

def test_token_required(vault):
    vault.put_kv("secret", "a", {"k": "v"})
    r = call(vault, "GET", "/v1/secret/data/a")
    assert (r.status, r.json) == (403, BAD_TOKEN)
    r = call(vault, "GET", "/v1/secret/data/a", token="s.unknown")
    assert (r.status, r.json) == (403, BAD_TOKEN)
    r = call(vault, "GET", "/v1/secret/data/a",
             headers={"Authorization": "Bearer " + vault.root_token})
    assert r.status == 200
    # X-Vault-Token wins over Authorization.
    r = call(vault, "GET", "/v1/secret/data/a", token="s.unknown",
             headers={"Authorization": "Bearer " + vault.root_token})
    assert r.status == 403


def test_bad_token_text_vault(hvault):
    r = call(hvault, "GET", "/v1/auth/token/lookup-self", token="s.unknown")
    assert r.status == 403
    assert "permission denied" in r.json["errors"][0]
    assert "invalid token" in r.json["errors"][0]
    tok = hvault.create_token(policies=["nothing"])
    r = call(hvault, "GET", "/v1/secret/data/a", token=tok)
    assert (r.status, r.json) == (403, POLICY_DENIED)


def test_policy_denied(vault):
    # Logins give credgate-read, which allows everything by default.
    tok = vault.create_token(policies=["nothing"])
    r = call(vault, "GET", "/v1/secret/data/a", token=tok)
    assert (r.status, r.json) == (403, POLICY_DENIED)
    assert "invalid token" not in r.json["errors"][0]
    vault.set_policy("nothing", ["secret/data/*"])
    assert call(vault, "GET", "/v1/secret/data/a", token=tok).status == 404


def test_lookup_self(vault):
    tok = approle_token(vault)
    r = call(vault, "GET", "/v1/auth/token/lookup-self", token=tok,
             headers={"X-Vault-Request": "true"})
    assert r.status == 200
    assert_envelope(r.json)
    d = r.json["data"]
    assert list(d) == sorted(d)
    for key in ("accessor", "creation_time", "creation_ttl", "display_name",
                "entity_id", "expire_time", "explicit_max_ttl", "id", "issue_time",
                "meta", "num_uses", "orphan", "path", "policies", "renewable", "ttl",
                "type"):
        assert key in d, key
    assert d["id"] == tok
    assert d["creation_ttl"] == 3600 and 3590 <= d["ttl"] <= 3600
    assert d["path"] == "auth/approle/login"
    assert d["meta"] == {"role_name": "credgate"}
    assert d["expire_time"].endswith("Z") and len(d["expire_time"]) == 30
    assert d["renewable"] is True and d["type"] == "service"
    r = call(vault, "GET", "/v1/auth/token/lookup-self", token=vault.root_token)
    assert r.json["data"]["expire_time"] is None and r.json["data"]["ttl"] == 0
    assert "renewable" not in r.json["data"]


def test_renew_self(vault):
    tok = approle_token(vault, ttl=600, max_ttl=1200)
    r = call(vault, "PUT", "/v1/auth/token/renew-self", {"increment": "5m"}, token=tok)
    assert r.status == 200
    assert_envelope(r.json)
    assert r.json["data"] is None and r.json["warnings"] is None
    assert r.json["auth"]["client_token"] == tok
    assert r.json["auth"]["lease_duration"] == 300
    r = call(vault, "PUT", "/v1/auth/token/renew-self", {"increment": "1h"}, token=tok)
    assert r.status == 200
    left = r.json["auth"]["lease_duration"]
    assert 1190 <= left <= 1200
    assert r.json["warnings"] == [
        'TTL of "1h" exceeded the effective max_ttl of "%s"; TTL value is capped '
        "accordingly" % human_duration(left)]
    r = call(vault, "GET", "/v1/auth/token/lookup-self", token=tok)
    assert "last_renewal" in r.json["data"] and "last_renewal_time" in r.json["data"]
    assert vault.counters["tokens_renewed"] == 2


def test_renew_self_not_renewable(vault):
    tok = approle_token(vault, renewable=False)
    r = call(vault, "POST", "/v1/auth/token/renew-self", {}, token=tok)
    assert (r.status, r.json) == (400, {"errors": ["lease is not renewable"]})


def test_revoke_self_and_revoked_expired(vault):
    tok = approle_token(vault)
    r = call(vault, "POST", "/v1/auth/token/revoke-self", token=tok)
    assert (r.status, r.raw) == (204, b"")
    r = call(vault, "GET", "/v1/auth/token/lookup-self", token=tok)
    assert (r.status, r.json) == (403, BAD_TOKEN)
    tok2 = vault.create_token()
    vault.revoke_token(tok2)
    assert call(vault, "GET", "/v1/auth/token/lookup-self", token=tok2).status == 403
    tok3 = vault.create_token()
    assert call(vault, "GET", "/v1/auth/token/lookup-self", token=tok3).status == 200
    vault.expire_token(tok3)
    r = call(vault, "GET", "/v1/auth/token/lookup-self", token=tok3)
    assert (r.status, r.json) == (403, BAD_TOKEN)


# ----- logins -----------------------------------------------------------------

def test_approle_login(vault):
    vault.add_approle("credgate", "role-1", "secret-1")
    r = call(vault, "POST", "/v1/auth/approle/login",
             {"role_id": "role-1", "secret_id": "secret-1"})
    assert r.status == 200
    assert_envelope(r.json)
    assert r.json["data"] is None and r.json["lease_id"] == ""
    assert r.json["renewable"] is False and r.json["lease_duration"] == 0
    assert_auth(r.json["auth"])
    assert r.json["auth"]["metadata"] == {"role_name": "credgate"}
    assert vault.counters["logins"] == 1 and vault.counters["logins:approle"] == 1


def test_approle_errors_and_warnings(vault):
    vault.add_approle("credgate", "role-1", "secret-1")
    cases = [({"role_id": "role-1", "secret_id": "wrong"}, "invalid role or secret ID"),
             ({"role_id": "nope", "secret_id": "secret-1"}, "invalid role or secret ID"),
             ({"secret_id": "secret-1"}, "missing role_id"),
             ({"role_id": "role-1"}, "missing secret_id")]
    for body, msg in cases:
        r = call(vault, "PUT", "/v1/auth/approle/login", body)
        assert (r.status, r.json) == (400, {"errors": [msg]}), body
    r = call(vault, "PUT", "/v1/auth/approle/login",
             {"role_id": "role-1", "secret_id": "secret-1", "fake_extra_field": 1})
    assert r.status == 200
    assert r.json["warnings"] == [
        "Endpoint ignored these unrecognized parameters: [fake_extra_field]"]
    assert call(vault, "GET", "/v1/auth/approle/login").status == 405


def test_login_other_mount_path(vault):
    vault.add_approle("svc", "r2", "s2", mount="approle-prod")
    r = call(vault, "PUT", "/v1/auth/approle-prod/login", {"role_id": "r2", "secret_id": "s2"})
    assert r.status == 200
    assert r.json["auth"]["metadata"] == {"role_name": "svc"}
    r = call(vault, "PUT", "/v1/auth/nosuch/login", {})
    assert r.status == 404
    assert r.json["errors"][0].startswith('no handler for route "auth/nosuch/login"')


def test_kubernetes_login(vault):
    vault.add_kubernetes_role("credgate", "k8s.jwt.value", service_account_name="sa1",
                              service_account_namespace="ns1")
    r = call(vault, "PUT", "/v1/auth/kubernetes/login",
             {"role": "credgate", "jwt": "k8s.jwt.value"})
    assert r.status == 200
    assert_auth(r.json["auth"])
    meta = r.json["auth"]["metadata"]
    assert sorted(meta) == ["role", "service_account_name", "service_account_namespace",
                            "service_account_secret_name", "service_account_uid"]
    assert meta["service_account_name"] == "sa1" and meta["service_account_secret_name"] == ""
    r = call(vault, "PUT", "/v1/auth/kubernetes/login", {"role": "no-such-role", "jwt": "x"})
    assert (r.status, r.json) == (400, {"errors": ['invalid role name "no-such-role"']})
    r = call(vault, "PUT", "/v1/auth/kubernetes/login", {"jwt": "x"})
    assert (r.status, r.json) == (400, {"errors": ["missing role"]})
    r = call(vault, "PUT", "/v1/auth/kubernetes/login", {"role": "credgate"})
    assert (r.status, r.json) == (400, {"errors": ["missing jwt"]})
    r = call(vault, "PUT", "/v1/auth/kubernetes/login", {"role": "credgate", "jwt": "bad"})
    assert (r.status, r.json) == (403, {"errors": ["permission denied"]})


def test_jwt_login(vault):
    vault.add_jwt_role("credgate", "good.jwt", default=True,
                       claim_metadata={"team": "payments"})
    r = call(vault, "PUT", "/v1/auth/jwt/login", {"role": "credgate", "jwt": "good.jwt"})
    assert r.status == 200
    assert_auth(r.json["auth"])
    assert r.json["auth"]["metadata"] == {"role": "credgate", "team": "payments"}
    assert call(vault, "PUT", "/v1/auth/jwt/login", {"jwt": "good.jwt"}).status == 200
    r = call(vault, "PUT", "/v1/auth/jwt/login", {"role": "credgate", "jwt": "bad"})
    assert r.status == 400 and r.json["errors"][0].startswith("error validating token: ")
    r = call(vault, "PUT", "/v1/auth/jwt/login", {"role": "other", "jwt": "good.jwt"})
    assert (r.status, r.json) == (400, {"errors": ['role "other" could not be found']})
    r = call(vault, "PUT", "/v1/auth/jwt/login", {"role": "credgate"})
    assert (r.status, r.json) == (400, {"errors": ["missing token"]})
    vault.add_jwt_role("checked", lambda t: True if t == "ok" else "token is expired")
    assert call(vault, "PUT", "/v1/auth/jwt/login", {"role": "checked", "jwt": "ok"}).status == 200
    r = call(vault, "PUT", "/v1/auth/jwt/login", {"role": "checked", "jwt": "old"})
    assert (r.status, r.json) == (400, {"errors": ["error validating token: token is expired"]})
    srv = VaultServer()
    srv.add_jwt_role("r", "j")
    with srv:
        r = call(srv, "PUT", "/v1/auth/jwt/login", {"jwt": "j"})
        assert (r.status, r.json) == (400, {"errors": ["missing role"]})


def test_cert_login_plain(vault):
    r = call(vault, "PUT", "/v1/auth/cert/login", {})
    assert r.status == 400
    assert r.json == {"errors": ["invalid certificate or no client certificate supplied"]}
    vault.add_cert_role("credgate-client", accept_without_tls=True)
    r = call(vault, "PUT", "/v1/auth/cert/login", b"")
    assert r.status == 200
    assert_auth(r.json["auth"])
    assert sorted(r.json["auth"]["metadata"]) == ["authority_key_id", "cert_name",
                                                  "common_name", "serial_number",
                                                  "subject_key_id"]
    assert r.json["auth"]["metadata"]["cert_name"] == "credgate-client"
    r = call(vault, "PUT", "/v1/auth/cert/login", {"name": "other"})
    assert r.status == 400
    assert "no chain matching all constraints" in r.json["errors"][0]


def test_cert_login_tls(tmp_path):
    pki = Pki(tmp_path, "vault")
    crt, key, _ = pki.server("server")
    ccrt, ckey, ccert = pki.issue("client", "credgate-client.test", client=True)
    other_crt, other_key, _ = pki.issue("other", "other.test", client=True)
    from cryptography.hazmat.primitives import hashes
    fp = ccert.fingerprint(hashes.SHA256()).hex()
    srv = VaultServer(cert=crt, key=key, client_ca=pki.ca_file)
    srv.add_cert_role("credgate-client", fingerprint=fp)
    with srv:
        def ctx(cert=None, keyf=None):
            c = ssl.create_default_context(cafile=pki.ca_file)
            if cert:
                c.load_cert_chain(cert, keyf)
            return c
        r = call(srv, "PUT", "/v1/auth/cert/login", {"name": "credgate-client"},
                 context=ctx(ccrt, ckey))
        assert r.status == 200, r.raw
        meta = r.json["auth"]["metadata"]
        assert meta["common_name"] == "credgate-client.test"
        assert meta["serial_number"] == str(ccert.serial_number)
        r = call(srv, "PUT", "/v1/auth/cert/login", {}, context=ctx(other_crt, other_key))
        assert r.status == 400
        assert "no chain matching all constraints" in r.json["errors"][0]
        r = call(srv, "PUT", "/v1/auth/cert/login", {}, context=ctx())
        assert r.status == 400
        assert r.json == {"errors": ["invalid certificate or no client certificate supplied"]}
        assert call(srv, "GET", "/v1/sys/health", context=ctx()).status == 200


# ----- KV ---------------------------------------------------------------------

def test_kv1(vault):
    vault.put_kv("kv", "legacy/db1", {"username": "u", "password": "p"})
    vault.put_kv("kv", "legacy/db2", {"password": "p", "ttl": "1h"})
    r = call(vault, "GET", "/v1/kv/legacy/db1", token=vault.root_token)
    assert r.status == 200
    assert_envelope(r.json)
    assert r.json["data"] == {"username": "u", "password": "p"}
    assert (r.json["lease_id"], r.json["renewable"]) == ("", False)
    assert r.json["lease_duration"] == 2764800
    r = call(vault, "GET", "/v1/kv/legacy/db2", token=vault.root_token)
    assert r.json["lease_duration"] == 3600
    r = call(vault, "GET", "/v1/kv/legacy/none", token=vault.root_token)
    assert (r.status, r.json) == (404, {"errors": []})
    r = call(vault, "GET", "/v1/kv/legacy?list=true", token=vault.root_token)
    assert r.json["data"] == {"keys": ["db1", "db2"]}
    r = call(vault, "LIST", "/v1/kv/", token=vault.root_token)
    assert r.json["data"] == {"keys": ["legacy/"]}
    r = call(vault, "LIST", "/v1/kv/empty", token=vault.root_token)
    assert (r.status, r.json) == (404, {"errors": []})


def test_kv2_read_versions(vault):
    assert vault.put_kv("secret", "legacy/db1", {"password": "one"},
                        custom_metadata={"owner": "team"}) == 1
    assert vault.rotate_kv("secret", "legacy/db1", {"password": "two"}) == 2
    r = call(vault, "GET", "/v1/secret/data/legacy/db1", token=vault.root_token)
    assert r.status == 200
    assert_envelope(r.json)
    assert r.json["lease_duration"] == 0
    assert list(r.json["data"]) == ["data", "metadata"]
    assert r.json["data"]["data"] == {"password": "two"}
    meta = r.json["data"]["metadata"]
    assert list(meta) == ["created_time", "custom_metadata", "deletion_time",
                          "destroyed", "version"]
    assert meta["version"] == 2 and meta["deletion_time"] == ""
    assert meta["destroyed"] is False and meta["custom_metadata"] == {"owner": "team"}
    assert meta["created_time"].endswith("Z") and len(meta["created_time"]) == 30
    r = call(vault, "GET", "/v1/secret/data/legacy/db1?version=1", token=vault.root_token)
    assert r.json["data"]["data"] == {"password": "one"}
    assert r.json["data"]["metadata"]["version"] == 1
    r = call(vault, "GET", "/v1/secret/data/legacy/db1?version=0", token=vault.root_token)
    assert r.json["data"]["metadata"]["version"] == 2
    for path in ("/v1/secret/data/legacy/db1?version=9", "/v1/secret/data/legacy/none"):
        r = call(vault, "GET", path, token=vault.root_token)
        assert (r.status, r.json) == (404, {"errors": []}), path


def test_kv2_deleted_destroyed(vault):
    vault.put_kv("secret", "s", {"p": "1"})
    vault.put_kv("secret", "s", {"p": "2"})
    vault.put_kv("secret", "s", {"p": "3"})
    vault.destroy_kv_version("secret", "s", 1)
    vault.delete_kv_version("secret", "s", 2)
    vault.delete_kv_version("secret", "s", 3, when=time.time() + 3600)
    r = call(vault, "GET", "/v1/secret/data/s?version=1", token=vault.root_token)
    assert r.status == 404 and "errors" not in r.json
    assert_envelope(r.json)
    assert r.json["data"]["data"] is None
    assert r.json["data"]["metadata"]["destroyed"] is True
    assert r.json["data"]["metadata"]["deletion_time"] == ""
    r = call(vault, "GET", "/v1/secret/data/s?version=2", token=vault.root_token)
    assert r.status == 404 and "errors" not in r.json
    assert r.json["data"]["data"] is None
    assert r.json["data"]["metadata"]["deletion_time"].endswith("Z")
    assert r.json["data"]["metadata"]["destroyed"] is False
    # A deletion scheduled in the future still reads.
    r = call(vault, "GET", "/v1/secret/data/s", token=vault.root_token)
    assert r.status == 200 and r.json["data"]["data"] == {"p": "3"}
    assert r.json["data"]["metadata"]["deletion_time"] != ""


def test_kv2_metadata_and_wrong_path(vault, hvault):
    vault.put_kv("secret", "s", {"p": "1"}, custom_metadata={"owner": "team"})
    vault.put_kv("secret", "s", {"p": "2"})
    vault.delete_kv_version("secret", "s", 1)
    r = call(vault, "GET", "/v1/secret/metadata/s", token=vault.root_token)
    assert r.status == 200
    assert_envelope(r.json)
    d = r.json["data"]
    assert list(d) == ["cas_required", "created_time", "current_metadata_version",
                       "current_version", "custom_metadata", "delete_version_after",
                       "max_versions", "metadata_cas_required", "oldest_version",
                       "updated_time", "versions"]
    assert d["current_version"] == 2 and d["delete_version_after"] == "0s"
    assert d["custom_metadata"] == {"owner": "team"}
    assert list(d["versions"]) == ["1", "2"]
    assert list(d["versions"]["1"]) == ["created_time", "deletion_time", "destroyed"]
    assert d["versions"]["1"]["deletion_time"] != ""
    assert d["versions"]["2"]["deletion_time"] == ""
    r = call(vault, "GET", "/v1/secret/metadata/none", token=vault.root_token)
    assert (r.status, r.json) == (404, {"errors": []})
    r = call(vault, "LIST", "/v1/secret/metadata/", token=vault.root_token)
    assert r.json["data"] == {"keys": ["s"]}
    r = call(vault, "GET", "/v1/secret/s", token=vault.root_token)
    assert r.status == 404 and "errors" not in r.json
    assert_envelope(r.json)
    assert r.json["data"] is None
    assert "'bao kv get'" in r.json["warnings"][0]
    hvault.put_kv("secret", "s", {"p": "1"})
    r = call(hvault, "GET", "/v1/secret/metadata/s", token=hvault.root_token)
    assert "current_metadata_version" not in r.json["data"]
    assert r.json["mount_type"] == "kv"
    r = call(hvault, "GET", "/v1/secret/s", token=hvault.root_token)
    assert "'vault kv get'" in r.json["warnings"][0]


def test_no_route(vault):
    r = call(vault, "GET", "/v1/nosuchmount/some/path", token=vault.root_token)
    assert r.status == 404
    assert r.json == {"errors": ['no handler for route "nosuchmount/some/path". '
                                 "route entry not found."]}
    r = call(vault, "PUT", "/v1/secret/data/x", {"data": {}}, token=vault.root_token)
    assert (r.status, r.json) == (405, {"errors": ["unsupported operation"]})


# ----- database and leases ------------------------------------------------------

def test_database_creds(vault):
    vault.add_database_role("credgate-ro", default_ttl=600)
    r = call(vault, "GET", "/v1/database/creds/credgate-ro", token=vault.root_token)
    assert r.status == 200
    assert_envelope(r.json)
    prefix = "database/creds/credgate-ro/"
    assert r.json["lease_id"].startswith(prefix)
    suffix = r.json["lease_id"][len(prefix):]
    assert len(suffix) == 24 and suffix.isalnum()
    assert r.json["renewable"] is True and r.json["lease_duration"] == 600
    assert sorted(r.json["data"]) == ["password", "username"]
    r2 = call(vault, "GET", "/v1/database/creds/credgate-ro", token=vault.root_token)
    assert r2.json["data"]["username"] != r.json["data"]["username"]
    assert vault.counters["leases_issued"] == 2
    r = call(vault, "GET", "/v1/database/creds/no-such-role", token=vault.root_token)
    assert (r.status, r.json) == (400, {"errors": ["unknown role: no-such-role"]})
    vault.add_database_role("blocked", allowed=False)
    r = call(vault, "GET", "/v1/database/creds/blocked", token=vault.root_token)
    assert r.status == 500 and '"blocked" is not an allowed role' in r.json["errors"][0]


def test_database_static_creds(vault):
    vault.add_database_static_role("legacy", "fake_legacy_user", "pw1", rotation_period=86400)
    r = call(vault, "GET", "/v1/database/static-creds/legacy", token=vault.root_token)
    assert r.status == 200
    assert_envelope(r.json)
    assert (r.json["lease_id"], r.json["renewable"], r.json["lease_duration"]) == ("", False, 0)
    d = r.json["data"]
    assert list(d) == ["last_vault_rotation", "password", "rotation_period", "ttl", "username"]
    assert d["username"] == "fake_legacy_user" and d["password"] == "pw1"
    assert d["rotation_period"] == 86400 and 86390 <= d["ttl"] <= 86400
    assert isinstance(d["ttl"], int) and d["last_vault_rotation"].endswith("Z")
    new = vault.rotate_static("legacy")
    r = call(vault, "GET", "/v1/database/static-creds/legacy", token=vault.root_token)
    assert r.json["data"]["password"] == new != "pw1"
    r = call(vault, "GET", "/v1/database/static-creds/none", token=vault.root_token)
    assert (r.status, r.json) == (400, {"errors": ["unknown role: none"]})


def new_lease(vault, **kw):
    vault.add_database_role("ro", **kw)
    r = call(vault, "GET", "/v1/database/creds/ro", token=vault.root_token)
    return r.json["lease_id"]


def test_lease_renew(vault):
    lid = new_lease(vault, default_ttl=600, max_ttl=1200)
    r = call(vault, "PUT", "/v1/sys/leases/renew", {"lease_id": lid, "increment": 300},
             token=vault.root_token)
    assert r.status == 200
    assert_envelope(r.json)
    assert (r.json["lease_id"], r.json["renewable"]) == (lid, True)
    assert r.json["lease_duration"] == 300 and r.json["data"] is None
    assert r.json["warnings"] is None
    r = call(vault, "PUT", "/v1/sys/leases/renew/" + lid, {"increment": 3600},
             token=vault.root_token)
    assert r.status == 200
    left = r.json["lease_duration"]
    assert 1190 <= left <= 1200
    assert r.json["warnings"] == [
        'TTL of "1h" exceeded the effective max_ttl of "%s"; TTL value is capped '
        "accordingly" % human_duration(left)]
    assert vault.counters["leases_renewed"] == 2


def test_lease_renew_errors(vault):
    lid = new_lease(vault)
    t = vault.root_token
    cases = [({}, "lease_id must be specified"),
             ({"lease_id": "database/creds/ro/unknown"}, "lease not found"),
             ({"lease_id": "auth/approle/login/abc"},
              "tokens cannot be renewed through this endpoint")]
    for body, msg in cases:
        r = call(vault, "PUT", "/v1/sys/leases/renew", body, token=t)
        assert (r.status, r.json) == (400, {"errors": [msg]}), body
    vault.set_lease_renewable(lid, False)
    r = call(vault, "PUT", "/v1/sys/leases/renew", {"lease_id": lid}, token=t)
    assert (r.status, r.json) == (400, {"errors": ["lease is not renewable"]})
    vault.set_lease_renewable(lid, True)
    vault.expire_lease(lid, revoke=False)
    r = call(vault, "PUT", "/v1/sys/leases/renew", {"lease_id": lid}, token=t)
    assert (r.status, r.json) == (400, {"errors": ["lease expired"]})
    vault.expire_lease(lid)
    r = call(vault, "PUT", "/v1/sys/leases/renew", {"lease_id": lid}, token=t)
    assert (r.status, r.json) == (400, {"errors": ["lease not found"]})
    assert lid not in vault.active_leases()
    assert call(vault, "GET", "/v1/sys/leases/renew", token=t).status == 405
    r = call(vault, "PUT", "/v1/sys/leases/renew", {"lease_id": lid})
    assert (r.status, r.json) == (403, BAD_TOKEN)


def test_lease_lookup(vault):
    lid = new_lease(vault, default_ttl=3600)
    r = call(vault, "PUT", "/v1/sys/leases/lookup", {"lease_id": lid}, token=vault.root_token)
    assert r.status == 200
    assert_envelope(r.json)
    d = r.json["data"]
    assert list(d) == ["expire_time", "id", "issue_time", "last_renewal", "renewable", "ttl"]
    assert d["id"] == lid and d["last_renewal"] is None and d["renewable"] is True
    assert 3590 <= d["ttl"] <= 3600
    call(vault, "PUT", "/v1/sys/leases/renew", {"lease_id": lid}, token=vault.root_token)
    r = call(vault, "PUT", "/v1/sys/leases/lookup", {"lease_id": lid}, token=vault.root_token)
    assert r.json["data"]["last_renewal"].endswith("Z")
    r = call(vault, "PUT", "/v1/sys/leases/lookup", {"lease_id": "x/y"}, token=vault.root_token)
    assert (r.status, r.json) == (400, {"errors": ["invalid lease"]})
    r = call(vault, "PUT", "/v1/sys/leases/lookup", {}, token=vault.root_token)
    assert (r.status, r.json) == (400, {"errors": ["lease_id must be specified"]})


def test_lease_revoke(vault):
    lid = new_lease(vault)
    lid2 = call(vault, "GET", "/v1/database/creds/ro", token=vault.root_token).json["lease_id"]
    r = call(vault, "PUT", "/v1/sys/leases/revoke", {"lease_id": lid}, token=vault.root_token)
    assert (r.status, r.raw) == (204, b"")
    r = call(vault, "PUT", "/v1/sys/leases/renew", {"lease_id": lid}, token=vault.root_token)
    assert (r.status, r.json) == (400, {"errors": ["lease not found"]})
    r = call(vault, "PUT", "/v1/sys/leases/revoke/" + lid2, {"sync": False},
             token=vault.root_token)
    assert (r.status, r.raw) == (202, b"")
    r = call(vault, "PUT", "/v1/sys/leases/revoke", {}, token=vault.root_token)
    assert (r.status, r.json) == (400, {"errors": ["lease_id must be specified"]})
    assert vault.counters["leases_revoked"] == 2
    assert vault.active_leases() == []


# ----- sealed, standby, namespaces --------------------------------------------------

def test_sealed_everywhere(vault):
    vault.add_approle("credgate", "role-1", "secret-1")
    vault.sealed = True
    t = vault.root_token
    for method, path, body in [
            ("PUT", "/v1/auth/approle/login", {"role_id": "role-1", "secret_id": "secret-1"}),
            ("GET", "/v1/auth/token/lookup-self", None),
            ("PUT", "/v1/auth/token/renew-self", {}),
            ("GET", "/v1/secret/data/a", None),
            ("GET", "/v1/kv/a", None),
            ("GET", "/v1/database/creds/ro", None),
            ("PUT", "/v1/sys/leases/renew", {"lease_id": "x"})]:
        r = call(vault, method, path, body, token=t)
        assert (r.status, r.json) == (503, {"errors": ["Vault is sealed"]}), path


def test_standby_redirect(vault):
    vault.put_kv("secret", "a", {"k": "v"})
    vault.standby = True
    # By default a standby forwards and the answer is the active node's.
    assert call(vault, "GET", "/v1/secret/data/a", token=vault.root_token).status == 200
    r = call(vault, "GET", "/v1/secret/data/a?version=1", token=vault.root_token,
             headers={"X-Vault-No-Request-Forwarding": "true"})
    assert r.status == 307 and r.raw == b""
    assert "Content-Type" not in r.headers
    assert r.headers["Location"] == vault.url + "/v1/secret/data/a?version=1"
    vault.standby_redirect = True
    vault.active_address = "https://active.test:8200"
    r = call(vault, "GET", "/v1/secret/data/a", token=vault.root_token)
    assert r.status == 307
    assert r.headers["Location"] == "https://active.test:8200/v1/secret/data/a"


def test_namespaces(vault, hvault):
    vault.add_kv_mount("secret", version=2, namespace="team1/")
    vault.put_kv("secret", "a", {"k": "ns"}, namespace="team1")
    vault.put_kv("secret", "a", {"k": "root"})
    t = vault.root_token
    r = call(vault, "GET", "/v1/secret/data/a", token=t, headers={"X-Vault-Namespace": "team1/"})
    assert r.json["data"]["data"] == {"k": "ns"}
    assert r.headers["X-Vault-Namespace"] == "team1/"
    r = call(vault, "GET", "/v1/team1/secret/data/a", token=t)
    assert r.json["data"]["data"] == {"k": "ns"}
    assert "X-Vault-Namespace" not in r.headers
    assert call(vault, "GET", "/v1/secret/data/a", token=t).json["data"]["data"] == {"k": "root"}
    # A token from a child namespace is no good in the root namespace.
    vault.add_approle("credgate", "r", "s", namespace="team1")
    vault.add_database_mount("database", namespace="team1")
    vault.add_database_role("ro", namespace="team1")
    r = call(vault, "PUT", "/v1/auth/approle/login", {"role_id": "r", "secret_id": "s"},
             headers={"X-Vault-Namespace": "team1"})
    assert r.status == 200
    tok = r.json["auth"]["client_token"]
    assert call(vault, "GET", "/v1/secret/data/a", token=tok).status == 403
    r = call(vault, "GET", "/v1/team1/database/creds/ro", token=tok)
    assert r.status == 200
    lid = r.json["lease_id"]
    assert lid.startswith("database/creds/ro/")
    assert lid.rsplit(".", 1)[1] == vault.namespaces["team1/"]
    r = call(vault, "PUT", "/v1/sys/leases/lookup", {"lease_id": lid}, token=tok,
             headers={"X-Vault-Namespace": "team1"})
    assert r.status == 200
    hvault.add_kv_mount("secret", namespace="team1")
    hvault.put_kv("secret", "a", {"k": "v"}, namespace="team1")
    r = call(hvault, "GET", "/v1/secret/data/a", token=hvault.root_token,
             headers={"X-Vault-Namespace": "team1"})
    assert r.status == 200 and "X-Vault-Namespace" not in r.headers


# ----- failure injection, latency, log ------------------------------------------------

def test_inject_failures(vault):
    vault.put_kv("secret", "legacy/db1", {"k": "v"})
    t = vault.root_token
    vault.inject_failures(2, 500)
    for _ in range(2):
        r = call(vault, "GET", "/v1/secret/data/legacy/db1", token=t)
        assert r.status == 500 and len(r.json["errors"]) == 1
    assert call(vault, "GET", "/v1/secret/data/legacy/db1", token=t).status == 200
    vault.inject_failures(1, 429, retry_after=2)
    r = call(vault, "GET", "/v1/secret/data/legacy/db1", token=t)
    assert r.status == 429 and r.headers["Retry-After"] == "2"
    assert r.json == {"errors": ['request path "secret/data/legacy/db1": rate limit quota '
                                 "exceeded"]}
    vault.inject_failures(1, 503, path="/v1/sys/leases/*")
    assert call(vault, "GET", "/v1/secret/data/legacy/db1", token=t).status == 200
    r = call(vault, "PUT", "/v1/sys/leases/lookup", {"lease_id": "x"}, token=t)
    assert (r.status, r.json) == (503, {"errors": ["Vault is sealed"]})
    assert vault.count(kind="fault") == 4


def test_dropped_connection(vault):
    vault.drop_connections(1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        call(vault, "GET", "/v1/sys/health")
    assert call(vault, "GET", "/v1/sys/health").status == 200
    assert vault.requests()[0]["status"] == "drop"


def test_latency(vault):
    vault.set_latency(0.3, path="/v1/secret/*")
    t0 = time.monotonic()
    call(vault, "GET", "/v1/sys/health")
    assert time.monotonic() - t0 < 0.25
    t0 = time.monotonic()
    call(vault, "GET", "/v1/secret/data/x", token=vault.root_token)
    assert time.monotonic() - t0 >= 0.3
    vault.set_latency(0, path="/v1/secret/*")
    t0 = time.monotonic()
    call(vault, "GET", "/v1/secret/data/x", token=vault.root_token)
    assert time.monotonic() - t0 < 0.25


def test_request_log(vault):
    vault.add_kv_mount("secret", namespace="team1")
    vault.add_approle("credgate", "role-1", "secret-1")
    call(vault, "POST", "/v1/auth/approle/login", {"role_id": "role-1", "secret_id": "secret-1"},
         headers={"X-Vault-Request": "true"})
    call(vault, "GET", "/v1/secret/data/a?version=2", token=vault.root_token,
         headers={"X-Vault-Namespace": "team1"})
    call(vault, "GET", "/v1/sys/health")
    login, read, health = vault.requests()
    assert login["method"] == "POST" and login["path"] == "/v1/auth/approle/login"
    assert login["kind"] == "login:approle" and login["status"] == 200
    assert login["headers"]["x-vault-request"] == "true"
    assert login["body"] == {"role_id": "role-1", "secret_id": "secret-1"}
    assert read["query"] == {"version": "2"} and read["kind"] == "kv2-read"
    assert read["headers"]["x-vault-token"] == vault.root_token
    assert read["headers"]["x-vault-namespace"] == "team1"
    assert health["kind"] == "health"
    assert vault.count(kind="login") == 1
    assert vault.count(path="/v1/secret/*") == 1
    assert vault.count(method="GET") == 2
    assert vault.count(status=404) == 1
    vault.clear_log()
    assert vault.count() == 0


def test_request_too_large(vault):
    with socket.create_connection(("127.0.0.1", vault.port), timeout=5) as s:
        s.sendall(b"PUT /v1/sys/leases/renew HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 40000000\r\n\r\n")
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 413 ")
