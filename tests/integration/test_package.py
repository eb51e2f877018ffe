"""The Debian package.

packaging/build-deb builds the .deb from a copy of the source tree (without
version control or build products, as from a release tarball), and these
tests check what it holds with dpkg -c, dpkg -I and the extracted files:
the daemon, both manual pages, the systemd unit, the configuration as a
conffile, the examples, and maintainer scripts that create the credgate
system user once and keep it on purge.  lintian's errors and warnings must
each be explained in packaging/debian/README.lintian.

The package is built once per pytest run (a minute or two).  Without
dpkg-buildpackage (Debian package dpkg-dev) the tests are skipped; the other
build tools missing (debhelper, the Build-Depends) is a failure.

packaging/dev-packages lists every Debian package the build and these tests
need; the tests at the end check that it covers every tool the test suite
runs and every Build-Depends, and that quickstart.sh and .ci/run install it.
"""

import glob
import os
import re
import shutil
import stat
import subprocess

import pytest

SRCDIR = os.environ.get("CG_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_TIMEOUT = 1800
# Left out of the copy: version control, build folders and build products
# (build-deb leaves out the rest itself).  make check runs other tests while
# this one copies, so files may come and go under the copy.
TOP_IGNORE = {".git", "debian", "_build", "build", "autom4te.cache"}
ANY_IGNORE = {"__pycache__", ".pytest_cache", ".deps", ".dirstamp"}
SUFFIX_IGNORE = (".o", ".a", ".log", ".trs", ".log-t", ".trs-t", ".deb", ".tar.gz")
MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def run(args, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(args, check=False, **kw)


def _skip(folder, name, top):
    if name in ANY_IGNORE or name.endswith(SUFFIX_IGNORE):
        return True
    if folder == top:
        return (name in TOP_IGNORE
                or (name.startswith("build-") and name != "build-aux")
                or (name.startswith("credgate-") and os.path.isdir(os.path.join(folder, name))))
    return False


def copy_tree(top, dest):
    """Copies the source tree top to dest, writable, skipping build products
    and files that vanish while it copies."""
    top = os.path.abspath(top)
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not _skip(folder, d, top)]
        target = os.path.join(dest, os.path.relpath(folder, top))
        os.makedirs(target, exist_ok=True)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            if _skip(folder, name, top):
                continue
            src = os.path.join(folder, name)
            try:
                if os.path.islink(src):
                    os.symlink(os.readlink(src), os.path.join(target, name))
                else:
                    shutil.copy2(src, os.path.join(target, name))
                    os.chmod(os.path.join(target, name), os.stat(src).st_mode | stat.S_IWUSR)
            except FileNotFoundError:
                pass


class Package:
    def __init__(self, path, root, control):
        self.path = path
        self.root = root            # the extracted file system tree
        self.control = control      # the extracted control area (DEBIAN)
        proc = run(["dpkg", "-c", path])
        assert proc.returncode == 0, proc.stdout
        self.listing = proc.stdout
        # dpkg -c: "mode owner/group size date time ./path[ -> target]"
        self.entries = {}
        for line in self.listing.splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6:
                name = fields[5].split(" -> ")[0]
                self.entries["/" + name.lstrip("./").rstrip("/")] = (fields[0], fields[1])
        proc = run(["dpkg", "-I", path])
        assert proc.returncode == 0, proc.stdout
        self.info = proc.stdout

    def field(self, name):
        m = re.search(r"^ %s: (.*)$" % re.escape(name), self.info, re.M)
        return m.group(1) if m else None

    def script(self, name):
        with open(os.path.join(self.control, name)) as f:
            return f.read()


@pytest.fixture(scope="session")
def package(tmp_path_factory):
    if shutil.which("dpkg-buildpackage") is None:
        pytest.skip("dpkg-buildpackage not found: install the Debian packages of "
                    "packaging/dev-packages to build and check the credgate package")
    work = tmp_path_factory.mktemp("deb")
    src = work / "credgate-src"
    copy_tree(SRCDIR, str(src))
    out = work / "out"
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    # make check has run the unit tests on this tree already: the package
    # build skips them (and the debug symbols package) unless told otherwise.
    env.setdefault("DEB_BUILD_OPTIONS", "nocheck noautodbgsym")
    proc = run(["sh", str(src / "packaging" / "build-deb"), "-o", str(out), str(src)],
               env=env, cwd=str(work), timeout=BUILD_TIMEOUT)
    with open(work / "build-deb.log", "w") as f:
        f.write(proc.stdout)
    shutil.rmtree(src, ignore_errors=True)
    if proc.returncode != 0:
        pytest.fail("packaging/build-deb failed (exit %d); the end of its output (all of it "
                    "in %s):\n%s" % (proc.returncode, work / "build-deb.log",
                                     "\n".join(proc.stdout.splitlines()[-60:])),
                    pytrace=False)
    debs = sorted(out.glob("credgate_*.deb"))
    assert len(debs) == 1, "expected one credgate_*.deb in %s" % sorted(os.listdir(out))
    root = work / "root"
    control = work / "control"
    for args in (["dpkg-deb", "-x", str(debs[0]), str(root)],
                 ["dpkg-deb", "-e", str(debs[0]), str(control)]):
        proc = run(args)
        assert proc.returncode == 0, proc.stdout
    return Package(str(debs[0]), str(root), str(control))


# ----------------------------------------------------------------------
# dpkg -c
# ----------------------------------------------------------------------
def test_files(package):
    want = {
        "/usr/bin/credgate": "-rwxr-xr-x",
        "/usr/share/man/man8/credgate.8.gz": "-rw-r--r--",
        "/usr/share/man/man5/credgate.conf.5.gz": "-rw-r--r--",
        "/lib/systemd/system/credgate.service": "-rw-r--r--",
        "/etc/credgate/credgate.conf": "-rw-r--r--",
        "/etc/logrotate.d/credgate": "-rw-r--r--",
        "/usr/share/doc/credgate/copyright": "-rw-r--r--",
        "/usr/share/doc/credgate/README.Debian": None,
        "/usr/share/doc/credgate/changelog.Debian.gz": "-rw-r--r--",
    }
    for path, mode in want.items():
        if mode is None:
            assert path in package.entries or path + ".gz" in package.entries, \
                "%s missing from the package:\n%s" % (path, package.listing)
            continue
        assert path in package.entries, "%s missing from the package:\n%s" % (path, package.listing)
        assert package.entries[path][0] == mode, "%s has mode %s" % (path, package.entries[path][0])
    for name in ("quickstart.conf", "policy-cases.json", "postgres.conf", "postgres-cases.json",
                 "vault-token.conf", "vault-approle.conf", "vault-kubernetes.conf",
                 "vault-jwt.conf", "vault-cert.conf", "spiffe.conf", "spiffe-cases.json",
                 "github-actions.conf", "github-actions-cases.json", "gitlab-ci.conf",
                 "gitlab-ci-cases.json", "kubernetes.conf", "kubernetes-cases.json"):
        path = "/usr/share/doc/credgate/examples/" + name
        assert path in package.entries or path + ".gz" in package.entries, \
            "example %s missing from the package:\n%s" % (name, package.listing)
    for path, (mode, owner) in package.entries.items():
        assert owner == "root/root", "%s is owned by %s" % (path, owner)
        assert not path.startswith(("/usr/local", "/var/log", "/tmp", "/home")), path


def test_contents_match_source(package):
    with open(os.path.join(SRCDIR, "examples", "quickstart.conf"), "rb") as f:
        example = f.read()
    with open(os.path.join(package.root, "etc", "credgate", "credgate.conf"), "rb") as f:
        assert f.read() == example, "/etc/credgate/credgate.conf is not examples/quickstart.conf"
    with open(os.path.join(SRCDIR, "packaging", "systemd", "credgate.service"), "rb") as f:
        unit = f.read()
    with open(os.path.join(package.root, "lib", "systemd", "system", "credgate.service"), "rb") as f:
        assert f.read() == unit, "the packaged unit is not packaging/systemd/credgate.service"


def test_unit_verifies(package, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found: the unit file is not verified")
    with open(os.path.join(package.root, "lib", "systemd", "system", "credgate.service")) as f:
        unit = f.read()
    for key in ("Type=notify", "User=credgate", "ExecStartPre=/usr/bin/credgate -t -c ",
                "ExecReload=/bin/kill -HUP $MAINPID", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
                "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                "LimitMEMLOCK=", "LogsDirectory=credgate"):
        assert key in unit, "credgate.service lacks %s" % key
    # The binary is not installed here: point the unit at the extracted one.
    copy = tmp_path / "credgate.service"
    copy.write_text(unit.replace("/usr/bin/credgate",
                                 os.path.join(package.root, "usr", "bin", "credgate")))
    proc = run([analyze, "verify", "--man=no", str(copy)], cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 0 and "credgate.service" not in proc.stdout, proc.stdout


def test_binary_runs(package):
    proc = run([os.path.join(package.root, "usr", "bin", "credgate"), "-V"], timeout=30)
    assert proc.returncode == 0, proc.stdout
    assert "0.1.0" in proc.stdout, proc.stdout
    # libjemalloc-dev is a Build-Depends: the package always allocates with it.
    assert "\nallocator: jemalloc " in proc.stdout, proc.stdout


# ----------------------------------------------------------------------
# dpkg -I
# ----------------------------------------------------------------------
def test_control(package):
    assert package.field("Package") == "credgate"
    assert package.field("Version") == "0.1.0-1"
    assert package.field("Maintainer") == "credgate developers <credgate@example.org>"
    depends = [d.strip() for d in package.field("Depends").split(",")]
    assert "adduser" in depends, depends
    assert any(d.startswith("libc6") for d in depends), "no shared library dependencies: %s" % depends
    assert any(d.startswith(("libssl", "libevent")) for d in depends), depends
    assert any(d.startswith("libjemalloc2") for d in depends), depends
    # llhttp is compiled in from node-llhttp (whose source package is node-undici).
    assert re.match(r"^\S+ \(= \S+\)$", package.field("Static-Built-Using") or ""), package.info
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert re.search(r"^\s+\d+ bytes,\s+\d+ lines\s+\*?\s*%s\b" % script, package.info, re.M), \
            "no %s in the control area:\n%s" % (script, package.info)


def test_conffiles(package):
    conffiles = package.script("conffiles").split()
    assert "/etc/credgate/credgate.conf" in conffiles, conffiles
    assert "/etc/logrotate.d/credgate" in conffiles, conffiles


# ----------------------------------------------------------------------
# Maintainer scripts, run with every command they call replaced by a stub
# that records its arguments: nothing on this machine changes.
# ----------------------------------------------------------------------
STUBS = ("adduser", "addgroup", "install", "chown", "chmod", "rm", "systemctl",
         "deb-systemd-helper", "deb-systemd-invoke", "dpkg-maintscript-helper", "dpkg")


def run_script(package, tmp_path, script, args, users=(), groups=(), statoverride=False):
    stubs = tmp_path / "stubs"
    state = tmp_path / "state"
    if not stubs.exists():
        stubs.mkdir()
        state.mkdir()
        for name in STUBS:
            (stubs / name).write_text(
                '#!/bin/sh\necho "${0##*/} $*" >> "$STUB_LOG"\n'
                # adduser --system ... NAME: the user (and with --group its group) now exist.
                'if [ "${0##*/}" = adduser ]; then\n'
                '  for a; do last=$a; done\n'
                '  : > "$STUB_STATE/passwd.$last"\n'
                '  case " $* " in *" --group "*) : > "$STUB_STATE/group.$last";; esac\n'
                'fi\n'
                # deb-systemd-helper was-enabled: the admin never enabled credgate.
                'case "${0##*/} $*" in "deb-systemd-helper "*was-enabled*) exit 1;; esac\n'
                'exit 0\n')
        (stubs / "getent").write_text(
            '#!/bin/sh\necho "getent $*" >> "$STUB_LOG"\n'
            '[ -e "$STUB_STATE/$1.$2" ] || exit 2\necho "$2:x:999:999::/nonexistent:/usr/sbin/nologin"\n')
        (stubs / "dpkg-statoverride").write_text(
            '#!/bin/sh\necho "dpkg-statoverride $*" >> "$STUB_LOG"\n'
            '[ -e "$STUB_STATE/statoverride" ] || exit 1\necho "credgate credgate 0700 /var/log/credgate"\n')
        for p in stubs.iterdir():
            p.chmod(0o755)
    for u in users:
        (state / ("passwd." + u)).touch()
    for g in groups:
        (state / ("group." + g)).touch()
    if statoverride:
        (state / "statoverride").touch()
    log = tmp_path / "calls.log"
    log.write_text("")
    # PATH holds the stubs only: a command the script calls without a stub
    # fails, and with `set -e` so does the script.
    env = {"PATH": str(stubs), "STUB_LOG": str(log), "STUB_STATE": str(state),
           "DPKG_MAINTSCRIPT_PACKAGE": "credgate", "DPKG_MAINTSCRIPT_NAME": script,
           "DPKG_ROOT": ""}
    proc = run(["/bin/sh", "-e", os.path.join(package.control, script)] + list(args),
               env=env, cwd=str(tmp_path), timeout=30)
    assert proc.returncode == 0, "%s %s failed:\n%s\ncalls:\n%s" % (
        script, " ".join(args), proc.stdout, log.read_text())
    return log.read_text().splitlines()


def adduser_calls(calls):
    return [c for c in calls if c.startswith(("adduser ", "addgroup ", "useradd ", "groupadd "))]


def test_postinst_creates_system_user_once(package, tmp_path):
    first = run_script(package, tmp_path, "postinst", ["configure", ""])
    created = adduser_calls(first)
    assert len(created) == 1, first
    words = created[0].split()
    assert words[-1] == "credgate", created
    for opt in ("--system", "--group", "--no-create-home"):
        assert opt in words, created
    assert "install -d -o credgate -g credgate -m 0750 /var/log/credgate" in first, first

    # Configured again (a reinstall or an upgrade): the user exists, no new one.
    again = run_script(package, tmp_path, "postinst", ["configure", "0.1.0-1"])
    assert adduser_calls(again) == [], again


def test_postinst_reuses_existing_group(package, tmp_path):
    calls = run_script(package, tmp_path, "postinst", ["configure", ""], groups=["credgate"])
    created = adduser_calls(calls)
    assert len(created) == 1, calls
    assert "--ingroup credgate" in created[0] and "--group" not in created[0].split(), created


def test_postinst_respects_statoverride(package, tmp_path):
    calls = run_script(package, tmp_path, "postinst", ["configure", ""], users=["credgate"],
                       groups=["credgate"], statoverride=True)
    assert not [c for c in calls if "/var/log/credgate" in c and not c.startswith("dpkg-statoverride")], calls


def test_service_not_started_on_install(package, tmp_path):
    calls = run_script(package, tmp_path, "postinst", ["configure", ""])
    assert not [c for c in calls if re.match(r"(deb-systemd-invoke|systemctl) .*\b(start|restart)\b", c)
                and "try-restart" not in c], calls
    assert not [c for c in calls if c.startswith("deb-systemd-helper enable")], calls


def test_postrm_purge_keeps_user_removes_logs(package, tmp_path):
    text = package.script("postrm")
    for cmd in ("deluser", "delgroup", "userdel", "groupdel"):
        assert cmd not in text, "postrm must not remove the credgate user (Debian policy 9.2.1)"
    calls = run_script(package, tmp_path, "postrm", ["purge"])
    assert "rm -rf /var/log/credgate" in calls, calls
    calls = run_script(package, tmp_path, "postrm", ["remove"])
    assert not [c for c in calls if "/var/log/credgate" in c], calls


def test_prerm_stops_service_on_remove(package, tmp_path):
    text = package.script("prerm")
    assert "deb-systemd-invoke stop credgate.service" in text, text


# ----------------------------------------------------------------------
# lintian: every error and warning is explained
# ----------------------------------------------------------------------
def test_lintian_warnings_explained(package):
    if shutil.which("lintian") is None:
        pytest.skip("lintian not found: install the Debian package lintian to check the .deb")
    proc = run(["lintian", "--tag-display-limit", "0", package.path], timeout=600)
    tags = set(re.findall(r"^[EW]: credgate[^:]*: (\S+)", proc.stdout, re.M))
    with open(os.path.join(SRCDIR, "packaging", "debian", "README.lintian")) as f:
        explained = set(re.findall(r"^- ([a-z0-9][a-z0-9.+-]*):", f.read(), re.M))
    unexplained = sorted(tags - explained)
    assert not unexplained, ("lintian tags not explained in packaging/debian/README.lintian: %s\n%s"
                             % (", ".join(unexplained), proc.stdout))
    assert proc.returncode in (0, 1, 2), proc.stdout


# ----------------------------------------------------------------------
# packaging/dev-packages: the one list of Debian packages the build and
# make check need.  quickstart.sh installs it, so that the README's
# `./quickstart.sh` then `make check` pass on a machine that had nothing;
# .ci/run installs it too, so that CI has nothing a newcomer lacks.
# ----------------------------------------------------------------------
DEV_PACKAGES = os.path.join(SRCDIR, "packaging", "dev-packages")
CI_PACKAGES = os.path.join(SRCDIR, "packaging", "ci-packages")

# Every program the test suite runs (conftest.py, run-pytest, this file,
# packaging/build-deb and the package build it starts), and the Python
# modules it imports.
TEST_TOOLS = (
    os.environ.get("NGINX") or "/usr/sbin/nginx",   # the legacy service
    "curl", "openssl",                              # requests, htpasswd, keys
    os.environ.get("PYTHON3") or "/usr/bin/python3",
    "dpkg-buildpackage", "dpkg-parsechangelog", "dpkg-checkbuilddeps",
    "dpkg-deb", "dpkg", "dh", "fakeroot", "lintian", "systemd-analyze",
    "make", "cc", "autoreconf", "automake", "pkg-config",
    "psql", "pgbench",                              # PostgreSQL routes' callers
) + tuple(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1:]) \
  + tuple(sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))[-1:])
TEST_MODULES = ("pytest", "jwt", "cryptography", "psycopg2", "asyncpg")


def read_packages(path):
    """The package names of a list: one a line, "#" starts a comment."""
    names = []
    with open(path) as f:
        for line in f:
            names += line.split("#", 1)[0].split()
    return names


def _dep_names(field):
    """Each group of alternatives of a Depends-style field, as a list of
    package names without versions or architecture qualifiers."""
    groups = []
    for group in field.split(","):
        alts = [re.split(r"[\s(:\[<]", a.strip(), 1)[0] for a in group.split("|")]
        alts = [a for a in alts if a]
        if alts:
            groups.append(alts)
    return groups


def installed_closure(names):
    """The installed packages that installing names brings (each with its
    Depends and Pre-Depends, through virtual packages too), and the
    Essential ones, which every Debian system has."""
    proc = run(["dpkg-query", "-W", "-f",
                "${db:Status-Abbrev}\t${Package}\t${Essential}\t${Provides}\t"
                "${Pre-Depends}, ${Depends}\n"])
    assert proc.returncode == 0, proc.stdout
    deps, providers, essential = {}, {}, set()
    for line in proc.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 5 or not fields[0].startswith("ii"):
            continue
        name = fields[1]
        deps.setdefault(name, []).extend(_dep_names(fields[4]))
        providers.setdefault(name, set()).add(name)
        for group in _dep_names(fields[3]):
            providers.setdefault(group[0], set()).add(name)
        if fields[2] == "yes":
            essential.add(name)
    reach = set()
    todo = [n for n in names if n in deps]
    while todo:
        name = todo.pop()
        if name in reach:
            continue
        reach.add(name)
        for group in deps[name]:
            for alt in group:
                todo.extend(providers.get(alt, ()))
    return reach | essential, providers


def package_of(path):
    """The installed package that ships path, following its symlinks (an
    alternative such as /usr/bin/fakeroot) until dpkg knows one, or None."""
    seen = set()
    while path not in seen:
        seen.add(path)
        # Merged /usr: dpkg may know /bin/x as such.
        for p in (path, re.sub(r"^/usr/(bin|sbin|lib)/", r"/\1/", path)):
            proc = run(["dpkg-query", "-S", p])
            for line in proc.stdout.splitlines() if proc.returncode == 0 else ():
                pkgs, _, found = line.rpartition(": ")
                if found == p and not line.startswith("diversion "):
                    return pkgs.split(",")[0].strip().split(":")[0]
        if not os.path.islink(path):
            return None
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return None


def test_dev_packages_provide_test_tools():
    listed = read_packages(DEV_PACKAGES)
    assert len(listed) == len(set(listed)), "packaging/dev-packages names a package twice"
    reach, _ = installed_closure(listed)
    missing, foreign = [], []
    paths = [(tool, shutil.which(tool)) for tool in TEST_TOOLS]
    for name in TEST_MODULES:
        module = __import__(name)
        paths.append(("python module " + name, module.__file__))
    for tool, path in paths:
        if path is None:
            missing.append(tool)
            continue
        pkg = package_of(path)
        if pkg is None or pkg not in reach:
            foreign.append("%s (%s, from %s)" % (tool, path, pkg or "no Debian package"))
    assert not missing and not foreign, (
        "the test suite needs what packaging/dev-packages does not install (add the "
        "package to the list: quickstart.sh and .ci/run install it from there)\n"
        "not found: %s\nnot from a listed package: %s"
        % (", ".join(missing) or "-", ", ".join(foreign) or "-"))


def test_dev_packages_satisfy_build_depends():
    """packaging/build-deb refuses to build without the Build-Depends of
    packaging/debian/control: each must come with the list."""
    reach, providers = installed_closure(read_packages(DEV_PACKAGES))
    with open(os.path.join(SRCDIR, "packaging", "debian", "control")) as f:
        m = re.search(r"^Build-Depends:(.*(?:\n[ \t].*)*)", f.read(), re.M)
    assert m, "no Build-Depends in packaging/debian/control"
    unmet = [" | ".join(group) for group in _dep_names(m.group(1))
             if not any(providers.get(alt, set()) & reach for alt in group)]
    assert not unmet, ("Build-Depends not installed by packaging/dev-packages: %s"
                       % ", ".join(unmet))


def test_quickstart_installs_dev_packages(tmp_path):
    """quickstart.sh, on a machine that has none of the packages, asks apt
    for exactly the list (dpkg-query and apt-get are stubs here)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    log = tmp_path / "apt.log"
    (stubs / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (stubs / "apt-get").write_text(
        '#!/bin/sh\necho "$*" >> "%s"\n[ "$1" = update ] && exit 0\nexit 42\n' % log)
    (stubs / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    # Past the install the script would build: it must stop before.
    for name in ("autoreconf", "make"):
        (stubs / name).write_text("#!/bin/sh\nexit 97\n")
    for p in stubs.iterdir():
        p.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CREDGATE"}
    env["PATH"] = "%s:%s" % (stubs, os.environ.get("PATH", "/usr/bin:/bin"))
    proc = run(["sh", os.path.join(SRCDIR, "quickstart.sh"), "--check"], env=env,
               cwd=str(tmp_path), stdin=subprocess.DEVNULL, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    assert proc.returncode != 0 and len(calls) == 2, (proc.stdout, calls)
    assert calls[0].split()[0] == "update", calls
    words = calls[1].split()
    assert words[0] == "install", calls
    asked = [w for w in words[1:] if not w.startswith("-")]
    assert sorted(asked) == sorted(read_packages(DEV_PACKAGES)), calls


def test_ci_installs_dev_packages(tmp_path):
    # Should .ci/run ever miss --packages, it would start the whole CI run:
    # the programs of its steps are stubs that fail at once.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("apt-get", "sudo", "autoreconf", "make", "clang"):
        (stubs / name).write_text("#!/bin/sh\nexit 97\n")
        (stubs / name).chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (stubs, os.environ.get("PATH", "/usr/bin:/bin")))
    proc = run(["bash", os.path.join(SRCDIR, ".ci", "run"), "--packages"],
               cwd=SRCDIR, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stdout
    want = read_packages(DEV_PACKAGES) + read_packages(CI_PACKAGES)
    assert proc.stdout.split() == want, proc.stdout
    assert not set(read_packages(DEV_PACKAGES)) & set(read_packages(CI_PACKAGES)), \
        "a package is in both packaging/dev-packages and packaging/ci-packages"
