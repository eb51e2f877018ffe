"""Running credgate in production: TLS towards callers and upstreams,
client certificates in policy, reload and drain, log reopening, sd_notify,
the admin endpoint and its metrics, the verified-token cache, connection
limits, workers, privilege drop and many idle keep-alive connections.

Certificates are made at test time by a throwaway CA (the cryptography
module).  Upstreams are the conftest nginx, extended here with TLS servers
when a test needs them, or a small Python server that sends its responses
slowly, for draining."""

import ctypes
import ctypes.util
import http.client
import json
import os
import pathlib
import pwd
import re
import resource
import secrets
import shutil
import signal
import socket
import ssl
import struct
import tempfile
import threading
import time

import pytest
from cryptography import x509

from conftest import (SECRET_USER, Metrics, Pki, RawClient, audit_problems, base_route, curl_tls,
                      find_leaks, free_port, read_text, run_credgate, wait_for, wait_port)


# ----------------------------------------------------------------------
# Stacks with a configuration the test can rewrite
# ----------------------------------------------------------------------
def route_for(s, name="legacy", upstream_port=None, **over):
    """A route named name on its own port (kept across rewrites)."""
    if name not in s.ports:
        s.ports[name] = free_port()
    return base_route(name, s.ports[name], upstream_port or s.nginx.port, **over)


def launch(s, routes, extra=None, admin=True, issuer_extra=None):
    """Starts nginx and credgate with these routes; with admin, an admin
    endpoint on its own port (s.admin_port), waited for too; admin may be
    the listen address as a format of {port}."""
    extra = json.loads(json.dumps(extra or {}))
    if admin:
        s.admin_port = free_port()
        form = admin if isinstance(admin, str) else "127.0.0.1:{port}"
        extra["admin"] = {"listen": form.format(port=s.admin_port)}
    s.extra = extra
    s.issuer_extra = issuer_extra
    s.start(routes=(), config_text=s.cg.config(routes, extra, issuer_extra))
    if admin:
        wait_port(s.admin_port, s.cg.proc, what="credgate admin endpoint")
    return s


def rewrite(s, routes):
    s.cg.write_config(s.cg.config(routes, s.extra, s.issuer_extra))


def add_nginx_servers(nginx, text):
    """Adds server blocks to the conftest nginx before it starts."""
    conf = read_text(nginx.conf)
    end = conf.rstrip().rfind("}")
    with open(nginx.conf, "w") as f:
        f.write(conf[:end] + text + "}\n")


def nginx_tls_server(nginx, port, cert, key):
    d = nginx.dir
    return (f"\tserver {{\n\t\tlisten 127.0.0.1:{port} ssl;\n"
            f"\t\tssl_certificate {cert};\n\t\tssl_certificate_key {key};\n"
            f"\t\troot {d}/www;\n"
            f"\t\tlocation / {{ auth_basic \"legacy\"; auth_basic_user_file {d}/htpasswd; }}\n"
            f"\t}}\n")


def log_count(s, msg):
    return len(re.findall(rf"\bmsg={msg}\b", s.cg.stderr()))


def sighup(s, expect):
    """Sends SIGHUP and waits for the reload's outcome in the log:
    "reloaded" or "reload_refused"."""
    ok, bad = log_count(s, "reloaded"), log_count(s, "reload_refused")
    s.cg.signal(signal.SIGHUP)
    got = wait_for(lambda: ("reloaded" if log_count(s, "reloaded") > ok else
                            "reload_refused" if log_count(s, "reload_refused") > bad else None),
                   timeout=10)
    assert got == expect, f"reload outcome {got!r}, expected {expect!r}"


def get(client, path, token, extra=""):
    client.send((f"GET {path} HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n"
                 f"{extra}\r\n").encode())
    return client.read_response()


def status_on_new_connection(s, path, token, route="legacy"):
    c = s.raw(route)
    try:
        return get(c, path, token).status
    finally:
        c.close()


def connection_refused(port):
    """True when nothing listens on port.  A reset means the connection
    reached a listener's queue just before that listener closed: not yet."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionResetError:
        return False
    except ConnectionRefusedError:
        return True


def rid():
    return "p-" + secrets.token_hex(8)


# ----------------------------------------------------------------------
# Admin endpoint
# ----------------------------------------------------------------------
def admin_get(s, path):
    conn = http.client.HTTPConnection("127.0.0.1", s.admin_port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
        return r.status, r.getheader("Content-Type") or "", body
    finally:
        conn.close()


def metrics(s):
    status, ctype, body = admin_get(s, "/metrics")
    assert status == 200, (status, body)
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    return Metrics(body)


def no_connections_open(s, route="legacy"):
    """Waits until credgate has accepted and closed the probe that found
    the route listening."""
    def settled():
        m = metrics(s)
        return (m("credgate_connections_total", route=route) >= 1 and
                m("credgate_connections_open", route=route) == 0)
    assert wait_for(settled), "the start-up probe is still counted as open"


def vm_rss_kib(pid):
    for line in read_text(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def served_certificate(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


# ----------------------------------------------------------------------
# An upstream whose responses take their time
# ----------------------------------------------------------------------
class SlowUpstream:
    """Answers each request with a head at once and a body of `pieces`
    KiB sent one KiB every `interval` seconds; with stall, the body stops
    after its first KiB and never ends.  `started` is set once a head went
    out."""

    def __init__(self, pieces=10, interval=0.15, stall=False, delimit="length", cut_after=None):
        self.port = free_port()
        self.pieces, self.interval, self.stall = pieces, interval, stall
        # delimit="close": no Content-Length, the body ends when the
        # connection does; cut_after=N: close after N pieces of a body
        # whose Content-Length promised them all.
        self.delimit, self.cut_after = delimit, cut_after
        self.body = b"".join(bytes([65 + i % 26]) * 1024 for i in range(pieces))
        self.started = threading.Event()
        self.finished = threading.Event()
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            length = b"Content-Length: %d\r\n" % len(self.body) if self.delimit == "length" \
                else b"Connection: close\r\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" +
                         length + b"\r\n")
            self.started.set()
            for i in range(self.pieces):
                if self.cut_after is not None and i == self.cut_after:
                    return
                if self.stall and i == 1:
                    self.stopping.wait(30)
                    return
                conn.sendall(self.body[i * 1024:(i + 1) * 1024])
                if i + 1 < self.pieces and self.stopping.wait(self.interval):
                    return
            self.finished.set()
        except OSError:
            return
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.sock.close()
        for t in self.threads:
            t.join(timeout=5)


@pytest.fixture
def slow_upstream():
    made = []

    def make(**kw):
        u = SlowUpstream(**kw)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


def test_body_delimited_by_upstream_close_is_relayed_whole(make_stack, slow_upstream):
    up = slow_upstream(pieces=6, interval=0.05, delimit="close")
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "slow", up.port)])
    c = s.raw("slow", timeout=10)
    r = get(c, "/stream", s.token())
    assert r.status == 200 and r.body == up.body, (r.status, len(r.body))
    c.close()
    assert s.cg.audit_where(lambda e: e.get("event") == "decision" and
                            e.get("route") == "slow")


def test_upstream_closing_mid_response_closes_the_caller(make_stack, slow_upstream):
    up = slow_upstream(pieces=6, interval=0.05, cut_after=2)
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "slow", up.port)])
    c = s.raw("slow", timeout=10)
    c.send(f"GET /stream HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}\r\n\r\n"
           .encode())
    with pytest.raises(EOFError):
        c.read_response()
    assert c.eof, "the caller's connection stayed open after a cut response"
    events = s.cg.audit_where(lambda e: e.get("event") == "error" and
                              "mid-response" in json.dumps(e))
    assert events, "no audit event for the cut response"
    c.close()


def test_caller_gone_before_its_response_is_closed_and_audited(make_stack, slow_upstream):
    """A caller that sends a whole request and leaves is not watched while
    its first response is awaited; writing the response shows it gone.
    The connection must then close, be audited, and not be counted open."""
    up = slow_upstream(pieces=40, interval=0.05)
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "slow", up.port)], extra={"workers": 1})
    no_connections_open(s, "slow")
    for n in (0, 1):            # the first request, and a later one on the same connection
        c = s.raw("slow", timeout=10)
        for _ in range(n):
            r = get(c, "/stream", s.token())
            assert r.status == 200 and r.body == up.body
        up.started.clear()
        i = rid()
        c.send(f"GET /stream HTTP/1.1\r\nHost: legacy\r\nX-Request-Id: {i}\r\n"
               f"Authorization: Bearer {s.token()}\r\n\r\n".encode())
        assert up.started.wait(5), "the request did not reach the upstream"
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()                # a reset: the caller is gone for good
        ends = s.cg.audit_where(lambda e: e.get("event") == "session_end" and
                                e.get("request_id") == i, timeout=10)
        assert ends, f"no session_end for the abandoned connection (earlier requests: {n})"
        assert ends[0]["requests"] == n + 1
    assert wait_for(lambda: metrics(s)("credgate_connections_open", route="slow") == 0), \
        "an abandoned connection is still counted open"


# ======================================================================
# TLS towards callers
# ======================================================================
def test_tls_listener_serves_https_and_audits_tls(make_stack, tmp_path):
    pki = Pki(tmp_path / "pki", "front-ca")
    crt, key, _ = pki.server("front")
    s = make_stack(start=False)
    launch(s, [route_for(s, tls={"cert": crt, "key": key}),
               route_for(s, "tls13", tls={"cert": crt, "key": key, "min_version": "TLSv1.3"})],
           admin=False)
    i = rid()
    rc, status, body = curl_tls(s, s.ports["legacy"], cacert=pki.ca_file,
                                args=["-H", "X-Request-Id: " + i])
    assert (rc, status) == (0, 200)
    assert body.decode() == s.nginx.files["/a.txt"]
    ev = s.cg.audit_where(lambda e: e.get("request_id") == i and e.get("event") == "decision")
    assert ev, "no decision event for the TLS request"
    assert ev[0]["client"]["tls"] is True, ev[0]["client"]

    # TLS 1.2 is the default floor; min_version = TLSv1.3 refuses it.
    rc, status, _ = curl_tls(s, s.ports["legacy"], cacert=pki.ca_file,
                             args=["--tlsv1.2", "--tls-max", "1.2"])
    assert (rc, status) == (0, 200), "TLS 1.2 refused by a default listener"
    mark = s.nginx.mark()
    rc, status, _ = curl_tls(s, s.ports["tls13"], cacert=pki.ca_file,
                             args=["--tlsv1.2", "--tls-max", "1.2"])
    assert rc != 0 and status == 0, "TLS 1.2 accepted with min_version = TLSv1.3"
    s.nginx.assert_untouched(mark)
    rc, status, _ = curl_tls(s, s.ports["tls13"], cacert=pki.ca_file, args=["--tlsv1.3"])
    assert (rc, status) == (0, 200)


def test_plain_http_to_a_tls_listener_gets_no_answer(make_stack, tmp_path):
    pki = Pki(tmp_path / "pki", "front-ca")
    crt, key, _ = pki.server("front")
    s = make_stack(start=False)
    launch(s, [route_for(s, tls={"cert": crt, "key": key})], admin=False)
    mark = s.nginx.mark()
    c = s.raw()
    c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}\r\n\r\n"
           .encode())
    got = b""
    c.sock.settimeout(5)
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            data = c.sock.recv(65536)
            if not data:
                break
            got += data
        else:
            raise AssertionError("the TLS listener kept a plain HTTP connection open")
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("the TLS listener kept a plain HTTP connection open")
    c.close()
    s.seen.append(got)
    assert not got.startswith(b"HTTP/"), f"plain HTTP answered on a TLS port: {got[:200]!r}"
    s.nginx.assert_untouched(mark)


def test_certificate_is_read_again_on_reload(make_stack, tmp_path):
    pki = Pki(tmp_path / "pki", "front-ca")
    crt, key, first = pki.server("front")
    s = make_stack(start=False)
    routes = [route_for(s, tls={"cert": crt, "key": key})]
    launch(s, routes, admin=False)
    assert served_certificate(s.ports["legacy"], pki.ca_file).serial_number == \
        first.serial_number
    _, _, renewed = pki.server("front")     # same files, new certificate and key
    sighup(s, "reloaded")
    assert wait_for(lambda: served_certificate(s.ports["legacy"], pki.ca_file).serial_number
                    == renewed.serial_number, timeout=3), "the renewed certificate is not served"
    rc, status, _ = curl_tls(s, s.ports["legacy"], cacert=pki.ca_file)
    assert (rc, status) == (0, 200)


# ======================================================================
# TLS towards upstreams
# ======================================================================
def test_tls_upstream_verification(make_stack, tmp_path):
    good = Pki(tmp_path / "pki-good", "upstream-ca")
    other = Pki(tmp_path / "pki-other", "other-ca")
    s = make_stack(start=False)
    good_port, other_port = free_port(), free_port()
    add_nginx_servers(s.nginx, nginx_tls_server(s.nginx, good_port, *good.server("up")[:2]) +
                      nginx_tls_server(s.nginx, other_port, *other.server("up")[:2]))

    def tls_route(name, port, **tls):
        return route_for(s, name, upstream={"host": "127.0.0.1", "port": port,
                                            "tls": {"enabled": True, **tls}})
    routes = [
        tls_route("by-ip", good_port, ca=good.ca_file),
        tls_route("by-name", good_port, ca=good.ca_file, server_name="localhost"),
        tls_route("wrong-name", good_port, ca=good.ca_file, server_name="wrong.example"),
        tls_route("other-ca", other_port, ca=good.ca_file),
        tls_route("plain-upstream", s.nginx.port, ca=good.ca_file),
        tls_route("no-verify", other_port, verify=False),
    ]
    launch(s, routes, admin=False)

    for name in ("by-ip", "by-name", "no-verify"):
        mark = s.nginx.mark()
        r = s.curl(route=name)
        assert r.status == 200, (name, r)
        assert r.text == s.nginx.files["/a.txt"]
        line = s.nginx.since(mark)[0]
        assert line["user"] == SECRET_USER and line["status"] == "200", (name, line)

    mark = s.nginx.mark()
    for name in ("wrong-name", "other-ca"):
        r = s.curl(route=name)
        assert r.status == 502, (name, r)
    s.nginx.assert_untouched(mark)
    # A plain HTTP upstream sees a ClientHello, never the credential.
    r = s.curl(route="plain-upstream")
    assert r.status == 502, r
    for line in s.nginx.since(mark, 0, timeout=0.25):
        assert line["auth"] == "" and line["status"] == "400", line

    # verify = false is a warning, for -t and whenever the file is loaded.
    rc, out, err = run_credgate(s.cg.binary, ["-t", "-c", s.cg.conf_file], cwd=s.cg.dir)
    assert rc == 0, err
    warned = re.findall(r"routes\.\[(\d+)\]\.upstream\.tls\.verify: warning: ", err)
    assert warned == ["5"], err
    assert re.search(r"routes\.\[5\]\.upstream\.tls\.verify: warning: ", s.cg.stderr()), \
        "no warning about verify = false in the running credgate's log"


# ======================================================================
# Client certificates
# ======================================================================
def test_client_certificates_in_policy(make_stack, tmp_path):
    pki = Pki(tmp_path / "pki", "client-ca")
    stranger = Pki(tmp_path / "pki-stranger", "stranger-ca")
    crt, key, _ = pki.server("front")
    spiffe = "spiffe://example.org/ns/prod/sa/batch"
    ok_crt, ok_key, _ = pki.issue("batch", "batch", org="Example", uris=[spiffe], client=True)
    far_crt, far_key, _ = pki.issue("far", "batch", org="Example",
                                    uris=["spiffe://example.org.evil/ns/prod/sa/batch"],
                                    client=True)
    evil_crt, evil_key, _ = pki.issue("evil", "evil-batch", org="Example", uris=[spiffe],
                                      client=True)
    str_crt, str_key, _ = stranger.issue("stranger", "batch", org="Example", uris=[spiffe],
                                         client=True)
    rules = {"allow": [{"name": "spiffe", "issuer": "test",
                        "client_san": ["uri:spiffe://example.org/*"], "paths": ["/*"]}],
             "deny": [{"name": "no-evil", "client_subject": ["CN=evil*"]}]}
    tls = {"cert": crt, "key": key, "client_ca": pki.ca_file}
    s = make_stack(start=False)
    launch(s, [route_for(s, "mtls", tls={**tls, "verify_client": "required"}, **rules),
               route_for(s, "mtls-opt", tls={**tls, "verify_client": "optional"}, **rules)],
           admin=False)
    port, opt = s.ports["mtls"], s.ports["mtls-opt"]

    mark = s.nginx.mark()
    rc, status, _ = curl_tls(s, port, cacert=pki.ca_file)
    assert rc != 0 and status == 0, "a caller without a certificate got through"
    rc, status, _ = curl_tls(s, port, cacert=pki.ca_file, cert=str_crt, key=str_key)
    assert rc != 0 and status == 0, "a certificate of an unknown CA got through"
    s.nginx.assert_untouched(mark)

    i = rid()
    rc, status, body = curl_tls(s, port, cacert=pki.ca_file, cert=ok_crt, key=ok_key,
                                args=["-H", "X-Request-Id: " + i])
    assert (rc, status) == (0, 200)
    assert body.decode() == s.nginx.files["/a.txt"]
    ev = s.cg.audit_where(lambda e: e.get("request_id") == i and e.get("event") == "decision")
    assert ev, "no decision event"
    assert ev[0]["client"]["tls"] is True
    assert ev[0]["client"].get("subject") == "CN=batch,O=Example", ev[0]["client"]
    assert ev[0]["decision"]["rule"] == "spiffe", ev[0]["decision"]

    mark = s.nginx.mark()
    i = rid()
    rc, status, _ = curl_tls(s, port, cacert=pki.ca_file, cert=far_crt, key=far_key,
                             args=["-H", "X-Request-Id: " + i])
    assert (rc, status) == (0, 403), "a SAN outside the trust domain was allowed"
    ev = s.cg.audit_where(lambda e: e.get("request_id") == i and e.get("event") == "decision")
    assert ev and ev[0]["decision"]["reason"] == "no rule matched", ev
    i = rid()
    rc, status, _ = curl_tls(s, port, cacert=pki.ca_file, cert=evil_crt, key=evil_key,
                             args=["-H", "X-Request-Id: " + i])
    assert (rc, status) == (0, 403), "client_subject deny rule did not apply"
    ev = s.cg.audit_where(lambda e: e.get("request_id") == i and e.get("event") == "decision")
    assert ev and ev[0]["decision"]["rule"] == "no-evil", ev
    # A certificate is no substitute for the token.
    rc, status, _ = curl_tls(s, port, cacert=pki.ca_file, cert=ok_crt, key=ok_key, auth=False)
    assert (rc, status) == (0, 401)
    s.nginx.assert_untouched(mark)

    # optional: no certificate is let in, but client_san cannot hold.
    rc, status, _ = curl_tls(s, opt, cacert=pki.ca_file)
    assert (rc, status) == (0, 403)
    rc, status, _ = curl_tls(s, opt, cacert=pki.ca_file, cert=ok_crt, key=ok_key)
    assert (rc, status) == (0, 200)


# ======================================================================
# Reload
# ======================================================================
def test_reload_applies_to_the_next_request_on_open_connections(make_stack):
    """A connection decides each request under the newest generation: a
    rule added by a reload applies to the next request of a connection
    opened before it."""
    s = make_stack(start=False)
    launch(s, [route_for(s)])
    token = s.token()
    old = s.raw()
    assert get(old, "/a.txt", token).status == 200
    assert metrics(s)("credgate_config_generation") == 1

    deny_b = {"name": "no-b", "paths": ["/b.txt"]}
    rewrite(s, [route_for(s, deny=[{"name": "no-admin", "paths": ["/admin/*"]}, deny_b]),
                route_for(s, "second")])
    sighup(s, "reloaded")
    assert wait_for(lambda: status_on_new_connection(s, "/b.txt", token) == 403, timeout=3), \
        "a new connection still gets the old rules after the reload"
    assert s.request(route="second").status == 200, "a route added by reload does not serve"

    assert get(old, "/a.txt", token).status == 200, "the open connection stopped serving"
    r = get(old, "/b.txt", token)
    assert r.status == 403, f"the open connection kept the old rules: {r}"
    old.close()
    d = s.cg.audit_where(lambda e: e.get("event") == "decision" and
                         e.get("request", {}).get("path") == "/b.txt" and
                         e["decision"]["rule"] == "no-b")
    assert d, "no decision event names the new rule"
    m = metrics(s)
    assert m("credgate_config_generation") == 2
    assert m("credgate_config_last_reload_success") == 1


def test_reload_refuses_a_broken_file(make_stack):
    s = make_stack(start=False)
    routes = [route_for(s)]
    launch(s, routes)
    good = read_text(s.cg.conf_file)
    lines = good.splitlines()
    n = next(k for k, l in enumerate(lines) if re.match(r"\s*port = \d+;", l))
    lines[n] = re.sub(r"port = \d+;", "port = 70000;", lines[n])
    s.cg.write_config("\n".join(lines) + "\n")
    sighup(s, "reload_refused")
    log = s.cg.stderr()
    assert re.search(rf"level=error\b.*credgate\.conf:{n + 1}: routes\.\[0\]\.upstream\.port: "
                     r".*70000", log), log
    assert re.search(r"level=error\b.*msg=reload_refused\b", log), log
    assert s.request().status == 200, "the old configuration stopped serving"
    assert s.request(path="/admin/x.txt").status == 403, "the old rules are gone"
    m = metrics(s)
    assert m("credgate_config_last_reload_success") == 0
    assert m("credgate_config_generation") == 1

    # Keys are part of the generation: an unusable JWKS file is refused too
    # and the running keys stay.
    s.cg.write_config(good)
    jwks = read_text(s.cg.jwks_file)
    with open(s.cg.jwks_file, "w") as f:
        f.write('{"keys": []}')
    sighup(s, "reload_refused")
    assert s.request().status == 200, "tokens stopped verifying after a refused reload"
    with open(s.cg.jwks_file, "w") as f:
        f.write(jwks)

    # A setting that needs a restart is reported and kept; the rest applies.
    s.extra["workers"] = 3
    rewrite(s, [route_for(s, deny=[{"name": "no-a", "paths": ["/a.txt"]}])])
    sighup(s, "reloaded")
    assert re.search(r"level=warn\b.*msg=reload_ignored setting=credgate\.workers\b",
                     s.cg.stderr())
    m = metrics(s)
    assert m("credgate_config_last_reload_success") == 1
    assert m("credgate_config_generation") == 2
    assert wait_for(lambda: s.request().status == 403, timeout=3)
    assert s.request(path="/admin/x.txt").status == 200


def test_reload_keeps_what_needs_a_restart(make_stack):
    """What only takes effect at start is reported by its path and keeps its
    running value; the rest of the new file applies."""
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1}, admin=False)
    assert s.request().status == 200
    other = os.path.join(s.cg.dir, "audit-other.log")
    s.extra = dict(s.extra, audit={"file": other}, secure_memory_size=65536,
                   token_cache={"size": 5}, max_connections=500)
    rewrite(s, [route_for(s, deny=[{"name": "no-a", "paths": ["/a.txt"]}])])
    sighup(s, "reloaded")
    log = s.cg.stderr()
    ignored = re.findall(r"level=warn\b.*msg=reload_ignored setting=(\S+) "
                         r'detail="restart to apply"', log)
    assert sorted(ignored) == ["credgate.audit.file", "credgate.secure_memory_size",
                               "credgate.token_cache.size"], log
    # The new rule applies; decisions are still audited where they were.
    assert wait_for(lambda: s.request().status == 403, timeout=3)
    assert s.cg.audit_where(lambda e: (e.get("decision") or {}).get("rule") == "no-a")
    assert not os.path.exists(other)


def test_the_secret_cache_outlives_a_reload(make_stack):
    """The secret cache and its store belong to the process, not to a
    generation: a reload keeps what is cached, and another secrets file or
    other cache times need a restart (said so; the running ones stay)."""
    s = make_stack(start=False)
    routes = [route_for(s)]
    launch(s, routes, extra={"workers": 1})
    assert s.request().status == 200
    hits = metrics(s)("credgate_secret_cache_hits_total")
    other = s.cg.secrets_file + ".other"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("{}")
    s.cg.write_config(s.cg.config(routes, s.extra, s.issuer_extra,
                                  {"file": other, "max_stale": "0s", "negative_ttl": "1s"}))
    sighup(s, "reloaded")
    ignored = re.findall(r"level=warn\b.*msg=reload_ignored setting=(\S+) "
                         r'detail="restart to apply"', s.cg.stderr())
    assert sorted(ignored) == ["secrets.file", "secrets.max_stale", "secrets.negative_ttl"]
    assert s.request().status == 200
    assert metrics(s)("credgate_secret_cache_hits_total") > hits, \
        "the secret was fetched again after a reload"
    assert admin_get(s, "/readyz")[0] == 200
    assert len(re.findall(r"\bevent=secrets_reloaded\b", s.cg.stderr())) == 0


def test_reload_with_rotated_keys_drops_cached_tokens(make_stack, keys):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1}, admin=False)
    token = s.token("ES256")
    assert s.request(token=token).status == 200
    assert s.request(token=token).status == 200     # now cached
    jwks = keys.jwks()
    jwks["keys"] = [k for k in jwks["keys"] if k["kid"] != "ec-1"]
    with open(s.cg.jwks_file, "w") as f:
        json.dump(jwks, f)
    sighup(s, "reloaded")
    assert wait_for(lambda: s.request(token=token).status == 401, timeout=3), \
        "a token cached under a key that is gone still passes"
    assert s.request(alg="RS256").status == 200


def test_reload_does_not_cut_a_response_in_flight(make_stack, slow_upstream):
    up = slow_upstream(pieces=8, interval=0.15)
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "slow", up.port)])
    stream = s.raw("slow", timeout=10)
    stream.send(f"GET /big HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}\r\n\r\n"
                .encode())
    assert up.started.wait(5), "the slow upstream never got the request"
    rewrite(s, [route_for(s)])              # the slow route is gone
    sighup(s, "reloaded")
    assert wait_for(lambda: connection_refused(s.ports["slow"]), timeout=3), \
        "a route removed by reload still accepts"
    r = stream.read_response()
    assert r.status == 200 and r.body == up.body, \
        f"the reload cut a response: {len(r.body)} of {len(up.body)} bytes"
    stream.close()
    assert s.request().status == 200
    assert metrics(s)("credgate_config_generation") == 2


# ======================================================================
# Drain
# ======================================================================
def test_sigterm_drains(make_stack, slow_upstream):
    up = slow_upstream(pieces=10, interval=0.15)
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "slow", up.port)],
           extra={"shutdown_timeout": "10s"})
    token = s.token()
    idle = s.raw()
    assert get(idle, "/a.txt", token).status == 200
    stream = s.raw("slow", timeout=10)
    stream.send(f"GET /big HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n\r\n"
                .encode())
    assert up.started.wait(5), "the slow upstream never got the request"
    t0 = time.monotonic()
    s.cg.signal(signal.SIGTERM)

    assert idle.closed_within(2.0), "an idle keep-alive connection stayed open while draining"
    assert wait_for(lambda: connection_refused(s.ports["legacy"]) and
                    connection_refused(s.ports["slow"]), timeout=2), \
        "listeners still accept while draining"
    status, _, body = admin_get(s, "/readyz")
    assert status == 503, f"/readyz while draining: {status} {body}"
    assert s.cg.proc.poll() is None, "credgate exited with a response in flight"

    r = stream.read_response()
    assert r.status == 200 and r.body == up.body, \
        f"the response in flight was cut: {len(r.body)} of {len(up.body)} bytes"
    assert up.finished.wait(2)
    rc = s.cg.proc.wait(timeout=8)
    elapsed = time.monotonic() - t0
    assert rc == 0
    assert elapsed < 5, f"exit {elapsed:.1f}s after SIGTERM with nothing left to finish"
    stream.close()


def test_shutdown_timeout_closes_a_stuck_request(make_stack, slow_upstream):
    up = slow_upstream(pieces=4, stall=True)
    s = make_stack(start=False)
    launch(s, [route_for(s, "slow", up.port)], extra={"shutdown_timeout": "1s"}, admin=False)
    c = s.raw("slow", timeout=10)
    c.send(f"GET /stuck HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}\r\n\r\n"
           .encode())
    assert c.read_response(head_only=True).status == 200
    t0 = time.monotonic()
    s.cg.signal(signal.SIGTERM)
    c.sock.settimeout(6)
    try:
        while c.sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("the stuck request outlived shutdown_timeout by far")
    closed = time.monotonic() - t0
    assert 0.8 <= closed <= 3.0, f"stuck request closed {closed:.2f}s after SIGTERM " \
                                 f"with shutdown_timeout = 1s"
    assert s.cg.proc.wait(timeout=5) == 0
    c.close()
    assert re.search(r"msg=shutdown_timeout\b", s.cg.stderr())
    ends = s.cg.audit_where(lambda e: e.get("event") == "session_end" and e["route"] == "slow")
    assert ends, "the connection closed at shutdown_timeout was not audited"
    assert "shutdown" in ends[-1]["reason"], ends[-1]


# ======================================================================
# SIGUSR1, sd_notify
# ======================================================================
def test_sigusr1_reopens_log_and_audit(make_stack):
    s = make_stack(start=False)
    log_file = os.path.join(s.cg.dir, "credgate.log")
    launch(s, [route_for(s)], extra={"log_file": log_file}, admin=False)
    assert wait_for(lambda: "msg=started" in read_text(log_file))
    first = rid()
    assert s.curl("-H", "X-Request-Id: " + first).status == 200
    assert wait_for(lambda: first in read_text(log_file))
    os.rename(log_file, log_file + ".1")
    os.rename(s.cg.audit_file, s.cg.audit_file + ".1")
    s.cg.signal(signal.SIGUSR1)
    assert wait_for(lambda: os.path.exists(log_file) and os.path.exists(s.cg.audit_file)), \
        "SIGUSR1 did not create new log and audit files"
    second = rid()
    assert s.curl("-H", "X-Request-Id: " + second).status == 200
    assert wait_for(lambda: second in read_text(log_file)), "the new log file gets no lines"
    assert s.cg.audit_where(lambda e: e.get("request_id") == second), \
        "the new audit file gets no events"
    assert second not in read_text(log_file + ".1")
    assert second not in read_text(s.cg.audit_file + ".1")
    assert first in read_text(s.cg.audit_file + ".1")
    for name in (log_file, log_file + ".1"):
        assert not find_leaks(read_text(name)), f"secret in {name}"


def test_sd_notify(make_stack, tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    if len(path) >= 100:
        path = "@credgate-test-" + secrets.token_hex(6)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + path[1:] if path.startswith("@") else path)
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", path)

    def states():
        return sock.recv(4096).decode().split("\n")
    try:
        s = make_stack(start=False)
        launch(s, [route_for(s)], admin=False)
        assert "READY=1" in states()
        assert s.request().status == 200
        s.cg.signal(signal.SIGHUP)
        assert "RELOADING=1" in states()
        assert "READY=1" in states()
        s.cg.signal(signal.SIGTERM)
        assert "STOPPING=1" in states()
        assert s.cg.proc.wait(timeout=10) == 0
    finally:
        sock.close()


# ======================================================================
# Admin endpoint and metrics
# ======================================================================
def test_metrics_count_requests_connections_and_cache_hits(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1})
    no_connections_open(s)
    status, _, _ = admin_get(s, "/healthz")
    assert status == 200
    status, _, _ = admin_get(s, "/nope")
    assert status == 404
    m0 = metrics(s)
    token = s.token()
    assert s.request(token=token).status == 200
    assert s.request(token=token, path="/b.txt").status == 200
    assert s.request(token=token, path="/admin/x.txt").status == 403
    # A request is counted once its response is out: the caller may be a
    # moment ahead of the counter.
    wait_for(lambda: metrics(s)("credgate_request_duration_seconds_count", route="legacy")
             >= m0("credgate_request_duration_seconds_count", route="legacy") + 3)
    m1 = metrics(s)

    def delta(name, **labels):
        return m1(name, **labels) - m0(name, **labels)
    assert delta("credgate_requests_total", route="legacy", decision="allow",
                 code_class="2xx") == 2
    assert delta("credgate_requests_total", route="legacy", decision="deny",
                 code_class="4xx") == 1
    assert delta("credgate_connections_total", route="legacy") == 3
    assert delta("credgate_request_duration_seconds_count", route="legacy") == 3
    assert delta("credgate_token_cache_misses_total") == 1
    assert delta("credgate_token_cache_hits_total") == 2

    c = s.raw()
    assert get(c, "/a.txt", token).status == 200
    assert metrics(s)("credgate_connections_open", route="legacy") == 1
    c.close()
    assert wait_for(lambda: metrics(s)("credgate_connections_open", route="legacy") == 0), \
        "credgate_connections_open does not go back to 0"


def test_audit_events_of_concurrent_requests_stay_whole(make_stack):
    """Events of one pass of the loop reach the audit file in one write:
    with many callers at once every request still has exactly one whole
    decision event, and every connection its session_end."""
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1})
    token = s.token()
    ids = [[f"batch-{k}-{i}" for i in range(8)] for k in range(16)]
    statuses = []

    def caller(k):
        c = s.raw()
        try:
            for rid in ids[k]:
                statuses.append(get(c, "/a.txt", token, f"X-Request-Id: {rid}\r\n").status)
        finally:
            c.close()
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 128, statuses
    want = {rid for row in ids for rid in row}
    assert wait_for(lambda: want <= {e.get("request_id") for e in s.cg.audit()
                                     if e.get("event") == "decision"}), "decision events missing"
    assert wait_for(lambda: len([e for e in s.cg.audit() if e.get("event") == "session_end"
                                 and e.get("requests") == 8]) == 16), "session_end events missing"
    text = read_text(s.cg.audit_file)
    assert audit_problems(text) == []
    decisions = [e["request_id"] for e in s.cg.audit() if e.get("event") == "decision"
                 and e.get("request_id", "").startswith("batch-")]
    assert sorted(decisions) == sorted(want), "a decision event is missing or doubled"
    for row in ids:         # one caller's events keep the order of its requests
        assert [d for d in decisions if d in row] == row


def test_audit_write_failures_are_counted_and_refuse_under_deny(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "open", audit_failure="allow")],
           extra={"workers": 1, "audit": {"file": "/dev/full"}})
    no_connections_open(s)
    no_connections_open(s, "open")
    m0 = metrics(s)
    mark = s.nginx.mark()
    assert status_on_new_connection(s, "/a.txt", s.token()) == 503
    s.nginx.assert_untouched(mark)
    assert status_on_new_connection(s, "/a.txt", s.token(), route="open") == 200
    # Two decision events and at least one session_end could not be written.
    assert wait_for(lambda: metrics(s)("credgate_audit_write_failures_total") >=
                    m0("credgate_audit_write_failures_total") + 3), metrics(s).text
    assert "msg=audit_write_failed" in s.cg.stderr()


def test_many_distinct_callers_do_not_exhaust_secure_memory(make_stack):
    """Verified tokens are cached with their claims; the claims are not
    secret and must not fill the secure pool that holds the credentials.
    With the smallest pool, a few hundred distinct callers used to run it
    dry, and injection failed for everybody."""
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1, "secure_memory_size": 65536})
    c = s.raw()
    statuses = []
    for i in range(600):
        token = s.token(sub=f"repo:acme/caller-{i}:ref:refs/heads/main",
                        jti=f"distinct-{i}-" + "x" * 64)
        statuses.append(get(c, "/a.txt", token).status)
    c.close()
    assert statuses == [200] * len(statuses), \
        f"{len(statuses) - statuses.count(200)} of {len(statuses)} refused: " \
        f"{sorted(set(statuses))}"
    assert "out of memory" not in s.cg.stderr()
    assert metrics(s)("credgate_token_cache_misses_total") >= 600


def test_readyz_follows_the_secret_store(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], admin=":{port}")     # a bare port is loopback
    assert admin_get(s, "/readyz")[0] == 200
    with open(s.cg.secrets_file) as f:
        store = json.load(f)
    gone = dict(store)
    del gone["legacy/app"]
    with open(s.cg.secrets_file, "w") as f:     # keeps mode 0600
        json.dump(gone, f)
    assert wait_for(lambda: admin_get(s, "/readyz")[0] == 503, timeout=5), \
        "/readyz still 200 with the route's secret gone"
    with open(s.cg.secrets_file, "w") as f:
        json.dump(store, f)
    assert wait_for(lambda: admin_get(s, "/readyz")[0] == 200, timeout=5)


class FileOpens:
    """Counts the opens of one file (inotify IN_OPEN) while in a with block;
    count() returns those since its last call."""

    IN_OPEN = 0x20

    def __init__(self, path):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.path = path
        self.fd = -1

    def __enter__(self):
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        wd = self.libc.inotify_add_watch(self.fd, self.path.encode(), self.IN_OPEN)
        assert wd >= 0, os.strerror(ctypes.get_errno())
        return self

    def count(self):
        n = 0
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return n
            off = 0
            while off < len(buf):
                _, mask, _, size = struct.unpack_from("iIII", buf, off)
                n += bool(mask & self.IN_OPEN)
                off += 16 + size

    def __exit__(self, *exc):
        os.close(self.fd)


def write_secrets(s, doc):
    """Replaces the secrets file as a deployment would: a new file, renamed."""
    tmp = s.cg.secrets_file + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, s.cg.secrets_file)


def test_readyz_reports_a_broken_secrets_file_without_reading_it(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)])
    assert admin_get(s, "/readyz")[0] == 200
    with open(s.cg.secrets_file) as f:
        good = f.read()
    with open(s.cg.secrets_file, "w") as f:     # same file, mode 0600
        f.write(good[:-5])
    assert wait_for(lambda: admin_get(s, "/readyz")[0] == 503, timeout=5), \
        "/readyz still 200 with a broken secrets file"
    status, _, body = admin_get(s, "/readyz")
    assert "secret store degraded" in body, body
    assert "cannot be loaded" in body, body
    # What was last read still serves; probes read nothing.
    assert s.request().status == 200
    with FileOpens(s.cg.secrets_file) as opens:
        n = 0
        for _ in range(10):
            assert admin_get(s, "/readyz")[0] == 503
            n += opens.count()      # inotify folds repeats not yet read
        assert n == 0, f"10 readiness probes opened the secrets file {n} times"
    assert log_count(s, "secrets_reload_failed") == 0    # an event=, not a msg=
    assert len(re.findall(r"\bevent=secrets_reload_failed\b", s.cg.stderr())) == 1
    with open(s.cg.secrets_file, "w") as f:
        f.write(good)
    assert wait_for(lambda: admin_get(s, "/readyz")[0] == 200, timeout=5)


def test_a_changed_secret_reaches_every_worker_in_one_read(make_stack):
    """The workers share one secret cache: a change of the secrets file is
    read once, and both workers use the new version at once, although
    cache_ttl (5m) has not passed."""
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 2})
    token = s.token()

    def served(tag, n=24):
        """Versions used per worker, over n concurrent connections."""
        conns = [s.raw() for _ in range(n)]
        rids = [f"{tag}-{i}-{secrets.token_hex(4)}" for i in range(n)]
        for c, rid in zip(conns, rids):
            assert get(c, "/a.txt", token, f"X-Request-Id: {rid}\r\n").status == 200
        for c in conns:
            c.close()

        def collected():
            worker = {m.group(2): int(m.group(1)) & 0xff for m in
                      re.finditer(r"msg=request conn=(\d+) route=legacy peer=\S+ rid=(\S+)",
                                  s.cg.stderr())}
            version = {e["request_id"]: e["credential"]["version"] for e in s.cg.audit()
                       if e.get("event") == "decision" and e.get("request_id") in rids}
            if not all(r in worker and r in version for r in rids):
                return None
            out = {}
            for r in rids:
                out.setdefault(worker[r], set()).add(version[r])
            return out
        return wait_for(collected, timeout=5)

    def reads():
        return len(re.findall(r"\bevent=secrets_reloaded\b", s.cg.stderr()))

    assert served("before") == {0: {"1"}, 1: {"1"}}
    with open(s.cg.secrets_file) as f:
        doc = json.load(f)
    doc["legacy/app"]["version"] = "2"
    write_secrets(s, doc)
    assert wait_for(lambda: served("after") == {0: {"2"}, 1: {"2"}}, timeout=10,
                    interval=0.2), "a worker kept the old secret"
    time.sleep(1.5)     # a check of the file or two more
    assert reads() == 1, f"the changed file was read {reads()} times"


def test_cached_token_is_refused_after_exp(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1}, issuer_extra={"clock_skew": "0"})
    time.sleep(1.02 - time.time() % 1)          # early in a second
    exp = int(time.time()) + 1
    token = s.token(exp=exp)
    m0 = metrics(s)
    assert s.request(token=token).status == 200
    assert s.request(token=token).status == 200
    assert metrics(s)("credgate_token_cache_hits_total") > m0("credgate_token_cache_hits_total")
    time.sleep(max(0, exp + 1.05 - time.time()))
    assert s.request(token=token).status == 401, "an expired token passed from the cache"


# ======================================================================
# Connection limits, workers
# ======================================================================


def test_workers_share_connections(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 2})
    token = s.token()
    conns = [s.raw() for _ in range(24)]
    for c in conns:
        assert get(c, "/a.txt", token).status == 200
    for c in conns:
        c.close()

    def request_conn_ids():
        return [int(x) for x in re.findall(r"msg=request conn=(\d+) route=legacy",
                                           s.cg.stderr())]
    wait_for(lambda: len(request_conn_ids()) >= 24)
    ids = request_conn_ids()
    assert len(ids) == 24, ids
    assert {i & 0xff for i in ids} == {0, 1}, \
        f"24 concurrent connections all on one worker: {sorted(i & 0xff for i in ids)}"
    assert wait_for(lambda: metrics(s)("credgate_requests_total", route="legacy",
                                       decision="allow", code_class="2xx") == 24), \
        "requests of both workers are not summed"


def cpu_seconds(pid):
    fields = read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_fds(pid, timeout=3.0):
    """The number of descriptors pid holds, once it stops changing."""
    last = len(os.listdir(f"/proc/{pid}/fd"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = len(os.listdir(f"/proc/{pid}/fd"))
        if now == last:
            return now
        last = now
    raise AssertionError(f"descriptor count of {pid} does not settle")


def test_out_of_descriptors_pauses_accepting(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1}, admin=False)
    token = s.token()
    assert s.request(token=token).status == 200
    pid = s.cg.proc.pid
    # Room for exactly four proxied connections, then accept() fails with
    # EMFILE: a caller and an upstream socket each, except that the first
    # takes the idle upstream connection the request above left in the
    # worker's pool (already counted in base).
    base = settled_fds(pid)
    resource.prlimit(pid, resource.RLIMIT_NOFILE,
                     (base + 7, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]))
    served, plugs, pending = [], [], None
    for _ in range(12):
        c = s.raw(timeout=0.5)
        c.send((f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}"
                "\r\n\r\n").encode())
        try:
            r = c.read_response()
        except socket.timeout:
            pending = c
            break
        if r.status == 502:
            # One descriptor was left, too few for a caller and its
            # upstream: a caller that sends nothing takes it.
            c.close()
            plugs.append(s.raw())
            continue
        assert r.status == 200, r
        served.append(c)
    print(f"{base} descriptors, limit {base + 8}: {len(served)} connections served first")
    assert pending is not None, "credgate never ran out of descriptors"
    assert len(served) >= 2, "too few connections served before the limit"
    assert wait_for(lambda: "msg=accept_paused" in s.cg.stderr(), timeout=3), \
        "no accept_paused in the log"
    cpu0 = cpu_seconds(pid)
    time.sleep(1.0)
    spent = cpu_seconds(pid) - cpu0
    assert spent < 0.3, f"credgate spent {spent:.2f}s of CPU in 1s while out of descriptors"
    for c in served[:2]:
        c.close()
    pending.sock.settimeout(5)
    r = pending.read_response()
    assert r.status == 200, f"the waiting connection was not served after descriptors freed: {r}"
    pending.close()
    for c in served[2:] + plugs:
        c.close()
    assert s.cg.proc.poll() is None


def test_listener_removed_while_paused(make_stack):
    """A reload that drops a route whose listener is paused for lack of
    descriptors: the pause's end must not touch the freed listener."""
    s = make_stack(start=False)
    launch(s, [route_for(s), route_for(s, "other")], extra={"workers": 1}, admin=False)
    token = s.token()
    assert s.request(token=token).status == 200
    pid = s.cg.proc.pid
    limit = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (settled_fds(pid), limit[1]))
    c = s.raw(timeout=0.5)
    assert wait_for(lambda: "msg=accept_paused" in s.cg.stderr(), timeout=3), \
        "no accept_paused in the log"
    c.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, limit)
    rewrite(s, [route_for(s, "other")])
    sighup(s, "reloaded")
    time.sleep(1.5)         # past the pause (1 s), after the listener went
    assert s.cg.proc.poll() is None, s.cg.stderr()[-2000:]
    assert connection_refused(s.ports["legacy"])
    assert s.request(route="other", token=token).status == 200
    assert "AddressSanitizer" not in s.cg.stderr()


# ======================================================================
# Privilege drop
# ======================================================================
class TestPrivilegeDrop:
    @pytest.fixture
    def tmp_path(self):
        """A folder that the unprivileged user can traverse."""
        if os.geteuid() != 0:
            pytest.skip("dropping privileges needs root")
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no user nobody")
        d = tempfile.mkdtemp(prefix="credgate-privdrop-")
        os.chmod(d, 0o711)
        yield pathlib.Path(d)
        shutil.rmtree(d, ignore_errors=True)

    def test_runs_as_nobody(self, make_stack):
        nobody = pwd.getpwnam("nobody")
        s = make_stack(start=False)
        for f in (s.cg.secrets_file, s.cg.jwks_file):
            os.chown(f, nobody.pw_uid, nobody.pw_gid)
        launch(s, [route_for(s)], extra={"user": "nobody"}, admin=False)
        assert wait_for(lambda: "msg=started" in s.cg.stderr())
        pid = s.cg.proc.pid
        for task in os.listdir(f"/proc/{pid}/task"):
            status = read_text(f"/proc/{pid}/task/{task}/status")
            ids = {l.split(":")[0]: l.split()[1:] for l in status.splitlines() if ":" in l}
            assert ids["Uid"] == [str(nobody.pw_uid)] * 4, (task, ids["Uid"])
            assert ids["Gid"] == [str(nobody.pw_gid)] * 4, (task, ids["Gid"])
            assert ids.get("Groups", []) in ([], [str(nobody.pw_gid)]), ids.get("Groups")
            assert int(ids["CapEff"][0], 16) == 0 and int(ids["CapPrm"][0], 16) == 0, \
                (task, ids["CapEff"], ids["CapPrm"])
        # Not dumpable: the files of /proc/PID stay root's although the
        # process is not.
        assert os.stat(f"/proc/{pid}/status").st_uid == 0, "credgate is dumpable after the drop"
        r = s.request()
        assert r.status == 200 and r.text == s.nginx.files["/a.txt"]


# ======================================================================
# Many idle connections
# ======================================================================
IDLE_CONNECTIONS = 5000


def test_many_idle_keep_alive_connections(make_stack):
    want = 3 * IDLE_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want and os.geteuid() != 0:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
    # credgate and nginx inherit the raised limit.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), new_hard))
    conns = []
    try:
        s = make_stack(start=False)
        conf = read_text(s.nginx.conf).replace("worker_connections 256;",
                                               f"worker_connections {want};")
        with open(s.nginx.conf, "w") as f:
            f.write(conf)
        # Batches of 500 connections from one address, each opened
        # before any sends its request.
        launch(s, [route_for(s)], extra={"max_pending_per_client": 500})
        no_connections_open(s)
        token = s.token()
        assert s.request(token=token).status == 200
        rss0 = vm_rss_kib(s.cg.proc.pid)
        req = (f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
        t0 = time.monotonic()
        for start in range(0, IDLE_CONNECTIONS, 500):
            batch = [RawClient(s.ports["legacy"], 10, s.seen)
                     for _ in range(start, min(start + 500, IDLE_CONNECTIONS))]
            conns.extend(batch)
            for c in batch:
                c.send(req)
            for c in batch:
                r = c.read_response()
                assert r.status == 200, r
        opened = time.monotonic() - t0
        assert metrics(s)("credgate_connections_open", route="legacy") == IDLE_CONNECTIONS
        time.sleep(0.2)
        rss1 = vm_rss_kib(s.cg.proc.pid)
        per = (rss1 - rss0) / IDLE_CONNECTIONS
        print(f"{IDLE_CONNECTIONS} idle keep-alive connections in {opened:.1f}s: "
              f"VmRSS {rss0} -> {rss1} KiB, {per:.2f} KiB per connection")
        for c in conns[::IDLE_CONNECTIONS // 8]:
            r = get(c, "/b.txt", token)
            assert r.status == 200 and r.text == s.nginx.files["/b.txt"], r
        log = s.cg.stderr()
        for bad in ("accept_paused", "accept_failed", "connection_refused"):
            assert f"msg={bad}" not in log, f"{bad} while holding {IDLE_CONNECTIONS} connections"
        assert not re.search(r"level=error\b", log), "errors while holding idle connections"
        assert per < 64, f"{per:.1f} KiB of RSS per idle connection"
    finally:
        for c in conns:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, new_hard))
    assert wait_for(lambda: metrics(s)("credgate_connections_open", route="legacy") == 0,
                    timeout=10), "closed connections are still counted as open"
