"""HTTP relaying: what the legacy service receives, connection reuse,
bodies, Expect, and the credential injectors."""

import base64
import http.client
import re
import secrets
import time

from conftest import CANARY, CANARY_TOKEN, SECRET_USER, assert_closed


def test_connection_header_cannot_strip_injected_credential(stack):
    mark = stack.nginx.mark()
    r = stack.curl("-H", "Connection: Authorization")
    assert r.status == 200, r
    line = stack.nginx.since(mark)[0]
    assert line["user"] == SECRET_USER and line["status"] == "200"


def test_connection_named_fields_are_removed(stack):
    mark = stack.nginx.mark()
    r = stack.curl("-H", "Connection: keep-alive, Cookie", "-H", "Cookie: c=1")
    assert r.status == 200, r
    line = stack.nginx.since(mark)[0]
    assert line["cookie"] == "", "a field named in Connection was forwarded"


def test_forwarding_headers_are_appended(stack):
    mark = stack.nginx.mark()
    r = stack.curl("-H", "X-Forwarded-For: 203.0.113.7",
                   "-H", "Forwarded: for=203.0.113.7;proto=https")
    assert r.status == 200, r
    line = stack.nginx.since(mark)[0]
    assert [x.strip() for x in line["xff"].split(",")] == ["203.0.113.7", "127.0.0.1"], line
    elements = [x.strip() for x in line["fwd"].split(",")]
    assert len(elements) == 2, line["fwd"]
    assert "for=203.0.113.7" in elements[0]
    assert re.search(r'for="?127\.0\.0\.1', elements[1]), line["fwd"]


def test_forwarding_headers_are_set_when_absent(stack):
    mark = stack.nginx.mark()
    assert stack.curl().status == 200
    line = stack.nginx.since(mark)[0]
    assert line["xff"] == "127.0.0.1"
    assert re.search(r'for="?127\.0\.0\.1', line["fwd"]), line["fwd"]


def test_request_id_from_caller_is_passed_and_returned(stack):
    rid = "req-" + secrets.token_hex(8)
    mark = stack.nginx.mark()
    r = stack.curl("-H", "X-Request-Id: " + rid)
    assert r.status == 200
    assert r.header("X-Request-Id") == rid
    assert stack.nginx.since(mark)[0]["rid"] == rid
    ev = stack.cg.audit_where(lambda e: e.get("request_id") == rid)
    assert ev, "no audit event carries the caller's request id"


def test_request_id_is_generated_when_absent(stack):
    mark = stack.nginx.mark()
    r1 = stack.curl()
    r2 = stack.curl()
    lines = stack.nginx.since(mark, 2)
    ids = [r1.header("X-Request-Id"), r2.header("X-Request-Id")]
    assert all(ids) and ids[0] != ids[1], ids
    assert [l["rid"] for l in lines] == ids


def test_keep_alive_two_requests_one_connection(stack):
    token = stack.token()
    mark = stack.nginx.mark()
    conn = http.client.HTTPConnection("127.0.0.1", stack.ports["legacy"], timeout=10)
    bodies = []
    for path in ("/a.txt", "/b.txt"):
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = conn.getresponse()
        bodies.append((r.status, r.read().decode()))
        stack.seen.append(bodies[-1][1].encode())
        assert not r.will_close, "credgate closed a keep-alive connection"
    sock_before = conn.sock
    assert sock_before is not None
    conn.close()
    assert bodies == [(200, stack.nginx.files["/a.txt"]), (200, stack.nginx.files["/b.txt"])]
    assert len(stack.nginx.since(mark, 2)) == 2


def test_upstream_connection_is_reused_within_a_client_connection(stack):
    token = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    for path in ("/a.txt", "/b.txt", "/index.html"):
        c.send((f"GET {path} HTTP/1.1\r\nHost: legacy\r\n"
                f"Authorization: Bearer {token}\r\n\r\n").encode())
        assert c.read_response().status == 200
    c.close()
    lines = stack.nginx.since(mark, 3)
    assert len({l["conn"] for l in lines}) == 1, \
        f"three upstream connections for one client connection: {lines}"


def test_pipelined_requests_are_answered_in_order(stack):
    token = stack.token()
    c = stack.raw()
    reqs = b"".join((f"GET {p} HTTP/1.1\r\nHost: legacy\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n").encode()
                    for p in ("/a.txt", "/b.txt", "/index.html"))
    c.send(reqs)
    got = [c.read_response() for _ in range(3)]
    c.close()
    assert [r.status for r in got] == [200, 200, 200], got
    assert [r.text for r in got] == [stack.nginx.files[p]
                                     for p in ("/a.txt", "/b.txt", "/index.html")]


def test_pipelined_request_after_a_deny(stack):
    """After a 403, the next pipelined request is either answered, or the
    403 announced Connection: close and nothing more was read."""
    token = stack.token()
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send((f"GET /admin/x.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n\r\n"
            f"GET /b.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n\r\n")
           .encode())
    r1 = c.read_response()
    assert r1.status == 403, r1
    if r1.has_token("Connection", "close"):
        assert_closed(c)
        stack.nginx.assert_untouched(mark)
    else:
        r2 = c.read_response()
        assert r2.status == 200 and r2.text == stack.nginx.files["/b.txt"], r2
        lines = stack.nginx.since(mark)
        assert [l["req"] for l in lines] == ["GET /b.txt HTTP/1.1"], lines
    c.close()


def test_content_length_body_is_forwarded(stack):
    data = secrets.token_hex(40000)     # 80 kB
    mark = stack.nginx.mark()
    r = stack.curl("-X", "POST", "--data-binary", data, "-H", "Content-Type: text/plain",
                   path="/upload/cl")
    assert r.status == 200, r
    line = stack.nginx.since(mark)[0]
    assert line["body"] == data
    assert int(line["len"]) > len(data)


def test_chunked_body_is_forwarded(stack):
    token = stack.token()
    parts = [secrets.token_hex(n) for n in (1, 500, 8000, 3)]
    body = "".join(f"{len(p):x}\r\n{p}\r\n" for p in parts) + "0\r\n\r\n"
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send((f"POST /upload/chunked HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{body}").encode())
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    line = stack.nginx.since(mark)[0]
    assert line["body"] == "".join(parts)
    assert int(line["len"]) > len("".join(parts))


def test_chunked_body_sent_byte_by_byte(stack):
    token = stack.token()
    payload = "hello, slowly"
    msg = (f"POST /upload/slow HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n"
           f"Transfer-Encoding: chunked\r\n\r\n{len(payload):x}\r\n{payload}\r\n0\r\n\r\n")
    mark = stack.nginx.mark()
    c = stack.raw()
    for i in range(len(msg)):
        c.send(msg[i].encode())
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    assert stack.nginx.since(mark)[0]["body"] == payload


def test_expect_100_continue_after_decision(stack):
    token = stack.token()
    payload = b"after-continue"
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send((f"POST /upload/expect HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n"
            f"Expect: 100-continue\r\nContent-Length: {len(payload)}\r\n\r\n").encode())
    interim = c.read_response()
    assert interim.status == 100, interim
    c.send(payload)
    final = c.read_response()
    c.close()
    assert final.status == 200, final
    line = stack.nginx.since(mark)[0]
    assert line["body"] == payload.decode()
    assert line["expect"] == "", "Expect was forwarded after credgate answered it"


def test_expect_100_continue_refused_without_continue(stack):
    mark = stack.nginx.mark()
    c = stack.raw()
    c.send(b"POST /upload/expect HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer bad.token.x\r\n"
           b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    r = c.read_response()
    c.close()
    assert r.status == 401, f"expected the final 401 first, got {r}"
    stack.nginx.assert_untouched(mark)


def test_body_over_max_body_is_413(make_stack):
    s = make_stack(route_over={"legacy": {"max_body": 1024}})
    mark = s.nginx.mark()
    r = s.curl("-X", "POST", "--data-binary", "z" * 1025, path="/upload/big")
    assert r.status == 413, r
    s.nginx.assert_untouched(mark)
    r = s.curl("-X", "POST", "--data-binary", "z" * 1024, path="/upload/fits")
    assert r.status == 200, r
    assert s.nginx.since(mark)[0]["body"] == "z" * 1024


def test_chunked_body_over_max_body_is_refused(make_stack):
    s = make_stack(route_over={"legacy": {"max_body": 1024}})
    token = s.token()
    c = s.raw()
    c.send((f"POST /upload/big HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n800\r\n{'q' * 2048}\r\n0\r\n\r\n").encode())
    r = c.read_response()
    assert r.status == 413, r
    assert_closed(c)
    c.close()


def test_head_request(stack):
    r = stack.request("HEAD", "/a.txt")
    assert r.status == 200 and r.body == b""


def test_legacy_status_is_relayed(stack):
    r = stack.curl(path="/does-not-exist.txt")
    assert r.status == 404


def test_large_response_is_relayed(stack):
    big = secrets.token_hex(300000)     # 600 kB
    with open(f"{stack.nginx.dir}/www/big.txt", "w") as f:
        f.write(big)
    r = stack.curl(path="/big.txt")
    assert r.status == 200 and r.text == big


def test_large_upload_is_forwarded_whole(stack):
    """Far more than the relay's high watermark: the caller's reads pause
    while the upstream socket is full, and resume as it drains."""
    data = secrets.token_hex(450000)    # 900 kB
    body = f"{stack.tmp}/upload.txt"
    with open(body, "w") as f:
        f.write(data)
    mark = stack.nginx.mark()
    r = stack.curl("-X", "POST", "--data-binary", "@" + body, "-H", "Content-Type: text/plain",
                   path="/upload/big")
    assert r.status == 200, r
    line = stack.nginx.since(mark)[0]
    assert line["body"] == data


def test_large_response_to_a_slow_reader(stack):
    """A caller that reads nothing for a while: the socket buffers fill, the
    rest of the response waits in credgate with the upstream paused, then
    all of it arrives, on keep-alive and with Connection: close."""
    big = secrets.token_hex(2 * 1024 * 1024)      # 4 MiB
    with open(f"{stack.nginx.dir}/www/big.txt", "w") as f:
        f.write(big)
    token = stack.token()
    for close in (False, True):
        c = stack.raw(timeout=10)
        c.send((f"GET /big.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}"
                f"\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n")
               .encode())
        time.sleep(1.0)
        r = c.read_response()
        assert r.status == 200 and len(r.body) == len(big), (r.status, len(r.body))
        assert r.body == big.encode()
        if close:
            assert_closed(c)
        else:
            # The connection is whole afterwards: a second request on it.
            c.send((f"GET /a.txt HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}"
                    f"\r\n\r\n").encode())
            r = c.read_response()
            assert r.status == 200 and r.body == stack.nginx.files["/a.txt"].encode()
        c.close()


def test_final_response_arrives_whole_then_the_connection_ends(stack):
    """With Connection: close the last bytes are sent held for the FIN and
    the FIN follows at once: each response must still arrive whole and
    promptly, and the end of the stream right after it, for an answer
    relayed from the upstream and for one credgate makes itself."""
    token = stack.token()
    for path, status in (("/a.txt", 200), ("/admin/x.txt", 403)) * 10:
        c = stack.raw(timeout=5)
        t0 = time.monotonic()
        c.send((f"GET {path} HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}"
                f"\r\nConnection: close\r\n\r\n").encode())
        r = c.read_response()
        assert r.status == status, r
        if status == 200:
            assert r.body == stack.nginx.files["/a.txt"].encode()
        assert_closed(c, timeout=1.0)
        assert time.monotonic() - t0 < 1.0
        c.close()


# ----------------------------------------------------------------------
# Injectors, observed on a raw upstream that records exact fields
# ----------------------------------------------------------------------
def test_basic_injection_replaces_caller_authorization(make_stack):
    s = make_stack(routes=("capture",))
    r = s.curl(route="capture")
    assert r.status == 200, r
    req = s.capture.requests[-1]
    auths = s.capture.fields(req, "Authorization")
    expect = "Basic " + base64.b64encode(f"{SECRET_USER}:{CANARY}".encode()).decode()
    assert auths == [expect]


def test_header_injection_replaces_caller_value_in_any_case(make_stack):
    s = make_stack(routes=("header",))
    r = s.curl("-H", "X-Api-Key: mine", "-H", "x-api-key: mine-too", "-H", "X-API-KEY: again",
               route="header")
    assert r.status == 200, r
    req = s.capture.requests[-1]
    assert s.capture.fields(req, "X-Api-Key") == [CANARY], req["fields"]
    assert s.capture.fields(req, "Authorization") == [], "caller's Authorization was forwarded"


def test_header_injection_cannot_be_stripped_by_connection(make_stack):
    s = make_stack(routes=("header",))
    r = s.curl("-H", "Connection: X-Api-Key", route="header")
    assert r.status == 200, r
    req = s.capture.requests[-1]
    assert s.capture.fields(req, "X-Api-Key") == [CANARY]


def test_bearer_injection(make_stack):
    s = make_stack(routes=("bearer",))
    token = s.token()
    r = s.curl(token=token, route="bearer")
    assert r.status == 200, r
    req = s.capture.requests[-1]
    assert s.capture.fields(req, "Authorization") == ["Bearer " + CANARY_TOKEN]
    assert token.encode() not in req["raw"]


def test_query_injection_replaces_caller_parameter(make_stack):
    s = make_stack(routes=("query",))
    r = s.curl(route="query", path="/q", query="?a=1&api_key=mine&b=2")
    assert r.status == 200, r
    req = s.capture.requests[-1]
    target = req["line"].split(" ")[1]
    params = target.split("?", 1)[1].split("&")
    assert f"api_key={CANARY_TOKEN}" in params
    assert "api_key=mine" not in params
    assert "a=1" in params and "b=2" in params
    assert s.capture.fields(req, "Authorization") == []


def test_hop_by_hop_fields_are_not_forwarded(make_stack):
    s = make_stack(routes=("capture",))
    r = s.curl("-H", "Keep-Alive: timeout=5", "-H", "Proxy-Authorization: Basic eDp5",
               "-H", "TE: trailers", "-H", "Upgrade: websocket", "-H", "X-Keep: 1",
               route="capture")
    assert r.status == 200, r
    req = s.capture.requests[-1]
    names = {n.lower() for n, _ in req["fields"]}
    for hop in ("keep-alive", "proxy-authorization", "te", "upgrade"):
        assert hop not in names, f"{hop} was forwarded: {req['fields']}"
    assert s.capture.fields(req, "X-Keep") == ["1"]
