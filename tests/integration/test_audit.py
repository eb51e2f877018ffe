"""Audit events as a reader of the audit file sees them.

A write that fails part-way (a full disk; here a file size limit set on the
running credgate with prlimit, which makes the same short write for real)
leaves the file ending with its last whole event, refuses the request whose
decision event was in that write on an audit_failure "deny" route, and the
next event, once there is room, starts a line of its own.

session_end says what the caller got last (status) apart from what the
upstream said (upstream.status, null when credgate answered itself), and
error events say how long the request had run.
"""

import os
import resource
import secrets

from conftest import audit_problems, read_text, wait_for


def start_stack(s, routes=("legacy",)):
    return s.start(routes, credgate_extra={"workers": 1})


def events(s, pred):
    return [e for e in s.cg.audit() if pred(e)]


def session_end_of(s, client_port, timeout=5.0):
    got = wait_for(lambda: events(s, lambda e: e.get("event") == "session_end" and
                                  e["client"]["port"] == client_port), timeout)
    assert got and len(got) == 1, f"one session_end for client port {client_port}: {got}"
    return got[0]


def one_request(s, request, route="legacy"):
    """Sends request on a connection of its own, reads the answer and
    closes; returns the answer's status and, once it is written, the
    connection's session_end."""
    c = s.raw(route)
    port = c.sock.getsockname()[1]
    c.send(request)
    status = c.read_response().status
    c.close()
    return status, session_end_of(s, port)


def get_and_close(s, route="legacy"):
    """One GET of /a.txt with a token; its status."""
    return one_request(s, f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer "
                       f"{s.token()}\r\nConnection: close\r\n\r\n".encode(), route)[0]


# ----------------------------------------------------------------------
# A write that fails part-way
# ----------------------------------------------------------------------
def test_short_audit_write_is_cut_back_and_refuses_under_deny(make_stack):
    # Past the limit a write fails with EFBIG and the process gets
    # SIGXFSZ, whose default action would end it: credgate ignores it
    # (subprocess gives the child the default action).
    s = start_stack(make_stack(start=False))
    pid = s.cg.proc.pid
    assert get_and_close(s) == 200
    # nginx logs a request after answering it: wait for the line, so that
    # the mark below counts it.
    assert len(s.nginx.since(0, count=1)) == 1
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


# ----------------------------------------------------------------------
# session_end: the caller's status apart from the upstream's
# ----------------------------------------------------------------------
def test_session_end_of_a_proxied_request_has_both_statuses(stack):
    status, e = one_request(stack, f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: "
                            f"Bearer {stack.token()}\r\nConnection: close\r\n\r\n".encode())
    assert status == 200
    assert e["status"] == 200, e
    assert e["upstream"]["status"] == 200, e


def test_session_end_of_a_missing_page_has_the_upstreams_status(stack):
    status, e = one_request(stack, f"GET /nothing-here HTTP/1.1\r\nHost: legacy\r\n"
                            f"Authorization: Bearer {stack.token()}\r\n"
                            f"Connection: close\r\n\r\n".encode())
    assert status == 404
    assert (e["status"], e["upstream"]["status"]) == (404, 404), e


REFUSALS = {
    400: b"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nContent-Length: 1\r\n"
         b"Content-Length: 2\r\n\r\nab",
    401: b"GET /a.txt HTTP/1.1\r\nHost: legacy\r\n\r\n",
    431: b"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n",
    505: b"GET /a.txt HTTP/2.0\r\nHost: legacy\r\n\r\n",
}


def test_session_end_of_a_refused_request_has_no_upstream_status(stack):
    mark = stack.nginx.mark()
    for status, request in REFUSALS.items():
        got, e = one_request(stack, request)
        assert got == status
        assert e["status"] == status, e
        assert e["upstream"]["status"] is None, e
    stack.nginx.assert_untouched(mark)


def test_session_end_after_a_proxied_then_a_refused_request(stack):
    """Two requests on one connection: session_end speaks of the last."""
    c = stack.raw()
    port = c.sock.getsockname()[1]
    c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {stack.token()}"
           "\r\n\r\n".encode())
    assert c.read_response().status == 200
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: legacy\r\n\r\n")
    assert c.read_response().status == 401
    c.close()
    e = session_end_of(stack, port)
    assert (e["status"], e["upstream"]["status"], e["requests"]) == (401, None, 2), e
    assert e["upstream_reused"] in (0, 1), e


def test_session_end_counts_reused_upstream_connections(stack):
    """Requests served by an upstream connection kept from an earlier one."""
    c = stack.raw()
    port = c.sock.getsockname()[1]
    for _ in range(3):
        c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer "
               f"{stack.token()}\r\n\r\n".encode())
        assert c.read_response().status == 200
    c.close()
    e = session_end_of(stack, port)
    # The first request may find one of an earlier test's; the others
    # find the one it left.
    assert e["requests"] == 3 and e["upstream_reused"] >= 2, e


# ----------------------------------------------------------------------
# error events: how long the request had run
# ----------------------------------------------------------------------
def test_error_event_has_duration(make_stack):
    s = make_stack(routes=("down", "nosecret"))
    for route, status in (("down", 502), ("nosecret", 503)):
        c = s.raw(route)
        port = c.sock.getsockname()[1]
        c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}"
               "\r\n\r\n".encode())
        assert c.read_response().status == status
        c.close()
        errors = wait_for(lambda: events(s, lambda e: e.get("event") == "error" and
                                         e["client"]["port"] == port))
        assert errors and len(errors) == 1, s.dump()
        d = errors[0].get("duration_ms")
        assert isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 60000, errors[0]
        e = session_end_of(s, port)
        assert (e["status"], e["upstream"]["status"]) == (status, None), e
