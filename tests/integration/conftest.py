"""Fixtures for the credgate integration tests.

Every test starts the real credgate binary ($CREDGATE) and a real nginx
($NGINX) with auth_basic as the legacy upstream, each in the test's own
temporary folder and on free loopback ports.  Servers are stopped by PID at
teardown; their logs are printed (pytest shows them when a test fails), and
the teardown fails on any sanitizer report and on any trace of the canary
secret in credgate's log, its audit events or a response the test saw.
The PostgreSQL routes' tests run a real PostgreSQL server instead (the pg
fixture, one per module: the newest /usr/lib/postgresql/*/bin, or
$PG_BINDIR), and skip when its programs are missing.
"""

import base64
import datetime
import fcntl
import glob
import http.client
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ISSUER = "https://issuer.test"
AUDIENCE = "credgate"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:")

# The secret credgate injects; it must never come back out of credgate.
CANARY = "canary-" + secrets.token_hex(12)
CANARY_TOKEN = "canary-tok-" + secrets.token_hex(12)
SECRET_USER = "svc"


# Spellings of further secrets a test run makes (the PostgreSQL service
# accounts' passwords and what a login derives from them).
_more_canaries = []


def add_canaries(forms):
    for f in forms:
        if f not in _more_canaries:
            _more_canaries.append(f)


def canary_forms():
    """Every spelling of the secrets that would betray a leak."""
    forms = [CANARY, CANARY_TOKEN]
    for text in (SECRET_USER + ":" + CANARY, CANARY, CANARY_TOKEN):
        forms.append(base64.b64encode(text.encode()).decode().rstrip("="))
    return forms + _more_canaries


def find_leaks(data):
    if isinstance(data, bytes):
        data = data.decode("latin-1")
    return [f for f in canary_forms() if f in data]


def sanitizer_lines(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


# ----------------------------------------------------------------------
# Programs
# ----------------------------------------------------------------------
def _need_executable(var, default=None):
    path = os.environ.get(var) or default
    if not path:
        pytest.fail(f"${var} is not set: run the tests through `make check` "
                    f"or set {var} to the program to test", pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"${var}={path} is not an executable file (build it first)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def credgate_bin():
    return _need_executable("CREDGATE")


@pytest.fixture(scope="session")
def nginx_bin():
    return _need_executable("NGINX", "/usr/sbin/nginx")


@pytest.fixture(scope="session")
def srcdir():
    d = os.environ.get("CG_SRCDIR")
    if not d:
        d = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    return d


@pytest.fixture(scope="session")
def builddir():
    return os.environ.get("CG_BUILDDIR") or os.path.dirname(
        os.environ.get("CREDGATE", "") or ".")


def run_credgate(binary, args, cwd=None, timeout=30, env=None):
    """Runs a one-shot credgate command; fails on sanitizer output."""
    p = subprocess.run([binary] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env=env)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    print(f"$ credgate {' '.join(args)}\n-> exit {p.returncode}\n--- stdout\n{out}--- stderr\n{err}")
    bad = sanitizer_lines(out + err)
    assert not bad, f"sanitizer report from credgate {args}: {bad}"
    return p.returncode, out, err


# ----------------------------------------------------------------------
# Free ports: bind port 0, then hold a lock on the number for the whole
# session so that parallel test runs never hand out the same port.
# ----------------------------------------------------------------------
_port_locks = []
_port_lock_dir = os.path.join(tempfile.gettempdir(), "credgate-test-ports")


def free_port():
    os.makedirs(_port_lock_dir, exist_ok=True)
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        f = open(os.path.join(_port_lock_dir, f"{port}.lock"), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _port_locks.append(f)
        return port
    raise RuntimeError("no free port found")


def wait_port(port, proc=None, timeout=START_TIMEOUT, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before "
                                 f"listening on 127.0.0.1:{port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} not listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Signals proc by PID and waits; SIGKILL after timeout.  Returns
    (returncode, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
        return proc.returncode, False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
        return proc.returncode, True


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_for(pred, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ----------------------------------------------------------------------
# Keys, JWKS and tokens
# ----------------------------------------------------------------------
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return n.to_bytes(size, "big")


def public_jwk(key, kid):
    pub = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64url(_int_bytes(nums.n)), "e": b64url(_int_bytes(nums.e))}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        nums = pub.public_numbers()
        return {"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                "x": b64url(_int_bytes(nums.x, 32)), "y": b64url(_int_bytes(nums.y, 32))}
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
                "x": b64url(raw)}
    raise TypeError(key)


class Keys:
    """Signing keys for the test issuer, one per algorithm family."""

    ALGS = {"RS256": "rsa-1", "ES256": "ec-1", "EdDSA": "ed-1"}

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        # Keys the issuer does not publish, for forged tokens.
        self.other_ec = ec.generate_private_key(ec.SECP256R1())
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def key_for(self, alg):
        return {"RS256": self.rsa, "ES256": self.ec, "EdDSA": self.ed}[alg]

    def jwks(self):
        return {"keys": [public_jwk(self.rsa, "rsa-1"), public_jwk(self.ec, "ec-1"),
                         public_jwk(self.ed, "ed-1")]}

    def claims(self, **over):
        now = int(time.time())
        c = {"iss": ISSUER, "sub": "repo:acme/app:ref:refs/heads/main", "aud": AUDIENCE,
             "iat": now, "exp": now + 300, "jti": secrets.token_hex(8),
             "repository": "acme/app", "ref": "refs/heads/main"}
        for k, v in over.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def mint(self, alg="ES256", key=None, kid=None, headers=None, **claims):
        """A signed token; claims given as None are dropped."""
        key = key if key is not None else self.key_for(alg)
        hdr = {"kid": kid if kid is not None else self.ALGS.get(alg)}
        if hdr["kid"] is None or hdr["kid"] == "":
            hdr.pop("kid")
        hdr.update(headers or {})
        return jwt.encode(self.claims(**claims), key, algorithm=alg, headers=hdr)

    @staticmethod
    def unsigned(header, payload, signature=b""):
        return ".".join([b64url(json.dumps(header).encode()),
                         b64url(json.dumps(payload).encode()), b64url(signature)])


@pytest.fixture(scope="session")
def keys():
    return Keys()


# ----------------------------------------------------------------------
# Certificates
# ----------------------------------------------------------------------
def write_file(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


class Pki:
    """A throwaway CA in a folder: issues server and client certificates
    (EC P-256), writes certificates 0644 and keys 0600."""

    def __init__(self, directory, name):
        self.dir = str(directory)
        self.name = name
        os.makedirs(self.dir, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "credgate tests"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                  key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, key_cert_sign=True,
                                                  crl_sign=True, encipher_only=False,
                                                  decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = write_file(os.path.join(self.dir, f"{name}-ca.pem"),
                                  self.cert.public_bytes(serialization.Encoding.PEM), 0o644)

    KEY_USAGES = ("digital_signature", "content_commitment", "key_encipherment",
                  "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                  "encipher_only", "decipher_only")

    def issue(self, stem, cn, org=None, dns=(), ips=(), uris=(), emails=(), server=False,
              client=False, ca=False, key_usage=None, not_before=None, not_after=None):
        """Writes stem.crt and stem.key; returns (cert_file, key_file, cert).
        ca makes it a CA certificate (basicConstraints cA true); key_usage
        names the keyUsage bits to set (arguments of x509.KeyUsage; none:
        no keyUsage extension); not_before and not_after are its validity
        (default: from an hour ago to a day from now)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = []
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name(attrs)).issuer_name(self.cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before or now - datetime.timedelta(hours=1))
             .not_valid_after(not_after or now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False))
        if key_usage is not None:
            bits = {k: k in key_usage for k in self.KEY_USAGES}
            b = b.add_extension(x509.KeyUsage(**bits), critical=True)
        names = ([x509.DNSName(d) for d in dns] +
                 [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] +
                 [x509.UniformResourceIdentifier(u) for u in uris] +
                 [x509.RFC822Name(e) for e in emails])
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        if usages:
            b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        crt = write_file(os.path.join(self.dir, f"{stem}.crt"),
                         cert.public_bytes(serialization.Encoding.PEM), 0o644)
        keyf = write_file(os.path.join(self.dir, f"{stem}.key"),
                          key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
        return crt, keyf, cert

    def server(self, stem):
        return self.issue(stem, "localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)

    def svid(self, stem, spiffe_id, **kw):
        """An X.509-SVID of this CA: the SPIFFE ID as its one URI name,
        keyUsage digitalSignature, extendedKeyUsage clientAuth; kw as
        issue() takes them (uris replaces the URI names)."""
        kw.setdefault("uris", [spiffe_id] if spiffe_id else [])
        kw.setdefault("key_usage", ["digital_signature"])
        return self.issue(stem, kw.pop("cn", stem), client=True, **kw)


# ----------------------------------------------------------------------
# libconfig rendering
# ----------------------------------------------------------------------
def lc_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lc_value(v, indent=1):
    pad = "\t" * indent
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if -2**31 <= v < 2**31 else f"{v}L"
    if isinstance(v, str):
        return lc_quote(v)
    if isinstance(v, dict):
        inner = "".join(f"{pad}\t{k} = {lc_value(x, indent + 1)};\n" for k, x in v.items())
        return "{\n" + inner + pad + "}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, dict) for x in v):
            items = (",\n").join(pad + "\t" + lc_value(x, indent + 1) for x in v)
            return "(\n" + items + "\n" + pad + ")"
        return "[" + ", ".join(lc_value(x, indent) for x in v) + "]"
    raise TypeError(v)


def render_config(top):
    return "".join(f"{k} = {lc_value(v, 0)};\n" for k, v in top.items())


# ----------------------------------------------------------------------
# nginx: the legacy service, auth_basic with a static password
# ----------------------------------------------------------------------
ACCESS_FIELDS = {
    "user": "$remote_user", "auth": "$http_authorization", "xff": "$http_x_forwarded_for",
    "fwd": "$http_forwarded", "rid": "$http_x_request_id", "len": "$request_length",
    "req": "$request", "status": "$status", "conn": "$connection",
    "creq": "$connection_requests", "host": "$http_host", "cookie": "$http_cookie",
    "body": "$request_body", "te": "$http_transfer_encoding", "cl": "$http_content_length",
    "expect": "$http_expect", "apikey": "$http_x_api_key", "uri": "$request_uri",
}

_optional_temp_dirs = None


def _nginx_temp_directives(nginx_bin, tmp):
    """The *_temp_path directives this nginx knows, so that nothing is
    written outside the test's folder."""
    global _optional_temp_dirs
    names = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    if _optional_temp_dirs is None:
        known = []
        for n in names:
            conf = os.path.join(tmp, f"probe-{n}.conf")
            with open(conf, "w") as f:
                f.write(f"error_log {tmp}/probe.log; pid {tmp}/probe.pid;\n"
                        "events {}\n"
                        f"http {{ {n}_temp_path {tmp}/probe-{n}; }}\n")
            p = subprocess.run([nginx_bin, "-t", "-q", "-p", tmp, "-c", conf, "-e",
                                f"{tmp}/probe.log"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
            if p.returncode == 0 or b"unknown directive" not in p.stdout:
                known.append(n)
            os.unlink(conf)
        _optional_temp_dirs = known
    return "".join(f"\t{n}_temp_path {tmp}/{n}_temp;\n" for n in _optional_temp_dirs)


class Nginx:
    def __init__(self, binary, base, canary_password):
        self.binary = binary
        self.dir = os.path.join(base, "nginx")
        os.makedirs(os.path.join(self.dir, "www", "admin"))
        self.port = free_port()
        self.sink_port = free_port()
        self.proc = None
        tag = secrets.token_hex(6)
        self.files = {
            "/index.html": f"legacy index {tag}\n",
            "/a.txt": f"legacy A {tag}\n",
            "/b.txt": f"legacy B {tag}\n",
            "/admin/x.txt": f"legacy admin {tag}\n",
        }
        for path, text in self.files.items():
            with open(os.path.join(self.dir, "www", path.lstrip("/")), "w") as f:
                f.write(text)
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"],
                                input=canary_password.encode(), stdout=subprocess.PIPE,
                                check=True, timeout=20).stdout.decode().strip()
        with open(os.path.join(self.dir, "htpasswd"), "w") as f:
            f.write(f"{SECRET_USER}:{hashed}\n")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        fmt = "{" + ",".join(f'"{k}":"{v}"' for k, v in ACCESS_FIELDS.items()) + "}"
        d = self.dir
        conf = f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
{_nginx_temp_directives(binary, d)}\tdefault_type text/plain;
\tclient_body_buffer_size 1m;
\tclient_max_body_size 8m;
\tkeepalive_requests 1000;
\tlog_format cg escape=json '{fmt}';
\taccess_log {self.access_log} cg;
\tserver {{
\t\tlisten 127.0.0.1:{self.port};
\t\tserver_name legacy;
\t\troot {d}/www;
\t\terror_page 405 =200 $uri;
\t\tlocation / {{
\t\t\tauth_basic "legacy";
\t\t\tauth_basic_user_file {d}/htpasswd;
\t\t}}
\t\tlocation /upload/ {{
\t\t\tauth_basic "legacy";
\t\t\tauth_basic_user_file {d}/htpasswd;
\t\t\tproxy_set_header Authorization "";
\t\t\tproxy_pass http://127.0.0.1:{self.sink_port}/;
\t\t}}
\t}}
\tserver {{
\t\tlisten 127.0.0.1:{self.sink_port};
\t\taccess_log off;
\t\tlocation / {{ return 200 "stored\\n"; }}
\t}}
}}
"""
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        self.stdout = open(os.path.join(self.dir, "stdout.log"), "wb")
        self.proc = subprocess.Popen([self.binary, "-p", self.dir, "-c", self.conf, "-e",
                                      self.error_log], stdin=subprocess.DEVNULL,
                                     stdout=self.stdout, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, what="nginx")
        wait_port(self.sink_port, self.proc, what="nginx")

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT)
            self.stdout.close()

    def access(self):
        out = []
        text = read_text(self.access_log)
        # A long line may be read while nginx is still writing it: only
        # lines ended by a newline are complete.
        for line in text[:text.rfind("\n") + 1].splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def mark(self):
        return len(self.access())

    def since(self, mark, count=1, timeout=5.0):
        """Lines logged after mark, waiting for at least count of them."""
        got = wait_for(lambda: self.access()[mark:] if len(self.access()) >= mark + count
                       else None, timeout)
        return got if got else self.access()[mark:]

    def assert_untouched(self, mark, settle=0.25):
        time.sleep(settle)
        new = self.access()[mark:]
        assert not new, f"nginx received requests it should never have seen: {new}"

    def dump(self):
        return (f"--- nginx error.log\n{read_text(self.error_log)}"
                f"--- nginx access.log\n{read_text(self.access_log)}")


# ----------------------------------------------------------------------
# A raw upstream that records exactly what credgate sends it
# ----------------------------------------------------------------------
class LoopbackServer:
    """A TCP server on a free loopback port that serves each connection
    in a thread of its own with self._serve(conn); stop() ends it."""

    def __init__(self, backlog=16):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", free_port()))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.running = True
        self.threads = []
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        raise NotImplementedError

    def stop(self):
        """Also ends the connections still open (credgate's pool keeps
        some), so that no serving thread waits for its peer."""
        self.running = False
        self.sock.close()
        self.thread.join(timeout=5)
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=5)


class CaptureServer(LoopbackServer):
    """Answers every request 200 "captured" and keeps the raw heads and
    bodies it received, for assertions nginx cannot express (repeated
    fields, exact names)."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        super().__init__()

    def _serve(self, conn):
        conn.settimeout(10)
        buf = b""
        try:
            while self.running:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                fields = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
                length = 0
                chunked = False
                for n, v in fields:
                    if n.lower() == "content-length":
                        length = int(v)
                    if n.lower() == "transfer-encoding" and "chunked" in v.lower():
                        chunked = True
                body = b""
                if chunked:
                    while True:
                        while b"\r\n" not in buf:
                            buf += conn.recv(65536)
                        size_line, buf = buf.split(b"\r\n", 1)
                        size = int(size_line.split(b";")[0], 16)
                        while len(buf) < size + 2:
                            buf += conn.recv(65536)
                        body += buf[:size]
                        buf = buf[size + 2:]
                        if size == 0:
                            break
                else:
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    body, buf = buf[:length], buf[length:]
                with self.lock:
                    self.requests.append({"line": lines[0], "fields": fields, "body": body,
                                          "raw": head})
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 9\r\n\r\ncaptured\n")
        except (OSError, ValueError):
            return
        finally:
            conn.close()

    def fields(self, req, name):
        return [v for n, v in req["fields"] if n.lower() == name.lower()]


# ----------------------------------------------------------------------
# HTTP over raw sockets
# ----------------------------------------------------------------------
class Response:
    def __init__(self, status, reason, headers, body, raw, version="HTTP/1.1"):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value) in order
        self.body = body
        self.raw = raw
        self.version = version

    def header(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[-1] if vals else None

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def has_token(self, name, token):
        for v in self.header_all(name):
            if token.lower() in [t.strip().lower() for t in v.split(",")]:
                return True
        return False

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} {self.body[:200]!r}>"


class RawClient:
    """A client socket with a read buffer; parses responses strictly."""

    def __init__(self, port, timeout=5.0, seen=None, source=None):
        """source: the local address to connect from ("127.0.0.2")."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.seen = seen if seen is not None else []
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.seen.append(data)
        self.buf += data
        return True

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed inside a response: {self.buf[:300]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, head_only=False):
        status_line = self._line().decode("latin-1")
        m = re.match(r"^(HTTP/1\.[01]) (\d{3}) ?(.*)$", status_line)
        assert m, f"bad status line {status_line!r}"
        version, status, reason = m.group(1), int(m.group(2)), m.group(3)
        headers = []
        while True:
            line = self._line().decode("latin-1")
            if line == "":
                break
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        resp = Response(status, reason, headers, b"", None, version)
        if head_only or status in (100, 101, 204, 304) or 100 <= status < 200:
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    # The last chunk: trailer fields, then an empty line.
                    while self._line() != b"":
                        pass
                    break
                while len(self.buf) < size + 2:
                    if not self._fill():
                        raise EOFError("closed inside a chunk")
                assert self.buf[size:size + 2] == b"\r\n", "chunk data not followed by CRLF"
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
            resp.body = body
        elif cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                if not self._fill():
                    raise EOFError("closed inside a body")
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_within(self, timeout):
        """True when the peer closes (EOF or reset, or a TLS alert on a
        socket wrapped in TLS) within timeout with no further bytes; raises
        if bytes arrive instead."""
        if self.eof:
            return True
        assert self.buf == b"", f"unexpected bytes before the close: {self.buf[:200]!r}"
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True
        if data:
            self.seen.append(data)
            raise AssertionError(f"unexpected bytes instead of a close: {data[:200]!r}")
        return True

    def close(self):
        self.sock.close()


# ----------------------------------------------------------------------
# credgate
# ----------------------------------------------------------------------
def base_route(name, listen_port, upstream_port, **over):
    r = {
        "name": name,
        "listen": f"127.0.0.1:{listen_port}",
        "protocol": "http",
        "upstream": {"host": "127.0.0.1", "port": upstream_port},
        "credential": {"path": "legacy/app", "inject": "basic"},
        "mode": "enforce",
        "max_body": 1048576,
        "audit_failure": "deny",
        "owner": "team@example.com",
        "purpose": "integration tests",
        "environment": "test",
        "expires": "2099-12-31",
        "allow": [{"name": "readers", "issuer": "test",
                   "claims": [{"claim": "repository", "value": "acme/*"},
                              {"claim": "ref", "value": "refs/heads/main"}],
                   "methods": ["GET", "HEAD", "POST"], "paths": ["/*"]}],
        "deny": [{"name": "no-admin", "paths": ["/admin/*"]}],
    }
    r.update(over)
    return r


class Credgate:
    def __init__(self, binary, base, keys, log_level="info"):
        self.binary = binary
        self.dir = os.path.join(base, "credgate")
        os.makedirs(self.dir)
        self.jwks_file = os.path.join(self.dir, "jwks.json")
        with open(self.jwks_file, "w") as f:
            json.dump(keys.jwks(), f)
        self.secrets_file = os.path.join(self.dir, "secrets.json")
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"legacy/app": {"username": SECRET_USER, "password": CANARY,
                                      "version": "1"},
                       "legacy/token": {"token": CANARY_TOKEN, "version": "7"}}, f)
        self.audit_file = os.path.join(self.dir, "audit.log")
        self.conf_file = os.path.join(self.dir, "credgate.conf")
        self.stderr_file = os.path.join(self.dir, "stderr.log")
        self.stdout_file = os.path.join(self.dir, "stdout.log")
        self.log_level = log_level
        self.proc = None
        self.exit = None
        self.ports = {}

    def config(self, routes, credgate_extra=None, issuer_extra=None, secrets_extra=None,
               trust_domains=None):
        cg = {"log_level": self.log_level,
              "audit": {"file": self.audit_file, "stdout": False},
              "limits": {"request_line": 8192, "header_bytes": 32768, "header_count": 100,
                         "token_bytes": 8192},
              "timeouts": {"client_header": "10s", "client_idle": "60s",
                           "upstream_connect": "5s", "upstream_response": "60s"}}
        for k, v in (credgate_extra or {}).items():
            if isinstance(v, dict) and isinstance(cg.get(k), dict):
                cg[k].update(v)
            else:
                cg[k] = v
        issuer = {"name": "test", "issuer": ISSUER, "audiences": [AUDIENCE],
                  "algorithms": ["RS256", "ES256", "EdDSA"], "jwks_file": self.jwks_file,
                  "max_lifetime": "1h", "clock_skew": "60s", "audit_claims": ["repository"]}
        issuer.update(issuer_extra or {})
        issuer = {k: v for k, v in issuer.items() if v is not None}
        store = {"backend": "file", "file": self.secrets_file, "cache_ttl": "5m"}
        store.update(secrets_extra or {})
        top = {"credgate": cg, "issuers": [issuer], "secrets": store}
        if trust_domains is not None:
            top["trust_domains"] = trust_domains
        top["routes"] = routes
        return render_config(top)

    def put_secrets(self, entries):
        """Adds or replaces secrets (path -> fields) as a deployment would:
        a new file (0600), renamed over the old one."""
        with open(self.secrets_file) as f:
            doc = json.load(f)
        doc.update(entries)
        tmp = self.secrets_file + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, self.secrets_file)

    def write_config(self, text):
        with open(self.conf_file, "w") as f:
            f.write(text)

    def start(self, wait_ports=()):
        self.err = open(self.stderr_file, "ab")
        self.out = open(self.stdout_file, "ab")
        # Requests to the Vault test server go to loopback directly, even
        # on a machine whose environment names a proxy.
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        self.proc = subprocess.Popen([self.binary, "-c", self.conf_file], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.err, env=env)
        for p in wait_ports:
            wait_port(p, self.proc, what="credgate")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        if self.exit is None:
            self.exit = stop_process(self.proc, sig)
            self.err.close()
            self.out.close()
        return self.exit

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stderr(self):
        return read_text(self.stderr_file)

    def audit(self, path=None):
        """The events written so far.  A last line without its newline is
        a write still going on (a reader may see part of it): it is left
        for the next look; every whole line must parse."""
        events = []
        text = read_text(path or self.audit_file)
        if not text.endswith("\n"):
            text = text[:text.rfind("\n") + 1]
        for line in text.splitlines():
            if line.strip():
                events.append(json.loads(line))
        return events

    def audit_where(self, pred, timeout=5.0):
        return wait_for(lambda: [e for e in self.audit() if pred(e)], timeout) or []

    def dump(self):
        text = f"--- credgate.conf\n{read_text(self.conf_file)}"
        text += f"--- credgate stderr\n{self.stderr()}"
        text += f"--- credgate stdout\n{read_text(self.stdout_file)}"
        text += f"--- audit\n{read_text(self.audit_file)}"
        return text


class Stack:
    """credgate in front of nginx (and optional capture upstreams)."""

    def __init__(self, tmp, keys, credgate_bin, nginx_bin):
        self.tmp = str(tmp)
        self.keys = keys
        self.nginx = Nginx(nginx_bin, self.tmp, CANARY)
        self.cg = Credgate(credgate_bin, self.tmp, keys)
        self.capture = None
        self.seen = []           # every response byte the test saw
        self.ports = {}
        self.expect_exit = 0

    # presets -----------------------------------------------------------
    def route(self, preset, **over):
        port = free_port()
        self.ports[over.get("name", preset)] = port
        up = self.nginx.port
        if preset == "legacy":
            r = base_route("legacy", port, up)
        elif preset == "dryrun":
            r = base_route("dryrun", port, up, mode="dry-run")
        elif preset == "expired":
            r = base_route("expired", port, up, expires="2001-01-01")
        elif preset == "expired-dry":
            r = base_route("expired-dry", port, up, expires="2001-01-01", mode="dry-run")
        elif preset == "down":
            r = base_route("down", port, free_port())
        elif preset == "nosecret":
            r = base_route("nosecret", port, up,
                           credential={"path": "missing/app", "inject": "basic"})
        elif preset in ("header", "bearer", "query", "capture"):
            if self.capture is None:
                self.capture = CaptureServer()
            cred = {
                "capture": {"path": "legacy/app", "inject": "basic"},
                "header": {"path": "legacy/app", "inject": "header", "header": "X-Api-Key",
                           "template": "${password}"},
                "bearer": {"path": "legacy/token", "inject": "bearer", "field": "token"},
                "query": {"path": "legacy/token", "inject": "query", "query_param": "api_key",
                          "field": "token"},
            }[preset]
            r = base_route(preset, port, self.capture.port, credential=cred)
        else:
            raise ValueError(preset)
        r.update(over)
        return r

    def start(self, routes=("legacy",), credgate_extra=None, issuer_extra=None,
              route_over=None, config_text=None, secrets_extra=None):
        self.nginx.start()
        built = []
        for preset in routes:
            built.append(self.route(preset, **((route_over or {}).get(preset, {}))))
        self.cg.write_config(config_text or self.cg.config(built, credgate_extra, issuer_extra,
                                                             secrets_extra))
        self.cg.start(wait_ports=list(self.ports.values()))
        return self

    def stop(self):
        code = self.cg.stop()
        self.nginx.stop()
        if self.capture is not None:
            self.capture.stop()
        return code

    # clients -----------------------------------------------------------
    def token(self, alg="ES256", **kw):
        return self.keys.mint(alg, **kw)

    def raw(self, route="legacy", timeout=5.0):
        return RawClient(self.ports[route], timeout, self.seen)

    def request(self, method="GET", path="/a.txt", route="legacy", token=None, headers=None,
                body=None, auth=True, alg="ES256"):
        """One request on its own connection through http.client."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[route], timeout=10)
        hdrs = dict(headers or {})
        if auth:
            hdrs.setdefault("Authorization", "Bearer " + (token or self.token(alg)))
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        resp = Response(r.status, r.reason, r.getheaders(), data, None)
        self.seen.append(repr(r.getheaders()).encode() + data)
        conn.close()
        return resp

    def curl(self, *args, route="legacy", path="/a.txt", token=None, auth=True,
             query=""):
        url = f"http://127.0.0.1:{self.ports[route]}{path}{query}"
        hdr = os.path.join(self.tmp, "curl-headers")
        body = os.path.join(self.tmp, "curl-body")
        cmd = ["curl", "-sS", "--max-time", "15", "-D", hdr, "-o", body, "-w", "%{http_code}"]
        if auth:
            cmd += ["-H", "Authorization: Bearer " + (token or self.token())]
        cmd += list(args) + [url]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, f"curl failed: {p.stderr.decode()}"
        head = read_text(hdr)
        data = open(body, "rb").read() if os.path.exists(body) else b""
        self.seen.append(head.encode() + data + p.stderr)
        # The last header block is the final response.
        blocks = [b for b in re.split(r"\r\n\r\n", head) if b.strip()]
        lines = blocks[-1].split("\r\n")
        status = int(lines[0].split()[1])
        headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
        assert status == int(p.stdout), (status, p.stdout)
        for f in (hdr, body):
            if os.path.exists(f):
                os.unlink(f)
        return Response(status, "", headers, data, None)

    def dump(self):
        text = self.cg.dump() + self.nginx.dump()
        if self.capture is not None:
            text += f"--- capture upstream\n{self.capture.requests!r}\n"
        return text


def audit_problems(text):
    """Every audit line is one JSON object, and its reasons are plain text."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except ValueError:
            out.append(f"audit line {n} is not JSON: {line[:200]!r}")
            continue
        if not isinstance(e, dict):
            out.append(f"audit line {n} is not an object")
            continue
        reasons = [e.get("reason"), (e.get("decision") or {}).get("reason")]
        for r in reasons:
            if r is not None and not (isinstance(r, str) and r.isascii() and r.isprintable()):
                out.append(f"audit line {n} has a garbled reason {r!r} "
                           f"(event {e.get('event')})")
    return out


def stack_problems(s):
    """Stops the stack s and returns what its teardown finds wrong: how
    credgate ended, sanitizer reports, the secret in credgate's log, its
    audit events or anything a client saw, and malformed audit lines."""
    problems = []
    code = s.stop()
    print(s.dump())
    if code is not None:
        rc, killed = code
        if killed:
            problems.append("credgate ignored SIGTERM and was killed")
        elif s.expect_exit is not None and rc != s.expect_exit:
            problems.append(f"credgate exited with {rc} after SIGTERM "
                            f"(expected {s.expect_exit})")
    err = s.cg.stderr() + read_text(s.cg.stdout_file)
    bad = sanitizer_lines(err)
    if bad:
        problems.append(f"sanitizer report: {bad[:5]}")
    for where, text in (("credgate log", err),
                        ("audit events", read_text(s.cg.audit_file)),
                        ("responses", b"".join(s.seen).decode("latin-1"))):
        leaks = find_leaks(text)
        if leaks:
            problems.append(f"secret leaked into {where}: {leaks}")
    problems.extend(audit_problems(read_text(s.cg.audit_file)))
    for name in os.listdir(s.cg.dir):
        if name.startswith("audit") and name != "audit.log":
            leaks = find_leaks(read_text(os.path.join(s.cg.dir, name)))
            if leaks:
                problems.append(f"secret leaked into {name}")
    return problems


@pytest.fixture
def make_stack(tmp_path, keys, credgate_bin, nginx_bin):
    stacks = []

    def make(**kw):
        base = tmp_path / f"s{len(stacks)}"
        os.makedirs(base)
        s = Stack(base, keys, credgate_bin, nginx_bin)
        stacks.append(s)
        if kw.pop("start", True):
            s.start(**kw)
        return s

    yield make
    problems = []
    for s in stacks:
        problems.extend(stack_problems(s))
    assert not problems, "; ".join(problems)


@pytest.fixture
def stack(make_stack):
    """credgate with the plain enforcing route "legacy" in front of nginx."""
    return make_stack()


# ----------------------------------------------------------------------
# curl over TLS
# ----------------------------------------------------------------------
def curl_tls(s, port, path="/a.txt", cacert=None, cert=None, key=None, token=None, auth=True,
             args=(), host="127.0.0.1"):
    """One request of curl over TLS to a stack s (its token unless token or
    auth=False), with a client certificate when cert is given; returns
    (curl's exit code, HTTP status or 0, body)."""
    body = os.path.join(s.tmp, "curl-tls-body")
    cmd = ["curl", "-sS", "--max-time", "10", "-o", body, "-w", "%{http_code}"]
    if cacert:
        cmd += ["--cacert", cacert]
    if cert:
        cmd += ["--cert", cert, "--key", key]
    if auth:
        cmd += ["-H", "Authorization: Bearer " + (token or s.token())]
    cmd += list(args) + [f"https://{host}:{port}{path}"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    data = b""
    if os.path.exists(body):
        with open(body, "rb") as f:
            data = f.read()
        os.unlink(body)
    s.seen.append(p.stdout + p.stderr + data)
    print(f"curl {path} -> exit {p.returncode} {p.stdout!r} {p.stderr.decode()}")
    out = p.stdout.decode().strip()
    return p.returncode, int(out) if out.isdigit() and out != "000" else 0, data


# ----------------------------------------------------------------------
# The admin endpoint
# ----------------------------------------------------------------------
def admin_get(port, path):
    """GET path from the admin endpoint on port: (status, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """A /metrics answer, parsed: m(name, label=value, ...) is a sample."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, f"not a Prometheus sample line: {line!r}"
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            self.samples[(m.group(1), labels)] = float(m.group(3))

    def __call__(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]


def assert_closed(client, timeout=5.0):
    assert client.closed_within(timeout), "connection still open after the response"


# ----------------------------------------------------------------------
# PostgreSQL: a real server from the distribution's packages, with one
# service account per upstream login method, and the routes that front it
# ----------------------------------------------------------------------
PG_SUPERUSER = "postgres"
# The group of the users a secret store creates (Vault's database engine,
# in the Vault tests): they log in with scram-sha-256.
PG_DYNAMIC_GROUP = "credgate_dynamic"

# Service account -> (login method in pg_hba.conf, password_encryption
# its password is stored with).
PG_ACCOUNTS = {
    "svc_scram": ("scram-sha-256", "scram-sha-256"),
    "svc_md5": ("md5", "md5"),
    "svc_plain": ("password", "scram-sha-256"),
    "svc_rotate": ("scram-sha-256", "scram-sha-256"),
}
PG_CLIENTS = ("psql", "pgbench")


def _pg_version_key(path):
    m = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/bin$", path)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def pg_bindir():
    """The folder of PostgreSQL's server programs: $PG_BINDIR, else the
    newest /usr/lib/postgresql/*/bin that holds postgres and initdb;
    None when there is none."""
    cands = [os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else \
        sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_pg_version_key, reverse=True)
    for d in cands:
        if all(os.access(os.path.join(d, p), os.X_OK) for p in ("postgres", "initdb")):
            return d
    return None


def pg_client(bindir, name):
    """A client program: the server's own version first, then $PATH."""
    p = os.path.join(bindir, name)
    return p if os.access(p, os.X_OK) else shutil.which(name)


def pg_missing():
    """Why the PostgreSQL tests cannot run here, or None."""
    d = pg_bindir()
    if d is None:
        return ("no PostgreSQL server programs (postgres, initdb) in "
                "/usr/lib/postgresql/*/bin or $PG_BINDIR (Debian: postgresql)")
    missing = [n for n in PG_CLIENTS if pg_client(d, n) is None]
    if missing:
        return f"no {', '.join(missing)} (Debian: postgresql-client, postgresql-contrib)"
    return None


def pg_client_env(home, **over):
    """An environment for libpq clients that reads nothing of the user's
    (no ~/.pgpass, ~/.psqlrc, service file or PG* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=home, PGCONNECT_TIMEOUT="10", PGSYSCONFDIR=home,
               PGSERVICEFILE=os.path.join(home, "no-pg_service.conf"),
               PGPASSFILE=os.path.join(home, "no-pgpass"), LC_ALL="C")
    env.update(over)
    return env


class Postgres:
    """A PostgreSQL cluster in a folder of its own: listens on 127.0.0.1 on a
    free port and on a Unix socket in that folder, TLS on with a certificate
    for localhost and 127.0.0.1 from a throwaway CA (self.pki), every
    connection logged.  Run as root, the server runs as nobody.  The
    superuser logs in over the Unix socket only, without a password; each
    service account over TCP with its own method (PG_ACCOUNTS), with the
    password in self.passwords."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.version = _pg_version_key(bindir)[0] or None
        # Not under pytest's folders: those are 0700 root, and the server
        # may run as another user.
        self.dir = tempfile.mkdtemp(prefix="credgate-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "sock")
        self.log_file = os.path.join(self.dir, "postgres.log")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.sockdir)
        os.makedirs(self.home)
        self.port = free_port()
        self.proc = None
        self.user = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.user = (pw.pw_uid, pw.pw_gid)
        self.passwords = {u: "pgpw-" + secrets.token_hex(16) for u in PG_ACCOUNTS}
        add_canaries(self.passwords.values())
        self.pki = Pki(os.path.join(self.dir, "pki"), "pg-ca")
        self.cert, self.key, _ = self.pki.server("postgres")

    # running programs as the server's user --------------------------------
    def _as_server(self):
        if self.user is None:
            return {}
        return {"user": self.user[0], "group": self.user[1], "extra_groups": []}

    def _run(self, args, **kw):
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120, cwd=self.dir,
                           env=pg_client_env(self.home), **self._as_server(), **kw)
        assert p.returncode == 0, f"{args[0]} failed: {p.stdout.decode('utf-8', 'replace')}"
        return p.stdout.decode("utf-8", "replace")

    def init(self):
        if self.user is not None:
            for root, dirs, files in os.walk(self.dir):
                for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                    os.chown(n, *self.user)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", PG_SUPERUSER,
                   "-E", "UTF8", "--locale=C", "--auth=trust", "--no-sync"])
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "max_connections": "60",
            "shared_buffers": "16MB",
            "ssl": "on",
            "ssl_cert_file": f"'{self.cert}'",
            "ssl_key_file": f"'{self.key}'",
            "password_encryption": "'scram-sha-256'",
            "log_connections": "on",
            "log_disconnections": "off",
            "log_line_prefix": "'%m [%p] '",
            "log_min_messages": "info",
            "logging_collector": "off",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "statement_timeout": "0",
            "search_path": "'\"$user\", public'",
        }
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# credgate integration tests\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        # Each account its method, over TLS (hostssl) and without (host);
        # nobody else over TCP.
        hba = [f"local all {PG_SUPERUSER} trust"]
        for kind in ("hostssl", "host"):
            for u, (method, _) in PG_ACCOUNTS.items():
                hba.append(f"{kind} all {u} 127.0.0.1/32 {method}")
            # Users a secret store makes per session are members of this.
            hba.append(f"{kind} all +{PG_DYNAMIC_GROUP} 127.0.0.1/32 scram-sha-256")
        hba.append("host all all 0.0.0.0/0 reject")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("\n".join(hba) + "\n")
        # The key must be the server's and private to it.
        os.chmod(self.key, 0o600)
        if self.user is not None:
            os.chown(self.key, *self.user)
            os.chown(self.cert, *self.user)

    def start(self):
        self.log = open(self.log_file, "ab")
        self.proc = subprocess.Popen([os.path.join(self.bindir, "postgres"), "-D", self.data],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=pg_client_env(self.home), **self._as_server())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited with {self.proc.returncode}:\n"
                                     f"{read_text(self.log_file)}")
            if "database system is ready to accept connections" in read_text(self.log_file):
                wait_port(self.port, self.proc, what="postgres")
                return
            time.sleep(0.05)
        raise AssertionError(f"postgres not ready after 30s:\n{read_text(self.log_file)}")

    def stop(self):
        """Fast shutdown by PID (SIGINT), SIGKILL if it hangs."""
        if self.proc is None:
            return None
        code = stop_process(self.proc, signal.SIGINT, timeout=20)
        self.log.close()
        self.proc = None
        return code

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # superuser access --------------------------------------------------
    def psql_cmd(self, db="postgres"):
        return [pg_client(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.sockdir, "-p", str(self.port), "-U", PG_SUPERUSER, "-d", db]

    def sql(self, text, db="postgres"):
        """Runs SQL as the superuser over the Unix socket (the text on
        standard input, so that passwords stay out of argv); returns the
        output, unaligned and without headers."""
        p = subprocess.run(self.psql_cmd(db), input=text.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120, env=pg_client_env(self.home))
        out = p.stdout.decode("utf-8", "replace")
        assert p.returncode == 0, f"psql as {PG_SUPERUSER} failed on {text[:200]!r}: " \
                                  f"{p.stderr.decode('utf-8', 'replace')}"
        return out.strip()

    def create_dynamic_user(self, user, password):
        """What a database secret engine's creation statements do."""
        add_canaries([password])
        lit = password.replace("'", "''")
        self.sql(f"SET password_encryption = 'scram-sha-256';\n"
                 f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{lit}' IN ROLE {PG_DYNAMIC_GROUP};\n")

    def drop_dynamic_user(self, user):
        """And its revocation statements: end its sessions, drop it."""
        self.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 f"WHERE usename = '{user}';\nDROP ROLE IF EXISTS \"{user}\";\n")

    def roles_like(self, pattern):
        out = self.sql(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{pattern}' "
                       f"ORDER BY 1;")
        return [l for l in out.splitlines() if l]

    def set_password(self, user, password):
        enc = PG_ACCOUNTS[user][1]
        self.passwords[user] = password
        add_canaries([password])
        lit = password.replace("'", "''")
        self.sql(f"SET password_encryption = '{enc}';\n"
                 f"ALTER ROLE {user} PASSWORD '{lit}';\n")

    def setup(self):
        """The service accounts, their passwords and the databases:
        ledger (owned by svc_scram, open to every account) and other."""
        stmts = []
        for u, (_, enc) in PG_ACCOUNTS.items():
            lit = self.passwords[u].replace("'", "''")
            stmts.append(f"SET password_encryption = '{enc}';")
            stmts.append(f"CREATE ROLE {u} LOGIN PASSWORD '{lit}';")
        stmts.append(f"CREATE ROLE {PG_DYNAMIC_GROUP} NOLOGIN;")
        stmts.append("CREATE DATABASE ledger OWNER svc_scram;")
        stmts.append("CREATE DATABASE other;")
        self.sql("\n".join(stmts) + "\n")
        accounts = ", ".join(list(PG_ACCOUNTS) + [PG_DYNAMIC_GROUP])
        self.sql(f"GRANT CONNECT, TEMPORARY ON DATABASE ledger TO {accounts};\n"
                 f"GRANT CONNECT, TEMPORARY ON DATABASE other TO {accounts};\n"
                 f"GRANT USAGE ON SCHEMA public TO {accounts};\n"
                 f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES "
                 f"TO {accounts};\n", db="ledger")
        # Stored as their methods need: an md5 login needs an md5 hash.
        kinds = self.sql("SELECT rolname, left(rolpassword, 5) FROM pg_authid "
                         "WHERE rolname LIKE 'svc\\_%' ORDER BY 1;")
        for line in kinds.splitlines():
            name, prefix = line.split("|")
            want = "md5" if PG_ACCOUNTS[name][1] == "md5" else "SCRAM"
            assert prefix.startswith(want), f"{name}'s password is stored as {prefix}..."

    # the server's log --------------------------------------------------
    def log_text(self):
        return read_text(self.log_file)

    def tcp_connections(self):
        """Connections PostgreSQL received over TCP (credgate's; the tests'
        own superuser sessions use the Unix socket)."""
        return len(re.findall(r"connection received: host=127\.0\.0\.1 ", self.log_text()))

    def logins(self, user=None):
        """Logins PostgreSQL authorised (over TCP and the socket), of user
        or of anyone."""
        pat = r"connection authorized: user=" + (re.escape(user) + r"\b" if user else r"\S+")
        return len(re.findall(pat, self.log_text()))

    def dump(self):
        return f"--- postgres log\n{self.log_text()}"


@pytest.fixture(scope="module")
def pg():
    """One PostgreSQL server per test module; skips with the reason when
    the programs are missing."""
    why = pg_missing()
    if why:
        pytest.skip(why)
    server = Postgres(pg_bindir())
    try:
        server.init()
        server.start()
        server.setup()
        yield server
    finally:
        server.stop()
        print(server.dump())
        leaks = find_leaks(server.log_text())
        server.cleanup()
    assert not leaks, f"a service account's secret reached PostgreSQL's log: {leaks}"


def pg_route(name, listen_port, pg, account="svc_scram", database="ledger", **over):
    """A postgres route on listen_port in front of pg that logs in as
    account (secret pg/<account>).  Its allow rule takes the test issuer's
    acme/* repositories to the databases in `databases` (default: the
    route's database); over replaces or adds settings, and
    postgres_over those of its postgres group."""
    databases = over.pop("databases", [database] if database else ["ledger"])
    pgset = {}
    if database is not None:
        pgset["database"] = database
    pgset.update(over.pop("postgres_over", {}))
    r = {
        "name": name,
        "listen": f"127.0.0.1:{listen_port}",
        "protocol": "postgres",
        "upstream": {"host": "127.0.0.1", "port": pg.port},
        "credential": {"path": f"pg/{account}"},
        "postgres": pgset,
        "mode": "enforce",
        "owner": "team@example.com",
        "purpose": "integration tests of the PostgreSQL front",
        "environment": "test",
        "expires": "2099-12-31",
        "allow": [{"name": "ci-db", "issuer": "test",
                   "claims": [{"claim": "repository", "value": "acme/*"},
                              {"claim": "ref", "value": "refs/heads/main"}],
                   "attributes": [{"attribute": "database", "value": databases}]}],
        "deny": [{"name": "no-intruder",
                  "attributes": [{"attribute": "user", "value": "intruder*"}]}],
    }
    if not pgset:
        del r["postgres"]
    r.update(over)
    return r


class PgStack:
    """credgate with postgres routes in front of a Postgres; has what
    stack_problems() checks (cg, seen, expect_exit, stop, dump), and the
    clients: psql, pgbench, psycopg2 and raw sockets."""

    def __init__(self, tmp, keys, credgate_bin, pg):
        self.tmp = str(tmp)
        self.keys = keys
        self.pg = pg
        self.cg = Credgate(credgate_bin, self.tmp, keys)
        self.seen = []
        self.ports = {}
        self.expect_exit = 0
        self.extra = {}
        self.issuer_extra = {}
        self.trust_domains = None   # the file's trust_domains list, if any
        self.clients = []       # psycopg2 connections and PgRaw, for close_clients()
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home, exist_ok=True)
        self.pki = Pki(os.path.join(self.tmp, "front-pki"), "front-ca")
        self.cert, self.key, _ = self.pki.server("front")
        self.cg.put_secrets({f"pg/{u}": {"username": u, "password": pw, "version": "1"}
                             for u, pw in pg.passwords.items()})

    def route(self, name, **over):
        """A postgres route named name, on a port kept across rewrites;
        tls=True gives it the caller TLS certificate."""
        if name not in self.ports:
            self.ports[name] = free_port()
        if over.pop("tls", False):
            over["tls"] = {"cert": self.cert, "key": self.key}
        return pg_route(name, self.ports[name], self.pg, **over)

    def config(self, routes):
        # One worker: one pool of upstream logins, so that reuse is
        # predictable.  A short login timeout for the tests of it, and a
        # bounded drain, so that a session a failed test left open does not
        # hold the teardown.
        extra = {"workers": 1, "timeouts": {"client_header": "2s"},
                 "shutdown_timeout": "3s"}
        for k, v in self.extra.items():
            if isinstance(v, dict) and isinstance(extra.get(k), dict):
                extra[k].update(v)
            else:
                extra[k] = v
        if self.trust_domains is None:
            return self.cg.config(routes, extra, self.issuer_extra)
        return self.cg.config(routes, extra, self.issuer_extra,
                              trust_domains=self.trust_domains)

    def start(self, routes):
        self.routes = routes
        self.cg.write_config(self.config(routes))
        self.cg.start(wait_ports=[self.ports[r["name"]] for r in routes])
        return self

    def rewrite(self, routes):
        self.routes = routes
        self.cg.write_config(self.config(routes))

    def stop(self):
        return self.cg.stop()

    def dump(self):
        return self.cg.dump()

    def token(self, alg="ES256", **kw):
        return self.keys.mint(alg, **kw)

    # clients -----------------------------------------------------------
    def conninfo(self, route, user="ci", dbname="ledger", sslmode="disable", **kw):
        parts = {"host": "127.0.0.1", "port": self.ports[route], "user": user,
                 "dbname": dbname, "sslmode": sslmode}
        if sslmode in ("verify-ca", "verify-full"):
            parts["sslrootcert"] = self.pki.ca_file
        parts.update(kw)
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def run(self, args, token=None, input=None, timeout=60, env=None):
        """Runs a libpq client with the token as PGPASSWORD; records what
        it printed for the leak checks."""
        e = pg_client_env(self.home, **(env or {}))
        if token is not None:
            e["PGPASSWORD"] = token
        p = subprocess.run(args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=e, cwd=self.tmp,
                           stdin=None if input is not None else subprocess.DEVNULL)
        self.seen.append(p.stdout + p.stderr)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        print(f"$ {os.path.basename(args[0])} ... -> exit {p.returncode}\n"
              f"--- stdout (first 2000)\n{out[:2000]}--- stderr\n{err}")
        return p.returncode, out, err

    def psql(self, route, sql, token=None, files=(), **conn):
        """psql -c sql (each of several statements its own -c) on a
        connection to route; returns (exit code, stdout, stderr)."""
        if token is None:
            token = self.token()
        cmd = [pg_client(self.pg.bindir, "psql"), "-X", "-A", "-t", "-q",
               "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(route, **conn)]
        for s in ([sql] if isinstance(sql, str) else sql):
            cmd += ["-c", s]
        return self.run(cmd, token=token)

    def psql_ok(self, route, sql, **kw):
        rc, out, err = self.psql(route, sql, **kw)
        assert rc == 0, f"psql through route {route} failed ({rc}): {err}"
        return out

    def connect(self, route, token=None, **conn):
        """A psycopg2 connection to route (autocommit off)."""
        import psycopg2
        if token is None:
            token = self.token()
        dsn = self.conninfo(route, **conn)
        try:
            c = psycopg2.connect(dsn, password=token)
        except psycopg2.Error as e:
            self.seen.append(str(e).encode())
            raise
        self.clients.append(c)
        return c

    def query(self, conn, sql, args=None):
        """Runs sql on a psycopg2 connection; returns the rows (recorded)."""
        with conn.cursor() as cur:
            try:
                cur.execute(sql, args)
                rows = cur.fetchall() if cur.description else []
            except Exception as e:
                self.seen.append(str(e).encode())
                raise
        self.seen.append(repr(rows).encode() + "".join(conn.notices).encode())
        return rows

    def raw(self, route, timeout=5.0):
        r = PgRaw(self.ports[route], self.seen, timeout)
        self.clients.append(r)
        return r

    def close_clients(self):
        """Closes what a test left open (a failed assertion skips its
        close), so that no session outlives its test."""
        for c in self.clients:
            try:
                c.close()
            except Exception:       # noqa: BLE001 - closing is best effort
                pass
        self.clients = []


@pytest.fixture
def make_pg_stack(pg, keys, credgate_bin, tmp_path):
    """A credgate of the test's own in front of pg: make(routes_fn, extra,
    issuer) where routes_fn(s) gives its routes, extra adds to the credgate
    group and issuer to the test issuer."""
    made = []

    def make(routes_fn, extra=None, issuer=None):
        s = PgStack(tmp_path / f"pg{len(made)}", keys, credgate_bin, pg)
        s.extra = extra or {}
        s.issuer_extra = issuer or {}
        made.append(s)
        try:
            return s.start(routes_fn(s))
        except AssertionError:
            s.expect_exit = None        # reported here, not again at teardown
            raise

    yield make
    problems = []
    for s in made:
        s.close_clients()
        problems.extend(stack_problems(s))
    assert not problems, "; ".join(problems)


# ----------------------------------------------------------------------
# PostgreSQL's protocol over a raw socket
# ----------------------------------------------------------------------
PG_SSL_REQUEST = 80877103
PG_GSSENC_REQUEST = 80877104


def pg_startup(params, major=3, minor=0):
    """A StartupMessage: params is a list of (name, value) pairs, so that
    a name may be given twice."""
    body = struct.pack("!HH", major, minor)
    for k, v in params:
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def pg_msg(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def pg_fields(body):
    """The fields of an ErrorResponse or NoticeResponse: {code: text}."""
    out = {}
    i = 0
    while i < len(body) and body[i] != 0:
        end = body.index(b"\0", i + 1)
        out[chr(body[i])] = body[i + 1:end].decode("utf-8", "replace")
        i = end + 1
    return out


class PgRaw(RawClient):
    """A PostgreSQL client over a raw socket, for what libpq never sends.
    Every byte received is recorded in seen (RawClient's socket and
    reads)."""

    def __init__(self, port, seen, timeout=5.0):
        super().__init__(port, timeout=timeout, seen=seen)

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"closed after {self.buf!r} (wanted {n} bytes)")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, code):
        """Sends an 8-byte SSLRequest or GSSENCRequest; returns the one
        byte answer."""
        self.send(struct.pack("!II", 8, code))
        return self.read_exact(1)

    def start_tls(self, cafile, server_name="localhost"):
        """Answer 'S' received: the TLS handshake on this socket."""
        assert self.buf == b"", f"bytes after the SSL answer, before TLS: {self.buf!r}"
        ctx = ssl.create_default_context(cafile=cafile)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_name)

    def read_msg(self):
        """One message: (type as a one-character str, body bytes)."""
        head = self.read_exact(5)
        n = struct.unpack("!I", head[1:])[0]
        assert n >= 4, f"message length {n} under 4"
        return chr(head[0]), self.read_exact(n - 4)

    def expect_error(self, sqlstate, timeout=5.0):
        """Reads messages up to an ErrorResponse; asserts its SQLSTATE and
        that the connection closes after it.  Returns its fields."""
        self.sock.settimeout(timeout)
        got = []
        while True:
            kind, body = self.read_msg()
            if kind == "E":
                f = pg_fields(body)
                break
            got.append((kind, body))
            assert kind == "N", f"expected ErrorResponse {sqlstate}, got {kind!r} {body!r}"
        assert f.get("C") == sqlstate, f"SQLSTATE {f.get('C')} ({f}), expected {sqlstate}"
        assert f.get("S") == "FATAL" and f.get("V", "FATAL") == "FATAL", f
        assert self.closed_within(timeout), "connection still open after the FATAL error"
        return f

    def login(self, token, user="ci", database="ledger", params=(), minor=0):
        """Startup (protocol 3.minor), the cleartext password, up to
        ReadyForQuery.  Returns the messages before it; raises on an
        ErrorResponse."""
        p = [("user", user)] + ([("database", database)] if database else []) + list(params)
        self.send(pg_startup(p, minor=minor))
        kind, body = self.read_msg()
        if kind == "v":
            kind, body = self.read_msg()
        if kind == "E":
            raise AssertionError(f"refused at startup: {pg_fields(body)}")
        assert (kind, body[:4]) == ("R", struct.pack("!I", 3)), \
            f"expected AuthenticationCleartextPassword, got {kind!r} {body!r}"
        self.send(pg_msg(b"p", token.encode() + b"\0"))
        msgs = []
        while True:
            kind, body = self.read_msg()
            if kind == "E":
                raise AssertionError(f"login refused: {pg_fields(body)}")
            msgs.append((kind, body))
            if kind == "Z":
                return msgs

    def query(self, sql):
        """A simple Query; returns the rows as lists of str (None for
        NULL); raises on an ErrorResponse."""
        self.send(pg_msg(b"Q", sql.encode() + b"\0"))
        rows, error = [], None
        while True:
            kind, body = self.read_msg()
            if kind == "D":
                n = struct.unpack("!H", body[:2])[0]
                i, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", body[i:i + 4])[0]
                    i += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[i:i + ln].decode())
                        i += ln
                rows.append(row)
            elif kind == "E":
                error = pg_fields(body)
            elif kind == "Z":
                break
        if error:
            raise AssertionError(f"query {sql!r} failed: {error}")
        return rows

    def terminate(self):
        self.send(pg_msg(b"X", b""))
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
