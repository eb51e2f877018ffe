"""Strict HTTP/1.1 framing (RFC 9112 §6.3, §11): every ambiguous or
malformed message is answered 400 with Connection: close, the connection is
closed, and nothing reaches the legacy service, not even in part.  Each
attack carries a valid token, so that the refusal is the framing's doing."""

import subprocess
import time

import pytest

from conftest import LoopbackServer, assert_closed

A = "Authorization: Bearer {tok}\r\n"
H = "Host: legacy\r\n"

ATTACKS = {
    "cl_and_te": "POST /upload/a HTTP/1.1\r\n" + H + A +
                 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": "POST /upload/a HTTP/1.1\r\n" + H + A +
                 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "duplicate_cl_same": "POST /upload/a HTTP/1.1\r\n" + H + A +
                         "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "duplicate_cl_differ": "POST /upload/a HTTP/1.1\r\n" + H + A +
                           "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl_plus_sign": "POST /upload/a HTTP/1.1\r\n" + H + A + "Content-Length: +5\r\n\r\nhello",
    "cl_minus_sign": "POST /upload/a HTTP/1.1\r\n" + H + A + "Content-Length: -5\r\n\r\nhello",
    "cl_hex": "POST /upload/a HTTP/1.1\r\n" + H + A + "Content-Length: 0x5\r\n\r\nhello",
    "cl_list": "POST /upload/a HTTP/1.1\r\n" + H + A + "Content-Length: 5, 5\r\n\r\nhello",
    "cl_inner_space": "POST /upload/a HTTP/1.1\r\n" + H + A + "Content-Length: 1 0\r\n\r\nhello",
    "cl_empty": "POST /upload/a HTTP/1.1\r\n" + H + A + "Content-Length: \r\n\r\nhello",
    "cl_overflow": "POST /upload/a HTTP/1.1\r\n" + H + A +
                   "Content-Length: 99999999999999999999999\r\n\r\nhello",
    "te_gzip_chunked": "POST /upload/a HTTP/1.1\r\n" + H + A +
                       "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_chunked_gzip": "POST /upload/a HTTP/1.1\r\n" + H + A +
                       "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te_chunked_twice": "POST /upload/a HTTP/1.1\r\n" + H + A +
                        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "0\r\n\r\n",
    "te_identity": "POST /upload/a HTTP/1.1\r\n" + H + A +
                   "Transfer-Encoding: identity\r\n\r\n",
    "te_in_http10": "POST /upload/a HTTP/1.0\r\n" + H + A +
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_obfuscated": "POST /upload/a HTTP/1.1\r\n" + H + A +
                     "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "chunk_size_not_hex": "POST /upload/a HTTP/1.1\r\n" + H + A +
                          "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": "POST /upload/a HTTP/1.1\r\n" + H + A +
                           "Transfer-Encoding: chunked\r\n\r\n"
                           "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "chunk_size_signed": "POST /upload/a HTTP/1.1\r\n" + H + A +
                         "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "chunk_data_too_long": "POST /upload/a HTTP/1.1\r\n" + H + A +
                           "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    "chunk_missing_crlf": "POST /upload/a HTTP/1.1\r\n" + H + A +
                          "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    "bare_lf_line_end": "GET /a.txt HTTP/1.1\n" + H + A + "\r\n",
    "bare_lf_in_header": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A: 1\nX-B: 2\r\n\r\n",
    "bare_cr_in_header": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A: 1\rX-B: 2\r\n\r\n",
    "bare_lf_chunk": "POST /upload/a HTTP/1.1\r\n" + H + A +
                     "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    "nul_in_value": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A: a\x00b\r\n\r\n",
    "ctl_in_value": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A: a\x01b\r\n\r\n",
    "del_in_value": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A: a\x7fb\r\n\r\n",
    "nul_in_target": "GET /a\x00.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "space_before_colon": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A : 1\r\n\r\n",
    "space_before_colon_cl": "POST /upload/a HTTP/1.1\r\n" + H + A +
                             "Content-Length : 5\r\n\r\nhello",
    "tab_before_colon": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A\t: 1\r\n\r\n",
    "obs_fold": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A: one\r\n two\r\n\r\n",
    "obs_fold_tab": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A: one\r\n\ttwo\r\n\r\n",
    "name_not_token_at": "GET /a.txt HTTP/1.1\r\n" + H + A + "X@A: 1\r\n\r\n",
    "name_not_token_paren": "GET /a.txt HTTP/1.1\r\n" + H + A + "X(A): 1\r\n\r\n",
    "name_empty": "GET /a.txt HTTP/1.1\r\n" + H + A + ": 1\r\n\r\n",
    "name_no_colon": "GET /a.txt HTTP/1.1\r\n" + H + A + "X-A 1\r\n\r\n",
    "trailer_content_length": "POST /upload/a HTTP/1.1\r\n" + H + A +
                              "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                              "Content-Length: 5\r\n\r\n",
    "trailer_transfer_encoding": "POST /upload/a HTTP/1.1\r\n" + H + A +
                                 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n",
    "trailer_host": "POST /upload/a HTTP/1.1\r\n" + H + A +
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nHost: evil\r\n\r\n",
    "missing_host": "GET /a.txt HTTP/1.1\r\n" + A + "\r\n",
    "two_hosts": "GET /a.txt HTTP/1.1\r\n" + H + "Host: other\r\n" + A + "\r\n",
    "host_with_space": "GET /a.txt HTTP/1.1\r\nHost: leg acy\r\n" + A + "\r\n",
    "host_with_userinfo": "GET /a.txt HTTP/1.1\r\nHost: user@legacy\r\n" + A + "\r\n",
    "host_bad_port": "GET /a.txt HTTP/1.1\r\nHost: legacy:80x\r\n" + A + "\r\n",
    "host_with_slash": "GET /a.txt HTTP/1.1\r\nHost: legacy/x\r\n" + A + "\r\n",
    "host_unclosed_bracket": "GET /a.txt HTTP/1.1\r\nHost: [::1\r\n" + A + "\r\n",
    "bad_version": "GET /a.txt HTTP/1.x\r\n" + H + A + "\r\n",
    "bad_method_chars": "G(T /a.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "space_in_target": "GET /a b.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_ftp": "GET ftp://legacy/a.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_no_authority": "GET http:/a.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_empty_authority": "GET http:///a.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_userinfo": "GET http://user@legacy/a.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_password": "GET http://u:p@legacy/a.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_bad_port": "GET http://legacy:99999/a.txt HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_dot_dot": "GET http://legacy/x/../admin/x.txt HTTP/1.1\r\n" + H + A +
                             "\r\n",
    "absolute_form_fragment": "GET http://legacy/a.txt#f HTTP/1.1\r\n" + H + A + "\r\n",
    "absolute_form_without_host": "GET http://legacy/a.txt HTTP/1.1\r\n" + A + "\r\n",
}


def send_attack(stack, name, pre=b""):
    tok = stack.token()
    data = ATTACKS[name].format(tok=tok).encode("latin-1")
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(pre + data)
    return c, mark


def assert_400_and_close(stack, c, mark):
    r = c.read_response()
    assert r.status == 400, r
    assert r.has_token("Connection", "close"), f"no Connection: close in {r.headers}"
    assert_closed(c)
    c.close()
    stack.nginx.assert_untouched(mark)
    return r


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_framing_attack_is_400_and_closed(stack, name):
    c, mark = send_attack(stack, name)
    assert_400_and_close(stack, c, mark)


@pytest.mark.parametrize("name", ["cl_and_te", "duplicate_cl_differ", "bare_lf_in_header",
                                  "obs_fold", "trailer_content_length", "chunk_size_not_hex",
                                  "two_hosts"])
def test_framing_attack_after_a_good_request_on_keep_alive(stack, name):
    """A bad message after a good one on the same connection: the good one
    is answered, the bad one never reaches the legacy service."""
    tok = stack.token()
    good = f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n\r\n"
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(good.encode())
    first = c.read_response()
    assert first.status == 200, first
    assert len(stack.nginx.since(mark)) == 1
    mark = stack.nginx.mark()
    c.send(ATTACKS[name].format(tok=tok).encode("latin-1"))
    assert_400_and_close(stack, c, mark)


@pytest.mark.parametrize("name", ["cl_and_te", "chunk_size_not_hex", "obs_fold",
                                  "trailer_host", "space_before_colon_cl"])
def test_framing_attack_sent_byte_by_byte(stack, name):
    tok = stack.token()
    data = ATTACKS[name].format(tok=tok).encode("latin-1")
    mark = stack.nginx.mark()
    c = stack.raw()
    try:
        for i in range(len(data)):
            c.send(data[i:i + 1])
    except (BrokenPipeError, ConnectionResetError):
        pass    # refused early: the rest is never read
    assert_400_and_close(stack, c, mark)


def test_smuggled_request_in_body_is_not_forwarded(stack):
    """CL.TE: the classic smuggling shape; neither request may be forwarded."""
    tok = stack.token()
    inner = f"GET /admin/x.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n\r\n"
    body = f"0\r\n\r\n{inner}"
    msg = (f"POST /upload/a HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
           f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(msg.encode())
    assert_400_and_close(stack, c, mark)


def test_slow_header_is_cut_at_header_timeout(make_stack):
    s = make_stack(credgate_extra={"timeouts": {"client_header": "1s"}})
    mark = s.nginx.mark()
    c = s.raw(timeout=8)
    start = time.monotonic()
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nX-Slow: ")
    deadline = start + 6
    closed = False
    while time.monotonic() < deadline:
        # Anything credgate sends here (e.g. a 408) must be followed by a close.
        try:
            data = c.sock.recv(4096)
        except ConnectionResetError:
            data = b""
        except OSError:
            break
        if not data:
            closed = True
            break
        s.seen.append(data)
    elapsed = time.monotonic() - start
    c.close()
    assert closed, "connection still open 6 s after a 1 s header timeout"
    assert 0.8 <= elapsed <= 5.0, f"closed after {elapsed:.2f}s with client_header = 1s"
    s.nginx.assert_untouched(mark)


def test_idle_keep_alive_connection_is_closed(make_stack):
    s = make_stack(credgate_extra={"timeouts": {"client_idle": "1s"}})
    c = s.raw(timeout=8)
    tok = s.token()
    c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n\r\n"
           .encode())
    assert c.read_response().status == 200
    start = time.monotonic()
    assert c.closed_within(6), "idle connection not closed"
    assert time.monotonic() - start >= 0.8
    c.close()


def test_oversized_header_section_is_refused(make_stack):
    s = make_stack(credgate_extra={"limits": {"header_bytes": 4096}})
    tok = s.token()
    mark = s.nginx.mark()
    c = s.raw()
    filler = "".join(f"X-F{i}: {'v' * 100}\r\n" for i in range(60))
    try:
        c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
               f"{filler}\r\n".encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c.read_response()
    assert r.status in (400, 431), r
    assert_closed(c)
    c.close()
    s.nginx.assert_untouched(mark)


def test_too_many_header_fields_is_refused(make_stack):
    s = make_stack(credgate_extra={"limits": {"header_count": 20}})
    tok = s.token()
    mark = s.nginx.mark()
    c = s.raw()
    filler = "".join(f"X-F{i}: v\r\n" for i in range(30))
    c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
           f"{filler}\r\n".encode())
    r = c.read_response()
    assert r.status in (400, 431), r
    assert_closed(c)
    c.close()
    s.nginx.assert_untouched(mark)


def test_oversized_request_line_is_refused(make_stack):
    s = make_stack(credgate_extra={"limits": {"request_line": 1024}})
    tok = s.token()
    mark = s.nginx.mark()
    c = s.raw()
    try:
        c.send(f"GET /{'a' * 2000} HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
               f"\r\n".encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c.read_response()
    assert r.status in (400, 414), r
    assert_closed(c)
    c.close()
    s.nginx.assert_untouched(mark)


# ----------------------------------------------------------------------
# Whitespace around a field value is not part of it (RFC 9110 §5.5,
# RFC 9112 §5.1): framing fields with it are framed, not refused.
# ----------------------------------------------------------------------
OWS_LENGTH = ["5\t", "5 ", "\t5", " \t5\t \t", "5 \t"]
OWS_CHUNKED = ["chunked\t", "chunked ", "\tchunked", " \tchunked \t", "CHUNKED\t "]


@pytest.mark.parametrize("value", OWS_LENGTH)
def test_content_length_with_whitespace_is_framed(stack, value):
    """The body is forwarded whole, and the request after it on the same
    connection is a request of its own."""
    tok = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send((f"POST /upload/ows HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
            f"Content-Length:{value}\r\n\r\nhello"
            f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n\r\n")
           .encode())
    first = c.read_response()
    second = c.read_response()
    c.close()
    assert first.status == 200, first
    assert first.body == b"stored\n"
    assert second.status == 200, second
    assert second.text == stack.nginx.files["/a.txt"]
    lines = stack.nginx.since(mark, count=2)
    assert [x["req"] for x in lines] == ["POST /upload/ows HTTP/1.1", "GET /a.txt HTTP/1.1"]
    assert lines[0]["body"] == "hello" and lines[0]["cl"] == "5"


@pytest.mark.parametrize("value", OWS_CHUNKED)
def test_transfer_encoding_with_whitespace_is_framed(stack, value):
    tok = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send((f"POST /upload/ows HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
            f"Transfer-Encoding:{value}\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n\r\n")
           .encode())
    first = c.read_response()
    second = c.read_response()
    c.close()
    assert first.status == 200, first
    assert second.status == 200, second
    assert second.text == stack.nginx.files["/a.txt"]
    lines = stack.nginx.since(mark, count=2)
    assert [x["req"] for x in lines] == ["POST /upload/ows HTTP/1.1", "GET /a.txt HTTP/1.1"]
    assert lines[0]["body"] == "hello world" and lines[0]["te"] == "chunked"


@pytest.mark.parametrize("fields", ["Content-Length: 5\t5\r\n",
                                    "Content-Length: 5\t\r\n 5\r\n",
                                    "Content-Length: 5\t\r5\r\n",
                                    "Transfer-Encoding: chunked\tx\r\n",
                                    "Transfer-Encoding: chunked\t\r\n\tgzip\r\n"])
def test_ambiguous_framing_whitespace_is_still_400(stack, fields):
    tok = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send((f"POST /upload/ows HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
            f"{fields}\r\n5\r\nhello\r\n0\r\n\r\n").encode())
    assert_400_and_close(stack, c, mark)


class ScriptedUpstream(LoopbackServer):
    """An upstream that answers every request head (requests carry no
    body here) with the same raw response, for framing nginx never
    writes."""

    def __init__(self, response):
        self.response = response
        self.heads = []
        super().__init__(backlog=8)

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
                self.heads.append(head.decode("latin-1"))
                conn.sendall(self.response)
        except OSError:
            return
        finally:
            conn.close()


@pytest.fixture
def scripted(make_stack):
    ups = []

    def make(response):
        up = ScriptedUpstream(response)
        ups.append(up)
        s = make_stack(route_over={"legacy": {"upstream": {"host": "127.0.0.1",
                                                          "port": up.port}}})
        return s, up

    yield make
    for up in ups:
        up.stop()


RESPONSES_WITH_OWS = {
    "cl_tab": b"HTTP/1.1 200 OK\r\nContent-Length: 5\t\r\n\r\nhello",
    "cl_ows": b"HTTP/1.1 200 OK\r\nContent-Length: \t5 \t\r\n\r\nhello",
    "te_tab": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n"
              b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
    "te_ows": b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\t chunked \t\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(RESPONSES_WITH_OWS))
def test_response_framing_with_whitespace_is_relayed(scripted, name):
    """The caller gets the decoded body, twice on one connection: the
    first response ended where its framing said."""
    s, up = scripted(RESPONSES_WITH_OWS[name])
    tok = s.token()
    c = s.raw()
    for _ in range(2):
        c.send(f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n\r\n"
               .encode())
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"hello"
    c.close()
    assert len(up.heads) == 2


# ----------------------------------------------------------------------
# The request-target in absolute-form (RFC 9112 §3.2.2): its authority is
# the Host, and the upstream gets origin-form.
# ----------------------------------------------------------------------
def decision_for(s, rid):
    ev = s.cg.audit_where(lambda e: e.get("request_id") == rid and
                          e.get("event") == "decision")
    assert len(ev) == 1, ev
    return ev[0]


@pytest.mark.parametrize("target,line", [
    ("http://legacy/a.txt", "GET /a.txt HTTP/1.1"),
    ("HTTP://legacy/a.txt?x=1&u=http://b/", "GET /a.txt?x=1&u=http://b/ HTTP/1.1"),
    ("https://legacy//a.txt", "GET /a.txt HTTP/1.1"),
    ("http://legacy/%61.txt", "GET /a.txt HTTP/1.1"),
])
def test_absolute_form_is_forwarded_in_origin_form(stack, target, line):
    tok = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(f"GET {target} HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
           f"X-Request-Id: abs-1\r\n\r\n".encode())
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    assert r.text == stack.nginx.files["/a.txt"]
    seen = stack.nginx.since(mark)[0]
    assert seen["req"] == line and seen["host"] == "legacy", seen
    req = decision_for(stack, "abs-1")["request"]
    assert req == {"method": "GET", "path": "/a.txt"}, req


def test_absolute_form_authority_wins_over_host(stack):
    """A Host field naming another host is ignored (and noted in audit):
    the upstream gets the target's authority as Host, once."""
    tok = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(f"GET http://Legacy.Example:8080/b.txt?q HTTP/1.1\r\nHost: evil.example\r\n"
           f"Authorization: Bearer {tok}\r\nX-Request-Id: abs-2\r\n\r\n".encode())
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    assert r.text == stack.nginx.files["/b.txt"]
    seen = stack.nginx.since(mark)[0]
    assert seen["req"] == "GET /b.txt?q HTTP/1.1", seen
    assert seen["host"] == "Legacy.Example:8080", seen
    req = decision_for(stack, "abs-2")["request"]
    assert req == {"method": "GET", "path": "/b.txt", "host_mismatch": True}, req


def test_absolute_form_host_sent_once_to_the_upstream(make_stack):
    s = make_stack(routes=("capture",))
    tok = s.token()
    c = s.raw(route="capture")
    c.send(f"GET http://svc.example/p?a=1 HTTP/1.1\r\nHost: other\r\n"
           f"Authorization: Bearer {tok}\r\n\r\n".encode())
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    req = s.capture.requests[-1]
    assert req["line"] == "GET /p?a=1 HTTP/1.1", req
    assert s.capture.fields(req, "Host") == ["svc.example"], req["fields"]
    assert req["fields"][0] == ("Host", "svc.example"), req["fields"]


def test_absolute_form_policy_sees_the_normalised_path(stack):
    """Path rules apply to the path inside the URI, normalised like an
    origin-form path: the deny rule for /admin/* holds."""
    tok = stack.token()
    mark = stack.nginx.mark()
    for n, target in enumerate(["http://legacy/admin/x.txt", "http://legacy//admin/x.txt",
                                "http://legacy/%61dmin/x.txt", "HTTP://legacy/admin//x.txt"]):
        c = stack.raw()
        c.send(f"GET {target} HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n"
               f"X-Request-Id: abs-deny-{n}\r\n\r\n".encode())
        r = c.read_response()
        c.close()
        assert r.status == 403, (target, r)
        ev = decision_for(stack, f"abs-deny-{n}")
        assert ev["request"]["path"] == "/admin/x.txt", ev
        assert ev["decision"]["rule"] == "no-admin", ev
    stack.nginx.assert_untouched(mark)


def test_absolute_form_without_path_is_root(make_stack):
    s = make_stack(routes=("capture",))
    tok = s.token()
    c = s.raw(route="capture")
    c.send(f"GET http://svc.example:81?x HTTP/1.0\r\nAuthorization: Bearer {tok}\r\n\r\n"
           .encode())
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    req = s.capture.requests[-1]
    assert req["line"] == "GET /?x HTTP/1.1", req
    assert s.capture.fields(req, "Host") == ["svc.example:81"], req["fields"]


def test_absolute_form_from_curl_as_a_proxy(stack):
    """curl sends absolute-form to a proxy: credgate serves it."""
    port = stack.ports["legacy"]
    p = subprocess.run(["curl", "-sS", "--max-time", "15", "-x", f"http://127.0.0.1:{port}",
                        "-H", "Authorization: Bearer " + stack.token(),
                        "http://legacy/a.txt"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    stack.seen.append(p.stdout + p.stderr)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == stack.nginx.files["/a.txt"]


# ----------------------------------------------------------------------
# HTTP/1.0 without Host: forwarded as HTTP/1.1, so it gets a Host.
# ----------------------------------------------------------------------
@pytest.mark.parametrize("host", ["", "Host:\r\n", "Host: \t\r\n"])
def test_http10_without_host_gets_the_upstream_host(stack, host):
    tok = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(f"GET /a.txt HTTP/1.0\r\n{host}Authorization: Bearer {tok}\r\n\r\n".encode())
    r = c.read_response()
    assert_closed(c)
    c.close()
    assert r.status == 200, r
    assert r.text == stack.nginx.files["/a.txt"]
    seen = stack.nginx.since(mark)[0]
    assert seen["req"] == "GET /a.txt HTTP/1.1", seen
    assert seen["host"] == f"127.0.0.1:{stack.nginx.port}", seen


def test_http10_with_host_keeps_it(stack):
    tok = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(f"GET /a.txt HTTP/1.0\r\nHost: legacy\r\nAuthorization: Bearer {tok}\r\n\r\n"
           .encode())
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    assert stack.nginx.since(mark)[0]["host"] == "legacy"
