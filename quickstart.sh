#!/bin/sh
# quickstart.sh: install what credgate needs (Debian 12), build it, and run
# a demo: a legacy HTTP service (nginx with auth_basic, a static password)
# and a PostgreSQL database (a service account with a password) behind
# credgate, reached with a short-lived signed token instead of either
# password.  Everything the demo writes lives in one temporary folder on
# loopback, removed on exit.
#
#   ./quickstart.sh           install, build, run the demo until Ctrl-C
#   ./quickstart.sh --check   run the demo once; exit 0 only if the legacy
#                             service and the database answered through
#                             credgate
#
# The Debian packages come from packaging/dev-packages: after this script,
# `make check` has all it needs.  With CREDGATE=/path/to/credgate set,
# installing and building are skipped.  PG_BINDIR names the folder of
# PostgreSQL's programs (default: the newest /usr/lib/postgresql/*/bin).
set -eu

check=0
for arg in "$@"; do
	case $arg in
	--check) check=1 ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "quickstart.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
	esac
done

PYTHON3=${PYTHON3:-/usr/bin/python3}
srcdir=$(cd "$(dirname "$0")" && pwd)

say() { printf '\n==> %s\n' "$*"; }

# ----------------------------------------------------------------------
# 1. Install and build (skipped when CREDGATE names a built binary)
# ----------------------------------------------------------------------
if [ -z "${CREDGATE:-}" ]; then
	# Everything the build and `make check` need, from the one list that
	# .ci/run and the tests read too.
	list=$srcdir/packaging/dev-packages
	[ -r "$list" ] || { echo "quickstart.sh: $list not found" >&2; exit 1; }
	PACKAGES=$(sed 's/#.*//' "$list")
	missing=""
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		say "installing:$missing"
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo=sudo
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
		# shellcheck disable=SC2086
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends $missing
	fi
	say "building credgate"
	cd "$srcdir"
	[ -x configure ] || autoreconf -fi
	[ -f Makefile ] || ./configure
	make -j"$(nproc)"
	CREDGATE=$srcdir/credgate
fi
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
for tool in "$CREDGATE" "$NGINX" "$PYTHON3" curl openssl; do
	command -v "$tool" >/dev/null 2>&1 || { echo "quickstart.sh: $tool not found" >&2; exit 1; }
done
# Debian keeps PostgreSQL's programs off PATH, in a folder per major
# version: take the newest.
if [ -z "${PG_BINDIR:-}" ]; then
	PG_BINDIR=/usr/lib/postgresql/VERSION/bin
	newest=0
	for d in /usr/lib/postgresql/*/bin; do
		v=${d#/usr/lib/postgresql/}
		v=${v%/bin}
		case $v in ''|*[!0-9]*) continue ;; esac
		[ "$v" -gt "$newest" ] || continue
		newest=$v
		PG_BINDIR=$d
	done
fi
for tool in initdb postgres; do
	[ -x "$PG_BINDIR/$tool" ] || {
		echo "quickstart.sh: PostgreSQL's $tool not found in $PG_BINDIR:" \
			"install the Debian package postgresql" >&2; exit 1; }
done
[ -x "$PG_BINDIR/psql" ] || {
	echo "quickstart.sh: psql not found in $PG_BINDIR:" \
		"install the Debian package postgresql-client" >&2; exit 1; }
# postgres refuses to run as root: as root, initdb and postgres run as
# nobody.  setpriv execs, so the PID of a server started in the background
# is the server's own.
as_pg=""
if [ "$(id -u)" -eq 0 ]; then
	if ! pg_uid=$(id -u nobody 2>/dev/null) || ! pg_gid=$(id -g nobody); then
		echo "quickstart.sh: no user nobody to run PostgreSQL as" >&2; exit 1
	fi
	as_pg="setpriv --reuid=$pg_uid --regid=$pg_gid --clear-groups --"
fi

# ----------------------------------------------------------------------
# 2. The demo folder, and stopping everything on the way out
# ----------------------------------------------------------------------
work=$(mktemp -d -t credgate-quickstart.XXXXXX)
nginx_pid=""
credgate_pid=""
pg_pid=""
cleanup() {
	trap - EXIT INT TERM
	for pid in $credgate_pid $nginx_pid; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $credgate_pid $nginx_pid; do
		wait "$pid" 2>/dev/null || true
	done
	# SIGINT is PostgreSQL's fast shutdown: it ends the sessions left,
	# where SIGTERM would wait for them.
	if [ -n "$pg_pid" ]; then
		kill -INT "$pg_pid" 2>/dev/null || true
		wait "$pg_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

show_logs() {
	echo "--- credgate log" >&2; cat "$work/credgate.log" >&2 || true
	echo "--- nginx error log" >&2; cat "$work/nginx/error.log" >&2 || true
	if [ -f "$work/pg/postgres.log" ]; then
		echo "--- postgres log" >&2; cat "$work/pg/postgres.log" >&2 || true
	fi
}

wait_port() {	# port pid what
	i=0
	until "$PYTHON3" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null; do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "quickstart.sh: $3 exited before listening" >&2; show_logs; exit 1
		fi
		i=$((i + 1))
		if [ $i -ge 100 ]; then
			echo "quickstart.sh: $3 not listening on port $1 after 10s" >&2; show_logs; exit 1
		fi
		sleep 0.1
	done
}

# Four free loopback ports, chosen by the kernel.
# shellcheck disable=SC2046
set -- $("$PYTHON3" -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
')
legacy_port=$1
proxy_port=$2
pg_port=$3
pg_proxy_port=$4

# ----------------------------------------------------------------------
# 3. Keys, JWKS, the legacy passwords and the htpasswd
# ----------------------------------------------------------------------
say "creating a signing key, its JWKS and the legacy passwords in $work"
umask 077
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/signing.pem" 2>/dev/null
"$PYTHON3" - "$work/signing.pem" "$work/jwks.json" <<'EOF'
import base64, json, sys
from cryptography.hazmat.primitives import serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
n = key.public_key().public_numbers()
b64 = lambda i: base64.urlsafe_b64encode(i.to_bytes(32, "big")).rstrip(b"=").decode()
jwk = {"kty": "EC", "crv": "P-256", "kid": "demo-1", "use": "sig", "alg": "ES256",
       "x": b64(n.x), "y": b64(n.y)}
json.dump({"keys": [jwk]}, open(sys.argv[2], "w"), indent=1)
EOF
password=$(openssl rand -hex 16)
pg_password=$(openssl rand -hex 16)
printf '{"demo/legacy": {"username": "svc", "password": "%s", "version": "1"},\n "demo/inventory": {"username": "svc_inventory", "password": "%s", "version": "1"}}\n' \
	"$password" "$pg_password" > "$work/secrets.json"
mkdir -p "$work/nginx/www"
printf 'svc:%s\n' "$(printf '%s' "$password" | openssl passwd -apr1 -stdin)" > "$work/nginx/htpasswd"
unset password
umask 022
echo "Hello from the legacy service: you are in." > "$work/nginx/www/index.html"
chmod -R a+rX "$work/nginx"

# ----------------------------------------------------------------------
# 4. The legacy service: nginx, Basic auth only, loopback
# ----------------------------------------------------------------------
temps=""
for t in client_body proxy fastcgi uwsgi scgi; do
	printf 'error_log %s/probe.log; pid %s/probe.pid; events {} http { %s_temp_path %s/%s_temp; }\n' \
		"$work" "$work" "$t" "$work" "$t" > "$work/probe.conf"
	if ! "$NGINX" -t -q -p "$work" -c "$work/probe.conf" -e "$work/probe.log" 2>&1 |
		grep -q 'unknown directive'; then
		temps="$temps	${t}_temp_path $work/${t}_temp;
"
	fi
done
rm -f "$work/probe.conf" "$work/probe.log"
cat > "$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
$temps	default_type text/plain;
	access_log $work/nginx/access.log;
	server {
		listen 127.0.0.1:$legacy_port;
		root $work/nginx/www;
		location / {
			auth_basic "legacy";
			auth_basic_user_file $work/nginx/htpasswd;
		}
	}
}
EOF
say "starting the legacy service (nginx, Basic auth) on 127.0.0.1:$legacy_port"
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" \
	</dev/null >"$work/nginx/stdout.log" 2>&1 &
nginx_pid=$!
wait_port "$legacy_port" "$nginx_pid" nginx

# ----------------------------------------------------------------------
# 5. The legacy database: PostgreSQL, a service account with a password
# ----------------------------------------------------------------------
say "starting the legacy database (PostgreSQL, SCRAM-SHA-256) on 127.0.0.1:$pg_port"
mkdir -m 0700 "$work/pg"
if [ -n "$as_pg" ]; then
	# nobody may pass through the demo folder (not list it) to its own.
	chmod 0711 "$work"
	chown "$pg_uid:$pg_gid" "$work/pg"
	$as_pg test -w "$work/pg" || {
		echo "quickstart.sh: user nobody cannot reach $work/pg: set TMPDIR to a" \
			"folder that every user may pass through, such as /tmp" >&2; exit 1; }
fi
# --no-sync, and fsync = off below: the data is thrown away at the end.
(cd "$work/pg" && $as_pg "$PG_BINDIR/initdb" -D "$work/pg/data" -U postgres -E UTF8 \
	--locale=C --auth-local=trust --auth-host=scram-sha-256 --no-sync \
	>"$work/pg/initdb.log" 2>&1) ||
	{ cat "$work/pg/initdb.log" >&2; echo "quickstart.sh: initdb failed" >&2; exit 1; }
# The superuser over the Unix socket only, for the setup: its folder is
# the server user's own.  Everyone else over loopback TCP with a SCRAM
# password, as credgate logs in.
cat > "$work/pg/data/pg_hba.conf" <<EOF
local	all	postgres			trust
host	all	all		127.0.0.1/32	scram-sha-256
EOF
cat >> "$work/pg/data/postgresql.conf" <<EOF

# quickstart.sh
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/pg'
password_encryption = 'scram-sha-256'
fsync = off
# A failing CREATE ROLE would otherwise be logged with its password.
log_min_error_statement = panic
EOF
(cd "$work/pg" && exec $as_pg "$PG_BINDIR/postgres" -D "$work/pg/data") \
	</dev/null >"$work/pg/postgres.log" 2>&1 &
pg_pid=$!
psql_admin() {	# psql arguments...
	"$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/pg" -p "$pg_port" -U postgres "$@"
}
# Ready when it answers a query: it listens before it takes logins.
i=0
until psql_admin -d postgres -c 'select 1' >/dev/null 2>&1; do
	if ! kill -0 "$pg_pid" 2>/dev/null; then
		echo "quickstart.sh: postgres exited before it answered" >&2; show_logs; exit 1
	fi
	i=$((i + 1))
	if [ $i -ge 100 ]; then
		echo "quickstart.sh: postgres not answering on port $pg_port after 10s" >&2
		show_logs; exit 1
	fi
	sleep 0.1
done
# The service account's password reaches psql on its standard input
# (printf is built in), never a command line; on failure, psql's error
# lines are shown without the statement they quote.
printf '%s\n' "\\set pw $pg_password" \
	"CREATE ROLE svc_inventory LOGIN PASSWORD :'pw';" \
	"CREATE DATABASE inventory OWNER svc_inventory;" \
	"\\connect inventory" \
	"SET ROLE svc_inventory;" \
	"CREATE TABLE parts (id int PRIMARY KEY, name text NOT NULL, stock int NOT NULL);" \
	"INSERT INTO parts VALUES (1, 'gear', 12), (2, 'bolt', 250), (3, 'spring', 40);" |
	psql_admin -d postgres >"$work/pg/setup.log" 2>&1 || {
		grep -E '^psql:|ERROR|FATAL' "$work/pg/setup.log" >&2 || true
		echo "quickstart.sh: creating the demo database failed" >&2; exit 1; }
unset pg_password

# ----------------------------------------------------------------------
# 6. credgate in front of both
# ----------------------------------------------------------------------
cat > "$work/credgate.conf" <<EOF
# credgate demo: callers bring a token from the "demo" issuer; credgate
# checks it, then logs in to the legacy service with its Basic password,
# or to the database as its service account.
credgate = {
	log_level = "info";
	audit = { stdout = true; };
};
issuers = (
	{
		name = "demo";
		issuer = "https://issuer.demo.invalid";
		audiences = ["credgate"];
		algorithms = ["ES256"];
		jwks_file = "$work/jwks.json";
		max_lifetime = "1h";
		audit_claims = ["repository"];
	}
);
secrets = {
	backend = "file";
	file = "$work/secrets.json";
};
routes = (
	{
		name = "legacy";
		listen = "127.0.0.1:$proxy_port";
		upstream = { host = "127.0.0.1"; port = $legacy_port; };
		credential = { path = "demo/legacy"; inject = "basic"; };
		owner = "demo@example.com";
		purpose = "quick start demo";
		environment = "demo";
		expires = "2099-12-31";
		allow = (
			{ name = "demo-readers"; issuer = "demo";
			  claims = ( { claim = "repository"; value = "acme/*"; } );
			  methods = ["GET", "HEAD"]; }
		);
	},
	{
		# psql and the like send the token as their password; credgate
		# logs in upstream as the service account of the secret, with
		# SCRAM-SHA-256.
		name = "inventory";
		protocol = "postgres";
		listen = "127.0.0.1:$pg_proxy_port";
		upstream = { host = "127.0.0.1"; port = $pg_port; };
		credential = { path = "demo/inventory"; };
		postgres = {
			# The token crosses this listener in clear: acceptable only
			# because it listens on loopback.  Anywhere else, give the
			# route tls = { cert = "..."; key = "..."; } instead.
			allow_plaintext_token = true;
		};
		owner = "demo@example.com";
		purpose = "quick start demo";
		environment = "demo";
		expires = "2099-12-31";
		allow = (
			{ name = "demo-inventory"; issuer = "demo";
			  claims = ( { claim = "repository"; value = "acme/*"; } );
			  attributes = ( { attribute = "database"; value = "inventory"; } ); }
		);
	}
);
EOF
"$CREDGATE" -t -c "$work/credgate.conf"
say "starting credgate on 127.0.0.1:$proxy_port (HTTP) and 127.0.0.1:$pg_proxy_port (PostgreSQL)"
"$CREDGATE" -c "$work/credgate.conf" </dev/null >"$work/audit.jsonl" 2>"$work/credgate.log" &
credgate_pid=$!
wait_port "$proxy_port" "$credgate_pid" credgate
wait_port "$pg_proxy_port" "$credgate_pid" credgate

# ----------------------------------------------------------------------
# 7. A token, the request, and the audit event
# ----------------------------------------------------------------------
token=$("$PYTHON3" - "$work/signing.pem" <<'EOF'
import sys, time, secrets, jwt
key = open(sys.argv[1], "rb").read()
now = int(time.time())
print(jwt.encode({"iss": "https://issuer.demo.invalid", "sub": "demo-user", "aud": "credgate",
                  "iat": now, "exp": now + 300, "jti": secrets.token_hex(8),
                  "repository": "acme/app"}, key, algorithm="ES256",
                 headers={"kid": "demo-1"}))
EOF
)
say "a token valid for 5 minutes; the request (the caller never sees the password):"
echo "curl -H 'Authorization: Bearer $token' http://127.0.0.1:$proxy_port/"
answer=$(curl -sS --max-time 10 -H "Authorization: Bearer $token" "http://127.0.0.1:$proxy_port/") || true
say "the legacy service answered:"
echo "$answer"
expected=$(cat "$work/nginx/www/index.html")
i=0
while ! grep -q '"event":"decision"' "$work/audit.jsonl" 2>/dev/null && [ $i -lt 30 ]; do
	sleep 0.1; i=$((i + 1))
done
say "the audit event credgate wrote:"
grep '"event":"decision"' "$work/audit.jsonl" | tail -n 1 | "$PYTHON3" -m json.tool || true

if [ "$answer" != "$expected" ]; then
	echo "quickstart.sh: the request through credgate did not return the legacy answer" >&2
	show_logs
	exit 1
fi

# ----------------------------------------------------------------------
# 8. The same token as psql's password, and the audit event of the login
# ----------------------------------------------------------------------
pg_conninfo="host=127.0.0.1 port=$pg_proxy_port dbname=inventory user=demo sslmode=disable"
pg_query="select current_user, current_database(), count(*) as parts from parts"
say "the same token as psql's password (the caller never sees the service account's):"
echo "PGPASSWORD='$token' psql -X \"$pg_conninfo\" -c \"$pg_query\""
pg_answer=$(PGPASSWORD=$token timeout 20 "$PG_BINDIR/psql" -X "$pg_conninfo" -c "$pg_query" 2>&1) ||
	true
say "the database answered, as the service account:"
echo "$pg_answer"
pg_decision() {
	grep '"event":"decision"' "$work/audit.jsonl" 2>/dev/null | grep '"route":"inventory"'
}
i=0
while ! pg_decision >/dev/null && [ $i -lt 30 ]; do
	sleep 0.1; i=$((i + 1))
done
say "the audit event of that login:"
pg_decision | tail -n 1 | "$PYTHON3" -m json.tool || true

if ! printf '%s\n' "$pg_answer" | grep -Eq '^ *svc_inventory +\| +inventory +\| +3 *$'; then
	echo "quickstart.sh: psql through credgate did not get the service account's answer" >&2
	show_logs
	exit 1
fi
if [ "$check" -eq 1 ]; then
	say "check passed"
	exit 0
fi
say "credgate, the legacy service and the database keep running; press Ctrl-C to stop and clean up"
wait "$credgate_pid"
