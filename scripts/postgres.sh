#!/usr/bin/env bash
# Start a throwaway local PostgreSQL server for tests and CI, and print its URL on stdout.
#
#   export SYNTHKIT_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)   # start (or reuse) one
#   bash scripts/postgres.sh --stop "$SYNTHKIT_TEST_POSTGRES_URL"   # stop that server only
#   bash scripts/postgres.sh --stop                                 # stop every server this script started
#
# Why this shape: the Postgres tests must run against a REAL server (never a mock), CI
# runs as root and PostgreSQL refuses to run as root, and nothing may listen beyond the
# loopback address. So the server runs as an unprivileged user (the `postgres` system
# user, or `synthkit-pg` created here), listens on 127.0.0.1 on a free port, keeps its
# data under a fresh temporary folder, and requires a password (scram-sha-256) over TCP
# so that login failures can be tested. The password is random per server and is only
# ever printed inside the URL on stdout; everything else goes to stderr.
#
# If SYNTHKIT_TEST_POSTGRES_URL is already set, it is printed unchanged (a server that
# is already running is reused). If PostgreSQL is not installed, Debian's `postgresql`
# package is installed with apt-get when running as root; otherwise the script says how.
set -euo pipefail

STATE_GLOB="${TMPDIR:-/tmp}/synthkit-pg.*"

say() { echo "postgres.sh: $*" >&2; }

as_owner() {  # run a command as the server's owner
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    # with a URL, only the server listening on that URL's port (another run's server, e.g. a
    # second CI on the same machine, is left alone); without one, every server of this script
    ONLY_PORT=""
    if [ -n "${2:-}" ]; then
        ONLY_PORT=$(printf '%s' "$2" | sed -n 's#^postgresql://[^@]*@127\.0\.0\.1:\([0-9][0-9]*\)/.*#\1#p')
        [ -n "$ONLY_PORT" ] || { say "--stop: not a URL printed by this script; nothing stopped"; exit 0; }
    fi
    for dir in $STATE_GLOB; do
        [ -f "$dir/data/PG_VERSION" ] || continue
        if [ -n "$ONLY_PORT" ] && [ "$(cat "$dir/port" 2>/dev/null)" != "$ONLY_PORT" ]; then continue; fi
        PG_USER=$(stat -c %U "$dir/data")
        BIN=$(cat "$dir/bindir")
        as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
        rm -rf "$dir"
        say "stopped and removed $dir"
    done
    exit 0
fi

if [ -n "${SYNTHKIT_TEST_POSTGRES_URL:-}" ]; then
    say "SYNTHKIT_TEST_POSTGRES_URL is already set; reusing that server"
    echo "$SYNTHKIT_TEST_POSTGRES_URL"
    exit 0
fi

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir)
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    fi
    return 1
}

if ! BIN=$(find_bindir); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "PostgreSQL is not installed; installing Debian's postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends postgresql >&2
        BIN=$(find_bindir) || { say "postgresql was installed but initdb was not found"; exit 1; }
    else
        say "PostgreSQL is not installed. Install it (Debian/Ubuntu: sudo apt-get install postgresql;"
        say "macOS: brew install postgresql@15), or point SYNTHKIT_TEST_POSTGRES_URL at a test server."
        exit 1
    fi
fi

if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then
        PG_USER=postgres
    else
        PG_USER=synthkit-pg
        id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    fi
else
    PG_USER=$(id -un)
fi

STATE=$(mktemp -d "${TMPDIR:-/tmp}/synthkit-pg.XXXXXX")
chmod 755 "$STATE"
echo "$BIN" > "$STATE/bindir"
mkdir -p "$STATE/data" "$STATE/socket"
[ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$STATE/data" "$STATE/socket"

PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
DB_USER=synthkit
DB_NAME=synthkit_test

# a free port on the loopback address (bind to port 0 and let the kernel choose)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
       || echo $(( 20000 + RANDOM % 20000 )))
echo "$PORT" > "$STATE/port"

# local socket: trust (only the owner can reach the socket folder); TCP: password (scram)
as_owner "$BIN/initdb" -D "$STATE/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$STATE/initdb.log" 2>&1 \
    || { say "initdb failed; see $STATE/initdb.log"; exit 1; }

as_owner "$BIN/pg_ctl" -D "$STATE/data" -l "$STATE/data/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $STATE/socket -c fsync=off -c full_page_writes=off" start >&2 \
    || { say "the server did not start; see $STATE/data/server.log"; exit 1; }

psql_admin() { as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$STATE/socket" -p "$PORT" -U postgres -d postgres "$@"; }
psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$PASSWORD'" >&2
psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2

say "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') running as $PG_USER on 127.0.0.1:$PORT (data $STATE/data); stop with: bash scripts/postgres.sh --stop"
echo "postgresql://$DB_USER:$PASSWORD@127.0.0.1:$PORT/$DB_NAME"
