"""The command line: -t, -T, -V, policy-test, exit codes and signals."""

import glob
import json
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import (CANARY, Credgate, Pki, base_route, find_leaks, free_port, lc_quote,
                      public_jwk, read_text, run_credgate, sanitizer_lines)


@pytest.fixture
def cg(tmp_path, keys, credgate_bin):
    c = Credgate(credgate_bin, str(tmp_path), keys)
    yield c
    if c.proc is not None:
        c.stop()
        print(c.dump())


def good_config(cg, port=None):
    return cg.config([base_route("legacy", port or free_port(), free_port())])


def test_check_accepts_a_good_file(cg):
    cg.write_config(good_config(cg))
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", "credgate.conf"], cwd=cg.dir)
    assert rc == 0
    assert "credgate.conf: configuration OK" in err


def test_check_reports_every_error_with_file_line_and_path(cg):
    # The first route's upstream port is out of range and the second route
    # has no owner: both must be reported in one run.
    second = base_route("second", free_port(), free_port())
    del second["owner"]
    text = cg.config([base_route("legacy", free_port(), free_port()), second])
    lines = text.splitlines()
    port_line = next(i for i, l in enumerate(lines) if re.match(r"\s*port = \d+;", l))
    lines[port_line] = re.sub(r"port = \d+;", "port = 70000;", lines[port_line])
    cg.write_config("\n".join(lines) + "\n")
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", "credgate.conf"], cwd=cg.dir)
    assert rc == 1, err
    assert re.search(rf"^credgate\.conf:{port_line + 1}: routes\.\[0\]\.upstream\.port: "
                     r".*70000", err, re.M), err
    assert re.search(r"^credgate\.conf:\d+: routes\.\[1\]\.owner: ", err, re.M), err
    assert "configuration OK" not in err


@pytest.mark.parametrize("mutation,path", [
    (lambda t: t.replace('mode = "enforce";', 'mode = "enforced";'), r"routes\.\[0\]\.mode"),
    (lambda t: t.replace('expires = "2099-12-31";', 'expires = "someday";'),
     r"routes\.\[0\]\.expires"),
    (lambda t: t.replace('client_header = "10s";', 'client_header = "ten";'),
     r"credgate\.timeouts\.client_header"),
    (lambda t: t.replace('"ES256", ', '"HS256", '), r"issuers\.\[0\]\.algorithms"),
    (lambda t: t.replace('audit_failure = "deny";', 'audit_failure = "deny";\n\tbogus = 1;'),
     r"routes\.\[0\]\.bogus"),
])
def test_check_names_the_bad_setting(cg, mutation, path):
    text = good_config(cg)
    bad = mutation(text)
    assert bad != text
    cg.write_config(bad)
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", "credgate.conf"], cwd=cg.dir)
    assert rc == 1, err
    assert re.search(rf"^credgate\.conf:\d+: {path}(\.\[\d+\])?: ", err, re.M), err


def test_check_refuses_an_attribute_the_protocol_lacks(cg):
    route = base_route("legacy", free_port(), free_port())
    route["allow"][0]["attributes"] = [{"attribute": "database", "value": "prod"}]
    text = cg.config([route])
    cg.write_config(text)
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", "credgate.conf"], cwd=cg.dir)
    assert rc == 1, err
    at = line_no(text, 'attribute = "database"')
    assert re.search(rf'^credgate\.conf:{at}: routes\.\[0\]\.allow\.\[0\]\.attributes\.\[0\]'
                     r'\.attribute: protocol "http" has no attribute "database" '
                     r'\(it has method, path\)$', err, re.M), err
    route["allow"][0]["attributes"] = [{"attribute": "path", "value": "/x/*"}]
    cg.write_config(cg.config([route]))
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", "credgate.conf"], cwd=cg.dir)
    assert rc == 0, err


def test_check_refuses_world_readable_secrets(cg):
    cg.write_config(good_config(cg))
    os.chmod(cg.secrets_file, 0o644)
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", "credgate.conf"], cwd=cg.dir)
    assert rc == 1, err
    assert "secrets.file" in err
    assert CANARY not in err


def line_no(text, needle, start=0):
    """1-based number of the first line at or after line start holding needle."""
    lines = text.splitlines()
    return next(i + 1 for i in range(start, len(lines)) if needle in lines[i])


def check(cg, conf=None):
    return run_credgate(cg.binary, ["-t", "-c", conf or "credgate.conf"], cwd=cg.dir)


def start_status(cg, timeout=10):
    """Starts credgate on the written configuration; its exit status, or None
    when it is still running after timeout (it is then left to the fixture)."""
    cg.start()
    try:
        return cg.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_check_reports_missing_secrets_and_fields(cg):
    # The secrets file holds legacy/app (username, password) and legacy/token
    # (token).  Each route asks for something else; only the last is fine.
    routes = [
        base_route("nosecret", free_port(), free_port(),
                   credential={"path": "missing/app", "inject": "basic"}),
        base_route("renamed", free_port(), free_port(),
                   credential={"path": "legacy/app", "inject": "basic",
                               "username_field": "login"}),
        base_route("bearer", free_port(), free_port(),
                   credential={"path": "legacy/app", "inject": "bearer"}),
        base_route("header", free_port(), free_port(),
                   credential={"path": "legacy/token", "inject": "header",
                               "header": "X-Api-Key", "template": "${token}:${apikey}"}),
        base_route("fine", free_port(), free_port()),
    ]
    text = cg.config(routes)
    cg.write_config(text)
    rc, out, err = check(cg)
    assert rc == 1, err
    secrets = re.escape(lc_quote(cg.secrets_file))
    at_path = line_no(text, 'path = "missing/app";')
    at_login = line_no(text, 'username_field = "login";')
    at_template = line_no(text, "template = ")
    want = [
        rf'credgate\.conf:{at_path}: routes\.\[0\]\.credential\.path: '
        rf'route "nosecret": no secret "missing/app" in {secrets}',
        rf'credgate\.conf:{at_login}: routes\.\[1\]\.credential\.username_field: '
        r'route "renamed": secret "legacy/app" has no field "login"',
        r'credgate\.conf:\d+: routes\.\[2\]\.credential\.field: route "bearer": secret '
        r'"legacy/app" has no field "token"',
        rf'credgate\.conf:{at_template}: routes\.\[3\]\.credential\.template: '
        r'route "header": secret "legacy/token" has no field "apikey" \(the template\'s '
        r'\$\{apikey\}\)',
    ]
    errors = [l for l in err.splitlines() if not l.endswith("configuration has errors")]
    assert len(errors) == len(want), err
    for pattern, line in zip(want, errors):
        assert re.fullmatch(pattern, line), (pattern, line)
    assert not find_leaks(err + out)

    # A route that names what the file holds checks out.
    cg.write_config(cg.config([routes[-1]]))
    rc, out, err = check(cg)
    assert rc == 0, err


def test_check_opens_the_audit_file_without_touching_it(cg):
    text = good_config(cg)
    cg.write_config(text)
    with open(cg.audit_file, "w") as f:
        f.write('{"earlier": 1}\n')
    rc, out, err = check(cg)
    assert rc == 0, err
    assert read_text(cg.audit_file) == '{"earlier": 1}\n'
    # Not there yet: credgate creates it at start; -t leaves it uncreated.
    os.unlink(cg.audit_file)
    rc, out, err = check(cg)
    assert rc == 0, err
    assert not os.path.lexists(cg.audit_file)

    # In a folder that does not exist: start would fail, so -t does.
    missing = os.path.join(cg.dir, "no", "audit.log")
    cg.write_config(text.replace(lc_quote(cg.audit_file), lc_quote(missing)))
    rc, out, err = check(cg)
    assert rc == 1, err
    at = line_no(text, "audit.log")
    assert re.search(rf'^credgate\.conf:{at}: credgate\.audit\.file: '
                     rf'{re.escape(lc_quote(missing))}: directory '
                     rf'{re.escape(lc_quote(os.path.dirname(missing)))}: No such file or '
                     r'directory$', err, re.M), err

    # A symbolic link is not followed at start, nor by -t.
    cg.write_config(text)
    other = os.path.join(cg.dir, "elsewhere.log")
    with open(other, "w") as f:
        f.write("")
    os.symlink(other, cg.audit_file)
    rc, out, err = check(cg)
    assert rc == 1, err
    assert re.search(r"^credgate\.conf:\d+: credgate\.audit\.file: .* cannot be opened for "
                     r"appending: ", err, re.M), err
    assert start_status(cg) == 3


need_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")


def owner_error(path, setting, quoted):
    name = re.escape(lc_quote(path) if quoted else path)
    return (rf"^\S*credgate\.conf:\d+: {re.escape(setting)}: {name}: owned by uid 65534, not by "
            r"root or the user credgate runs as \(uid 0\); chown it$")


@need_root
def test_secrets_file_of_another_user_is_refused(cg):
    cg.write_config(good_config(cg))
    os.chown(cg.secrets_file, 65534, -1)
    want = owner_error(cg.secrets_file, "secrets.file", False)
    rc, out, err = check(cg)
    assert rc == 1, err
    assert re.search(want, err, re.M), err
    assert start_status(cg) == 1
    assert re.search(want, cg.stderr(), re.M), cg.stderr()
    assert CANARY not in err + cg.stderr()


@need_root
def test_secrets_file_of_the_run_as_user_is_accepted(cg):
    user = pwd.getpwuid(65534).pw_name
    cg.write_config(cg.config([base_route("legacy", free_port(), free_port())],
                              credgate_extra={"user": user}))
    os.chown(cg.secrets_file, 65534, -1)
    rc, out, err = check(cg)
    assert rc == 0, err


@need_root
def test_private_key_of_another_user_is_refused(cg):
    cert = os.path.join(cg.dir, "cert.pem")
    key = os.path.join(cg.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    os.chmod(key, 0o600)
    port = free_port()
    cg.write_config(cg.config([base_route("legacy", port, free_port(),
                                          tls={"cert": cert, "key": key})]))
    rc, out, err = check(cg)
    assert rc == 0, err
    os.chown(key, 65534, -1)
    want = owner_error(key, "routes.[0].tls.key", True)
    rc, out, err = check(cg)
    assert rc == 1, err
    assert re.search(want, err, re.M), err
    assert start_status(cg) == 1
    assert re.search(want, cg.stderr(), re.M), cg.stderr()


def test_check_syntax_error_has_line(cg):
    text = good_config(cg)
    lines = text.splitlines()
    lines.insert(3, "this is not libconfig")
    cg.write_config("\n".join(lines))
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", "credgate.conf"], cwd=cg.dir)
    assert rc == 1
    assert re.search(r"^credgate\.conf:4: ", err, re.M), err


def test_check_refuses_a_nul_escape(cg):
    # libconfig drops \x00 from a string: "/public\x00-suffix" would read
    # as "/public-suffix" and allow a path nobody wrote.
    text = good_config(cg)
    bad = text.replace('paths = ["/*"];', 'paths = ["/*", "/public\\x00-suffix"];')
    assert bad != text
    cg.write_config(bad)
    rc, out, err = check(cg)
    assert rc == 1, err
    at = line_no(bad, "public")
    assert re.search(rf"^credgate\.conf:{at}: routes\.\[0\]\.allow\.\[0\]\.paths\.\[1\]: "
                     r"\\x00 \(a NUL byte\) in a string: no setting may hold one$", err, re.M), err
    # A backslash written as \\ is text, not an escape.
    cg.write_config(text.replace('paths = ["/*"];', 'paths = ["/*", "/public\\\\x00"];'))
    rc, out, err = check(cg)
    assert rc == 0, err


def test_check_names_a_duplicate_setting(cg):
    text = good_config(cg)
    bad = text.replace('mode = "enforce";', 'mode = "enforce";\n\t\tmode = "dry-run";')
    assert bad != text
    cg.write_config(bad)
    rc, out, err = check(cg)
    assert rc == 1, err
    first = line_no(bad, 'mode = "enforce";')
    assert re.search(rf"^credgate\.conf:{first + 1}: routes\.\[0\]\.mode: duplicate setting: "
                     rf"already set at line {first}$", err, re.M), err


def test_dump_reloads_to_the_same_configuration(cg):
    # A sparse file: the dump must fill in the defaults.
    text = cg.config([base_route("legacy", free_port(), free_port())])
    text = re.sub(r"\n\s*timeouts = \{[^}]*\};", "", text)
    assert "client_header" not in text
    cg.write_config(text)
    rc, dump1, err = run_credgate(cg.binary, ["-T", "-c", cg.conf_file])
    assert rc == 0, err
    assert "client_header" in dump1 and "10s" in dump1
    assert not find_leaks(dump1), "the dump shows a secret"
    again = os.path.join(cg.dir, "dumped.conf")
    with open(again, "w") as f:
        f.write(dump1)
    rc, out, err = run_credgate(cg.binary, ["-t", "-c", again])
    assert rc == 0, err
    rc, dump2, err = run_credgate(cg.binary, ["-T", "-c", again])
    assert rc == 0, err
    assert dump2 == dump1


def test_dump_redacts_the_header_template(cg):
    # A credential written straight into the template: -t warns, -T hides it.
    literal = "Basic " + CANARY
    route = base_route("legacy", free_port(), free_port(),
                       credential={"path": "legacy/app", "inject": "header",
                                   "header": "X-Api-Key", "template": literal})
    text = cg.config([route])
    cg.write_config(text)
    rc, out, err = check(cg)
    assert rc == 0, err
    at = line_no(text, "template = ")
    assert re.search(rf"^credgate\.conf:{at}: routes\.\[0\]\.credential\.template: warning: "
                     r"references no \$\{field\} of the secret: ", err, re.M), err
    assert "configuration OK" in err
    assert not find_leaks(err)
    rc, dump, err = run_credgate(cg.binary, ["-T", "-c", cg.conf_file])
    assert rc == 0, err
    assert re.search(r'^\t+template = "<redacted>";$', dump, re.M), dump
    assert not find_leaks(dump + err), "the dump shows the credential"

    # A template of references is redacted too, and draws no warning.
    route["credential"]["template"] = "Basic ${password}"
    cg.write_config(cg.config([route]))
    rc, out, err = check(cg)
    assert rc == 0 and "warning" not in err, err
    rc, dump, err = run_credgate(cg.binary, ["-T", "-c", cg.conf_file])
    assert rc == 0, err
    assert '"<redacted>"' in dump and "${password}" not in dump, dump


def test_version_and_help(credgate_bin, builddir):
    rc, out, err = run_credgate(credgate_bin, ["-V"])
    assert rc == 0
    version = None
    cfg_h = os.path.join(builddir, "config.h")
    if os.path.exists(cfg_h):
        m = re.search(r'#define PACKAGE_VERSION "([^"]+)"', read_text(cfg_h))
        version = m and m.group(1)
    assert version, "PACKAGE_VERSION not found in the build's config.h"
    assert version in out
    # The allocator line says jemalloc only when jemalloc serves malloc().
    jemalloc = "#define HAVE_JEMALLOC 1" in read_text(cfg_h)
    allocator = out.splitlines()[1]
    if jemalloc:
        assert re.fullmatch(r"allocator: jemalloc \d+\.\d+\.\d+\S*", allocator), out
    else:
        assert allocator == "allocator: C library malloc", out
    rc, out, err = run_credgate(credgate_bin, ["-h"])
    assert rc == 0 and "policy-test" in out + err


@pytest.mark.parametrize("args", [["-x"], [], ["-c"], ["-t"], ["policy-test", "-c", "a"],
                                  ["-c", "a", "extra"]])
def test_usage_errors_exit_2(credgate_bin, tmp_path, args):
    rc, out, err = run_credgate(credgate_bin, args, cwd=str(tmp_path))
    assert rc == 2, (args, err)


def test_missing_config_file_exits_1(credgate_bin, tmp_path):
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", "nope.conf"], cwd=str(tmp_path))
    assert rc == 1
    rc, out, err = run_credgate(credgate_bin, ["-c", "nope.conf"], cwd=str(tmp_path))
    assert rc == 1


def test_cannot_bind_exits_3(cg):
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cg.write_config(good_config(cg, busy.getsockname()[1]))
        p = subprocess.run([cg.binary, "-c", cg.conf_file], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
    finally:
        busy.close()
    err = p.stderr.decode()
    print(err)
    assert p.returncode == 3, err
    assert not sanitizer_lines(err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(cg, sig):
    port = free_port()
    cg.write_config(good_config(cg, port))
    cg.start(wait_ports=[port])
    rc, killed = cg.stop(sig)
    assert not killed, "credgate did not stop on the signal"
    assert rc == 0, f"exit status {rc}"
    assert not sanitizer_lines(cg.stderr())


# ----------------------------------------------------------------------
# policy-test
# ----------------------------------------------------------------------
def self_signed(folder, stem, cn="gw.example.com"):
    """A self-signed P-256 certificate and its key (stem.crt, stem.key)."""
    crt, pem = folder / f"{stem}.crt", folder / f"{stem}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(pem),
                    "-out", str(crt), "-days", "1", "-subj", f"/CN={cn}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=30)
    return crt, pem


def example(srcdir, name):
    path = os.path.join(srcdir, "examples", name)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        pytest.fail(f"examples/{name} is missing or empty")
    return path


def test_example_policy_cases_pass(credgate_bin, srcdir):
    conf = example(srcdir, "quickstart.conf")
    cases = example(srcdir, "policy-cases.json")
    ncases = len(json.load(open(cases))["cases"])
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, cases])
    assert rc == 0, out + err
    last = (out.strip().splitlines() or [""])[-1]
    assert last == f"{ncases} passed, 0 failed", last


def test_example_postgres_policy_cases_pass(credgate_bin, srcdir, tmp_path):
    """examples/postgres-cases.json passes against examples/postgres.conf,
    and covers what the example's rules decide: each rule, the allow and
    deny outcomes, both attributes of a PostgreSQL login."""
    conf = example(srcdir, "postgres.conf")
    cases = example(srcdir, "postgres-cases.json")
    doc = json.load(open(cases))
    ncases = len(doc["cases"])
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, cases])
    assert rc == 0, out + err
    last = (out.strip().splitlines() or [""])[-1]
    assert last == f"{ncases} passed, 0 failed", last
    assert {c["expect"] for c in doc["cases"]} == {"allow", "deny"}
    assert {c.get("rule") for c in doc["cases"]} == {
        "ci-migrations", "ci-reports", "no-admin-names", None}
    for c in doc["cases"]:
        assert c["route"] == "ledger" and "method" not in c and "path" not in c, c
        assert set(c["attributes"]) == {"database", "user"}, c
    # Without the example's database condition, a caller naming another
    # database would get in: the cases notice.
    text = open(conf).read()
    loose = text.replace('attributes = ( { attribute = "database"; value = "ledger"; } );', "")
    assert loose != text
    p = tmp_path / "loose.conf"
    p.write_text(loose)
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", str(p), cases])
    assert rc == 1, out + err
    assert "a caller naming another database is refused" in out + err


def test_example_postgres_checks_with_its_files(credgate_bin, srcdir, tmp_path):
    """credgate -t accepts examples/postgres.conf once the files it names
    exist: its JWKS, secrets file, TLS certificate, key and CA, and audit
    folder, here under tmp_path instead of /etc/credgate and
    /var/log/credgate."""
    text = open(example(srcdir, "postgres.conf")).read()
    etc, log = tmp_path / "etc", tmp_path / "log"
    (etc / "tls").mkdir(parents=True)
    log.mkdir()
    text = text.replace("/etc/credgate/", f"{etc}/").replace("/var/log/credgate/", f"{log}/")
    assert "/etc/" not in text.replace(str(etc), "") and "/var/" not in text, \
        "the example names a file outside /etc/credgate and /var/log/credgate"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (etc / "github-actions.jwks.json").write_text(
        json.dumps({"keys": [public_jwk(key, "gh-1")]}))
    secrets = etc / "secrets.json"
    secrets.write_text(json.dumps({"ledger/ci": {"username": "ci_ledger",
                                                 "password": CANARY, "version": "3"}}))
    secrets.chmod(0o600)
    tls = etc / "tls"
    self_signed(tls, "db-gw", "db-gw.example.com")
    (tls / "db-gw.key").chmod(0o600)
    shutil.copy(tls / "db-gw.crt", tls / "ledger-db-ca.pem")
    conf = tmp_path / "postgres.conf"
    conf.write_text(text)
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
    assert rc == 0, err
    assert err.strip().splitlines() == [f"{conf}: configuration OK"], err
    assert CANARY not in out + err
    # Without its secret, the route is refused: -t read the secrets file.
    secrets.write_text(json.dumps({"other/secret": {"username": "u", "password": "p"}}))
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
    assert rc == 1, err
    assert "ledger/ci" in err, err


def test_example_spiffe_checks_with_its_files(credgate_bin, srcdir, tmp_path):
    """examples/spiffe.conf, shipped with the others: credgate -t reports
    nothing but the files it names that are missing (its trust bundle
    among them), and accepts it, without a warning, once they exist under
    tmp_path instead of /etc/credgate and /var/log/credgate: the trust
    domain's JWT bundle (a JWKS), the secrets, the listeners' certificates
    and keys, and its X.509 bundle of CA certificates.  An X.509 bundle
    that holds a leaf is refused."""
    shipped = example(srcdir, "spiffe.conf")
    make = open(os.path.join(srcdir, "examples", "Makefile.inc")).read()
    shipped_files = re.search(r"dist_example_DATA =((?:.*\\\n)*.*)", make).group(1).split()
    assert "examples/spiffe.conf" in shipped_files, "spiffe.conf missing from dist_example_DATA"
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", shipped])
    lines = err.strip().splitlines()
    assert rc == 1 and lines[-1] == f"{shipped}: configuration has errors", err
    for line in lines[:-1]:
        assert "No such file or directory" in line, line
    assert any("trust_domains.[0].x509_bundle_file: " in line for line in lines), err

    text = open(shipped).read()
    etc, log = tmp_path / "etc", tmp_path / "log"
    for d in (etc / "tls", etc / "spiffe", log):
        d.mkdir(parents=True)
    text = text.replace("/etc/credgate/", f"{etc}/").replace("/var/log/credgate/", f"{log}/")
    assert "/etc/" not in text.replace(str(etc), "") and "/var/" not in text, \
        "the example names a file outside /etc/credgate and /var/log/credgate"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (etc / "spiffe" / "prod.jwt-bundle.json").write_text(
        json.dumps({"keys": [public_jwk(key, "prod-jwt-1")]}))
    secrets = etc / "secrets.json"
    secrets.write_text(json.dumps({
        "ledger/migrate": {"username": "ledger_owner", "password": CANARY, "version": "1"},
        "billing/api": {"username": "svc-billing", "password": CANARY, "version": "1"}}))
    secrets.chmod(0o600)
    pki = Pki(tmp_path / "pki", "prod-ca")
    for gw in ("db-gw", "billing-gw"):
        crt, pem, _ = pki.server(gw)
        shutil.copy(crt, etc / "tls" / f"{gw}.crt")
        shutil.copy(pem, etc / "tls" / f"{gw}.key")
        (etc / "tls" / f"{gw}.key").chmod(0o600)
    bundle = etc / "spiffe" / "prod.bundle.pem"
    shutil.copy(pki.ca_file, bundle)
    conf = tmp_path / "spiffe.conf"
    conf.write_text(text)
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
    assert rc == 0, err
    assert err.strip().splitlines() == [f"{conf}: configuration OK"], err
    assert CANARY not in out + err

    # A workload's certificate is no authority.
    crt, _, _ = pki.svid("leaf", "spiffe://prod.example.org/ns/ledger/sa/migrate")
    shutil.copy(crt, bundle)
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
    assert rc == 1, err
    assert re.search(r":\d+: trust_domains\.\[0\]\.x509_bundle_file: .*certificate 1 is not a "
                     r"CA certificate", err), err


# One example per Vault auth method, and the Vault paths they read.
VAULT_EXAMPLES = {
    "vault-token.conf": "token",
    "vault-approle.conf": "approle",
    "vault-kubernetes.conf": "kubernetes",
    "vault-jwt.conf": "jwt",
    "vault-cert.conf": "cert",
}


def example_settings(text):
    """(protocol, credential.path) of each route, the auth method and the
    backend of an example, read from its text."""
    method = re.findall(r'^\s*method = "([^"]+)";', text, re.M)
    backend = re.findall(r'^\s*backend = "([^"]+)";', text, re.M)
    protocols = re.findall(r'^\s*protocol = "([^"]+)";', text, re.M)
    paths = re.findall(r'^\s*path = "([^"]+)";', text, re.M)
    return backend, method, list(zip(protocols, paths))


def test_vault_examples_cover_each_auth_method(srcdir):
    """There is a Vault example for each auth method, shipped with the
    others, among them an HTTP route on KV version 2 and a PostgreSQL
    route on a database engine's static credentials."""
    routes = []
    for name, method in VAULT_EXAMPLES.items():
        backend, methods, rts = example_settings(open(example(srcdir, name)).read())
        assert backend == ["vault"] and methods == [method], (name, backend, methods)
        assert len(rts) == 1, (name, rts)
        routes += rts
    assert any(proto == "http" and path.startswith("secret/") for proto, path in routes), routes
    assert any(proto == "postgres" and "/static-creds/" in path for proto, path in routes), routes
    make = open(os.path.join(srcdir, "examples", "Makefile.inc")).read()
    shipped = re.search(r"dist_example_DATA =((?:.*\\\n)*.*)", make).group(1).split()
    for name in VAULT_EXAMPLES:
        assert "examples/" + name in shipped, f"{name} missing from dist_example_DATA"


@pytest.mark.parametrize("name", sorted(VAULT_EXAMPLES))
def test_example_vault_checks_with_its_files(credgate_bin, srcdir, tmp_path, name):
    """credgate -t reports nothing but missing files (JWKS, TLS files, the
    audit folder) for each Vault example as it is shipped, and accepts it,
    without a warning, once they exist under tmp_path instead of
    /etc/credgate and /var/log/credgate.  -t checks the Vault settings:
    what the auth method needs, and each credential.path under a mount."""
    shipped = example(srcdir, name)
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", shipped])
    lines = err.strip().splitlines()
    assert rc == 1 and lines[-1] == f"{shipped}: configuration has errors", err
    for line in lines[:-1]:
        assert "No such file or directory" in line, line

    text = open(shipped).read()
    etc, log = tmp_path / "etc", tmp_path / "log"
    (etc / "tls").mkdir(parents=True)
    (etc / "vault").mkdir()
    log.mkdir()
    text = text.replace("/etc/credgate/", f"{etc}/").replace("/var/log/credgate/", f"{log}/")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    crt, pem = self_signed(tmp_path, "gw")
    # Every file the example names under /etc/credgate, by its kind.
    for f in re.findall(r'"(' + re.escape(str(etc)) + r'/[^"]+)"', text):
        f = pathlib.Path(f)
        if f.name.endswith(".jwks.json"):
            f.write_text(json.dumps({"keys": [public_jwk(key, "k-1")]}))
        elif f.suffix in (".crt", ".pem"):
            shutil.copy(crt, f)
        elif f.suffix == ".key":
            shutil.copy(pem, f)
            f.chmod(0o600)
    conf = tmp_path / name
    conf.write_text(text)
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
    assert rc == 0, err
    assert err.strip().splitlines() == [f"{conf}: configuration OK"], err

    # -t reads each route's path as Vault would be asked for it: one under
    # no mount is refused, naming the route's setting.
    _, _, routes = example_settings(text)
    bad = text.replace(f'path = "{routes[0][1]}";', 'path = "nowhere/legacy/app";')
    assert bad != text
    conf.write_text(bad)
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
    assert rc == 1, err
    assert re.search(r"routes\.\[0\]\.credential\.path: nowhere/legacy/app: under none of "
                     r"the mounts", err), err


def test_policy_test_reports_a_mismatch(credgate_bin, srcdir, tmp_path):
    conf = example(srcdir, "quickstart.conf")
    doc = json.load(open(example(srcdir, "policy-cases.json")))
    cases = doc["cases"]
    flip = {"allow": "deny", "deny": "allow", "would_deny": "allow"}
    victim = cases[0]
    got = victim["expect"]
    victim["expect"] = flip[got]
    modified = tmp_path / "cases.json"
    modified.write_text(json.dumps(doc))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(modified)])
    assert rc == 1, out + err
    text = out + err
    assert victim["name"] in text
    assert "expected" in text and flip[got] in text and got in text
    last = out.strip().splitlines()[-1]
    assert last == f"{len(cases) - 1} passed, 1 failed", last


def test_policy_test_wrong_rule_is_a_mismatch(credgate_bin, srcdir, tmp_path):
    conf = example(srcdir, "quickstart.conf")
    doc = json.load(open(example(srcdir, "policy-cases.json")))
    with_rule = [c for c in doc["cases"] if c.get("rule")]
    assert with_rule, "the example cases should name the deciding rule"
    with_rule[0]["rule"] = "no-such-rule"
    p = tmp_path / "cases.json"
    p.write_text(json.dumps(doc))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(p)])
    assert rc == 1
    assert "no-such-rule" in out + err


def test_policy_test_bad_cases_file_exits_2(credgate_bin, srcdir, tmp_path):
    conf = example(srcdir, "quickstart.conf")
    p = tmp_path / "cases.json"
    p.write_text("{not json")
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(p)])
    assert rc == 2
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf,
                                               str(tmp_path / "missing.json")])
    assert rc == 2


def test_policy_test_attributes_by_name(credgate_bin, srcdir, tmp_path):
    """A case may give the request's attributes by name; the method and path
    members stand for the attributes of those names."""
    conf = example(srcdir, "quickstart.conf")
    doc = json.load(open(example(srcdir, "policy-cases.json")))
    p = tmp_path / "cases.json"
    by_name = []
    for c in doc["cases"]:
        c = dict(c)
        c["attributes"] = {"method": c.pop("method"), "path": c.pop("path")}
        by_name.append(c)
    mixed = dict(doc["cases"][0])
    mixed["attributes"] = {"path": mixed.pop("path")}
    p.write_text(json.dumps({"cases": by_name + [mixed]}))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(p)])
    assert rc == 0, out + err
    assert out.strip().splitlines()[-1] == f"{len(by_name) + 1} passed, 0 failed"

    # An attribute that the route's protocol does not have, one given twice,
    # one missing: the file is unusable.
    bad = dict(doc["cases"][0], attributes={"database": "prod"})
    p.write_text(json.dumps({"cases": [bad]}))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(p)])
    assert rc == 2, out + err
    assert 'attributes: protocol "http" has no attribute "database"' in err, err
    twice = dict(doc["cases"][0], attributes={"method": "GET"})
    p.write_text(json.dumps({"cases": [twice]}))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(p)])
    assert rc == 2, out + err
    assert 'attribute "method" is given twice' in err, err
    missing = dict(doc["cases"][0])
    del missing["path"]
    p.write_text(json.dumps({"cases": [missing]}))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(p)])
    assert rc == 2, out + err
    assert 'no attribute "path"' in err, err


def test_policy_test_expiry_with_now(credgate_bin, srcdir, tmp_path):
    """A case may pin "now": after the route's expires date it is denied."""
    conf = example(srcdir, "quickstart.conf")
    doc = json.load(open(example(srcdir, "policy-cases.json")))
    allowed = [c for c in doc["cases"] if c["expect"] == "allow"]
    assert allowed, "the example cases should include an allowed request"
    case = dict(allowed[0])
    case["name"] = "after the route expires"
    case["now"] = "2999-01-01T00:00:00Z"
    case["expect"] = "deny"
    case.pop("rule", None)
    p = tmp_path / "cases.json"
    p.write_text(json.dumps({"cases": [case]}))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, str(p)])
    assert rc == 0, out + err


# ----------------------------------------------------------------------
# The quick start, end to end with the built binary
# ----------------------------------------------------------------------
@pytest.fixture
def quickstart_tmp(tmp_path):
    """A TMPDIR for quickstart.sh.  As root the script runs PostgreSQL as
    nobody, who must pass through the folder (pytest's own are root's
    alone)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    d = tempfile.mkdtemp(prefix="credgate-qs-test.")
    os.chmod(d, 0o711)
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_quickstart(credgate_bin, srcdir, tmpdir, **env_extra):
    script = os.path.join(srcdir, "quickstart.sh")
    if not os.path.exists(script):
        pytest.fail("quickstart.sh is missing")
    for tool in ("curl", "openssl"):
        assert shutil.which(tool), f"{tool} is needed"
    env = dict(os.environ, CREDGATE=credgate_bin, TMPDIR=str(tmpdir), **env_extra)
    env.setdefault("NGINX", "/usr/sbin/nginx")
    p = subprocess.run(["sh", script, "--check"], cwd=str(tmpdir), env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    print(out)
    # The script cleans up after itself, whatever the outcome.
    assert not [n for n in os.listdir(tmpdir) if n.startswith("credgate-quickstart")]
    return p.returncode, out


def after(out, heading):
    """The text the script printed under "==> heading", up to the next."""
    m = re.search(r"^==> " + re.escape(heading) + r"\n(.*?)(?=^==> |\Z)", out, re.M | re.S)
    assert m, f"no section {heading!r} in the output"
    return m.group(1)


def login_event(out):
    """The audit event printed for the psql login (the JSON object that
    opens its section)."""
    text = after(out, "the audit event of that login:").lstrip()
    return json.JSONDecoder().raw_decode(text)[0]


def test_quickstart_check(credgate_bin, srcdir, quickstart_tmp):
    rc, out = run_quickstart(credgate_bin, srcdir, quickstart_tmp)
    assert rc == 0, out
    assert not sanitizer_lines(out)
    assert "Hello from the legacy service" in after(out, "the legacy service answered:")
    # psql through credgate's PostgreSQL route: the session is the
    # service account's, on the database the caller named.
    answer = after(out, "the database answered, as the service account:")
    assert re.search(r"^ *svc_inventory +\| +inventory +\| +3 *$", answer, re.M), answer
    event = login_event(out)
    assert event["event"] == "decision" and event["route"] == "inventory", event
    assert event["decision"]["result"] == "allow", event
    assert event["decision"]["rule"] == "demo-inventory", event
    assert event["request"] == {"database": "inventory", "user": "demo"}, event
    assert event["credential"]["path"] == "demo/inventory", event
    assert event["credential"]["inject"] == "postgres_login", event


def newest_pg_bindir():
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    assert dirs, "PostgreSQL is needed (Debian package postgresql)"
    return max(dirs, key=lambda d: int(d.split("/")[-2]))


def test_quickstart_check_fails_without_the_database_answer(credgate_bin, srcdir,
                                                            quickstart_tmp):
    """--check fails when psql does not get the service account's answer:
    here psql asks for another database, which the route's rule refuses."""
    real = newest_pg_bindir()
    bindir = quickstart_tmp / "pgbin"
    bindir.mkdir(mode=0o755)
    for name in ("initdb", "postgres"):
        os.symlink(os.path.join(real, name), bindir / name)
    (bindir / "psql").write_text(f"""#!/bin/sh
for a; do
	shift
	case $a in host=127.0.0.1\\ *) a=$(printf '%s' "$a" | sed 's/dbname=inventory/dbname=postgres/') ;; esac
	set -- "$@" "$a"
done
exec {real}/psql "$@"
""")
    (bindir / "psql").chmod(0o755)
    rc, out = run_quickstart(credgate_bin, srcdir, quickstart_tmp, PG_BINDIR=str(bindir))
    assert rc == 1, out
    assert "Hello from the legacy service" in after(out, "the legacy service answered:")
    assert "FATAL" in after(out, "the database answered, as the service account:"), out
    event = login_event(out)
    assert event["decision"]["result"] == "deny", event
    assert event["decision"]["code"] == "28000", event
    assert event["request"] == {"database": "postgres", "user": "demo"}, event
    assert "psql through credgate did not get the service account's answer" in out, out
    assert "check passed" not in out


def test_quickstart_names_the_missing_postgresql_package(credgate_bin, srcdir, quickstart_tmp):
    empty = quickstart_tmp / "nothing"
    empty.mkdir()
    rc, out = run_quickstart(credgate_bin, srcdir, quickstart_tmp, PG_BINDIR=str(empty))
    assert rc == 1, out
    assert "install the Debian package postgresql" in out, out


# ----------------------------------------------------------------------
# Examples of issuers whose keys are fetched, with the claims they send
# ----------------------------------------------------------------------
FEDERATION_EXAMPLES = ["github-actions", "gitlab-ci", "kubernetes"]
K8S_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount/"


def example_with_files(srcdir, tmp_path, name):
    """The example's text with its files (secrets, TLS, service account
    token and CA, audit folder) made under tmp_path; its path."""
    text = open(example(srcdir, name + ".conf")).read()
    etc, log, sa = tmp_path / "etc", tmp_path / "log", tmp_path / "sa"
    for d in (etc / "tls", log, sa):
        d.mkdir(parents=True, exist_ok=True)
    text = (text.replace("/etc/credgate/", f"{etc}/").replace("/var/log/credgate/", f"{log}/")
            .replace(K8S_SA_DIR, f"{sa}/"))
    settings = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    assert "/etc/" not in settings.replace(str(etc), "") and "/var/" not in settings, \
        "the example names a file outside the folders it is expected to use"
    crt, pem = self_signed(tmp_path, "gw")
    paths = re.findall(r'path = "([^"]+)";', text)
    secrets = {p: {"username": "u", "password": CANARY, "key": CANARY} for p in paths}
    for f in re.findall(r'"(' + re.escape(str(tmp_path)) + r'/[^"]+)"', text):
        f = pathlib.Path(f)
        if f.name == "secrets.json":
            f.write_text(json.dumps(secrets))
            f.chmod(0o600)
        elif f.name == "token":
            f.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n")
            f.chmod(0o600)
        elif f.suffix in (".crt", ".pem"):
            shutil.copy(crt, f)
        elif f.suffix == ".key":
            shutil.copy(pem, f)
            f.chmod(0o600)
    conf = tmp_path / (name + ".conf")
    conf.write_text(text)
    return conf


@pytest.mark.parametrize("name", FEDERATION_EXAMPLES)
def test_federation_examples_check_and_their_cases_pass(credgate_bin, srcdir, tmp_path,
                                                        name):
    """Each example of a fetched issuer (no jwks_file: discovery or the
    Kubernetes API server) passes -t without a warning once its files
    exist, is shipped, and its cases, made of the claims that issuer
    really sends, pass: allows and denials, every allow rule at least
    once."""
    shipped = example(srcdir, name + ".conf")
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", shipped])
    lines = err.strip().splitlines()
    assert rc == 1 and lines[-1] == f"{shipped}: configuration has errors", err
    for line in lines[:-1]:
        assert "No such file or directory" in line, line
    assert "jwks_file" not in open(shipped).read().split("issuers = (")[1].split("secrets")[0]

    conf = example_with_files(srcdir, tmp_path, name)
    rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
    assert rc == 0, err
    assert err.strip().splitlines() == [f"{conf}: configuration OK"], err

    cases = example(srcdir, name + "-cases.json")
    doc = json.load(open(cases))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", shipped, cases])
    assert rc == 0, out + err
    assert (out.strip().splitlines() or [""])[-1] == f"{len(doc['cases'])} passed, 0 failed"
    assert {c["expect"] for c in doc["cases"]} == {"allow", "deny"}
    rules = set(re.findall(r'^\t\t\t\tname = "([^"]+)";', open(shipped).read(), re.M))
    allowed = {c["rule"] for c in doc["cases"] if c["expect"] == "allow"}
    assert allowed and allowed <= rules, (allowed, rules)

    make = open(os.path.join(srcdir, "examples", "Makefile.inc")).read()
    shipped_list = re.search(r"dist_example_DATA =((?:.*\\\n)*.*)", make).group(1).split()
    for f in (name + ".conf", name + "-cases.json"):
        assert "examples/" + f in shipped_list, f


def test_check_warns_about_rules_that_trust_too_much(credgate_bin, srcdir, tmp_path):
    """-t names an allow rule that trusts every token of its issuer, and one
    that trusts a CI job by its repository alone; pinning a branch through
    sub, or a workflow, silences it."""
    conf = example_with_files(srcdir, tmp_path, "github-actions")
    text = conf.read_text()
    pins = ('\t\t\t\t\t{ claim = "ref"; value = "refs/heads/main"; },\n'
            '\t\t\t\t\t{ claim = "environment"; value = "production"; },\n')
    assert pins in text

    def check(new):
        conf.write_text(new)
        rc, out, err = run_credgate(credgate_bin, ["-t", "-c", str(conf)])
        assert rc == 0, err
        return [l for l in err.splitlines() if ": warning: " in l]

    # The repository alone: any branch, a pull request's included.
    warns = check(text.replace(pins, ""))
    assert len(warns) == 1, warns
    assert "routes.[0].allow.[0]: warning: allow rule \"deploy-production\" trusts a CI " \
           "job by its repository or owner alone" in warns[0], warns
    assert re.search(r"github-actions\.conf:\d+: ", warns[0]), warns
    # A sub that names the environment pins it again; one that ends in a
    # wildcard does not.
    sub = '\t\t\t\t\t{ claim = "sub"; value = "repo:acme/shop:environment:production"; },\n'
    assert check(text.replace(pins, sub)) == []
    wild = sub.replace("environment:production", "*")
    assert len(check(text.replace(pins, wild))) == 1
    # Nothing narrower than the issuer: every GitHub repository.
    start = text.index("\t\t\t\tclaims = (", text.index('name = "deploy-production"'))
    end = text.index(");\n", start) + 3
    warns = check(text[:start] + text[end:])
    assert len(warns) == 1 and "accepts every caller with a valid token" in warns[0], warns
    # A claim condition of "*" narrows nothing.
    warns = check(text[:start] + '\t\t\t\tclaims = ( { claim = "repository"; value = "*"; } );\n'
                  + text[end:])
    assert len(warns) == 1 and "accepts every caller" in warns[0], warns


def test_spiffe_cases_decide_on_the_jwt_svid(credgate_bin, srcdir, tmp_path):
    """examples/spiffe-cases.json: JWT-SVIDs of the example's trust domain
    (no iss; sub a SPIFFE ID), whose ID the spiffe_id conditions match in
    policy-test as in the proxy; a sub of another trust domain is no
    SPIFFE ID of this one."""
    conf = example(srcdir, "spiffe.conf")
    cases = example(srcdir, "spiffe-cases.json")
    doc = json.load(open(cases))
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", conf, cases])
    assert rc == 0, out + err
    assert (out.strip().splitlines() or [""])[-1] == f"{len(doc['cases'])} passed, 0 failed"
    assert {c["rule"] for c in doc["cases"]} == {"billing-workloads", "no-sandbox", None}
    assert all("iss" not in c["claims"] for c in doc["cases"])
    # Without the trust domain, the same claims are an ordinary token's:
    # no SPIFFE ID, and the spiffe_id rule lets nobody in.
    text = open(conf).read()
    p = tmp_path / "no-td.conf"
    p.write_text(text.replace('trust_domain = "prod.example.org";\n\t\taudiences',
                              'issuer = "https://spire.example.org";\n\t\taudiences', 1))
    assert p.read_text() != text
    rc, out, err = run_credgate(credgate_bin, ["policy-test", "-c", str(p), cases])
    assert rc == 1 and "a billing workload posts an invoice" in out + err, out + err
