"""X.509-SVIDs on credgate's listeners: SPIFFE trust domains
(trust_domains, routes.[].tls.trust_domains), the spiffe_id and
trust_domain rule conditions, audit's identity.spiffe_id, trust bundle
rotation without a restart, the PostgreSQL front's certificate_login with
an SVID alone, and what credgate -t reports.

Every certificate is made at test time (conftest's Pki): an authority per
trust domain, SVIDs, and the certificates a workload should never get
through with (another trust domain's, expired, too long-lived, a CA, two
URI names, none, a URI that is no SPIFFE ID).  curl and psql present them
to the real credgate in front of the real nginx and PostgreSQL."""

import datetime
import json
import os
import re
import secrets
import shutil
import time
import urllib.request

import pytest

from conftest import (Pki, PgStack, base_route, curl_tls, free_port, pg_client, read_text,
                      run_credgate, stack_problems, wait_for, wait_port, write_file)

PROD = "prod.example.org"
STAGING = "staging.example.org"
API = f"spiffe://{PROD}/ns/prod/sa/api"
BATCH = f"spiffe://{PROD}/ns/prod/sa/batch"
REFUSED = "X.509-SVID refused: "


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def rid():
    return "svid-" + secrets.token_hex(6)


class Svids:
    """The test's PKI: the listener's own certificate, and one authority
    per trust domain, whose bundle files credgate reads."""

    def __init__(self, tmp):
        tmp = str(tmp)
        self.front = Pki(os.path.join(tmp, "front"), "front-ca")
        self.crt, self.key, _ = self.front.server("front")
        self.prod = Pki(os.path.join(tmp, "prod"), "prod-ca")
        self.staging = Pki(os.path.join(tmp, "staging"), "staging-ca")
        self.bundle = os.path.join(tmp, "prod.bundle.pem")
        self.staging_bundle = os.path.join(tmp, "staging.bundle.pem")
        shutil.copy(self.prod.ca_file, self.bundle)
        shutil.copy(self.staging.ca_file, self.staging_bundle)

    def trust_domains(self):
        return [{"name": "prod", "trust_domain": PROD, "x509_bundle_file": self.bundle,
                 "max_svid_lifetime": "36h"},
                {"name": "staging", "trust_domain": STAGING,
                 "x509_bundle_file": self.staging_bundle}]


@pytest.fixture
def svids(tmp_path):
    return Svids(tmp_path / "pki")


def svid_route(s, p, name, verify="required", domains=("prod",), **over):
    """An HTTP route whose listener accepts the SVIDs of domains."""
    if name not in s.ports:
        s.ports[name] = free_port()
    tls = {"cert": p.crt, "key": p.key, "verify_client": verify,
           "trust_domains": list(domains)}
    return base_route(name, s.ports[name], s.nginx.port, tls=tls, **over)


def prod_rules():
    return {"allow": [{"name": "prod-workloads", "issuer": "test",
                       "spiffe_id": f"spiffe://{PROD}/ns/prod/*", "paths": ["/*"]}],
            "deny": [{"name": "no-batch", "spiffe_id": BATCH}]}


def launch(s, p, routes, admin_port=None):
    extra = {}
    if admin_port is not None:
        extra["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    s.start(routes=(), config_text=s.cg.config(routes, extra,
                                                trust_domains=p.trust_domains()))
    if admin_port is not None:
        wait_port(admin_port, s.cg.proc, what="credgate admin endpoint")
    return s


def curl(s, p, route, cert=None, key=None, auth=True, request_id=None, path="/a.txt"):
    """(curl's exit code, HTTP status or 0, body) of one request over TLS,
    with a client certificate when cert is given."""
    return curl_tls(s, s.ports[route], path=path, cacert=p.front.ca_file, cert=cert,
                    key=key, auth=auth, host="localhost",
                    args=["-H", "X-Request-Id: " + request_id] if request_id else ())


def decision(s, request_id):
    ev = s.cg.audit_where(lambda e: e.get("request_id") == request_id and
                          e.get("event") == "decision")
    assert len(ev) == 1, ev
    return ev[0]


def refusals(s):
    return [e for e in s.cg.audit() if e.get("event") == "decision" and
            (e.get("decision") or {}).get("reason", "").startswith(REFUSED)]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def sample(text, name, **labels):
    """The value of one series of a /metrics text, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}{{{re.escape(want)}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# ----------------------------------------------------------------------
# An SVID accepted, policy on its SPIFFE ID, and audit
# ----------------------------------------------------------------------
def test_svid_accepted_policy_and_audit(make_stack, svids):
    """A valid SVID of the listener's trust domain is accepted; rules
    match its SPIFFE ID (a glob on the path, a deny on one workload)
    alongside the token's claims; every decision event names the ID, the
    refusal of a request without its token too."""
    p = svids
    s = make_stack(start=False)
    launch(s, p, [svid_route(s, p, "svid", **prod_rules())])
    api = p.prod.svid("api", API)
    batch = p.prod.svid("batch", BATCH)

    i = rid()
    rc, status, body = curl(s, p, "svid", api[0], api[1], request_id=i)
    assert (rc, status) == (0, 200)
    assert body.decode() == s.nginx.files["/a.txt"]
    e = decision(s, i)
    assert e["decision"]["result"] == "allow" and e["decision"]["rule"] == "prod-workloads", e
    ident = e["identity"]
    assert ident["method"] == "jwt" and ident["issuer"] == "test", ident
    assert ident["spiffe_id"] == API and ident["trust_domain"] == "prod", ident
    assert e["client"]["spiffe_id"] == API and e["client"]["tls"] is True, e

    # The deny rule on one workload's ID wins.
    mark = s.nginx.mark()
    i = rid()
    rc, status, _ = curl(s, p, "svid", batch[0], batch[1], request_id=i)
    assert (rc, status) == (0, 403)
    s.nginx.assert_untouched(mark)
    e = decision(s, i)
    assert e["decision"]["rule"] == "no-batch", e
    assert e["identity"]["spiffe_id"] == BATCH, e

    # The HTTP front still wants its token: refused, with the ID known.
    i = rid()
    rc, status, _ = curl(s, p, "svid", api[0], api[1], auth=False, request_id=i)
    assert (rc, status) == (0, 401)
    s.nginx.assert_untouched(mark)
    e = decision(s, i)
    assert e["decision"]["result"] == "deny", e
    assert e["identity"]["method"] == "x509-svid" and e["identity"]["spiffe_id"] == API, e
    assert e["identity"]["trust_domain"] == "prod" and e["identity"]["sub"] is None, e

    # Without a certificate a required listener refuses in the handshake.
    rc, status, _ = curl(s, p, "svid")
    assert rc != 0 and status == 0
    s.nginx.assert_untouched(mark)
    assert "msg=svid_refused" not in s.cg.stderr()


# ----------------------------------------------------------------------
# What the handshake refuses
# ----------------------------------------------------------------------
def refused_cases(p):
    """(name, certificate, fragment of the reason, SPIFFE ID audited)."""
    t = now()
    return [
        ("another trust domain",
         p.staging.svid("staging-api", f"spiffe://{STAGING}/ns/prod/sa/api"),
         f'trust domain "{STAGING}" is not one this listener accepts',
         f"spiffe://{STAGING}/ns/prod/sa/api"),
        ("another trust domain, signed by this one's authority",
         p.prod.svid("claims-staging", f"spiffe://{STAGING}/ns/prod/sa/api"),
         f'trust domain "{STAGING}" is not one this listener accepts',
         f"spiffe://{STAGING}/ns/prod/sa/api"),
        ("this trust domain's ID from another's authority",
         p.staging.svid("forged", API), "certificate chain, depth 0", API),
        ("expired",
         p.prod.svid("expired", API, not_before=t - datetime.timedelta(hours=3),
                     not_after=t - datetime.timedelta(hours=1)),
         "certificate expired", API),
        ("too long-lived",
         p.prod.svid("long", API, not_after=t + datetime.timedelta(hours=47)),
         "lifetime 172800 s exceeds the 129600 s allowed", API),
        ("a CA",
         p.prod.svid("ca-leaf", API, ca=True, key_usage=["digital_signature", "key_cert_sign"]),
         "certificate is a CA", API),
        ("two URI names", p.prod.svid("two", None, uris=[API, BATCH]),
         "certificate has 2 URI subjectAltNames", None),
        ("no URI name", p.prod.svid("none", None, dns=["api.prod.example.org"]),
         "certificate has 0 URI subjectAltNames", None),
        ("a URI that is no SPIFFE ID", p.prod.svid("https", "https://api.prod.example.org/x"),
         'SPIFFE ID does not start with "spiffe://"', None),
        ("an uppercase trust domain", p.prod.svid("upper", "spiffe://Prod.example.org/ns/x"),
         "uppercase is not allowed", None),
        ("the trust domain's own ID", p.prod.svid("td", f"spiffe://{PROD}"),
         "names a trust domain, not a workload", f"spiffe://{PROD}"),
        ("no keyUsage", p.prod.svid("noku", API, key_usage=None),
         "certificate has no keyUsage", API),
    ]


def test_svid_refusals(make_stack, svids):
    """Each certificate that is not a valid SVID of the listener's trust
    domain fails the handshake, with verify_client optional too; each
    refusal is logged with its reason and audited as a deny, with the
    SPIFFE ID when the certificate had one to read; the upstream never
    sees a request."""
    p = svids
    s = make_stack(start=False)
    launch(s, p, [svid_route(s, p, "svid", **prod_rules()),
                  svid_route(s, p, "opt", verify="optional",
                             allow=[{"name": "token", "issuer": "test", "paths": ["/*"]}])])
    mark = s.nginx.mark()
    for route in ("svid", "opt"):
        for name, (crt, key, _), why, spiffe in refused_cases(p):
            before = len(refusals(s))
            rc, status, _ = curl(s, p, route, crt, key)
            assert rc != 0 and status == 0, f"{route}: {name} got through"
            got = wait_for(lambda: refusals(s)[before:], timeout=5)
            assert got and len(got) == 1, f"{route}: {name}: {got}"
            e = got[0]
            reason = e["decision"]["reason"]
            assert why in reason, f"{route}: {name}: {reason}"
            assert e["decision"]["result"] == "deny" and e["route"] == route, e
            assert e["request"] is None and e["decision"]["rule"] is None, e
            if spiffe is None:
                assert e["identity"] is None, f"{name}: {e['identity']}"
            else:
                assert e["identity"]["method"] == "x509-svid", e
                assert e["identity"]["spiffe_id"] == spiffe, e
                assert e["identity"]["trust_domain"] is None, e
            # The log quotes the reason: \" for each quote.
            assert wait_for(lambda: any(why in line.replace('\\"', '"')
                                        for line in s.cg.stderr().splitlines()
                                        if "msg=svid_refused" in line and
                                        f"route={route}" in line)), \
                f"{route}: {name}: no log line"
    s.nginx.assert_untouched(mark)

    # The optional listener without a certificate: the token decides.
    rc, status, _ = curl(s, p, "opt")
    assert (rc, status) == (0, 200)
    # And with a valid SVID of a trust domain it accepts.
    api = p.prod.svid("api", API)
    i = rid()
    assert curl(s, p, "opt", api[0], api[1], request_id=i)[:2] == (0, 200)
    assert decision(s, i)["identity"]["spiffe_id"] == API


def test_trust_domain_condition_and_two_domains(make_stack, svids):
    """A listener of two trust domains verifies each SVID against its own
    domain's bundle only; trust_domain conditions pick the domain."""
    p = svids
    s = make_stack(start=False)
    rules = {"allow": [{"name": "staging-reads", "issuer": "test", "trust_domain": STAGING,
                        "methods": ["GET"]},
                       {"name": "prod-any", "issuer": "test", "trust_domain": PROD}]}
    launch(s, p, [svid_route(s, p, "both", domains=("prod", "staging"), **rules)])
    st = p.staging.svid("st", f"spiffe://{STAGING}/ns/ci/sa/job")
    pr = p.prod.svid("pr", API)
    forged = p.prod.svid("forged", f"spiffe://{STAGING}/ns/ci/sa/job")

    i = rid()
    assert curl(s, p, "both", st[0], st[1], request_id=i)[:2] == (0, 200)
    e = decision(s, i)
    assert e["decision"]["rule"] == "staging-reads", e
    assert e["identity"]["trust_domain"] == "staging", e
    i = rid()
    assert curl(s, p, "both", pr[0], pr[1], request_id=i)[:2] == (0, 200)
    assert decision(s, i)["decision"]["rule"] == "prod-any"
    # A staging ID signed by prod's authority: prod's bundle does not
    # vouch for staging.
    before = len(refusals(s))
    rc, status, _ = curl(s, p, "both", forged[0], forged[1])
    assert rc != 0 and status == 0
    got = wait_for(lambda: refusals(s)[before:])
    assert got and "certificate chain" in got[0]["decision"]["reason"], got


def test_jwt_svid_matches_spiffe_id_conditions(make_stack):
    """A JWT-SVID's SPIFFE ID (the token of an issuer with trust_domain)
    is what spiffe_id and trust_domain conditions match when the caller
    presents no X.509-SVID, and audit records it."""
    s = make_stack(start=False)
    route = base_route("jobs", free_port(), s.nginx.port,
                       allow=[{"name": "ci-jobs", "issuer": "test",
                               "spiffe_id": f"spiffe://{PROD}/ns/ci/*",
                               "trust_domain": PROD, "paths": ["/*"]}],
                       deny=[{"name": "no-sandbox", "spiffe_id": f"spiffe://{PROD}/ns/ci/sandbox"}])
    s.ports["jobs"] = int(route["listen"].rsplit(":", 1)[1])
    s.start(routes=(), config_text=s.cg.config(
        [route], issuer_extra={"issuer": None, "trust_domain": PROD}))

    def call(sub):
        i = rid()
        r = s.curl("-H", "X-Request-Id: " + i, route="jobs",
                   token=s.token(iss=None, sub=sub))
        return r.status, decision(s, i)

    status, e = call(f"spiffe://{PROD}/ns/ci/sa/build")
    assert status == 200, e
    assert e["decision"]["rule"] == "ci-jobs", e
    ident = e["identity"]
    assert ident["method"] == "jwt-svid" and ident["issuer"] == "test", ident
    assert ident["spiffe_id"] == f"spiffe://{PROD}/ns/ci/sa/build", ident
    assert ident["trust_domain"] is None, ident
    status, e = call(f"spiffe://{PROD}/ns/web/sa/front")
    assert status == 403 and e["decision"]["reason"] == "no rule matched", e
    status, e = call(f"spiffe://{PROD}/ns/ci/sandbox")
    assert status == 403 and e["decision"]["rule"] == "no-sandbox", e


# ----------------------------------------------------------------------
# Rotation: a new bundle file is picked up without a restart
# ----------------------------------------------------------------------
def write_bundle(path, text):
    """Replaces the bundle as agents do: a new file renamed over it."""
    tmp = path + ".new"
    write_file(tmp, text.encode(), 0o644)
    os.replace(tmp, path)


def test_bundle_rotation_without_restart(make_stack, svids, tmp_path):
    """A new bundle file (a new authority) takes over within a couple of
    seconds, no SIGHUP: the old authority's SVIDs are refused, the new
    one's accepted.  A file that becomes invalid leaves the last good
    bundle in force and is reported once; the metrics count both."""
    p = svids
    s = make_stack(start=False)
    admin = free_port()
    launch(s, p, [svid_route(s, p, "svid", **prod_rules())], admin_port=admin)
    new_ca = Pki(tmp_path / "prod-next", "prod-ca-next")
    old = p.prod.svid("old", API)
    new = new_ca.svid("new", API)

    def accepted(cert):
        return curl(s, p, "svid", cert[0], cert[1])[:2] == (0, 200)

    assert accepted(old)
    assert not accepted(new)
    m = metrics(admin)
    assert sample(m, "credgate_trust_bundle_reloads_total", trust_domain="prod",
                  result="ok") == 0, m
    assert sample(m, "credgate_trust_bundle_age_seconds", trust_domain="prod") is not None

    write_bundle(p.bundle, read_text(new_ca.ca_file))
    t0 = time.monotonic()
    assert wait_for(lambda: accepted(new), timeout=5, interval=0.2), \
        "the new authority's SVID was not accepted"
    assert time.monotonic() - t0 < 3.5
    assert not accepted(old), "the old authority's SVID is still accepted"
    assert "msg=trust_bundle_reloaded trust_domain=prod" in s.cg.stderr()
    m = metrics(admin)
    assert sample(m, "credgate_trust_bundle_reloads_total", trust_domain="prod",
                  result="ok") == 1, m
    assert sample(m, "credgate_trust_bundle_age_seconds", trust_domain="prod") < 5, m
    # Nothing was reloaded: the same generation runs.
    assert "\ncredgate_config_generation 1\n" in m, m

    # Garbage in place: the last good bundle stays, one warning.
    with open(p.bundle, "w") as f:
        f.write("not a bundle\n")
    assert wait_for(lambda: "msg=trust_bundle_reload_failed" in s.cg.stderr(), timeout=5)
    time.sleep(2.5)
    assert s.cg.stderr().count("msg=trust_bundle_reload_failed") == 1, s.cg.stderr()
    assert accepted(new)
    assert sample(metrics(admin), "credgate_trust_bundle_reloads_total", trust_domain="prod",
                  result="failed") == 1

    # Both authorities in one bundle: both accepted.
    write_bundle(p.bundle, read_text(p.prod.ca_file) + read_text(new_ca.ca_file))
    assert wait_for(lambda: accepted(old), timeout=5, interval=0.2)
    assert accepted(new)
    assert "the last good bundle stays" in s.cg.stderr()


# ----------------------------------------------------------------------
# PostgreSQL: the SVID as the whole proof
# ----------------------------------------------------------------------
@pytest.fixture
def svid_pg_stack(pg, keys, credgate_bin, tmp_path, svids):
    made = []

    def make(routes_fn):
        s = PgStack(tmp_path / f"pg{len(made)}", keys, credgate_bin, pg)
        s.trust_domains = svids.trust_domains()
        made.append(s)
        try:
            return s.start(routes_fn(s))
        except AssertionError:
            s.expect_exit = None
            raise

    yield make
    problems = []
    for s in made:
        s.close_clients()
        problems.extend(stack_problems(s))
    assert not problems, "; ".join(problems)


def test_postgres_svid_certificate_login(svid_pg_stack, svids):
    """With certificate_login on a listener of trust domains, an accepted
    SVID that a rule names logs in without a password; one no rule names
    is refused (28000); a refused SVID fails the handshake; without a
    certificate the token is asked for as ever."""
    p = svids

    def routes(s):
        r = s.route("svid", tls=True, postgres_over={"certificate_login": True},
                    allow=[{"name": "ci-svid", "spiffe_id": f"spiffe://{PROD}/ns/ci/*",
                            "attributes": [{"attribute": "database", "value": "ledger"}]},
                           {"name": "ci-token", "issuer": "test"}])
        r["tls"].update(verify_client="optional", trust_domains=["prod"])
        return [r]
    s = svid_pg_stack(routes)
    psql = pg_client(s.pg.bindir, "psql")
    job = p.prod.svid("job", f"spiffe://{PROD}/ns/ci/sa/migrate")
    other = p.prod.svid("other", f"spiffe://{PROD}/ns/web/sa/front")
    forged = p.staging.svid("forged", f"spiffe://{PROD}/ns/ci/sa/migrate")

    def login(user, cert=None, token=None):
        kw = {"sslcert": cert[0], "sslkey": cert[1]} if cert else {}
        info = s.conninfo("svid", user=user, sslmode="verify-full", **kw)
        args = [psql, "-X", "-At", "-c", "select current_user", "-d", info]
        if token is None:
            args.insert(1, "-w")
        return s.run(args, token=token)

    def decision_of(user):
        ev = s.cg.audit_where(lambda e: e.get("event") == "decision" and
                              (e.get("request") or {}).get("user") == user)
        assert len(ev) == 1, ev
        return ev[0]

    user = "ci-" + secrets.token_hex(4)
    rc, out, err = login(user, job)
    assert rc == 0, err
    assert out.strip() == "svc_scram"
    d = decision_of(user)
    assert d["decision"]["rule"] == "ci-svid", d
    ident = d["identity"]
    assert ident["method"] == "x509-svid" and ident["trust_domain"] == "prod", ident
    assert ident["spiffe_id"] == f"spiffe://{PROD}/ns/ci/sa/migrate", ident
    assert ident["iss"] is None and ident["aud"] == [] and ident["claims"] == {}, ident

    # An SVID no rule names: refused, though "ci-token" would let any
    # caller with a token in.
    user = "ci-" + secrets.token_hex(4)
    rc, out, err = login(user, other)
    assert rc != 0, out
    d = decision_of(user)
    assert d["decision"]["result"] == "deny" and d["decision"]["code"] == "28000", d
    assert d["identity"]["spiffe_id"] == f"spiffe://{PROD}/ns/web/sa/front", d

    # An SVID of the wrong authority: the handshake fails.
    before = len(refusals(s))
    rc, out, err = login("ci-" + secrets.token_hex(4), forged)
    assert rc != 0, out
    got = wait_for(lambda: refusals(s)[before:])
    assert got and "certificate chain" in got[0]["decision"]["reason"], got
    assert got[0]["identity"]["spiffe_id"] == f"spiffe://{PROD}/ns/ci/sa/migrate", got

    # No certificate: the password (the token) is asked for.
    rc, out, err = login("ci-" + secrets.token_hex(4))
    assert rc != 0 and "password" in err, err
    rc, out, err = login("ci-" + secrets.token_hex(4), token=s.token())
    assert rc == 0 and out.strip() == "svc_scram", err


# ----------------------------------------------------------------------
# credgate -t
# ----------------------------------------------------------------------
def test_check_reports_trust_domain_errors(make_stack, svids, credgate_bin, tmp_path):
    """credgate -t reads each bundle and reports a missing, empty or
    non-PEM file, and the settings that do not go together, each with the
    file, the line and the setting's path."""
    p = svids
    s = make_stack(start=False)
    s.nginx.start()
    conf = os.path.join(str(tmp_path), "check.conf")

    def check(tds=None, route_tls=None, rules=None):
        tls = {"cert": p.crt, "key": p.key, "verify_client": "required",
               "trust_domains": ["prod"]}
        tls.update(route_tls or {})
        r = base_route("svid", free_port(), s.nginx.port, tls=tls, **(rules or prod_rules()))
        with open(conf, "w") as f:
            f.write(s.cg.config([r], trust_domains=tds or p.trust_domains()[:1]))
        return run_credgate(credgate_bin, ["-t", "-c", conf])

    rc, out, err = check()
    assert rc == 0, err
    assert err.strip().splitlines() == [f"{conf}: configuration OK"], err

    def bundle_case(text):
        path = os.path.join(str(tmp_path), "case.pem")
        if text is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            write_file(path, text.encode(), 0o644)
        tds = p.trust_domains()[:1]
        tds[0]["x509_bundle_file"] = path
        return path, check(tds)

    where = rf"^{re.escape(conf)}:\d+: trust_domains\.\[0\]\.x509_bundle_file: "
    path, (rc, out, err) = bundle_case(None)
    assert rc == 1 and re.search(where + re.escape(f'"{path}": No such file or directory'),
                                 err, re.M), err
    path, (rc, out, err) = bundle_case("")
    assert rc == 1 and re.search(where + re.escape(f"{path}: empty"), err, re.M), err
    path, (rc, out, err) = bundle_case(json.dumps({"keys": []}))
    assert rc == 1 and re.search(where + re.escape(f"{path}: holds no PEM certificate"),
                                 err, re.M), err
    leaf = read_text(p.prod.svid("leaf", API)[0])
    path, (rc, out, err) = bundle_case(read_text(p.prod.ca_file) + leaf)
    assert rc == 1 and re.search(where + ".*" + re.escape("certificate 2 is not a CA"), err,
                                 re.M), err

    rc, out, err = check(route_tls={"client_ca": p.prod.ca_file})
    assert rc == 1 and re.search(rf"^{re.escape(conf)}:\d+: routes\.\[0\]\.tls\.trust_domains: "
                                 r"cannot go with client_ca", err, re.M), err
    rc, out, err = check(route_tls={"trust_domains": ["prod", "qa"]})
    assert rc == 1 and re.search(rf"^{re.escape(conf)}:\d+: routes\.\[0\]\.tls\.trust_domains"
                                 r'\.\[1\]: unknown trust domain "qa"', err, re.M), err
    rc, out, err = check(route_tls={"verify_client": "none"})
    assert rc == 1 and "routes.[0].tls.trust_domains: requires verify_client" in err, err
    rc, out, err = check(rules={"allow": [{"name": "r", "issuer": "test",
                                           "spiffe_id": f"spiffe://{PROD}/ns//x"}]})
    assert rc == 1 and re.search(rf"^{re.escape(conf)}:\d+: routes\.\[0\]\.allow\.\[0\]\."
                                 r"spiffe_id: .*empty segment", err, re.M), err
    tds = p.trust_domains()
    tds[1]["trust_domain"] = "Staging.example.org"
    rc, out, err = check(tds)
    assert rc == 1 and re.search(rf"^{re.escape(conf)}:\d+: trust_domains\.\[1\]\.trust_domain: "
                                 r'"Staging\.example\.org" is not a trust domain', err,
                                 re.M), err
