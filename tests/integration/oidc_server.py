"""An OpenID Connect discovery and JWKS test server for the integration tests.

It stands in for the issuers whose key sets credgate fetches over the
network: an OIDC provider such as GitHub Actions' token service
(<issuer>/.well-known/openid-configuration naming a jwks_uri), a bare
jwks_uri, and the Kubernetes API server, whose /openid/v1/jwks is read with
a bearer token.  It holds private keys made at test time, publishes their
public halves, and mints tokens signed with them.

Tests drive it through the OidcServer object (not over HTTP): they add,
publish, unpublish and remove keys, mint tokens, and flip switches that
take effect on the next request (latency, failure statuses, dropped
connections, oversized or malformed key sets, Cache-Control, a discovery
document naming another issuer or jwks_uri, redirects, a required bearer
token); they read the request log and the hit counters.  It serves HTTPS
with the certificate and key a test hands in, or plain HTTP without them,
and listens on 127.0.0.1 only.  Only the standard library and cryptography
are used.  Run as a script for manual use; the token goes to stdout:

    python3 oidc_server.py --port 8443 [--cert C --key K] [--prefix P]
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# The algorithms add_key makes keys for.
KEY_ALGS = ("RS256", "PS256", "ES256", "ES384", "EdDSA")

# The Kubernetes API server's key set path, and its answer to a request
# without valid credentials (a meta/v1 Status).
K8S_JWKS_PATH = "/openid/v1/jwks"
K8S_UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": "Unauthorized",
                    "reason": "Unauthorized", "code": 401}
DISCOVERY_PATH = "/.well-known/openid-configuration"

# The claims a CI provider's discovery document advertises (GitHub
# Actions' kind of token: repository, ref, workflow and run).
CI_CLAIMS = ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "ref_type",
             "sha", "repository", "repository_id", "repository_owner",
             "repository_owner_id", "repository_visibility", "run_id", "run_number",
             "run_attempt", "actor", "actor_id", "workflow", "workflow_ref",
             "job_workflow_ref", "event_name", "environment", "runner_environment"]

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_CURVES = {"P-256": (ec.SECP256R1, 32, "ES256"),
              "P-384": (ec.SECP384R1, 48, "ES384"),
              "P-521": (ec.SECP521R1, 66, "ES512")}


# ----- JOSE helpers -----------------------------------------------------------

def b64url(data):
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(n, size=None):
    """A non-negative integer as big-endian bytes: minimal, or size long."""
    size = size or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(size, "big")


def _curve_name(curve):
    for name, (cls, _, _) in _EC_CURVES.items():
        if isinstance(curve, cls):
            return name
    raise ValueError("unsupported curve %s" % curve.name)


def public_jwk(key, kid=None, alg=None, use="sig"):
    """The public JWK of a cryptography key (private or public): RSA, EC on
    P-256/384/521 or Ed25519.  kid, alg and use are left out when None."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        jwk = {"kty": "RSA", "n": b64url(_uint(nums.n)), "e": b64url(_uint(nums.e))}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        crv = _curve_name(pub.curve)
        size = _EC_CURVES[crv][1]
        nums = pub.public_numbers()
        jwk = {"kty": "EC", "crv": crv, "x": b64url(_uint(nums.x, size)),
               "y": b64url(_uint(nums.y, size))}
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        raise TypeError("unsupported key type %r" % type(pub).__name__)
    for name, value in (("kid", kid), ("use", use), ("alg", alg)):
        if value is not None:
            jwk[name] = value
    return jwk


def public_jwk_rsa(bits=1024, kid=None, alg="RS256", use="sig", e=65537):
    """The public JWK of a fresh RSA key of bits bits (1024: a weak key);
    e is 65537 or 3."""
    key = rsa.generate_private_key(public_exponent=e, key_size=bits)
    return public_jwk(key, kid or "rsa%d-%s" % (bits, secrets.token_hex(4)), alg, use)


def public_jwk_ec(crv="P-256", kid=None, alg=None, use="sig"):
    """The public JWK of a fresh EC key on crv (P-256, P-384 or P-521);
    alg defaults to the curve's ES algorithm."""
    cls, _, default_alg = _EC_CURVES[crv]
    key = ec.generate_private_key(cls())
    return public_jwk(key, kid or "ec-%s" % secrets.token_hex(4), alg or default_alg, use)


def public_jwk_okp(kid=None, alg="EdDSA", use="sig"):
    """The public JWK of a fresh Ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    return public_jwk(key, kid or "ed-%s" % secrets.token_hex(4), alg, use)


def oct_jwk(secret=None, kid=None, alg="HS256", use="sig"):
    """A symmetric (kty "oct") JWK, which a key set for token verification
    must never hold: its k is the secret itself."""
    secret = secret if secret is not None else secrets.token_bytes(32)
    jwk = {"kty": "oct", "k": b64url(secret)}
    for name, value in (("kid", kid or "oct-" + secrets.token_hex(4)), ("use", use),
                        ("alg", alg)):
        if value is not None:
            jwk[name] = value
    return jwk


def _json(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def sign_jws(header, claims, key, alg):
    """A compact JWS of the JSON header and claims, signed with the
    cryptography private key under alg: RS/PS/ES 256/384/512, EdDSA,
    HS256/384/512 (keyed with the key's public PEM, as a key confusion
    attack does) or "none" (an empty signature)."""
    signing_input = (b64url(_json(header)) + "." + b64url(_json(claims))).encode()
    family, bits = alg[:2], alg[2:]
    if alg == "none":
        sig = b""
    elif alg == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("EdDSA needs an Ed25519 key")
        sig = key.sign(signing_input)
    elif family in ("RS", "PS") and bits in _HASHES:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("%s needs an RSA key" % alg)
        h = _HASHES[bits]()
        if family == "RS":
            pad = padding.PKCS1v15()
        else:
            # RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash.
            pad = padding.PSS(mgf=padding.MGF1(_HASHES[bits]()), salt_length=h.digest_size)
        sig = key.sign(signing_input, pad, h)
    elif family == "ES" and bits in _HASHES:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("%s needs an EC key" % alg)
        crv = _curve_name(key.curve)
        cls, size, curve_alg = _EC_CURVES[crv]
        if curve_alg != alg:
            raise ValueError("%s needs a key on another curve than %s" % (alg, crv))
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(_HASHES[bits]())))
        sig = _uint(r, size) + _uint(s, size)
    elif family == "HS" and bits in _HASHES:
        secret = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        sig = hmac.new(secret, signing_input, getattr(hashlib, "sha" + bits)).digest()
    else:
        raise ValueError("unsupported alg %r" % alg)
    return signing_input.decode() + "." + b64url(sig)


def _generate(alg, rsa_bits):
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError("alg must be one of %s" % ", ".join(KEY_ALGS))


class _Key:
    def __init__(self, kid, alg, private, publish, use, alg_in_jwk):
        self.kid = kid
        self.alg = alg
        self.private = private
        self.published = publish
        self.jwk = public_jwk(private, kid, alg if alg_in_jwk else None, use)


# ----- HTTP plumbing ----------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle kept-alive connection ends on its own after this long.
    timeout = 30

    def version_string(self):
        return "oidc-test-server"

    def setup(self):
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.server.conns_lock:
                self.server.conns.discard(self.connection)

    def log_message(self, fmt, *args):
        pass

    def _serve(self):
        self.server.oidc._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kw):
        # Open client connections and the threads serving them, so that
        # stop() can close kept-alive connections and join every thread.
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.workers = set()
        super().__init__(*args, **kw)

    def process_request(self, request, client_address):
        t = threading.Thread(target=self._work, args=(request, client_address),
                             name="oidc-test-conn", daemon=True)
        with self.conns_lock:
            self.workers.add(t)
        t.start()

    def _work(self, request, client_address):
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.conns_lock:
                self.workers.discard(threading.current_thread())

    def handle_error(self, request, client_address):
        # Failed handshakes and clients that go away are expected here.
        pass

    def close_connections(self):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join_workers(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            with self.conns_lock:
                workers = list(self.workers)
            if not workers:
                return
            for t in workers:
                t.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return


# ----- the server -------------------------------------------------------------

class OidcServer:
    """The test server and its control interface (see the module docstring).

    Every path it serves lies under prefix (e.g. "/tenant"): discovery at
    prefix + /.well-known/openid-configuration, the key set at prefix +
    jwks_path and, with k8s, prefix + /openid/v1/jwks.  url is the base the
    clients use, https://<host_name>:<port><prefix> (http:// without a
    certificate); host_name only names the host in URLs, the socket is
    always on 127.0.0.1.

    The switches are plain attributes a test sets at any time; each request
    reads them once, on arrival, under the lock, and meets them in this
    order: delay (every path), drop, fail_status (a short text body), any
    method but GET (405), redirects (Location sent as given), bearer_token
    (401 with a Kubernetes Status body; it guards the key set paths, and
    with k8s the discovery document too, as the API server does), then the
    documents, and 404 for anything else.  Discovery and key set answers
    carry cache_control; the key set is raw_jwks if set, else the published
    keys and extra_entries, padded by oversize.
    """

    def __init__(self, cert=None, key=None, prefix="", host_name="localhost"):
        if (cert is None) != (key is None):
            raise ValueError("cert and key go together")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("prefix must be empty or start, and not end, with /")
        self.cert, self.key = cert, key
        self.prefix = prefix
        self.host_name = host_name
        self.lock = threading.RLock()
        self._keys = []                  # _Key, oldest first
        self._log = []
        self._issuer = None
        self._stopping = threading.Event()
        self.httpd = None
        self.thread = None
        self.port = None
        # Switches, each read once per request.
        self.jwks_path = "/keys"          # under prefix
        self.extra_entries = []           # raw JWK dicts after the keys
        self.delay = 0.0                  # seconds before any answer
        self.fail_status = None           # answer every request with this status
        self.drop = False                 # close every connection unanswered
        self.oversize = 0                 # bytes of "x-padding" in the key set
        self.cache_control = None         # Cache-Control of discovery and key set
        self.discovery_issuer = None      # "issuer" in the discovery document
        self.jwks_uri_override = None     # "jwks_uri" in the discovery document
        self.redirects = {}               # path under prefix -> Location
        self.redirect_status = 302
        self.bearer_token = None          # required on the key set paths
        self.k8s = False                  # act as kube-apiserver too
        self.raw_jwks = None              # bytes served as the key set
        self.jwks_content_type = None     # None: application/json, except
                                          # application/jwk-set+json on the
                                          # Kubernetes path, as the API server

    # ----- lifecycle -------------------------------------------------------

    @property
    def scheme(self):
        return "https" if self.cert else "http"

    @property
    def url(self):
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return "%s://%s:%d%s" % (self.scheme, self.host_name, self.port, self.prefix)

    @property
    def issuer(self):
        """The issuer it claims in tokens and discovery: url unless set."""
        return self._issuer if self._issuer is not None else self.url

    @issuer.setter
    def issuer(self, value):
        self._issuer = value

    @property
    def jwks_url(self):
        """Where the key set is served: url + jwks_path."""
        return self.url + self.jwks_path

    @property
    def discovery_url(self):
        return self.url + DISCOVERY_PATH

    def start(self, port=0):
        """Listen on 127.0.0.1 (a free port unless one is given) and serve."""
        if self.httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        httpd.oidc = self
        if self.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            # The handshake runs in the connection's own thread, on first read.
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                           do_handshake_on_connect=False)
        self._stopping.clear()
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.thread = threading.Thread(target=httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       name="oidc-test-server", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stop listening, cut short any delay, close open connections and
        join every thread.  Idempotent."""
        httpd, self.httpd = self.httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        self.thread.join(timeout=10)
        httpd.join_workers(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- keys ------------------------------------------------------------

    def add_key(self, alg="ES256", kid=None, publish=True, use="sig", alg_in_jwk=True,
                rsa_bits=2048):
        """A fresh private key for alg (RS256, PS256, ES256, ES384, EdDSA);
        its JWK carries kid (generated when None), use (left out when None)
        and alg (left out unless alg_in_jwk).  Returns the kid."""
        private = _generate(alg, rsa_bits)
        with self.lock:
            if kid is None:
                kid = "%s-%s" % (alg.lower(), secrets.token_hex(6))
            if any(k.kid == kid for k in self._keys):
                raise ValueError("kid %r exists" % kid)
            self._keys.append(_Key(kid, alg, private, publish, use, alg_in_jwk))
        return kid

    def _find(self, kid):
        for k in self._keys:
            if k.kid == kid:
                return k
        raise KeyError("no key with kid %r" % (kid,))

    def publish(self, kid):
        with self.lock:
            self._find(kid).published = True

    def unpublish(self, kid):
        with self.lock:
            self._find(kid).published = False

    def remove_key(self, kid):
        with self.lock:
            self._keys.remove(self._find(kid))

    def kids(self, published=None):
        """The kids, oldest first (only published or unpublished ones when
        published is True or False)."""
        with self.lock:
            return [k.kid for k in self._keys
                    if published is None or k.published == published]

    def private_key(self, kid):
        """The cryptography private key of kid."""
        with self.lock:
            return self._find(kid).private

    def jwk(self, kid):
        """The public JWK of kid (a copy), published or not."""
        with self.lock:
            return dict(self._find(kid).jwk)

    def jwks(self):
        """The key set as served now (without padding): the published keys,
        oldest first, then extra_entries."""
        with self.lock:
            keys = [dict(k.jwk) for k in self._keys if k.published]
            keys += [dict(e) for e in self.extra_entries]
        return {"keys": keys}

    def mint(self, kid=None, alg=None, headers=None, key_kid=None, **claims):
        """A signed JWT.  The signing key is key_kid's, else kid's if that
        key exists, else the newest published key.  It signs under alg (the
        key's unless given; see sign_jws for the others).  The header
        carries alg, typ "JWT" and kid (the key's unless given: a kid that
        names no key is put in the header as is), then headers, which may
        replace any of them ("alg" too, without changing the signature) or
        leave one out (given as None).  Claims default to iss=issuer,
        sub="repo:acme/app:ref:refs/heads/main", aud="credgate", iat=now
        and exp=now+300; a claim given as None is left out."""
        with self.lock:
            if key_kid is not None:
                key = self._find(key_kid)
            elif kid is not None and any(k.kid == kid for k in self._keys):
                key = self._find(kid)
            else:
                published = [k for k in self._keys if k.published]
                if not published:
                    raise ValueError("no published key to sign with: add one or "
                                     "name key_kid")
                key = published[-1]
        now = int(time.time())
        body = {"iss": self.issuer, "sub": "repo:acme/app:ref:refs/heads/main",
                "aud": "credgate", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        header = {"alg": alg or key.alg, "typ": "JWT",
                  "kid": kid if kid is not None else key.kid}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        return sign_jws(header, body, key.private, alg or key.alg)

    # ----- documents -------------------------------------------------------

    def _algs(self):
        algs = sorted({k.alg for k in self._keys if k.published})
        return algs or ["RS256"]

    def discovery(self):
        """The discovery document as served now: a CI provider's (GitHub
        Actions' shape) or, with k8s, the Kubernetes API server's."""
        with self.lock:
            issuer = (self.discovery_issuer if self.discovery_issuer is not None
                      else self.issuer)
            if self.k8s:
                doc = {"issuer": issuer,
                       "jwks_uri": self.url + K8S_JWKS_PATH,
                       "response_types_supported": ["id_token"],
                       "subject_types_supported": ["public"],
                       "id_token_signing_alg_values_supported": self._algs()}
            else:
                doc = {"issuer": issuer,
                       "jwks_uri": self.jwks_url,
                       # Tokens come from the CI runner, not from a browser
                       # flow: the endpoint is there because the document
                       # must name one.
                       "authorization_endpoint": self.url + "/authorize",
                       "response_types_supported": ["id_token"],
                       "subject_types_supported": ["public", "pairwise"],
                       "id_token_signing_alg_values_supported": self._algs(),
                       "scopes_supported": ["openid"],
                       "claims_supported": list(CI_CLAIMS)}
            if self.jwks_uri_override is not None:
                doc["jwks_uri"] = self.jwks_uri_override
        return doc

    # ----- observation -----------------------------------------------------

    def requests(self):
        """The request log, oldest first: dicts with method, path (as
        requested, prefix included, query left off), query, headers (lower
        case names), time (time.time() on arrival) and status (an int,
        "drop", or None while unanswered)."""
        with self.lock:
            return [dict(e, headers=dict(e["headers"])) for e in self._log]

    def hits(self, path=None):
        """Requests seen, all of them or those for path under prefix
        (e.g. "/keys", "/.well-known/openid-configuration")."""
        with self.lock:
            if path is None:
                return len(self._log)
            full = self.prefix + path
            return sum(1 for e in self._log if e["path"] == full)

    def reset(self):
        """Clears the request log and the counters (not keys or switches)."""
        with self.lock:
            self._log.clear()

    # ----- request handling ------------------------------------------------

    def _handle(self, h):
        url = urllib.parse.urlsplit(h.path)
        entry = {"method": h.command, "path": url.path, "query": url.query,
                 "headers": {k.lower(): v for k, v in h.headers.items()},
                 "time": time.time(), "status": None}
        with self.lock:
            self._log.append(entry)
            s = {"delay": self.delay, "fail_status": self.fail_status,
                 "drop": self.drop, "oversize": self.oversize,
                 "cache_control": self.cache_control,
                 "redirects": dict(self.redirects),
                 "redirect_status": self.redirect_status,
                 "bearer": self.bearer_token, "k8s": self.k8s,
                 "raw": self.raw_jwks, "jwks_path": self.jwks_path,
                 "ctype": self.jwks_content_type}
            jwks = self.jwks()
            discovery = self.discovery()
        # A request body is read and ignored, so that the connection stays
        # usable; past 1 MiB (or chunked) the connection ends after the answer.
        try:
            length = int(h.headers.get("Content-Length") or 0)
            if length:
                h.rfile.read(min(length, 1 << 20))
            if length > 1 << 20 or h.headers.get("Transfer-Encoding"):
                h.close_connection = True
        except (ValueError, OSError):
            h.close_connection = True
        if s["delay"] and self._stopping.wait(s["delay"]):
            h.close_connection = True
            return
        if s["drop"]:
            entry["status"] = "drop"
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if s["fail_status"] is not None:
            self._send_text(h, entry, s["fail_status"])
            return
        if h.command != "GET":
            self._send_text(h, entry, 405, {"Allow": "GET"})
            return
        rel = url.path[len(self.prefix):] if url.path.startswith(self.prefix) else None
        if rel is not None and rel in s["redirects"]:
            self._send_text(h, entry, s["redirect_status"],
                            {"Location": s["redirects"][rel]})
            return
        jwks_paths = [s["jwks_path"]] + ([K8S_JWKS_PATH] if s["k8s"] else [])
        cache = {"Cache-Control": s["cache_control"]} if s["cache_control"] else {}
        if rel in jwks_paths:
            if not self._authorized(h, s["bearer"]):
                self._send(h, entry, 401, _json(K8S_UNAUTHORIZED), "application/json")
                return
            if s["raw"] is not None:
                body = bytes(s["raw"])
            else:
                if s["oversize"]:
                    jwks["x-padding"] = "x" * int(s["oversize"])
                body = _json(jwks)
            ctype = s["ctype"] or ("application/jwk-set+json" if rel == K8S_JWKS_PATH
                                   and rel != s["jwks_path"] else "application/json")
            self._send(h, entry, 200, body, ctype, cache)
            return
        if rel == DISCOVERY_PATH:
            # The API server guards its discovery document like its key set.
            if s["k8s"] and not self._authorized(h, s["bearer"]):
                self._send(h, entry, 401, _json(K8S_UNAUTHORIZED), "application/json")
                return
            self._send(h, entry, 200, _json(discovery), "application/json", cache)
            return
        self._send_text(h, entry, 404)

    @staticmethod
    def _authorized(h, token):
        if token is None:
            return True
        got = h.headers.get("Authorization") or ""
        scheme, _, value = got.partition(" ")
        return (scheme.lower() == "bearer" and
                secrets.compare_digest(value.strip().encode(), token.encode()))

    def _send_text(self, h, entry, status, headers=None):
        reason = http.server.BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
        self._send(h, entry, status, (reason + "\n").encode(), "text/plain; charset=utf-8",
                   headers)

    @staticmethod
    def _send(h, entry, status, body, ctype, headers=None):
        entry["status"] = status
        bodiless = status < 200 or status in (204, 304)
        try:
            h.send_response(status)
            if not bodiless:
                h.send_header("Content-Type", ctype)
                h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            if not bodiless and h.command != "HEAD":
                h.wfile.write(body)
            h.wfile.flush()
        except OSError:
            h.close_connection = True


def main(argv=None):
    ap = argparse.ArgumentParser(description="OIDC discovery and JWKS test server; "
                                 "prints a token it signed to stdout")
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--host-name", default="localhost")
    ap.add_argument("--alg", choices=KEY_ALGS, default="ES256")
    ap.add_argument("--k8s", action="store_true",
                    help="serve /openid/v1/jwks as the Kubernetes API server")
    ap.add_argument("--bearer-token", help="required on the key set paths")
    args = ap.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        ap.error("--cert and --key go together")
    srv = OidcServer(cert=args.cert, key=args.key, prefix=args.prefix,
                     host_name=args.host_name)
    srv.k8s = args.k8s
    srv.bearer_token = args.bearer_token
    srv.add_key(args.alg)
    srv.start(args.port)
    print("issuer %s\ndiscovery %s\njwks %s" % (srv.issuer, srv.discovery_url, srv.jwks_url),
          file=sys.stderr, flush=True)
    print(srv.mint(exp=int(time.time()) + 3600), flush=True)
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
