"""Connection limits and what stays bounded under load: connections that
wait for a slot at max_connections, silent connections evicted to make
room, the per-address limit on connections without a request head, floods
of such connections, upstream connections given back to the pool between
requests, and the lingering close after an early answer."""

import socket
import threading
import time

from conftest import RawClient, assert_closed, read_text, wait_for
from test_production import get, launch, metrics, no_connections_open, route_for


def refused(s, reason, route="legacy"):
    return metrics(s)("credgate_connections_refused_total", route=route, reason=reason)


def open_count(s, route="legacy"):
    return metrics(s)("credgate_connections_open", route=route)


def request_bytes(token, path="/a.txt"):
    return (f"GET {path} HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {token}\r\n"
            f"\r\n").encode()


def served(s, n, token, route="legacy"):
    """n connections, each after one request it was served: not silent."""
    conns = [s.raw(route) for _ in range(n)]
    for c in conns:
        assert get(c, "/a.txt", token).status == 200
    return conns


def no_answer_within(c, seconds):
    """True when nothing at all arrives on c for that long."""
    c.sock.settimeout(seconds)
    try:
        data = c.sock.recv(1)
    except socket.timeout:
        return True
    finally:
        c.sock.settimeout(5)
    c.buf += data
    return False


# ----------------------------------------------------------------------
# max_connections: wait for a slot, evict silent connections
# ----------------------------------------------------------------------
def test_global_max_connections_waits_for_a_slot(make_stack):
    """At credgate.max_connections a new connection waits, unread, until
    one closes (credgate(8) and credgate.conf(5) say so); one that waits
    longer than the header timeout is answered 503."""
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"max_connections": 3,
                                      "timeouts": {"client_header": "2s"}})
    no_connections_open(s)
    token = s.token()
    held = served(s, 3, token)
    extra = s.raw()
    extra.send(request_bytes(token))
    assert no_answer_within(extra, 0.6), "a connection over the limit was answered at once"
    held.pop().close()
    r = extra.read_response()
    assert r.status == 200, r
    assert refused(s, "global_limit") == 0

    # Full again: one that waits past the header timeout gets 503.
    late = s.raw()
    t0 = time.monotonic()
    r = late.read_response()
    waited = time.monotonic() - t0
    assert r.status == 503, r
    assert 1.5 < waited < 4.5, f"answered after {waited:.2f}s, header timeout 2s"
    assert_closed(late)
    late.close()
    assert wait_for(lambda: refused(s, "wait_timeout") == 1)
    for c in held + [extra]:
        assert get(c, "/b.txt", token).status == 200, "a held connection stopped serving"
        c.close()


def test_route_max_connections_waits_and_other_routes_serve(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s, max_connections=2), route_for(s, "other")])
    no_connections_open(s)
    token = s.token()
    held = served(s, 2, token)
    extra = s.raw()
    extra.send(request_bytes(token))
    assert no_answer_within(extra, 0.6), "a connection over the route's limit was answered"
    other = s.raw("other")
    assert get(other, "/a.txt", token).status == 200, \
        "another route is limited by this route's max_connections"
    other.close()
    held.pop().close()
    assert extra.read_response().status == 200
    m = metrics(s)
    assert m("credgate_connections_refused_total", route="legacy", reason="route_limit") == 0
    for c in held + [extra]:
        c.close()


def test_silent_connection_is_evicted_at_the_limit(make_stack):
    """When slots run short, a connection that never sent a request head
    makes room before anybody waits."""
    s = make_stack(start=False)
    # Eviction looks among the connections of the worker that accepted.
    launch(s, [route_for(s)], extra={"max_connections": 3, "workers": 1})
    no_connections_open(s)
    token = s.token()
    busy = served(s, 2, token)
    silent = s.raw()
    assert wait_for(lambda: open_count(s) == 3)
    t0 = time.monotonic()
    new = s.raw()
    assert get(new, "/a.txt", token).status == 200
    assert time.monotonic() - t0 < 1.0, "the new connection waited instead of evicting"
    assert silent.closed_within(2), "the silent connection was not closed"
    assert wait_for(lambda: metrics(s)("credgate_connections_evicted_total",
                                       route="legacy") == 1)
    for c in busy:      # connections that sent a request are never evicted
        assert get(c, "/b.txt", token).status == 200
        c.close()
    new.close()
    silent.close()


# ----------------------------------------------------------------------
# Floods of connections that send nothing
# ----------------------------------------------------------------------
class Flood:
    """Holds up to per_address silent connections from each of the given
    source addresses, reopening those that credgate closes, until stop()."""

    def __init__(self, port, sources, per_address):
        self.port, self.sources, self.per = port, sources, per_address
        self.stopping = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        held = {src: [] for src in self.sources}
        deadline = time.monotonic() + 30
        while not self.stopping.is_set() and time.monotonic() < deadline:
            for src, socks in held.items():
                for sk in list(socks):          # drop those credgate closed
                    sk.setblocking(False)
                    try:
                        if sk.recv(1024) == b"":
                            raise ConnectionResetError
                    except BlockingIOError:
                        continue
                    except OSError:
                        pass
                    socks.remove(sk)
                    sk.close()
                while len(socks) < self.per and not self.stopping.is_set():
                    try:
                        socks.append(socket.create_connection(
                            ("127.0.0.1", self.port), timeout=2, source_address=(src, 0)))
                        self.opened += 1
                    except OSError:
                        break
            self.stopping.wait(0.02)
        for socks in held.values():
            for sk in socks:
                sk.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(10)


def legit_callers_served(s, token, n=36):
    statuses = []
    for _ in range(n):
        c = RawClient(s.ports["legacy"], 5, s.seen)
        try:
            statuses.append(get(c, "/a.txt", token).status)
        except (OSError, EOFError, AssertionError) as e:
            statuses.append(repr(e))
        finally:
            c.close()
    return statuses


def test_flood_from_one_address_is_held_to_its_limit(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"max_connections": 60, "max_pending_per_client": 10})
    no_connections_open(s)
    token = s.token()
    flood = Flood(s.ports["legacy"], ["127.0.0.2"], 100)
    try:
        assert wait_for(lambda: refused(s, "client_limit") >= 20, timeout=10), \
            "the flooding address was not limited"
        statuses = legit_callers_served(s, token)
    finally:
        flood.stop()
    assert statuses == [200] * len(statuses), statuses
    assert open_count(s) <= 60


def test_flood_from_many_addresses_evicts_silent_connections(make_stack):
    """Each address stays under its own limit, together they fill every
    slot: silent connections make room for callers that send a request."""
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"max_connections": 40, "max_pending_per_client": 5})
    no_connections_open(s)
    token = s.token()
    sources = [f"127.0.1.{i}" for i in range(1, 21)]
    flood = Flood(s.ports["legacy"], sources, 4)
    try:
        assert wait_for(lambda: open_count(s) >= 40, timeout=10), "the flood did not fill up"
        statuses = legit_callers_served(s, token)
        evicted = metrics(s)("credgate_connections_evicted_total", route="legacy")
    finally:
        flood.stop()
    assert statuses == [200] * len(statuses), statuses
    assert evicted >= len(statuses), evicted


# ----------------------------------------------------------------------
# Upstream connections between requests
# ----------------------------------------------------------------------
def upstream_connections(port):
    """Established TCP connections to 127.0.0.1:port, seen from the
    connecting side (credgate's, since nothing else connects there)."""
    n = 0
    for line in read_text("/proc/net/tcp").splitlines()[1:]:
        f = line.split()
        rem, state = f[2], f[3]
        if state == "01" and int(rem.split(":")[1], 16) == port:
            n += 1
    return n


def test_idle_callers_hold_no_upstream_connection(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s)], extra={"workers": 1})     # each worker has its pool
    no_connections_open(s)
    token = s.token()
    callers = []
    for _ in range(30):
        c = s.raw()
        assert get(c, "/a.txt", token).status == 200
        callers.append(c)
    # Thirty callers keep their connections open and idle; the upstream
    # connection went back to the pool after each response and served
    # the next caller.
    assert upstream_connections(s.nginx.port) == 1, upstream_connections(s.nginx.port)
    for c in callers:
        assert get(c, "/b.txt", token).status == 200
        c.close()


def read_length(sock):
    """Reads one Content-Length response; returns the body's length."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    want = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")))
    got = len(body)
    while got < want:
        chunk = sock.recv(1 << 20)
        assert chunk, "closed inside the body"
        got += len(chunk)
    return got


def test_upstream_pool_is_bounded_per_route(make_stack):
    s = make_stack(start=False)
    launch(s, [route_for(s, upstream={"host": "127.0.0.1", "port": s.nginx.port,
                                      "keepalive": 2})],
           extra={"workers": 1})
    no_connections_open(s)
    # Larger than what the socket buffers between nginx and a caller hold.
    big = "x" * (48 * 1024 * 1024)
    with open(f"{s.nginx.dir}/www/big.txt", "w") as f:
        f.write(big)
    token = s.token()
    # Six callers ask for a large file and do not read it yet: each holds
    # an upstream connection whose response is stuck behind the caller.
    callers = [s.raw() for _ in range(6)]
    for c in callers:
        c.send(request_bytes(token, "/big.txt"))
    assert wait_for(lambda: upstream_connections(s.nginx.port) == 6, timeout=5), \
        upstream_connections(s.nginx.port)
    for c in callers:
        assert read_length(c.sock) == len(big)
    big = None
    assert wait_for(lambda: upstream_connections(s.nginx.port) == 2, timeout=3), \
        f"{upstream_connections(s.nginx.port)} upstream connections kept, keepalive = 2"
    for c in callers:
        c.close()


# ----------------------------------------------------------------------
# Lingering close
# ----------------------------------------------------------------------
def send_for(sock, seconds, chunk=b"y" * 16384):
    """Sends for that long; returns the error that stopped it, if any."""
    end = time.monotonic() + seconds
    sock.settimeout(1)
    try:
        while time.monotonic() < end:
            sock.sendall(chunk)
            time.sleep(0.005)
    except OSError as e:
        return e
    return None


def test_early_answer_lingers_instead_of_resetting(make_stack):
    """A 413 sent while the caller is still sending its body: credgate
    shuts its side and reads and drops the rest, so the caller's sends
    meet no reset and its connection ends with a clean close."""
    s = make_stack(start=False)
    launch(s, [route_for(s, max_body=1000)])
    no_connections_open(s)
    c = s.raw()
    c.send((f"POST /upload/x HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}\r\n"
            f"Content-Length: 50000000\r\n\r\n").encode() + b"y" * 65536)
    r = c.read_response()
    assert r.status == 413, r
    err = send_for(c.sock, 0.5)
    assert err is None, f"the caller's body met {err!r} after the early answer"
    c.sock.shutdown(socket.SHUT_WR)
    c.sock.settimeout(5)
    try:
        rest = c.sock.recv(1024)
    except ConnectionResetError:
        rest = None
    assert rest == b"", f"the connection ended with {rest!r}, not a clean close"
    c.close()
    end = s.cg.audit_where(lambda e: e.get("event") == "session_end")
    assert end and end[-1]["reason"] == "request body over max_body", end


def test_lingering_is_bounded(make_stack):
    """A caller that keeps sending after the early answer is cut off once
    it has sent more than credgate reads and drops."""
    s = make_stack(start=False)
    launch(s, [route_for(s, max_body=1000)])
    no_connections_open(s)
    c = s.raw()
    c.send((f"POST /upload/x HTTP/1.1\r\nHost: legacy\r\nAuthorization: Bearer {s.token()}\r\n"
            f"Content-Length: 500000000\r\n\r\n").encode())
    assert c.read_response().status == 413
    err = send_for(c.sock, 12, chunk=b"y" * 262144)
    assert isinstance(err, (ConnectionResetError, BrokenPipeError)), \
        f"credgate kept reading: {err!r}"
    c.close()
