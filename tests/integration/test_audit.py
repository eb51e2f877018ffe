"""Audit events as a reader of the audit file sees them.

A write that fails part-way (a full disk; here a file size limit set on the
running credgate with prlimit, which makes the same short write for real)
leaves the file ending with its last whole event, refuses the request whose
decision event was in that write on an audit_failure "deny" route, and the
next event, once there is room, starts a line of its own.
"""

import os
import resource
import secrets
import signal
import subprocess

from conftest import audit_problems, read_text, wait_for, wait_port


def ignore_sigxfsz():
    # Past the limit a write fails with EFBIG, and the process gets
    # SIGXFSZ, whose default action ends it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def start_stack(s, routes=("legacy",), preexec_fn=None):
    s.nginx.start()
    built = [s.route(name) for name in routes]
    s.cg.write_config(s.cg.config(built, {"workers": 1}))
    cg = s.cg
    cg.err = open(cg.stderr_file, "ab")
    cg.out = open(cg.stdout_file, "ab")
    cg.proc = subprocess.Popen([cg.binary, "-c", cg.conf_file], cwd=cg.dir,
                               stdin=subprocess.DEVNULL, stdout=cg.out, stderr=cg.err,
                               preexec_fn=preexec_fn)
    for port in s.ports.values():
        wait_port(port, cg.proc, what="credgate")
    return s


def events(s, pred):
    return [e for e in s.cg.audit() if pred(e)]


def session_end_of(s, client_port, timeout=5.0):
    got = wait_for(lambda: events(s, lambda e: e.get("event") == "session_end" and
                                  e["client"]["port"] == client_port), timeout)
    assert got and len(got) == 1, f"one session_end for client port {client_port}: {got}"
    return got[0]


def get_and_close(s, route="legacy"):
    """One request on its own connection; returns its status once the
    connection's session_end is written."""
    c = s.raw(route)
    port = c.sock.getsockname()[1]
    c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}"
           "\r\nConnection: close\r\n\r\n".encode())
    status = c.read_response().status
    c.close()
    session_end_of(s, port)
    return status


# ----------------------------------------------------------------------
# A write that fails part-way
# ----------------------------------------------------------------------
def test_short_audit_write_is_cut_back_and_refuses_under_deny(make_stack):
    s = start_stack(make_stack(start=False), preexec_fn=ignore_sigxfsz)
    pid = s.cg.proc.pid
    assert get_and_close(s) == 200
    size = os.path.getsize(s.cg.audit_file)

    # Room for 100 more bytes: the next decision event (several hundred)
    # goes out in part, then the write fails with EFBIG.
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size + 100, hard))
    mark = s.nginx.mark()
    cut = "cut-" + secrets.token_hex(4)
    r = s.curl("-H", "X-Request-Id: " + cut)
    assert r.status == 503, r
    s.nginx.assert_untouched(mark)
    assert s.cg.proc.poll() is None, "credgate ended at the file size limit"
    # The refusal came after the write: the file is as it will stay.
    text = read_text(s.cg.audit_file)
    assert len(text.encode()) == size and text.endswith("\n"), \
        f"the audit file kept part of the failed write: {text[-300:]!r}"

    # Room again: the next event is a line of its own, and its request
    # goes through.
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
    rid = "after-" + secrets.token_hex(4)
    assert s.curl("-H", "X-Request-Id: " + rid).status == 200
    assert wait_for(lambda: audit_problems(read_text(s.cg.audit_file)) or
                    events(s, lambda e: e.get("event") == "decision" and
                           e.get("request_id") == rid))
    assert audit_problems(read_text(s.cg.audit_file)) == []
    assert not events(s, lambda e: e.get("request_id") == cut and
                      e.get("event") == "decision")
    assert [e["decision"]["result"] for e in events(
        s, lambda e: e.get("event") == "decision" and e.get("request_id") == rid)] == ["allow"]
