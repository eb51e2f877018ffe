"""The injected credential never comes back to the caller.

A real nginx is the upstream.  Its directory redirect appends the
request's query, so on an inject = "query" route it answers
"GET /dir?api_key=<secret>" with "301 Location: .../dir/?api_key=<secret>";
add_header echoes request fields (the query parameter, Authorization, the
injected header) into response fields.  credgate must strip the parameter
from URL fields, keeping the rest of the URL, and leave out every other
field that holds the secret in any spelling; the audit names the fields
and the metric counts the response.
"""

import base64
import http.client
import json
import os
import urllib.parse

import pytest

from conftest import (CANARY, CANARY_TOKEN, SECRET_USER, base_route, free_port, read_text,
                      wait_for, wait_port)

# A token that needs percent-encoding; it starts with the suite's canary, so
# the teardown's leak check covers it as well.
ECHO_TOKEN = CANARY_TOKEN + "/+ x~"


def spellings(secret):
    """Every spelling of secret that would betray it."""
    out = {secret,
           urllib.parse.quote(secret, safe=""),
           urllib.parse.quote(secret, safe="").lower(),
           urllib.parse.quote(secret, safe="~-._").replace("%7E", "~"),
           urllib.parse.quote_plus(secret, safe=""),
           urllib.parse.quote(secret),
           base64.b64encode(secret.encode()).decode().rstrip("=")}
    return out


def secret_spellings():
    out = set()
    for s in (ECHO_TOKEN, CANARY_TOKEN, CANARY):
        out |= spellings(s)
    out.add(base64.b64encode(f"{SECRET_USER}:{CANARY}".encode()).decode().rstrip("="))
    return out


def assert_no_secret(resp):
    text = resp.reason + "\n" + "\n".join(f"{n}: {v}" for n, v in resp.headers)
    found = [s for s in secret_spellings() if s in text]
    assert not found, f"the secret came back ({found}) in {resp.headers}"


def echo_server(nginx, port):
    """An nginx server block whose locations echo the credential back."""
    d = nginx.dir
    return f"""\tserver {{
\t\tlisten 127.0.0.1:{port};
\t\tserver_name echo;
\t\troot {d}/www;
\t\tlocation /q/ {{
\t\t\tadd_header X-Echo $arg_api_key always;
\t\t\tadd_header Link "</q/next?api_key=$arg_api_key&page=2>; rel=next" always;
\t\t\tadd_header Refresh "5; url=/q/later?page=3&api_key=$arg_api_key" always;
\t\t\tadd_header X-Plain "nothing secret" always;
\t\t}}
\t\tlocation = /q/moved {{
\t\t\treturn 302 /q/gone/$arg_api_key/;
\t\t}}
\t\tlocation /h/ {{
\t\t\tauth_basic "legacy";
\t\t\tauth_basic_user_file {d}/htpasswd;
\t\t\tadd_header X-Echo $http_authorization always;
\t\t\tadd_header X-Plain "nothing secret" always;
\t\t}}
\t\tlocation /n/ {{
\t\t\tadd_header X-Plain "nothing secret" always;
\t\t}}
\t\tlocation /k/ {{
\t\t\tadd_header X-Echo $http_authorization always;
\t\t\tadd_header X-Key-Echo $http_x_api_key always;
\t\t\tadd_header X-Plain "nothing secret" always;
\t\t}}
\t}}
"""


def add_nginx_server(nginx, text):
    conf = read_text(nginx.conf)
    end = conf.rstrip().rfind("}")
    with open(nginx.conf, "w") as f:
        f.write(conf[:end] + text + "}\n")


def write_files(nginx):
    www = os.path.join(nginx.dir, "www")
    for sub in ("q", "h", "k", "n"):
        os.makedirs(os.path.join(www, sub, "dir"), exist_ok=True)
        with open(os.path.join(www, sub, "a.txt"), "w") as f:
            f.write(f"{sub} file\n")
        with open(os.path.join(www, sub, "dir", "index.html"), "w") as f:
            f.write(f"{sub} dir\n")


def add_secret(cg):
    with open(cg.secrets_file) as f:
        store = json.load(f)
    store["legacy/echo"] = {"token": ECHO_TOKEN, "version": "3"}
    with open(cg.secrets_file, "w") as f:
        json.dump(store, f)


CREDENTIALS = {
    "query": {"path": "legacy/echo", "inject": "query", "query_param": "api_key",
              "field": "token"},
    "basic": {"path": "legacy/app", "inject": "basic"},
    "bearer": {"path": "legacy/token", "inject": "bearer", "field": "token"},
    "header": {"path": "legacy/echo", "inject": "header", "header": "X-Api-Key",
               "template": "Key ${token}"},
}


def start_echo(s, secrets_extra=None):
    port = free_port()
    add_nginx_server(s.nginx, echo_server(s.nginx, port))
    write_files(s.nginx)
    add_secret(s.cg)
    routes = []
    for name, cred in CREDENTIALS.items():
        s.ports[name] = free_port()
        r = base_route(name, s.ports[name], port, credential=cred)
        r["allow"][0]["paths"] = ["/*"]
        r["deny"] = []
        routes.append(r)
    s.admin_port = free_port()
    s.start(routes=(), config_text=s.cg.config(
        routes, {"admin": {"listen": f"127.0.0.1:{s.admin_port}"}},
        secrets_extra=secrets_extra))
    wait_port(port, s.nginx.proc, what="nginx")
    wait_port(s.admin_port, s.cg.proc, what="credgate admin endpoint")
    return s


@pytest.fixture
def echo_stack(make_stack):
    return start_echo(make_stack(start=False))


def echo_metric(s, route):
    conn = http.client.HTTPConnection("127.0.0.1", s.admin_port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    key = f'credgate_secret_echo_total{{route="{route}"}} '
    for line in body.splitlines():
        if line.startswith(key):
            return int(float(line[len(key):]))
    raise AssertionError(f"no {key.strip()} in:\n{body}")


def echo_events(s, rid=None):
    return [e for e in s.cg.audit() if e.get("event") == "secret_echo" and
            (rid is None or e.get("request_id") == rid)]


def get(s, route, path, rid):
    return s.request(path=path, route=route, headers={"X-Request-Id": rid})


def test_directory_redirect_keeps_the_url_without_the_secret(echo_stack):
    s = echo_stack
    mark = s.nginx.mark()
    r = get(s, "query", "/q/dir?x=1&y=%2F", "echo-dir")
    assert r.status == 301, r
    assert_no_secret(r)
    # nginx appended the query it got, with the credential, and credgate
    # took the parameter out: the rest of the URL is intact.
    loc = r.header("Location")
    assert loc is not None, r.headers
    assert loc.startswith("http://") and loc.endswith("/q/dir/?x=1&y=%2F"), loc
    assert r.header("X-Echo") is None, r.headers
    assert r.header("Link") == "</q/next?page=2>; rel=next", r.headers
    assert r.header("Refresh") == "5; url=/q/later?page=3", r.headers
    assert r.header("X-Plain") == "nothing secret"
    # The upstream did get the credential.
    line = s.nginx.since(mark)[-1]
    assert "api_key=" + urllib.parse.quote(ECHO_TOKEN, safe="~") in line["uri"], line

    ev = wait_for(lambda: echo_events(s, "echo-dir"))
    assert len(ev) == 1, s.cg.audit()
    e = ev[0]
    assert e["route"] == "query"
    assert sorted(e["scrubbed"]) == ["Link", "Location", "Refresh"], e
    assert e["dropped"] == ["X-Echo"], e
    assert e["fields"] == 4
    assert e["upstream"]["status"] == 301
    assert e["credential"] == {"source": "file", "path": "legacy/echo", "version": "3",
                               "inject": "query"}
    assert echo_metric(s, "query") == 1
    assert echo_metric(s, "basic") == 0
    assert "msg=secret_echo" in s.cg.stderr()


def test_secret_in_the_path_drops_the_location(echo_stack):
    s = echo_stack
    r = get(s, "query", "/q/moved", "echo-moved")
    assert r.status == 302, r
    assert_no_secret(r)
    assert r.header("Location") is None, r.headers
    e = wait_for(lambda: echo_events(s, "echo-moved"))[0]
    assert e["dropped"] == ["Location"] and e["scrubbed"] == [], e


def test_response_without_the_secret_is_untouched(echo_stack):
    s = echo_stack
    r = get(s, "query", "/n/a.txt", "echo-none")
    assert r.status == 200 and r.body == b"n file\n", r
    assert r.header("X-Plain") == "nothing secret"
    # A directory redirect with nothing of the secret in it, on a route
    # that does not inject into the query.
    r = get(s, "bearer", "/n/dir?page=1", "echo-none-dir")
    assert r.status == 301, r
    assert_no_secret(r)
    assert r.header("Location").endswith("/n/dir/?page=1"), r.headers
    wait_for(lambda: [e for e in s.cg.audit() if e.get("request_id") == "echo-none-dir"])
    assert echo_events(s) == []
    assert echo_metric(s, "query") == 0
    assert echo_metric(s, "bearer") == 0


def test_each_echoing_response_is_counted(echo_stack):
    s = echo_stack
    r = get(s, "query", "/q/a.txt", "echo-plain")
    assert r.status == 200 and r.body == b"q file\n", r
    assert_no_secret(r)
    # add_header echoes the parameter on every answer: the echo goes, the
    # rest stays, and only that is counted.
    assert r.header("X-Plain") == "nothing secret"
    assert r.header("Link") == "</q/next?page=2>; rel=next"
    s.request(path="/q/a.txt", route="query")
    wait_for(lambda: len(echo_events(s)) >= 2)
    assert echo_metric(s, "query") == 2


@pytest.mark.parametrize("route,path,dropped", [
    ("basic", "/h/a.txt", ["X-Echo"]),
    ("basic", "/h/dir", ["X-Echo"]),
    ("bearer", "/k/a.txt", ["X-Echo"]),
    ("header", "/k/a.txt", ["X-Key-Echo"]),
])
def test_echoed_credential_header_is_dropped(echo_stack, route, path, dropped):
    s = echo_stack
    rid = f"echo-{route}-{len(path)}"
    r = get(s, route, path, rid)
    assert r.status in (200, 301), r
    assert_no_secret(r)
    for name in dropped:
        assert r.header(name) is None, r.headers
    assert r.header("X-Plain") == "nothing secret"
    if r.status == 301:
        # No query route: the redirect is relayed as it came.
        assert r.header("Location").endswith("/h/dir/"), r.headers
    e = wait_for(lambda: echo_events(s, rid))[0]
    assert e["dropped"] == dropped and e["scrubbed"] == [], e
    assert e["credential"]["inject"] == route
    assert echo_metric(s, route) == 1
    for other in CREDENTIALS:
        if other != route:
            assert echo_metric(s, other) == 0


def test_a_rotated_secret_is_searched_for(make_stack):
    """What responses are searched for is made once per credential: after
    the secret changes, its new value is the one kept out."""
    s = start_echo(make_stack(start=False), secrets_extra={"cache_ttl": "0s"})
    assert get(s, "query", "/q/a.txt", "before").status == 200
    rotated = CANARY_TOKEN + "-rotated/+"
    with open(s.cg.secrets_file) as f:
        store = json.load(f)
    store["legacy/echo"] = {"token": rotated, "version": "4"}
    with open(s.cg.secrets_file, "w") as f:
        json.dump(store, f)

    def fresh():
        r = get(s, "query", "/q/a.txt", "after")
        ev = echo_events(s, "after")
        return r if ev and ev[-1]["credential"]["version"] == "4" else None
    r = wait_for(fresh, timeout=10)
    assert r, "the rotated secret was never used"
    assert r.status == 200
    text = "\n".join(f"{n}: {v}" for n, v in r.headers)
    assert not [x for x in spellings(rotated) if x in text], r.headers
    assert r.header("X-Echo") is None and r.header("X-Plain") == "nothing secret"
