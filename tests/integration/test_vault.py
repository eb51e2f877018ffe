"""credgate with secrets.backend = "vault", against the Vault-compatible
test server (vault_server.py) and a real nginx that checks HTTP Basic.

Each test starts its own test server on a free loopback port, logs in with
one of the auth methods, and reads the credential nginx expects from it.
The server's request log shows what credgate asked for; the teardown of
make_stack checks that the secret never reached a log, the audit or a
client.
"""

import os
import time

import pytest

from conftest import CANARY, SECRET_USER, wait_for
from vault_server import VaultServer

ROLE_ID = "role-id-for-tests"
SECRET_ID = "secret-id-for-tests"


@pytest.fixture
def vault():
    v = VaultServer()
    v.start()
    yield v
    v.stop()


def write_secret_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def vault_secrets(s, vault, method="approle", auth=None, **over):
    """The secrets group for stack s: backend vault at the test server,
    logging in with method (files written into s's folder)."""
    d = s.cg.dir
    a = {"method": method}
    if method == "approle":
        vault.add_approle("credgate", ROLE_ID, SECRET_ID)
        a["role_id_file"] = write_secret_file(os.path.join(d, "role_id"), ROLE_ID + "\n")
        a["secret_id_file"] = write_secret_file(os.path.join(d, "secret_id"), SECRET_ID)
    elif method == "token":
        tok = vault.create_token(ttl=3600)
        a["token_file"] = write_secret_file(os.path.join(d, "vault-token"), tok)
    a.update(auth or {})
    v = {"address": vault.url, "auth": a, "retries": 2, "backoff": "50ms",
         "backoff_max": "200ms", "request_timeout": "3s", "connect_timeout": "2s",
         "kv1_mounts": ["kv"]}
    v.update(over)
    return {"backend": "vault", "vault": v}


def start_vault_stack(make_stack, vault, path="secret/legacy/app", method="approle",
                      auth=None, secrets=None, routes=("legacy",), credgate_extra=None,
                      before=None, **vault_over):
    """credgate reads every route's secret once it starts: before() runs
    just ahead of that (to inject faults)."""
    s = make_stack(start=False)
    store = vault_secrets(s, vault, method, auth, **vault_over)
    store.update(secrets or {})
    over = {r: {"credential": {"path": path, "inject": "basic"}} for r in routes}
    if before is not None:
        before()
    s.start(routes=routes, route_over=over, secrets_extra=store,
            credgate_extra=credgate_extra)
    return s


def put_legacy(vault, password=CANARY):
    return vault.put_kv("secret", "legacy/app", {"username": SECRET_USER,
                                                 "password": password})


def test_approle_login_and_kv2_read(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault)
    r = s.curl()
    assert r.status == 200, s.dump()
    logins = vault.requests(kind="login")
    assert len(logins) == 1
    assert logins[0]["path"] == "/v1/auth/approle/login"
    assert logins[0]["body"] == {"role_id": ROLE_ID, "secret_id": SECRET_ID}
    reads = vault.requests(kind="kv2-read")
    assert [e["path"] for e in reads] == ["/v1/secret/data/legacy/app"]
    assert reads[0]["headers"]["x-vault-request"] == "true"
    tok = reads[0]["headers"]["x-vault-token"]
    assert vault.token_info(tok).path.startswith("auth/approle")
    # Served from the cache afterwards: no more reads.
    for _ in range(5):
        assert s.curl().status == 200
    assert vault.count(kind="kv2-read") == 1
    dec = s.cg.audit_where(lambda e: e.get("event") == "decision")
    assert dec and dec[-1]["credential"]["source"] == "vault"
    assert dec[-1]["credential"]["version"] == "1"


def test_token_file_login(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, method="token")
    assert s.curl().status == 200, s.dump()
    assert vault.count(kind="token-lookup") == 1
    assert vault.count(kind="login") == 0


def test_kv1_read(make_stack, vault):
    vault.put_kv("kv", "legacy/app", {"username": SECRET_USER, "password": CANARY})
    s = start_vault_stack(make_stack, vault, path="kv/legacy/app")
    assert s.curl().status == 200, s.dump()
    assert [e["path"] for e in vault.requests(kind="kv1-read")] == ["/v1/kv/legacy/app"]


def test_kv2_pinned_version(make_stack, vault):
    put_legacy(vault)
    put_legacy(vault, password="not-the-one-nginx-takes")
    s = start_vault_stack(make_stack, vault, path="secret/legacy/app?version=1")
    assert s.curl().status == 200, s.dump()
    reads = vault.requests(kind="kv2-read")
    assert reads[0]["query"] == {"version": "1"}


def test_missing_secret_is_refused_with_its_reason(make_stack, vault):
    s = start_vault_stack(make_stack, vault, path="secret/legacy/none")
    r = s.curl()
    assert r.status in (502, 503), s.dump()
    assert CANARY not in r.body.decode("latin-1")
    errs = s.cg.audit_where(lambda e: e.get("event") == "error")
    assert errs and "secret_not_found" in errs[-1]["reason"]
    assert "reason=\"secret_not_found\"" in s.cg.stderr()


def test_server_errors_are_retried_with_backoff(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault,
                          before=lambda: vault.inject_failures(2, 500, path="/v1/secret/*"))
    r = s.curl()
    assert r.status == 200, s.dump()
    faults = vault.requests(kind="fault")
    reads = vault.requests(kind="kv2-read")
    assert len(faults) == 2 and len(reads) == 1
    gaps = [b["time"] - a["time"] for a, b in zip(faults, faults[1:] + reads)]
    assert all(g >= 0.02 for g in gaps), gaps


def test_rate_limit_past_the_retries_fails_then_recovers(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, secrets={"negative_ttl": "1s"},
                          before=lambda: vault.inject_failures(3, 429, path="/v1/secret/*"))
    r = s.curl()
    assert r.status in (502, 503)
    assert vault.count(kind="fault") == 3        # one try and two retries
    errs = s.cg.audit_where(lambda e: e.get("event") == "error")
    assert errs and "vault_rate_limited" in errs[-1]["reason"]
    time.sleep(1.1)
    assert s.curl().status == 200


def test_revoked_token_leads_to_one_new_login(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, secrets={"cache_ttl": "1s"})
    assert s.curl().status == 200
    tok = vault.requests(kind="kv2-read")[0]["headers"]["x-vault-token"]
    vault.revoke_token(tok)
    time.sleep(1.1)
    assert s.curl().status == 200, s.dump()
    assert vault.count(kind="login") == 2, [(e["kind"], e["path"], e["status"])
                                            for e in vault.requests()]
    assert vault.count(path="/v1/secret/data/legacy/app", status=403) == 1


def test_kv2_rotation_is_picked_up(make_stack, vault):
    put_legacy(vault, password="old-password")
    s = start_vault_stack(make_stack, vault, secrets={"cache_ttl": "1s"})
    assert s.curl().status == 401        # nginx wants CANARY
    put_legacy(vault)
    assert wait_for(lambda: s.curl().status == 200, timeout=5), s.dump()
    dec = s.cg.audit_where(lambda e: e.get("event") == "decision")
    assert dec[-1]["credential"]["version"] == "2"


def test_vault_down_serves_cached_until_max_stale(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault,
                          secrets={"cache_ttl": "1s", "max_stale": "2s",
                                   "negative_ttl": "200ms"})
    assert s.curl().status == 200
    vault.inject_failures(10000, 503, path="/v1/secret/*")
    time.sleep(1.2)
    assert s.curl().status == 200, s.dump()     # stale, within max_stale
    dec = s.cg.audit_where(lambda e: e.get("event") == "decision")
    assert dec[-1]["credential"].get("stale") is True
    assert wait_for(lambda: s.curl().status in (502, 503), timeout=6), s.dump()
    vault.clear_faults()
    assert wait_for(lambda: s.curl().status == 200, timeout=5)


@pytest.mark.parametrize("workers", [2, 4])
def test_one_login_and_one_read_with_workers(make_stack, vault, workers):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, credgate_extra={"workers": workers})
    for _ in range(12):
        assert s.curl().status == 200
    assert vault.count(kind="login") == 1
    assert vault.count(kind="kv2-read") == 1
