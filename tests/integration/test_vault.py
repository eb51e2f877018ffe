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

from conftest import CANARY, SECRET_USER, admin_get, wait_for
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
    elif method == "token" and "token_file" not in (auth or {}):
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
    from conftest import free_port
    put_legacy(vault)
    port = free_port()
    s = start_vault_stack(make_stack, vault,
                          secrets={"cache_ttl": "1s", "max_stale": "2s",
                                   "negative_ttl": "200ms"},
                          credgate_extra={"admin": {"listen": f"127.0.0.1:{port}"}})
    assert s.curl().status == 200
    vault.inject_failures(10000, 503, path="/v1/secret/*")
    time.sleep(1.2)
    assert s.curl().status == 200, s.dump()     # stale, within max_stale
    dec = s.cg.audit_where(lambda e: e.get("event") == "decision")
    assert dec[-1]["credential"].get("stale") is True
    # Still ready: what is cached is served.
    st, body = admin_get(port, "/readyz")
    assert st == 200 and "cached secrets served" in body, body
    assert wait_for(lambda: s.curl().status in (502, 503), timeout=6), s.dump()
    st, body = admin_get(port, "/readyz")
    assert st == 503 and "vault_sealed" in body, body    # the 503 says sealed
    vault.clear_faults()
    assert wait_for(lambda: s.curl().status == 200, timeout=5)
    assert wait_for(lambda: admin_get(port, "/readyz")[0] == 200, timeout=5)


@pytest.mark.parametrize("workers", [2, 4])
def test_one_login_and_one_read_with_workers(make_stack, vault, workers):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, credgate_extra={"workers": workers})
    for _ in range(12):
        assert s.curl().status == 200
    assert vault.count(kind="login") == 1
    assert vault.count(kind="kv2-read") == 1


def basic_of(capture):
    """The (user, password) of the last request the capture upstream saw."""
    import base64
    req = capture.requests[-1]
    value = capture.fields(req, "Authorization")[0]
    assert value.startswith("Basic ")
    user, _, pw = base64.b64decode(value[6:]).decode().partition(":")
    return user, pw


def test_dynamic_creds_lease_renewed_then_revoked_at_shutdown(make_stack, vault):
    vault.add_database_role("app", default_ttl=3, max_ttl=600)
    s = start_vault_stack(make_stack, vault, path="database/creds/app", routes=("capture",))
    r = s.curl(route="capture")
    assert r.status == 200, s.dump()
    user, pw = basic_of(s.capture)
    leases = vault.active_leases()
    assert len(leases) == 1
    assert vault.lease(leases[0]).data == {"username": user, "password": pw}
    # Renewed ahead of its end (three fifths of 3 s), more than once,
    # while it is in use.
    def used_and_renewed():
        assert s.curl(route="capture").status == 200
        return vault.counters["leases_renewed"] >= 2
    assert wait_for(used_and_renewed, timeout=6, interval=0.3), s.dump()
    assert vault.active_leases() == leases
    assert s.curl(route="capture").status == 200
    assert basic_of(s.capture) == (user, pw)
    assert vault.counters["leases_issued"] == 1
    s.cg.stop()
    assert vault.counters["leases_revoked"] == 1
    assert vault.active_leases() == []
    revokes = vault.requests(kind="lease-revoke")
    assert revokes and revokes[0]["body"] == {"lease_id": leases[0]}


def test_unused_dynamic_lease_is_revoked(make_stack, vault):
    """A shared dynamic credential nobody uses any more is not renewed:
    its lease is revoked at the time it would have been renewed."""
    vault.add_database_role("app", default_ttl=3, max_ttl=600)
    s = start_vault_stack(make_stack, vault, path="database/creds/app", routes=("capture",))
    assert s.curl(route="capture").status == 200
    assert wait_for(lambda: vault.counters["leases_revoked"] == 1, timeout=5), s.dump()
    assert vault.counters["leases_renewed"] == 0
    assert vault.active_leases() == []
    assert s.curl(route="capture").status == 200      # a new one when asked
    assert vault.counters["leases_issued"] == 2


def test_static_creds_follow_rotation(make_stack, vault):
    vault.add_database_static_role("legacy", SECRET_USER, "before-rotation",
                                   rotation_period=3)
    s = start_vault_stack(make_stack, vault, path="database/static-creds/legacy")
    assert s.curl().status == 401          # nginx wants CANARY
    vault.rotate_static("legacy", CANARY)
    # Re-read ahead of the next rotation (two thirds of what was left).
    assert wait_for(lambda: s.curl().status == 200, timeout=5), s.dump()
    assert vault.count(kind="db-static-creds") >= 2


def test_metrics_and_readyz_show_vault(make_stack, vault):
    import urllib.request
    from conftest import free_port
    put_legacy(vault)
    port = free_port()
    s = start_vault_stack(make_stack, vault, credgate_extra={"admin": {
        "listen": f"127.0.0.1:{port}"}}, secrets={"cache_ttl": "1s", "max_stale": "0s"})
    assert s.curl().status == 200

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    st, body = get("/readyz")
    assert st == 200 and "vault reachable, token ttl" in body, body
    st, m = get("/metrics")
    assert "credgate_vault_up 1" in m
    assert "credgate_vault_logins_total 1" in m
    assert "credgate_vault_reads_total 1" in m
    assert 'credgate_vault_failures_total{reason="secret_not_found"} 0' in m
    ttl = [int(l.split()[1]) for l in m.splitlines()
           if l.startswith("credgate_vault_token_ttl_seconds ")][0]
    assert 3000 < ttl <= 3600
    assert CANARY not in m
    with vault.lock:
        vault.sealed = True
    time.sleep(1.1)
    s.curl()            # the entry expired: a refresh meets the sealed Vault
    assert wait_for(lambda: "vault_sealed" in get("/readyz")[1], timeout=8), get("/readyz")
    assert get("/readyz")[0] == 503
    st, m = get("/metrics")
    assert 'credgate_vault_failures_total{reason="vault_sealed"} 0' not in m, m


@pytest.mark.parametrize("method", ["kubernetes", "jwt"])
def test_jwt_style_logins(make_stack, vault, method):
    put_legacy(vault)
    jwt_text = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjcmVkZ2F0ZSJ9.c2lnbmF0dXJl"
    if method == "kubernetes":
        vault.add_kubernetes_role("credgate", jwt_text, mount="k8s-prod")
    else:
        vault.add_jwt_role("credgate", jwt_text)
    s = make_stack(start=False)
    jwt_file = write_secret_file(os.path.join(s.cg.dir, "sa-token"), jwt_text + "\n")
    auth = {"role": "credgate", "jwt_file": jwt_file}
    if method == "kubernetes":
        auth["mount"] = "k8s-prod"
    store = vault_secrets(s, vault, method, auth)
    s.start(route_over={"legacy": {"credential": {"path": "secret/legacy/app",
                                                  "inject": "basic"}}},
            secrets_extra=store)
    assert s.curl().status == 200, s.dump()
    logins = vault.requests(kind="login")
    assert len(logins) == 1 and logins[0]["status"] == 200
    mount = "k8s-prod" if method == "kubernetes" else "jwt"
    assert logins[0]["path"] == f"/v1/auth/{mount}/login"
    assert logins[0]["body"] == {"role": "credgate", "jwt": jwt_text}


def test_cert_login_over_tls_with_server_name(make_stack, vault, tmp_path):
    import hashlib
    from cryptography.hazmat.primitives import serialization
    from conftest import Pki
    pki = Pki(tmp_path / "pki", "vault-ca")
    crt, key, _ = pki.issue("vault", "vault.test", dns=["vault.test"], server=True)
    ccrt, ckey, ccert = pki.issue("credgate", "credgate", client=True)
    tv = VaultServer(cert=crt, key=key, client_ca=pki.ca_file)
    tv.start()
    try:
        put_legacy(tv)
        fp = hashlib.sha256(ccert.public_bytes(serialization.Encoding.DER)).hexdigest()
        tv.add_cert_role("credgate", fingerprint=fp)
        s = make_stack(start=False)
        store = vault_secrets(s, tv, "cert", {"role": "credgate"},
                              tls={"ca_file": pki.ca_file, "server_name": "vault.test",
                                   "cert": ccrt, "key": ckey})
        assert tv.url.startswith("https://127.0.0.1:")
        s.start(route_over={"legacy": {"credential": {"path": "secret/legacy/app",
                                                      "inject": "basic"}}},
                secrets_extra=store)
        assert s.curl().status == 200, s.dump()
        logins = tv.requests(kind="login")
        assert [e["path"] for e in logins] == ["/v1/auth/cert/login"]
        assert logins[0]["body"] == {"name": "credgate"}
    finally:
        tv.stop()


def test_untrusted_vault_certificate_is_refused(make_stack, tmp_path):
    from conftest import Pki
    pki = Pki(tmp_path / "pki", "vault-ca")
    crt, key, _ = pki.server("vault")
    tv = VaultServer(cert=crt, key=key)
    tv.start()
    try:
        put_legacy(tv)
        # No ca_file: the system's CAs do not know this one.
        s = start_vault_stack(make_stack, tv)
        r = s.curl()
        assert r.status in (502, 503)
        assert tv.count() == 0           # no request got through TLS
        assert "vault_unavailable" in s.cg.stderr()
    finally:
        tv.stop()


def test_namespace_header(make_stack, vault):
    vault.add_namespace("team-a/")
    vault.add_kv_mount("secret", version=2, namespace="team-a/")
    vault.put_kv("secret", "legacy/app", {"username": SECRET_USER, "password": CANARY},
                 namespace="team-a/")
    s = make_stack(start=False)
    tok = vault.create_token(namespace="team-a/")
    tf = write_secret_file(os.path.join(s.cg.dir, "vault-token"), tok)
    store = vault_secrets(s, vault, "token", {"token_file": tf}, namespace="team-a/")
    s.start(route_over={"legacy": {"credential": {"path": "secret/legacy/app",
                                                  "inject": "basic"}}},
            secrets_extra=store)
    assert s.curl().status == 200, s.dump()
    for e in vault.requests():
        assert e["headers"].get("x-vault-namespace") == "team-a/"


def test_bad_config_is_named(make_stack, vault, credgate_bin):
    from conftest import run_credgate
    s = make_stack(start=False)
    store = vault_secrets(s, vault, "approle", kv2_mounts=["kv-prod"])
    s.cg.write_config(s.cg.config([s.route("legacy", credential={
        "path": "secret/legacy/app", "inject": "basic"})], None, None, store))
    rc, _, err = run_credgate(credgate_bin, ["-t", "-c", s.cg.conf_file])
    assert rc != 0
    assert "routes.[0].credential.path: secret/legacy/app: under none of the mounts" in err


def test_token_renewed_before_it_ends(make_stack, vault):
    put_legacy(vault)
    s = make_stack(start=False)
    tok = vault.create_token(ttl=3, max_ttl=600, renewable=True)
    tf = write_secret_file(os.path.join(s.cg.dir, "vault-token"), tok)
    store = vault_secrets(s, vault, "token", {"token_file": tf})
    s.start(route_over={"legacy": {"credential": {"path": "secret/legacy/app",
                                                  "inject": "basic"}}},
            secrets_extra=store)
    assert s.curl().status == 200
    assert wait_for(lambda: vault.count(kind="token-renew", status=200) >= 2, timeout=6), \
        [(e["kind"], e["path"], e["status"]) for e in vault.requests()]
    assert vault.token_info(tok).valid(time.time_ns())


def test_non_renewable_login_is_replaced_before_it_ends(make_stack, vault):
    put_legacy(vault)
    s = make_stack(start=False)
    store = vault_secrets(s, vault, "approle")
    vault.add_approle("credgate", ROLE_ID, SECRET_ID, ttl=3, renewable=False)
    s.start(route_over={"legacy": {"credential": {"path": "secret/legacy/app",
                                                  "inject": "basic"}}},
            secrets_extra=store)
    assert s.curl().status == 200
    assert wait_for(lambda: vault.count(kind="login") >= 3, timeout=6)
    assert vault.count(kind="token-renew") == 0


def test_changed_token_file_is_read_again(make_stack, vault):
    put_legacy(vault)
    s = make_stack(start=False)
    old = vault.create_token()
    tf = write_secret_file(os.path.join(s.cg.dir, "vault-token"), old)
    store = vault_secrets(s, vault, "token", {"token_file": tf},)
    s.start(route_over={"legacy": {"credential": {"path": "secret/legacy/app",
                                                  "inject": "basic"}}},
            secrets_extra=dict(store, cache_ttl="1s"))
    assert s.curl().status == 200
    new = vault.create_token()
    write_secret_file(tf + ".new", new)
    os.rename(tf + ".new", tf)
    vault.revoke_token(old)
    time.sleep(1.2)
    assert s.curl().status == 200, s.dump()
    reads = vault.requests(kind="kv2-read", status=200)
    assert reads[-1]["headers"]["x-vault-token"] == new


def test_postgres_logs_in_with_vault_static_creds_across_rotation(pg, keys, credgate_bin,
                                                                   tmp_path, vault):
    """A PostgreSQL route whose service account's password Vault rotates:
    an open session keeps its login; the next upstream login, after the
    rotation, uses the new password."""
    from conftest import PgStack, stack_problems
    vault.add_database_static_role("ledger-svc", "svc_scram", pg.passwords["svc_scram"],
                                   rotation_period=3)
    s = PgStack(tmp_path / "pg", keys, credgate_bin, pg)
    store = vault_secrets(s, vault, "approle")
    plain = s.cg.config
    s.cg.config = lambda routes, extra=None, *_, **__: plain(routes, extra, None, store)
    s.start([s.route("pgv", credential={"path": "database/static-creds/ledger-svc"},
                     postgres_over={"allow_plaintext_token": True})])
    try:
        assert s.psql_ok("pgv", "select current_user").strip() == "svc_scram"
        held = s.connect("pgv")
        assert s.query(held, "select 1") == [(1,)]
        new = "pgpw-rotated-" + os.urandom(8).hex()
        pg.set_password("svc_scram", new)
        vault.rotate_static("ledger-svc", new)
        first = s.cg.audit_where(lambda e: e.get("event") == "decision")[0]
        old_version = first["credential"]["version"]
        assert old_version.startswith("h")

        def new_login():
            # The entry is re-read ahead of the rotation Vault announced;
            # until then a pooled login of the old version may serve.
            rc = s.psql("pgv", "select 2")[0]
            last = s.cg.audit_where(lambda e: e.get("event") == "decision")[-1]
            return rc == 0 and last["credential"]["version"] != old_version
        assert wait_for(new_login, timeout=8, interval=0.3), s.dump()
        assert s.query(held, "select 3") == [(3,)]      # the open session goes on
    finally:
        s.close_clients()
        problems = stack_problems(s)
        assert not problems, "; ".join(problems)


def test_steady_load_asks_vault_almost_never(make_stack, vault):
    """1,000 caller requests on 4 connections over two workers: Vault sees
    the one login and the one read of the start, and nothing more."""
    import http.client
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, credgate_extra={"workers": 2})
    tok = s.token()
    conns = [http.client.HTTPConnection("127.0.0.1", s.ports["legacy"], timeout=10)
             for _ in range(4)]
    ok = 0
    for i in range(1000):
        c = conns[i % 4]
        c.request("GET", "/a.txt", headers={"Authorization": "Bearer " + tok})
        r = c.getresponse()
        r.read()
        ok += r.status == 200
    for c in conns:
        c.close()
    assert ok == 1000
    print(f"vault requests for 1000 caller requests: {vault.count()}")
    assert vault.count() == 2
    assert vault.count(kind="login") == 1 and vault.count(kind="kv2-read") == 1


def test_per_session_credentials_over_http(make_stack, vault):
    """Each caller connection gets a database credential of its own, kept
    for its requests and revoked when it closes."""
    import http.client
    vault.add_database_role("app", default_ttl=600)
    s = make_stack(start=False)
    store = vault_secrets(s, vault, "approle")
    s.start(routes=("capture",), secrets_extra=store, route_over={"capture": {
        "credential": {"path": "database/creds/app", "inject": "basic",
                       "per_session": True}}})
    assert vault.counters["leases_issued"] == 0        # nothing fetched ahead
    tok = s.token()
    seen = []
    conns = [http.client.HTTPConnection("127.0.0.1", s.ports["capture"], timeout=10)
             for _ in range(2)]
    for c in conns:
        creds = set()
        for _ in range(3):
            c.request("GET", "/x", headers={"Authorization": "Bearer " + tok})
            r = c.getresponse()
            r.read()
            assert r.status == 200
            creds.add(basic_of(s.capture))
        assert len(creds) == 1                  # the same for its requests
        seen.append(creds.pop())
    assert seen[0] != seen[1]
    assert vault.counters["leases_issued"] == 2
    assert len(vault.active_leases()) == 2
    for c in conns:
        c.close()
    assert wait_for(lambda: vault.counters["leases_revoked"] == 2, timeout=5), s.dump()
    assert vault.active_leases() == []


def test_per_session_needs_vault_database_creds(make_stack, vault, credgate_bin):
    from conftest import run_credgate
    s = make_stack(start=False)
    store = vault_secrets(s, vault, "approle")
    s.cg.write_config(s.cg.config([s.route("legacy", credential={
        "path": "secret/legacy/app", "inject": "basic", "per_session": True})],
        None, None, store))
    rc, _, err = run_credgate(credgate_bin, ["-t", "-c", s.cg.conf_file])
    assert rc != 0
    assert "routes.[0].credential.per_session: secret/legacy/app: a credential per " \
           "session needs a database mount's creds/<role> path" in err
    s.cg.write_config(s.cg.config([s.route("legacy", credential={
        "path": "legacy/app", "inject": "basic", "per_session": True})]))
    rc, _, err = run_credgate(credgate_bin, ["-t", "-c", s.cg.conf_file])
    assert rc != 0 and "needs secrets.backend = \"vault\"" in err


def test_per_session_postgres_users(pg, keys, credgate_bin, tmp_path, vault):
    """Every PostgreSQL session through credgate logs in as a database
    user of its own, which Vault made for it and which is dropped when the
    session ends."""
    from conftest import PgStack, stack_problems
    vault.add_database_role("ledger-rw", default_ttl=600,
                            on_create=pg.create_dynamic_user,
                            on_revoke=pg.drop_dynamic_user)
    s = PgStack(tmp_path / "pg", keys, credgate_bin, pg)
    store = vault_secrets(s, vault, "approle")
    plain = s.cg.config
    s.cg.config = lambda routes, extra=None, *_, **__: plain(routes, extra, None, store)
    s.start([s.route("pgs", credential={"path": "database/creds/ledger-rw",
                                        "per_session": True},
                     postgres_over={"allow_plaintext_token": True})])
    try:
        a = s.connect("pgs")
        b = s.connect("pgs")
        ua = s.query(a, "select current_user")[0][0]
        ub = s.query(b, "select current_user")[0][0]
        assert ua != ub and ua.startswith("v-database-ledger-rw-")
        assert sorted(pg.roles_like("v-database-%")) == sorted([ua, ub])
        assert vault.counters["leases_issued"] == 2
        a.close()
        assert wait_for(lambda: pg.roles_like("v-database-%") == [ub], timeout=5), s.dump()
        assert s.query(b, "select 1") == [(1,)]
        b.close()
        assert wait_for(lambda: pg.roles_like("v-database-%") == [], timeout=5)
        # The server counts a revocation once its statements ran.
        assert wait_for(lambda: vault.counters["leases_revoked"] == 2, timeout=5)
        # A third session: a third user; none is ever pooled for another.
        assert s.psql_ok("pgs", "select current_user").strip().endswith("-0003")
        assert wait_for(lambda: pg.roles_like("v-database-%") == [], timeout=5)
    finally:
        s.close_clients()
        problems = stack_problems(s)
        assert not problems, "; ".join(problems)


@pytest.mark.parametrize("workers", [2, 4])
def test_one_lease_for_a_shared_dynamic_credential(make_stack, vault, workers):
    vault.add_database_role("app", default_ttl=600)
    s = start_vault_stack(make_stack, vault, path="database/creds/app", routes=("capture",),
                          credgate_extra={"workers": workers})
    creds = set()
    for _ in range(12):
        assert s.curl(route="capture").status == 200
        creds.add(basic_of(s.capture))
    assert len(creds) == 1
    assert vault.counters["leases_issued"] == 1
    assert vault.count(kind="login") == 1


def test_dropped_connection_is_retried(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault,
                          before=lambda: vault.drop_connections(1, path="/v1/secret/*"))
    assert s.curl().status == 200, s.dump()
    assert vault.count(kind="fault") == 1 and vault.count(kind="kv2-read") == 1


def test_slow_vault_times_out_with_its_reason(make_stack, vault):
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, request_timeout="300ms", retries=0,
                          before=lambda: vault.set_latency(1.0, path="/v1/secret/*"))
    r = s.curl()
    assert r.status in (502, 503)
    errs = s.cg.audit_where(lambda e: e.get("event") == "error")
    assert errs and errs[-1]["reason"] == "vault_timeout", errs
    vault.set_latency(0, path="/v1/secret/*")


def test_lease_near_its_max_ttl_is_replaced_before_it_ends(make_stack, vault):
    """Renewals stop once Vault grants less than asked (the role's max
    TTL); the next credential is fetched while the old one still serves,
    so no request waits or fails, and the old lease is revoked."""
    vault.add_database_role("app", default_ttl=3, max_ttl=4)
    s = start_vault_stack(make_stack, vault, path="database/creds/app", routes=("capture",))
    first = None
    deadline = time.time() + 7
    while time.time() < deadline:
        assert s.curl(route="capture").status == 200, s.dump()
        first = first or basic_of(s.capture)
        time.sleep(0.25)
    assert basic_of(s.capture) != first
    issued = vault.counters["leases_issued"]
    assert issued >= 2
    # Each lease renewed once, at three fifths of its 3 s: the grant of
    # 1 s (to the 4 s max) ends its renewals, not a run of shorter ones.
    assert 1 <= vault.count(kind="lease-renew") <= issued, \
        [(e["kind"], round(e["time"] % 100, 2)) for e in vault.requests()]
    assert len(vault.active_leases()) == 1


def test_plain_http_to_another_host_is_warned(make_stack, vault, credgate_bin):
    from conftest import run_credgate
    s = make_stack(start=False)
    store = vault_secrets(s, vault, "approle", address="http://vault.example:8200")
    s.cg.write_config(s.cg.config([s.route("legacy", credential={
        "path": "secret/legacy/app", "inject": "basic"})], None, None, store))
    rc, _, err = run_credgate(credgate_bin, ["-t", "-c", s.cg.conf_file])
    assert rc == 0
    assert "secrets.vault.address: warning: http://vault.example:8200: plain HTTP" in err


def test_secret_goes_nowhere_but_the_upstream(make_stack, vault, credgate_bin):
    """The credential read from Vault is sent to nginx only: never back to
    Vault, never into -T's dump (which shows the token file's name, not
    the token)."""
    from conftest import run_credgate
    put_legacy(vault)
    s = start_vault_stack(make_stack, vault, method="token")
    assert s.curl().status == 200
    token = vault.requests(kind="token-lookup")[0]["headers"]["x-vault-token"]
    for e in vault.requests():
        assert CANARY not in repr(e)
    rc, out, err = run_credgate(credgate_bin, ["-T", "-c", s.cg.conf_file])
    assert rc == 0
    assert "token_file" in out
    assert CANARY not in out + err and token not in out + err
    assert token not in s.cg.stderr() and token not in open(s.cg.audit_file).read()
