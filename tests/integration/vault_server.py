"""A Vault/OpenBao-compatible HTTP test server for the integration tests.

It stands in for HashiCorp Vault or OpenBao, which the test machines do not
run.  It speaks the part of the HTTP API credgate's Vault backend uses, with
the real servers' paths, status codes, JSON shapes and error strings:

  sys/health; auth/token/{lookup,renew,revoke}-self; approle, kubernetes,
  jwt and cert logins at any mount path; KV v1 and KV v2 reads (with
  versions, deleted and destroyed versions, metadata and LIST); database
  creds/<role> (dynamic, with a lease) and static-creds/<role>;
  sys/leases/{renew,lookup,revoke}; namespaces (X-Vault-Namespace or a path
  prefix); sealed, standby and performance-standby states.

Tests drive it through the VaultServer object (not over HTTP): they add
secrets and roles, rotate secrets, seal it, inject failures, dropped
connections or latency, revoke tokens, expire leases, and read the request
log and the counters.  Only the standard library is used, and it listens on
127.0.0.1 only.  Run as a script for manual use:

    python3 vault_server.py --port 8200 [--cert C --key K [--client-ca CA]]
"""

import argparse
import collections
import datetime
import fnmatch
import hashlib
import http.server
import json
import re
import secrets
import socket
import ssl
import string
import sys
import threading
import time
import urllib.parse
import uuid

# The mount default lease TTL (768h), also the advisory KV v1 lease_duration.
DEFAULT_LEASE_TTL = 2764800
# The system max TTL (768h) bounds every token and lease without its own.
SYSTEM_MAX_TTL = 2764800
MAX_REQUEST_SIZE = 32 * 1024 * 1024

ERR_SEALED = "Vault is sealed"
ERR_PERMISSION = "permission denied"
ERR_INVALID_TOKEN_VAULT = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
ERR_POLICY = "1 error occurred:\n\t* permission denied\n\n"
ERR_UNSUPPORTED = "unsupported operation"
ERR_NS_UNAVAILABLE = "operation unavailable in namespaces"

# Headers the request log keeps (lower case).
LOGGED_HEADERS = ("x-vault-token", "authorization", "x-vault-namespace",
                  "x-vault-request", "x-vault-no-request-forwarding",
                  "content-type", "user-agent")

# Health routes that, like the real ones, refuse a namespace.
ROOT_ONLY_SYS = ("sys/health", "sys/seal", "sys/unseal", "sys/init", "sys/seal-status")

_BASE62 = string.ascii_letters + string.digits
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def rfc3339(ns):
    """Unix nanoseconds as RFC 3339 with nanoseconds, the Go servers' form."""
    secs, frac = divmod(int(ns), 1_000_000_000)
    base = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % frac


def parse_duration(value):
    """Seconds from an int, a numeric string or a Go duration ("1h30m")."""
    if isinstance(value, bool):
        raise ValueError("bad duration")
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        raise ValueError("bad duration")
    text = value.strip()
    if text.isdigit():
        return int(text)
    m = _DURATION_RE.match(text)
    if not text or not m:
        raise ValueError("bad duration %r" % value)
    h, mi, s = (int(x) if x else 0 for x in m.groups())
    return h * 3600 + mi * 60 + s


def go_duration(seconds):
    """Go's time.Duration.String() for whole seconds: 3600 -> "1h0m0s"."""
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return "%s%dh%dm%ds" % (sign, h, m, s)
    if m:
        return "%s%dm%ds" % (sign, m, s)
    return "%s%ds" % (sign, s)


def human_duration(seconds):
    """The servers' shortened duration text used in TTL warnings ("1h", "20m")."""
    text = go_duration(seconds)
    if text.endswith("m0s"):
        text = text[:-2]
    return text.replace("h0m", "h", 1)


def parse_go_bool(text):
    """strconv.ParseBool: the spellings Go accepts, else ValueError."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError("bad bool %r" % text)


def _norm_ns(ns):
    """A namespace path as "ns1/ns2/" ("" for the root namespace)."""
    ns = (ns or "").strip("/")
    return ns + "/" if ns else ""


def _jwt_check(expected, jwt):
    """True when a login JWT is accepted: expected is the one accepted
    string, or a callable taking the JWT and returning True, or else a
    reason (a string) or False."""
    if callable(expected):
        return expected(jwt)
    return True if secrets.compare_digest(str(jwt), str(expected)) else False


class VaultError(Exception):
    """An API error: the status and the strings of its errors array."""

    def __init__(self, status, errors=(), headers=None):
        super().__init__(status, errors)
        self.status = status
        self.errors = list(errors)
        self.headers = headers or {}


class Reply:
    """A response to send: status, JSON body (or None) and extra headers."""

    def __init__(self, status, body=None, headers=None):
        self.status = status
        self.body = body
        self.headers = headers or {}


class Token:
    def __init__(self, server, namespace, policies, ttl, max_ttl, renewable,
                 path, display_name, metadata, entity_id, orphan=True,
                 token_type="service"):
        now = time.time_ns()
        self.id = "s." + secrets.token_urlsafe(18)
        self.accessor = secrets.token_urlsafe(18)
        self.namespace = namespace
        self.policies = policies
        self.ttl = ttl                 # 0: never expires
        self.max_ttl = max_ttl
        self.renewable = renewable and ttl > 0
        self.path = path
        self.display_name = display_name
        self.metadata = metadata
        self.entity_id = entity_id
        self.orphan = orphan
        self.token_type = token_type
        self.creation_ns = now
        self.expire_ns = now + ttl * 1_000_000_000 if ttl else None
        self.max_expire_ns = (now + (max_ttl or SYSTEM_MAX_TTL) * 1_000_000_000
                              if ttl else None)
        self.last_renewal_ns = None
        self.revoked = False

    def valid(self, now):
        if self.revoked:
            return False
        return self.expire_ns is None or now < self.expire_ns

    def remaining(self, now):
        if self.expire_ns is None:
            return 0
        return max(0, (self.expire_ns - now) // 1_000_000_000)

    def auth_block(self, lease_duration):
        auth = collections.OrderedDict()
        auth["client_token"] = self.id
        auth["accessor"] = self.accessor
        auth["policies"] = list(self.policies)
        if self.policies:
            auth["token_policies"] = list(self.policies)
        auth["metadata"] = dict(self.metadata) if self.metadata is not None else None
        auth["lease_duration"] = lease_duration
        auth["renewable"] = self.renewable
        auth["entity_id"] = self.entity_id
        auth["token_type"] = self.token_type
        auth["orphan"] = self.orphan
        auth["mfa_requirement"] = None
        auth["num_uses"] = 0
        return auth


class Lease:
    def __init__(self, lease_id, ttl, max_ttl, renewable, data):
        now = time.time_ns()
        self.id = lease_id
        self.default_ttl = ttl
        self.issue_ns = now
        self.expire_ns = now + ttl * 1_000_000_000
        self.max_expire_ns = now + (max_ttl or SYSTEM_MAX_TTL) * 1_000_000_000
        self.renewable = renewable
        self.data = data
        self.last_renewal_ns = None
        self.revoked = False
        # An expired lease is revoked at once unless a test holds it in the
        # window where the server has not revoked it yet ("lease expired").
        self.revoke_on_expiry = True
        self.on_revoke = None

    def revoke(self):
        """Ends the lease (once), running the role's revocation."""
        if self.revoked:
            return False
        self.revoked = True
        if self.on_revoke is not None:
            self.on_revoke(self.data["username"])
        return True


class Fault:
    def __init__(self, status, count, path, message, retry_after):
        self.status = status        # an HTTP status, or "drop"
        self.count = count
        self.path = path            # fnmatch pattern on the /v1/ path, or None
        self.message = message
        self.retry_after = retry_after


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def version_string(self):
        return "vault-test-server"

    def setup(self):
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.conns_lock:
                self.server.conns.discard(self.connection)

    def log_message(self, fmt, *args):
        pass

    def _serve(self):
        self.server.vault._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_HEAD = do_PATCH = _serve
    do_OPTIONS = _serve


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kw):
        # The open client connections, so that stop() can close kept-alive ones.
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__(*args, **kw)

    def close_connections(self):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class VaultServer:
    """The test server and its control interface (see the module docstring).

    flavor "openbao" (the default) sends OpenBao's shapes: the namespace
    header is echoed, KV v2 metadata carries current_metadata_version.
    flavor "vault" sends Vault 1.17's: mount_type in the envelope,
    performance_standby in sys/health, and the invalid-token text.
    """

    def __init__(self, flavor="openbao", cert=None, key=None, client_ca=None,
                 root_token=None, default_mounts=True, version=None):
        if flavor not in ("openbao", "vault"):
            raise ValueError("flavor must be openbao or vault")
        self.flavor = flavor
        self.version = version or ("2.6.2" if flavor == "openbao" else "1.17.0")
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.lock = threading.RLock()
        self.cluster_name = "vault-test-cluster"
        self.cluster_id = str(uuid.uuid4())
        # State a test may set directly (under the lock, or before start).
        self.initialized = True
        self.sealed = False
        self.standby = False
        self.perf_standby = False
        self.dr_secondary = False
        self.standby_redirect = False       # standby answers 307, never forwards
        self.active_address = None          # Location base of a 307
        self.latency = {}                   # path pattern -> seconds
        self.faults = []
        self.log = []
        self.counters = collections.Counter()
        self.namespaces = {"": ""}          # "ns1/" -> namespace id
        self.mounts = {}                    # (ns, "secret/") -> mount dict
        self.auth_mounts = {}               # (ns, "approle") -> mount dict
        self.tokens = {}
        self.leases = {}
        self.policies = {
            "credgate-read": ["*"],
            "default": ["auth/token/lookup-self", "auth/token/renew-self",
                        "auth/token/revoke-self", "sys/leases/*"],
        }
        self.httpd = None
        self.thread = None
        self.port = None
        root = Token(self, "", ["root"], 0, 0, False, "auth/token/root", "root",
                     None, "")
        if root_token:
            root.id = root_token
        self.tokens[root.id] = root
        self.root_token = root.id
        if default_mounts:
            self.add_kv_mount("secret", version=2)
            self.add_kv_mount("kv", version=1)
            self.add_database_mount("database")
            for method in ("approle", "kubernetes", "jwt", "cert"):
                self.add_auth_mount(method, method)

    # ----- lifecycle -------------------------------------------------------

    @property
    def scheme(self):
        return "https" if self.cert else "http"

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def start(self, port=0):
        """Listen on 127.0.0.1 (a free port unless one is given) and serve."""
        self.httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.vault = self
        if self.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            if self.client_ca:
                ctx.load_verify_locations(self.client_ca)
                ctx.verify_mode = ssl.CERT_OPTIONAL
            # The handshake runs in the connection's own thread, on first read.
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       name="vault-test-server", daemon=True)
        self.thread.start()
        return self

    def close_connections(self):
        """Close every open client connection (kept-alive ones included)."""
        if self.httpd is not None:
            self.httpd.close_connections()

    def stop(self):
        """Stop listening, close open connections and join the server thread."""
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.close_connections()
        self.httpd.server_close()
        self.thread.join(timeout=10)
        self.httpd = None

    def __enter__(self):
        return self.start() if self.httpd is None else self

    def __exit__(self, *exc):
        self.stop()

    # ----- configuration ---------------------------------------------------

    def add_namespace(self, ns):
        ns = _norm_ns(ns)
        with self.lock:
            parts = ns.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i]) + "/"
                self.namespaces.setdefault(sub, "".join(secrets.choice(_BASE62)
                                                        for _ in range(5)))
        return ns

    def _ns(self, namespace):
        ns = _norm_ns(namespace)
        if ns not in self.namespaces:
            self.add_namespace(ns)
        return ns

    def add_kv_mount(self, path, version=2, namespace=""):
        with self.lock:
            ns = self._ns(namespace)
            self.mounts[(ns, path.strip("/") + "/")] = {
                "type": "kv", "version": version, "secrets": {}}

    def add_database_mount(self, path, namespace=""):
        with self.lock:
            ns = self._ns(namespace)
            self.mounts[(ns, path.strip("/") + "/")] = {
                "type": "database", "roles": {}, "static_roles": {}}

    def add_auth_mount(self, path, method, namespace=""):
        if method not in ("approle", "kubernetes", "jwt", "cert"):
            raise ValueError("unknown auth method %r" % method)
        with self.lock:
            ns = self._ns(namespace)
            self.auth_mounts[(ns, path.strip("/"))] = {
                "method": method, "roles": {}, "default_role": None}

    def _auth_mount(self, mount, namespace, method):
        key = (self._ns(namespace), mount.strip("/"))
        if key not in self.auth_mounts:
            self.add_auth_mount(mount, method, namespace)
        m = self.auth_mounts[key]
        if m["method"] != method:
            raise ValueError("mount %s is %s" % (mount, m["method"]))
        return m

    @staticmethod
    def _role(policies, ttl, max_ttl, renewable, extra):
        role = {"policies": sorted(set(list(policies) + ["default"])),
                "ttl": ttl, "max_ttl": max_ttl, "renewable": renewable}
        role.update(extra)
        return role

    def add_approle(self, role_name, role_id, secret_id=None, mount="approle",
                    namespace="", policies=("credgate-read",), ttl=3600,
                    max_ttl=0, renewable=True, bind_secret_id=True):
        with self.lock:
            m = self._auth_mount(mount, namespace, "approle")
            m["roles"][role_name] = self._role(policies, ttl, max_ttl, renewable, {
                "role_id": role_id, "secret_id": secret_id,
                "bind_secret_id": bind_secret_id})

    def add_kubernetes_role(self, role, jwt, mount="kubernetes", namespace="",
                            policies=("credgate-read",), ttl=3600, max_ttl=0,
                            renewable=True, service_account_name="credgate",
                            service_account_namespace="default",
                            service_account_uid=None):
        with self.lock:
            m = self._auth_mount(mount, namespace, "kubernetes")
            m["roles"][role] = self._role(policies, ttl, max_ttl, renewable, {
                "jwt": jwt, "sa_name": service_account_name,
                "sa_namespace": service_account_namespace,
                "sa_uid": service_account_uid or str(uuid.uuid4())})

    def add_jwt_role(self, role, jwt, mount="jwt", namespace="",
                     policies=("credgate-read",), ttl=3600, max_ttl=0,
                     renewable=True, default=False, claim_metadata=None):
        """jwt (here and for kubernetes roles) is the one JWT the role
        accepts, or a callable that returns True for an accepted JWT and a
        reason string (or False) for a refused one."""
        with self.lock:
            m = self._auth_mount(mount, namespace, "jwt")
            m["roles"][role] = self._role(policies, ttl, max_ttl, renewable, {
                "jwt": jwt, "claim_metadata": dict(claim_metadata or {})})
            if default:
                m["default_role"] = role

    def add_cert_role(self, name, fingerprint=None, accept_without_tls=False,
                      mount="cert", namespace="", policies=("credgate-read",),
                      ttl=3600, max_ttl=0, renewable=True):
        """A cert role matches the TLS client certificate whose DER SHA-256
        is fingerprint (hex, any case, colons allowed); over plain HTTP, a
        role with accept_without_tls matches instead."""
        fp = fingerprint.replace(":", "").lower() if fingerprint else None
        with self.lock:
            m = self._auth_mount(mount, namespace, "cert")
            m["roles"][name] = self._role(policies, ttl, max_ttl, renewable, {
                "fingerprint": fp, "accept_without_tls": accept_without_tls})

    def set_policy(self, name, patterns):
        """A policy: fnmatch patterns of namespace-relative paths it allows."""
        with self.lock:
            self.policies[name] = list(patterns)

    def create_token(self, policies=("credgate-read",), ttl=3600, max_ttl=0,
                     renewable=True, namespace="", metadata=None):
        """A token made without a login (like auth/token/create); its id."""
        with self.lock:
            tok = Token(self, self._ns(namespace),
                        sorted(set(list(policies) + ["default"])), ttl, max_ttl,
                        renewable, "auth/token/create", "token", metadata, "")
            self.tokens[tok.id] = tok
            return tok.id

    def revoke_token(self, token):
        with self.lock:
            self.tokens[token].revoked = True

    def expire_token(self, token):
        with self.lock:
            self.tokens[token].expire_ns = time.time_ns() - 1

    def token_info(self, token):
        with self.lock:
            return self.tokens[token]

    # KV

    def _kv(self, mount, namespace):
        return self.mounts[(_norm_ns(namespace), mount.strip("/") + "/")]

    def put_kv(self, mount, path, data, namespace="", custom_metadata=None):
        """Write a KV secret; for KV v2 a new version, whose number is returned."""
        with self.lock:
            m = self._kv(mount, namespace)
            path = path.strip("/")
            if m["version"] == 1:
                m["secrets"][path] = dict(data)
                return None
            now = time.time_ns()
            s = m["secrets"].get(path)
            if s is None:
                s = m["secrets"][path] = {"created": now, "versions": {},
                                          "current": 0, "custom_metadata": None,
                                          "metadata_version": 0}
            if custom_metadata is not None:
                s["custom_metadata"] = dict(custom_metadata)
                s["metadata_version"] += 1
            s["current"] += 1
            s["updated"] = now
            s["versions"][s["current"]] = {"data": dict(data), "created": now,
                                           "deletion": None, "destroyed": False}
            return s["current"]

    rotate_kv = put_kv

    def delete_kv_version(self, mount, path, version=None, namespace="", when=None):
        """Soft-delete a KV v2 version (latest by default) at Unix time when
        (now by default; a future time still reads, as on the real server)."""
        with self.lock:
            s = self._kv(mount, namespace)["secrets"][path.strip("/")]
            v = s["versions"][version or s["current"]]
            v["deletion"] = int(when * 1e9) if when is not None else time.time_ns()

    def destroy_kv_version(self, mount, path, version=None, namespace=""):
        with self.lock:
            s = self._kv(mount, namespace)["secrets"][path.strip("/")]
            v = s["versions"][version or s["current"]]
            v["destroyed"] = True
            v["data"] = None

    def remove_kv(self, mount, path, namespace=""):
        with self.lock:
            del self._kv(mount, namespace)["secrets"][path.strip("/")]

    # Database

    def add_database_role(self, role, mount="database", namespace="",
                          default_ttl=3600, max_ttl=86400, allowed=True,
                          renewable=True, on_create=None, on_revoke=None):
        """A dynamic role.  on_create(username, password) and
        on_revoke(username) stand for the role's creation and revocation
        statements: a test can make and drop a real database user."""
        with self.lock:
            self._kv(mount, namespace)["roles"][role] = {
                "default_ttl": default_ttl, "max_ttl": max_ttl,
                "allowed": allowed, "renewable": renewable, "serial": 0,
                "on_create": on_create, "on_revoke": on_revoke}

    def add_database_static_role(self, role, username, password, mount="database",
                                 namespace="", rotation_period=86400, allowed=True):
        with self.lock:
            self._kv(mount, namespace)["static_roles"][role] = {
                "username": username, "password": password,
                "rotation_period": rotation_period, "allowed": allowed,
                "last_rotation": time.time_ns()}

    def rotate_static(self, role, password=None, mount="database", namespace=""):
        with self.lock:
            r = self._kv(mount, namespace)["static_roles"][role]
            r["password"] = password or "pw-" + secrets.token_urlsafe(16)
            r["last_rotation"] = time.time_ns()
            return r["password"]

    # Leases

    def lease(self, lease_id):
        with self.lock:
            return self.leases[lease_id]

    def set_lease_renewable(self, lease_id, renewable):
        with self.lock:
            self.leases[lease_id].renewable = renewable

    def expire_lease(self, lease_id, revoke=True):
        """Expire a lease now.  revoke=False leaves it in the window before
        the server revokes it, where a renew answers "lease expired"."""
        with self.lock:
            lease = self.leases[lease_id]
            lease.expire_ns = time.time_ns() - 1
            lease.revoke_on_expiry = revoke

    def active_leases(self):
        now = time.time_ns()
        with self.lock:
            return [l.id for l in self.leases.values()
                    if not l.revoked and l.expire_ns > now]

    # Failure injection

    def inject_failures(self, count, status, path=None, message=None,
                        retry_after=None):
        """The next count requests (matching the fnmatch pattern path on the
        /v1/... path, if given) fail with status (500, 429, 503, 502...), or
        have their connection closed unanswered when status is "drop"."""
        if status != "drop" and not isinstance(status, int):
            raise ValueError("status must be an int or 'drop'")
        with self.lock:
            self.faults.append(Fault(status, count, path, message, retry_after))

    def drop_connections(self, count, path=None):
        self.inject_failures(count, "drop", path)

    def clear_faults(self):
        with self.lock:
            self.faults.clear()

    def set_latency(self, seconds, path="*"):
        """Delay answers to requests matching path (0 removes the delay)."""
        with self.lock:
            if seconds:
                self.latency[path] = seconds
            else:
                self.latency.pop(path, None)

    # Request log

    def requests(self, kind=None, path=None, method=None, status=None):
        """Logged requests (dicts), filtered: kind (e.g. "login", "kv2-read"),
        path (exact /v1/... path or fnmatch pattern), method, status."""
        with self.lock:
            entries = list(self.log)
        out = []
        for e in entries:
            if kind is not None and e["kind"] != kind and e["kind"].split(":")[0] != kind:
                continue
            if path is not None and not fnmatch.fnmatchcase(e["path"], path):
                continue
            if method is not None and e["method"] != method:
                continue
            if status is not None and e["status"] != status:
                continue
            out.append(e)
        return out

    def count(self, kind=None, path=None, method=None, status=None):
        return len(self.requests(kind, path, method, status))

    def clear_log(self):
        with self.lock:
            self.log.clear()

    # ----- request handling ------------------------------------------------

    def _handle(self, h):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        method = h.command
        length = h.headers.get("Content-Length")
        raw = b""
        entry = {"time": time.time(), "method": method, "path": url.path,
                 "query": {k: v[-1] for k, v in query.items()},
                 "headers": {k: h.headers[k] for k in LOGGED_HEADERS
                             if h.headers.get(k) is not None},
                 "body": None, "status": None, "kind": "other", "namespace": None}
        with self.lock:
            self.log.append(entry)
        try:
            if length is not None and int(length) > MAX_REQUEST_SIZE:
                self._send(h, entry, Reply(413, {"errors": [
                    "http: request body too large"]}), close=True)
                return
            raw = h.rfile.read(int(length)) if length else b""
        except (ValueError, OSError):
            h.close_connection = True
            return
        try:
            entry["body"] = json.loads(raw) if raw.strip() else None
        except ValueError:
            entry["body"] = raw

        delay = 0
        fault = None
        with self.lock:
            for pat, secs in self.latency.items():
                if fnmatch.fnmatchcase(url.path, pat):
                    delay = max(delay, secs)
            for f in self.faults:
                if f.path is None or fnmatch.fnmatchcase(url.path, f.path):
                    fault = f
                    f.count -= 1
                    break
            self.faults = [f for f in self.faults if f.count > 0]
        if delay:
            time.sleep(delay)
        if fault is not None:
            entry["kind"] = "fault"
            if fault.status == "drop":
                entry["status"] = "drop"
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._send(h, entry, self._fault_reply(fault, url.path))
            return
        try:
            reply = self._dispatch(h, entry, method, url.path, query, entry["body"])
        except VaultError as e:
            reply = Reply(e.status, {"errors": e.errors}, e.headers)
        except Exception as e:  # a bug here must still answer like Vault
            reply = Reply(500, {"errors": ["1 error occurred:\n\t* internal error: %s\n\n" % e]})
        self._send(h, entry, reply)

    def _fault_reply(self, fault, path):
        headers = {}
        if fault.status == 429:
            rel = path[len("/v1/"):] if path.startswith("/v1/") else path
            msg = fault.message or 'request path "%s": rate limit quota exceeded' % rel
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
        elif fault.status == 503:
            msg = fault.message or ERR_SEALED
        elif fault.status == 502:
            msg = fault.message or "upstream rate limited"
        else:
            msg = fault.message or "1 error occurred:\n\t* internal error\n\n"
        return Reply(fault.status, {"errors": [msg]}, headers)

    def _send(self, h, entry, reply, close=False):
        entry["status"] = reply.status
        body = b""
        if reply.body is not None and h.command != "HEAD":
            body = json.dumps(reply.body, separators=(",", ":")).encode()
        try:
            h.send_response(reply.status)
            if reply.body is not None:
                h.send_header("Content-Type", "application/json")
            h.send_header("Cache-Control", "no-store")
            ns_header = h.headers.get("X-Vault-Namespace")
            if ns_header and self.flavor == "openbao":
                h.send_header("X-Vault-Namespace", ns_header)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            if reply.status != 204:
                if h.command == "HEAD" and reply.body is not None:
                    h.send_header("Content-Length", str(len(json.dumps(
                        reply.body, separators=(",", ":")).encode())))
                else:
                    h.send_header("Content-Length", str(len(body)))
            if close:
                h.send_header("Connection", "close")
                h.close_connection = True
            h.end_headers()
            if body:
                h.wfile.write(body)
        except OSError:
            h.close_connection = True

    def _envelope(self, data=None, lease_id="", renewable=False, lease_duration=0,
                  warnings=None, auth=None, mount_type=""):
        env = collections.OrderedDict()
        env["request_id"] = str(uuid.uuid4())
        env["lease_id"] = lease_id
        env["renewable"] = renewable
        env["lease_duration"] = lease_duration
        env["data"] = data
        env["wrap_info"] = None
        env["warnings"] = warnings
        env["auth"] = auth
        if self.flavor == "vault":
            env["mount_type"] = mount_type
        return env

    def _resolve_ns(self, header_ns, path):
        """(namespace, namespace-relative path) for a path after /v1/."""
        full = _norm_ns(header_ns) + path
        best = ""
        for ns in self.namespaces:
            if ns and full.startswith(ns) and len(ns) > len(best):
                best = ns
        return best, full[len(best):]

    def _dispatch(self, h, entry, method, path, query, body):
        if not path.startswith("/v1/"):
            raise VaultError(404, [])
        if method == "LIST":
            method, query = "GET", dict(query, list=["true"])
        elif method == "POST":
            method = "PUT"
        header_ns = h.headers.get("X-Vault-Namespace", "")
        with self.lock:
            ns, rel = self._resolve_ns(header_ns, path[len("/v1/"):])
        entry["namespace"] = ns
        params = body if isinstance(body, dict) else {}
        if body is not None and not isinstance(body, dict):
            raise VaultError(400, ["error parsing JSON"])

        sent = path[len("/v1/"):].rstrip("/")
        if rel.rstrip("/") in ROOT_ONLY_SYS or sent in ROOT_ONLY_SYS:
            if ns or _norm_ns(header_ns):
                raise VaultError(400, [ERR_NS_UNAVAILABLE])
            if rel.rstrip("/") == "sys/health":
                entry["kind"] = "health"
                return self._health(h, method, query)
        with self.lock:
            if self.sealed or not self.initialized:
                raise VaultError(503, [ERR_SEALED])
            if (self.standby and not self.perf_standby and
                    (self.standby_redirect or h.headers.get("X-Vault-No-Request-Forwarding"))):
                base = self.active_address or self.url
                loc = base.rstrip("/") + h.path
                return Reply(307, None, {"Location": loc})

        m = re.match(r"^auth/(.+)/login$", rel)
        if m and m.group(1) != "token":
            entry["kind"] = "login"
            return self._login(h, entry, ns, m.group(1), method, params)

        token = self._check_token(h, ns)
        self._check_policy(token, rel)

        if rel.startswith("auth/token/"):
            return self._token_api(entry, token, rel[len("auth/token/"):], method, params)
        if rel.startswith("sys/leases/"):
            return self._leases_api(entry, rel[len("sys/leases/"):], method, params)
        with self.lock:
            mount_path = None
            for (mns, mp) in self.mounts:
                if mns == ns and (rel + "/").startswith(mp):
                    if mount_path is None or len(mp) > len(mount_path):
                        mount_path = mp
            if mount_path is None:
                raise VaultError(404, ['no handler for route "%s". route entry not found.'
                                       % rel])
            mount = self.mounts[(ns, mount_path)]
            sub = rel[len(mount_path):]
            if mount["type"] == "kv":
                return self._kv_api(entry, mount, sub, method, query)
            return self._db_api(entry, ns, mount, mount_path, rel, sub, method)

    # health

    def _health(self, h, method, query):
        if method not in ("GET", "HEAD"):
            raise VaultError(405, [])
        q = {k: v[-1] for k, v in query.items()}
        try:
            standbyok = parse_go_bool(q["standbyok"]) if "standbyok" in q else False
            perfok = parse_go_bool(q["perfstandbyok"]) if "perfstandbyok" in q else False
            codes = {}
            for name, default in (("activecode", 200), ("standbycode", 429),
                                  ("drsecondarycode", 472),
                                  ("performancestandbycode", 473),
                                  ("sealedcode", 503), ("uninitcode", 501)):
                codes[name] = int(q[name]) if name in q else default
        except ValueError:
            raise VaultError(400, [])
        with self.lock:
            init, sealed = self.initialized, self.sealed
            standby, perf, dr = self.standby, self.perf_standby, self.dr_secondary
        vault = self.flavor == "vault"
        if not init:
            code = codes["uninitcode"]
        elif sealed:
            code = codes["sealedcode"]
        elif vault and dr:
            code = codes["drsecondarycode"]
        elif vault and perf and not perfok:
            code = codes["performancestandbycode"]
        elif standby and not perf and not standbyok:
            code = codes["standbycode"]
        else:
            code = codes["activecode"]
        body = collections.OrderedDict()
        body["initialized"] = init
        body["sealed"] = sealed or not init
        body["standby"] = standby or perf or sealed or not init
        if vault:
            body["performance_standby"] = bool(perf and init and not sealed)
        unknown = sealed or not init
        body["replication_performance_mode"] = "unknown" if unknown else "disabled"
        body["replication_dr_mode"] = ("unknown" if unknown else
                                       "secondary" if vault and dr else "disabled")
        body["server_time_utc"] = int(time.time())
        body["version"] = self.version
        if not unknown:
            body["cluster_name"] = self.cluster_name
            body["cluster_id"] = self.cluster_id
        return Reply(code, body)

    # tokens

    def _token_from_request(self, h):
        tok = h.headers.get("X-Vault-Token")
        if not tok:
            auth = h.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                tok = auth[7:].strip()
        return tok

    def _bad_token(self):
        return VaultError(403, [ERR_INVALID_TOKEN_VAULT if self.flavor == "vault"
                                else ERR_PERMISSION])

    def _check_token(self, h, ns):
        tok_id = self._token_from_request(h)
        now = time.time_ns()
        with self.lock:
            tok = self.tokens.get(tok_id) if tok_id else None
            if tok is None or not tok.valid(now) or not ns.startswith(tok.namespace):
                raise self._bad_token()
            return tok

    def _check_policy(self, tok, rel):
        if "root" in tok.policies:
            return
        with self.lock:
            for p in tok.policies:
                for pat in self.policies.get(p, ()):
                    if fnmatch.fnmatchcase(rel, pat):
                        return
        raise VaultError(403, [ERR_POLICY])

    def _token_api(self, entry, tok, op, method, params):
        if op == "lookup-self":
            entry["kind"] = "token-lookup"
            if method != "GET":
                raise VaultError(405, [ERR_UNSUPPORTED])
            return Reply(200, self._envelope(self._lookup_data(tok), mount_type="token"))
        if op == "renew-self":
            entry["kind"] = "token-renew"
            if method != "PUT":
                raise VaultError(405, [ERR_UNSUPPORTED])
            return self._renew_self(tok, params)
        if op == "revoke-self":
            entry["kind"] = "token-revoke"
            if method != "PUT":
                raise VaultError(405, [ERR_UNSUPPORTED])
            with self.lock:
                tok.revoked = True
                self.counters["tokens_revoked"] += 1
            return Reply(204)
        raise VaultError(404, ['no handler for route "auth/token/%s". route entry not found.'
                               % op])

    def _lookup_data(self, tok):
        now = time.time_ns()
        d = {"accessor": tok.accessor,
             "creation_time": tok.creation_ns // 1_000_000_000,
             "creation_ttl": tok.ttl,
             "display_name": tok.display_name,
             "entity_id": tok.entity_id,
             "expire_time": rfc3339(tok.expire_ns) if tok.expire_ns else None,
             "explicit_max_ttl": 0,
             "id": tok.id,
             "meta": dict(tok.metadata) if tok.metadata is not None else None,
             "num_uses": 0,
             "orphan": tok.orphan,
             "path": tok.path,
             "policies": list(tok.policies),
             "ttl": tok.remaining(now),
             "type": tok.token_type}
        if tok.expire_ns is not None:
            d["issue_time"] = rfc3339(tok.creation_ns)
            d["renewable"] = tok.renewable
        if tok.last_renewal_ns is not None:
            d["last_renewal"] = rfc3339(tok.last_renewal_ns)
            d["last_renewal_time"] = tok.last_renewal_ns // 1_000_000_000
        if tok.namespace:
            d["namespace_path"] = tok.namespace
        return dict(sorted(d.items()))

    def _renew_self(self, tok, params):
        inc = params.get("increment")
        try:
            inc = parse_duration(inc) if inc not in (None, "") else 0
        except ValueError:
            raise VaultError(400, ["error converting input increment: invalid duration"])
        with self.lock:
            if tok.token_type == "batch":
                raise VaultError(400, ["batch tokens cannot be renewed"])
            if not tok.renewable:
                raise VaultError(400, ["lease is not renewable"])
            now = time.time_ns()
            ttl, warnings = self._capped(inc or tok.ttl, tok.max_expire_ns, now)
            tok.expire_ns = now + ttl * 1_000_000_000
            tok.last_renewal_ns = now
            self.counters["tokens_renewed"] += 1
            return Reply(200, self._envelope(auth=tok.auth_block(ttl),
                                             warnings=warnings, mount_type="token"))

    @staticmethod
    def _capped(asked, max_expire_ns, now):
        left = max(0, (max_expire_ns - now) // 1_000_000_000)
        if asked > left:
            return left, ['TTL of "%s" exceeded the effective max_ttl of "%s"; '
                          "TTL value is capped accordingly"
                          % (human_duration(asked), human_duration(left))]
        return asked, None

    # logins

    def _login(self, h, entry, ns, mount_path, method, params):
        with self.lock:
            mount = self.auth_mounts.get((ns, mount_path))
        if mount is None:
            raise VaultError(404, ['no handler for route "auth/%s/login". route entry '
                                   "not found." % mount_path])
        if method != "PUT":
            raise VaultError(405, [ERR_UNSUPPORTED])
        kind = mount["method"]
        entry["kind"] = "login:" + kind
        known = {"approle": ("role_id", "secret_id"),
                 "kubernetes": ("role", "jwt"),
                 "jwt": ("role", "jwt"),
                 "cert": ("name",)}[kind]
        with self.lock:
            role_name, role, meta = getattr(self, "_login_" + kind)(h, mount, params)
            tok = Token(self, ns, role["policies"], role["ttl"], role["max_ttl"],
                        role["renewable"], "auth/%s/login" % mount_path,
                        kind, meta, str(uuid.uuid4()))
            self.tokens[tok.id] = tok
            self.counters["logins"] += 1
            self.counters["logins:" + kind] += 1
        extra = sorted(k for k in params if k not in known)
        warnings = (["Endpoint ignored these unrecognized parameters: [%s]"
                     % " ".join(extra)] if extra else None)
        return Reply(200, self._envelope(auth=tok.auth_block(tok.ttl),
                                         warnings=warnings, mount_type=kind))

    def _login_approle(self, h, mount, p):
        role_id = p.get("role_id")
        if not role_id:
            raise VaultError(400, ["missing role_id"])
        for name, role in mount["roles"].items():
            if role["role_id"] == role_id:
                if role["bind_secret_id"]:
                    if not p.get("secret_id"):
                        raise VaultError(400, ["missing secret_id"])
                    if not secrets.compare_digest(str(p["secret_id"]),
                                                  str(role["secret_id"])):
                        break
                return name, role, {"role_name": name}
        raise VaultError(400, ["invalid role or secret ID"])

    def _login_kubernetes(self, h, mount, p):
        name = p.get("role")
        if not name:
            raise VaultError(400, ["missing role"])
        if not p.get("jwt"):
            raise VaultError(400, ["missing jwt"])
        role = mount["roles"].get(name)
        if role is None:
            raise VaultError(400, ['invalid role name "%s"' % name])
        if _jwt_check(role["jwt"], p["jwt"]) is not True:
            raise VaultError(403, [ERR_PERMISSION])
        return name, role, {"role": name,
                            "service_account_name": role["sa_name"],
                            "service_account_namespace": role["sa_namespace"],
                            "service_account_secret_name": "",
                            "service_account_uid": role["sa_uid"]}

    def _login_jwt(self, h, mount, p):
        name = p.get("role") or mount["default_role"]
        if not name:
            raise VaultError(400, ["missing role"])
        role = mount["roles"].get(name)
        if role is None:
            raise VaultError(400, ['role "%s" could not be found' % name])
        if not p.get("jwt"):
            raise VaultError(400, ["missing token"])
        verdict = _jwt_check(role["jwt"], p["jwt"])
        if verdict is not True:
            raise VaultError(400, ["error validating token: %s"
                                   % (verdict or "token is not valid for this test server")])
        meta = {"role": name}
        meta.update(role["claim_metadata"])
        return name, role, meta

    def _login_cert(self, h, mount, p):
        wanted = p.get("name")
        conn = h.connection
        der = None
        if isinstance(conn, ssl.SSLSocket):
            der = conn.getpeercert(binary_form=True)
            if der is None:
                raise VaultError(400, ["invalid certificate or no client certificate "
                                       "supplied"])
        fp = hashlib.sha256(der).hexdigest() if der else None
        matched = False
        for name, role in mount["roles"].items():
            if wanted and name != wanted:
                continue
            if der is not None and role["fingerprint"] == fp:
                matched = True
            elif der is None and role["accept_without_tls"]:
                matched = True
            if matched:
                break
        if not matched:
            if der is None and not any(r["accept_without_tls"]
                                       for r in mount["roles"].values()):
                raise VaultError(400, ["invalid certificate or no client certificate "
                                       "supplied"])
            raise VaultError(400, ["no chain matching all constraints could be found "
                                   "for this login certificate"])
        meta = {"authority_key_id": "", "cert_name": name, "common_name": "",
                "serial_number": "", "subject_key_id": ""}
        if der is not None:
            info = conn.getpeercert() or {}
            for rdn in info.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        meta["common_name"] = v
            if "serialNumber" in info:
                meta["serial_number"] = str(int(info["serialNumber"], 16))
        return name, role, meta

    # KV

    def _kv_api(self, entry, mount, sub, method, query):
        listing = query.get("list", ["false"])[-1] == "true"
        if method != "GET":
            raise VaultError(405, [ERR_UNSUPPORTED])
        if mount["version"] == 1:
            entry["kind"] = "kv1-list" if listing else "kv1-read"
            if listing:
                return self._list(mount["secrets"], sub)
            data = mount["secrets"].get(sub.strip("/"))
            if data is None:
                raise VaultError(404, [])
            lease = DEFAULT_LEASE_TTL
            for k in ("ttl", "lease"):
                if k in data:
                    try:
                        lease = parse_duration(data[k])
                    except ValueError:
                        pass
                    break
            return Reply(200, self._envelope(dict(data), lease_duration=lease,
                                             mount_type="kv"))
        if sub.startswith("data/"):
            entry["kind"] = "kv2-read"
            return self._kv2_read(mount, sub[len("data/"):], query)
        if sub.startswith("metadata/") or sub == "metadata":
            entry["kind"] = "kv2-list" if listing else "kv2-metadata"
            path = sub[len("metadata/"):]
            if listing:
                return self._list(mount["secrets"], path)
            return self._kv2_metadata(mount, path)
        entry["kind"] = "kv2-wrong-path"
        cli = "'bao kv get'" if self.flavor == "openbao" else "'vault kv get'"
        product = "OpenBao" if self.flavor == "openbao" else "Vault"
        return Reply(404, self._envelope(warnings=[
            "Invalid path for a versioned K/V secrets engine. See the API docs for "
            "the appropriate API endpoints to use. If using the %s CLI, use %s for "
            "this operation." % (product, cli)], mount_type="kv"))

    def _list(self, store, prefix):
        prefix = prefix.strip("/")
        prefix = prefix + "/" if prefix else ""
        keys = set()
        for path in store:
            if path.startswith(prefix):
                rest = path[len(prefix):]
                keys.add(rest.split("/")[0] + "/" if "/" in rest else rest)
        if not keys:
            raise VaultError(404, [])
        return Reply(200, self._envelope({"keys": sorted(keys)}, mount_type="kv"))

    @staticmethod
    def _version_meta(s, n, v):
        return {"created_time": rfc3339(v["created"]),
                "custom_metadata": (dict(s["custom_metadata"])
                                    if s["custom_metadata"] is not None else None),
                "deletion_time": rfc3339(v["deletion"]) if v["deletion"] else "",
                "destroyed": v["destroyed"],
                "version": n}

    def _kv2_read(self, mount, path, query):
        try:
            want = int(query.get("version", ["0"])[-1] or 0)
        except ValueError:
            raise VaultError(400, ["1 error occurred:\n\t* error converting input "
                                   "version: strconv.ParseInt: invalid syntax\n\n"])
        s = mount["secrets"].get(path.strip("/"))
        if s is None:
            raise VaultError(404, [])
        n = want or s["current"]
        v = s["versions"].get(n)
        if v is None:
            raise VaultError(404, [])
        meta = self._version_meta(s, n, v)
        deleted = v["deletion"] is not None and v["deletion"] <= time.time_ns()
        if deleted or v["destroyed"]:
            return Reply(404, self._envelope({"data": None, "metadata": meta},
                                             mount_type="kv"))
        return Reply(200, self._envelope({"data": dict(v["data"]), "metadata": meta},
                                         mount_type="kv"))

    def _kv2_metadata(self, mount, path):
        s = mount["secrets"].get(path.strip("/"))
        if s is None:
            raise VaultError(404, [])
        versions = {}
        for n, v in sorted(s["versions"].items()):
            versions[str(n)] = {"created_time": rfc3339(v["created"]),
                                "deletion_time": (rfc3339(v["deletion"])
                                                  if v["deletion"] else ""),
                                "destroyed": v["destroyed"]}
        d = {"cas_required": False,
             "created_time": rfc3339(s["created"]),
             "current_version": s["current"],
             "custom_metadata": (dict(s["custom_metadata"])
                                 if s["custom_metadata"] is not None else None),
             "delete_version_after": "0s",
             "max_versions": 0,
             "oldest_version": 0,
             "updated_time": rfc3339(s["updated"]),
             "versions": versions}
        if self.flavor == "openbao":
            d["current_metadata_version"] = s["metadata_version"]
            d["metadata_cas_required"] = False
        return Reply(200, self._envelope(dict(sorted(d.items())), mount_type="kv"))

    # database

    def _db_api(self, entry, ns, mount, mount_path, rel, sub, method):
        m = re.match(r"^(creds|static-creds)/([^/]+)$", sub)
        if not m:
            raise VaultError(404, ['no handler for route "%s". route entry not found.'
                                   % rel])
        if method != "GET":
            raise VaultError(405, [ERR_UNSUPPORTED])
        kind, name = m.groups()
        if kind == "static-creds":
            entry["kind"] = "db-static-creds"
            r = mount["static_roles"].get(name)
            if r is None:
                raise VaultError(400, ["unknown role: %s" % name])
            if not r["allowed"]:
                raise VaultError(500, ['"%s" is not an allowed role' % name])
            age = (time.time_ns() - r["last_rotation"]) / 1e9
            data = {"last_vault_rotation": rfc3339(r["last_rotation"]),
                    "password": r["password"],
                    "rotation_period": r["rotation_period"],
                    "ttl": max(0, int(round(r["rotation_period"] - age))),
                    "username": r["username"]}
            return Reply(200, self._envelope(data, mount_type="database"))
        entry["kind"] = "db-creds"
        r = mount["roles"].get(name)
        if r is None:
            raise VaultError(400, ["unknown role: %s" % name])
        if not r["allowed"]:
            raise VaultError(500, ['"%s" is not an allowed role' % name])
        r["serial"] += 1
        data = {"password": "pw-" + secrets.token_urlsafe(16),
                "username": "v-%s-%s-%04d" % (mount_path.strip("/"), name, r["serial"])}
        lease_id = "%s/%s" % (rel, "".join(secrets.choice(_BASE62) for _ in range(24)))
        if ns:
            lease_id += "." + self.namespaces[ns]
        if r["on_create"] is not None:
            r["on_create"](data["username"], data["password"])
        lease = Lease(lease_id, r["default_ttl"], r["max_ttl"], r["renewable"], data)
        lease.on_revoke = r["on_revoke"]
        self.leases[lease_id] = lease
        self.counters["leases_issued"] += 1
        return Reply(200, self._envelope(dict(data), lease_id=lease_id,
                                         renewable=lease.renewable,
                                         lease_duration=lease.default_ttl,
                                         mount_type="database"))

    # sys/leases

    def _live_lease(self, lease_id, now):
        """The lease, revoking it first if it has expired (None if gone)."""
        lease = self.leases.get(lease_id)
        if lease is None or lease.revoked:
            return None
        if lease.expire_ns <= now and lease.revoke_on_expiry:
            lease.revoke()
            return None
        return lease

    def _leases_api(self, entry, op, method, params):
        parts = op.split("/", 1)
        op = parts[0]
        lease_id = params.get("lease_id") or (parts[1] if len(parts) > 1 else "")
        if op not in ("renew", "lookup", "revoke"):
            raise VaultError(404, ['no handler for route "sys/leases/%s". route entry '
                                   "not found." % op])
        entry["kind"] = "lease-" + op
        if method != "PUT":
            raise VaultError(405, [ERR_UNSUPPORTED])
        if not lease_id:
            raise VaultError(400, ["lease_id must be specified"])
        now = time.time_ns()
        with self.lock:
            if op == "renew":
                if lease_id.startswith("auth/"):
                    raise VaultError(400, ["tokens cannot be renewed through this endpoint"])
                lease = self._live_lease(lease_id, now)
                if lease is None:
                    raise VaultError(400, ["lease not found"])
                if lease.expire_ns <= now:
                    raise VaultError(400, ["lease expired"])
                if not lease.renewable:
                    raise VaultError(400, ["lease is not renewable"])
                try:
                    inc = parse_duration(params.get("increment") or 0)
                except ValueError:
                    raise VaultError(400, ["error converting input increment"])
                ttl, warnings = self._capped(inc or lease.default_ttl,
                                             lease.max_expire_ns, now)
                lease.expire_ns = now + ttl * 1_000_000_000
                lease.last_renewal_ns = now
                self.counters["leases_renewed"] += 1
                return Reply(200, self._envelope(lease_id=lease.id, renewable=True,
                                                 lease_duration=ttl, warnings=warnings,
                                                 mount_type="system"))
            if op == "lookup":
                lease = self._live_lease(lease_id, now)
                if lease is None:
                    raise VaultError(400, ["invalid lease"])
                data = {"expire_time": rfc3339(lease.expire_ns),
                        "id": lease.id,
                        "issue_time": rfc3339(lease.issue_ns),
                        "last_renewal": (rfc3339(lease.last_renewal_ns)
                                         if lease.last_renewal_ns else None),
                        "renewable": lease.renewable,
                        "ttl": max(0, (lease.expire_ns - now) // 1_000_000_000)}
                return Reply(200, self._envelope(data, mount_type="system"))
            sync = params.get("sync", True)
            if isinstance(sync, str):
                try:
                    sync = parse_go_bool(sync)
                except ValueError:
                    raise VaultError(400, ["error converting input sync"])
            lease = self.leases.get(lease_id)
            if lease is not None and lease.revoke():
                self.counters["leases_revoked"] += 1
            return Reply(204 if sync else 202)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Vault/OpenBao-compatible test server")
    ap.add_argument("--port", type=int, default=8200)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    ap.add_argument("--flavor", choices=("openbao", "vault"), default="openbao")
    ap.add_argument("--root-token", default="root")
    args = ap.parse_args(argv)
    srv = VaultServer(flavor=args.flavor, cert=args.cert, key=args.key,
                      client_ca=args.client_ca, root_token=args.root_token)
    srv.put_kv("secret", "example", {"username": "demo", "password": "demo-password"})
    srv.start(args.port)
    print("listening on %s, root token %s" % (srv.url, srv.root_token), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
