#!/usr/bin/env bash
# Gatehouse's one test command, for developers and CI alike.
#
#   scripts/test.sh               set up, then fmt, clippy and every test
#   scripts/test.sh --setup-only  set up only: services running, test roles present, tools installed
#
# Set-up makes sure PostgreSQL, MariaDB and Redis answer on 127.0.0.1 (starting them, or on
# a Debian machine as root installing them, when needed), creates the `gatehouse_test`
# accounts the integration tests log in with, and checks the Rust tools. It is idempotent:
# running it again changes nothing.
#
# Environment:
#   GATEHOUSE_TEST_POSTGRES_URL  default postgres://gatehouse_test:gatehouse_test@127.0.0.1:5432/postgres
#   GATEHOUSE_TEST_MYSQL_URL     default mysql://gatehouse_test:gatehouse_test@127.0.0.1:3306/mysql
#   GATEHOUSE_TEST_REDIS_URL     default redis://127.0.0.1:6379
#       A URL that points anywhere but this machine's standard port is used as given: the
#       server is only checked for reachability, and its accounts are yours to create.
#   GATEHOUSE_TEST_WAIT_S        how long to wait for a service to answer (default 60)
#   CARGO_TARGET_DIR             default ~/.cache/gatehouse/target, outside the clone, so
#                                fresh CI clones reuse the build cache
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

setup_only=0
for arg in "$@"; do
    case "$arg" in
        --setup-only) setup_only=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            printf 'scripts/test.sh: unknown argument %s\n\n' "$arg" >&2
            usage >&2
            exit 2
            ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export GATEHOUSE_TEST_POSTGRES_URL="${GATEHOUSE_TEST_POSTGRES_URL:-postgres://gatehouse_test:gatehouse_test@127.0.0.1:5432/postgres}"
export GATEHOUSE_TEST_MYSQL_URL="${GATEHOUSE_TEST_MYSQL_URL:-mysql://gatehouse_test:gatehouse_test@127.0.0.1:3306/mysql}"
export GATEHOUSE_TEST_REDIS_URL="${GATEHOUSE_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse/target}"
wait_s="${GATEHOUSE_TEST_WAIT_S:-60}"
log_dir="${TMPDIR:-/tmp}"

# The test accounts. Passwords rather than trust or peer rules, so a stock Debian server
# needs no change to pg_hba.conf.
readonly TEST_USER=gatehouse_test
readonly TEST_PASSWORD=gatehouse_test

# ---------------------------------------------------------------------------------------
# Output and step timing

step_names=()
step_times=()
step_name=""
step_started=0

now_us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }

end_step() {
    local status="$1"
    if [[ -n "$step_name" ]]; then
        step_names+=("$step_name${status:+ ($status)}")
        step_times+=("$(($(now_us) - step_started))")
        step_name=""
    fi
}

# step LABEL [DETAIL]: starts a timed step; LABEL names it in the closing summary.
step() {
    end_step ""
    step_name="$1"
    step_started="$(now_us)"
    printf '\n==> %s\n' "$1${2:+: $2}"
}

print_summary() {
    local rc=$?
    if ((rc != 0)); then end_step FAILED; else end_step ""; fi
    if ((${#step_names[@]} > 0)); then
        printf '\n==> wall time per step\n'
        local i total=0 width=5
        for i in "${!step_names[@]}"; do
            if ((${#step_names[i]} > width)); then width=${#step_names[i]}; fi
        done
        for i in "${!step_names[@]}"; do
            printf '    %-*s %5d.%01ds\n' "$width" "${step_names[i]}" \
                "$((step_times[i] / 1000000))" "$((step_times[i] % 1000000 / 100000))"
            total=$((total + step_times[i]))
        done
        printf '    %-*s %5d.%01ds\n' "$width" total "$((total / 1000000))" "$((total % 1000000 / 100000))"
    fi
    if ((rc != 0)); then printf '\nscripts/test.sh: FAILED (exit %d)\n' "$rc" >&2; fi
    exit "$rc"
}
trap print_summary EXIT

info() { printf '    %s\n' "$*"; }

die() {
    printf '\nscripts/test.sh: error: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do printf '    %s\n' "$line" >&2; done
    exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------
# Helpers for services

# Prints "HOST PORT" of a URL such as postgres://user:pass@host:port/db.
url_host_port() {
    local url="$1" default_port="$2" rest host port
    rest="${url#*://}"
    rest="${rest%%[/?#]*}"
    rest="${rest##*@}"
    if [[ "$rest" == \[* ]]; then # [::1]:5432
        host="${rest%%]*}"
        host="${host#[}"
        port="${rest#*]}"
    else
        host="${rest%%:*}"
        port="${rest#"$host"}"
    fi
    port="${port#:}"
    printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

# True when the URL names this machine's standard port: the server this script manages.
is_local_url() {
    local host port
    read -r host port < <(url_host_port "$1" "$2")
    [[ "$port" == "$2" ]] && [[ "$host" =~ ^(127\.0\.0\.1|localhost|::1)$ ]]
}

tcp_open() {
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments.
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# wait_until DESCRIPTION COMMAND...: polls COMMAND once a second for up to $wait_s seconds.
wait_until() {
    local what="$1" deadline=$((SECONDS + wait_s))
    shift
    until "$@"; do
        if ((SECONDS >= deadline)); then return 1; fi
        sleep 1
    done
    info "$what: answering"
}

postgres_ready() {
    if have pg_isready; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 2 </dev/null
    else
        tcp_open 127.0.0.1 5432
    fi
}

mariadb_admin_bin() {
    if have mariadb-admin; then echo mariadb-admin; elif have mysqladmin; then echo mysqladmin; fi
}

mariadb_ready() {
    local admin
    admin="$(mariadb_admin_bin)"
    if [[ -n "$admin" ]]; then
        # `ping` exits 0 whenever the server answers, even when the login is refused.
        "$admin" --protocol=tcp -h 127.0.0.1 -P 3306 -u "$TEST_USER" -p"$TEST_PASSWORD" --connect-timeout=2 ping \
            </dev/null >/dev/null 2>&1
    else
        tcp_open 127.0.0.1 3306
    fi
}

redis_ready() {
    if have redis-cli; then
        [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping </dev/null 2>/dev/null)" == PONG ]]
    else
        tcp_open 127.0.0.1 6379
    fi
}

apt_updated=0
apt_install() {
    if ((apt_updated == 0)); then
        info "apt-get update"
        apt-get update -qq </dev/null
        apt_updated=1
    fi
    info "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null
}

start_postgres() {
    local version
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
    if [[ -z "$version" ]] || [[ ! -d "/etc/postgresql/$version/main" ]]; then
        # The package is installed but its default cluster is gone: create it again.
        version="${version:-$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)}"
        info "creating PostgreSQL cluster $version/main"
        pg_createcluster "$version" main </dev/null >/dev/null
    fi
    local cluster_port
    cluster_port="$(pg_lsclusters --no-header 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"
    if [[ -n "$cluster_port" ]] && [[ "$cluster_port" != 5432 ]]; then
        die "PostgreSQL cluster $version/main is configured for port $cluster_port, not 5432." \
            "Set \`port = 5432\` in /etc/postgresql/$version/main/postgresql.conf, or point" \
            "GATEHOUSE_TEST_POSTGRES_URL at it (its role $TEST_USER is then yours to create)."
    fi
    if pg_ctlcluster "$version" main status >/dev/null 2>&1; then
        info "PostgreSQL $version/main: running, waiting for it to accept connections"
        return
    fi
    info "starting PostgreSQL $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start </dev/null ||
        die "PostgreSQL $version/main did not start." \
            "Its log: /var/log/postgresql/postgresql-$version-main.log"
}

start_mariadb() {
    info "starting MariaDB"
    # A fresh install has no /run/mysqld (systemd would create it), where mariadbd keeps
    # its socket and pid file.
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    start-stop-daemon --start --oknodo --background \
        --output "$log_dir/gatehouse-test-mariadbd.log" \
        --exec /usr/sbin/mariadbd -- --user=mysql </dev/null
}

start_redis() {
    info "starting Redis"
    # Nothing is kept on disk: test data is throwaway.
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --logfile "$log_dir/gatehouse-test-redis.log" </dev/null >/dev/null
}

# ---------------------------------------------------------------------------------------
# Set-up: services

step services "PostgreSQL, MariaDB, Redis"

# service name | URL | standard port | readiness check | start function | server binary | packages
services=(
    "PostgreSQL|$GATEHOUSE_TEST_POSTGRES_URL|5432|postgres_ready|start_postgres|pg_ctlcluster|postgresql postgresql-client"
    "MariaDB|$GATEHOUSE_TEST_MYSQL_URL|3306|mariadb_ready|start_mariadb|/usr/sbin/mariadbd|mariadb-server mariadb-client"
    "Redis|$GATEHOUSE_TEST_REDIS_URL|6379|redis_ready|start_redis|redis-server|redis-server redis-tools"
)

# First pass: which local servers are down, and which of those are not even installed.
to_start=()
missing_packages=()
missing_names=()
for entry in "${services[@]}"; do
    IFS='|' read -r name url port ready start binary packages <<<"$entry"
    if ! is_local_url "$url" "$port"; then
        read -r host url_port < <(url_host_port "$url" "$port")
        wait_until "$name at $host:$url_port (from its GATEHOUSE_TEST_* URL)" tcp_open "$host" "$url_port" ||
            die "$name at $host:$url_port does not answer after ${wait_s}s." \
                "That address comes from your GATEHOUSE_TEST_* URL; this script does not manage" \
                "servers elsewhere. Start it, or unset the variable to use a local server."
        continue
    fi
    if "$ready"; then
        info "$name on 127.0.0.1:$port: answering"
        continue
    fi
    to_start+=("$entry")
    if ! have "$binary"; then
        read -ra pkgs <<<"$packages"
        missing_packages+=("${pkgs[@]}")
        missing_names+=("$name")
    fi
done

if ((${#missing_packages[@]} > 0)); then
    if is_root && have apt-get; then
        info "not installed: ${missing_names[*]}"
        apt_install "${missing_packages[@]}"
    else
        die "not running and not installed: ${missing_names[*]}." \
            "On Debian or Ubuntu, install them as root:" \
            "    apt-get install ${missing_packages[*]}" \
            "then run scripts/test.sh again (as root it installs and starts them itself)." \
            "Or point GATEHOUSE_TEST_POSTGRES_URL / _MYSQL_URL / _REDIS_URL at running servers."
    fi
fi

for entry in "${to_start[@]}"; do
    IFS='|' read -r name url port ready start binary packages <<<"$entry"
    # The package's own install scripts may have started the server meanwhile.
    if ! "$ready"; then
        if [[ "$name" != Redis ]] && ! is_root; then
            die "$name is installed but not running on 127.0.0.1:$port, and starting it needs root." \
                "Run scripts/test.sh as root once, or start it yourself."
        fi
        "$start"
    fi
    wait_until "$name on 127.0.0.1:$port" "$ready" ||
        die "$name on 127.0.0.1:$port does not answer after ${wait_s}s." \
            "Logs: /var/log/postgresql/, $log_dir/gatehouse-test-mariadbd.log, $log_dir/gatehouse-test-redis.log"
done

# ---------------------------------------------------------------------------------------
# Set-up: the accounts the tests log in with

step accounts "$TEST_USER on PostgreSQL and MariaDB"

postgres_role_sql="DO \$\$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '$TEST_USER') THEN
        ALTER ROLE $TEST_USER LOGIN CREATEDB CREATEROLE PASSWORD '$TEST_PASSWORD';
    ELSE
        CREATE ROLE $TEST_USER LOGIN CREATEDB CREATEROLE PASSWORD '$TEST_PASSWORD';
    END IF;
END
\$\$;"

# Runs SQL as the PostgreSQL superuser: over the socket as the `postgres` OS user (peer
# auth on a stock Debian server), else over TCP as `postgres` without a password (trust).
postgres_superuser_sql() {
    if is_root && have runuser && id postgres >/dev/null 2>&1 &&
        (cd / && runuser -u postgres -- psql -X -q -w -d postgres -c 'SELECT 1' </dev/null >/dev/null 2>&1); then
        (cd / && runuser -u postgres -- psql -X -q -w -v ON_ERROR_STOP=1 -d postgres) <<<"$1"
    elif psql -X -q -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -c 'SELECT 1' </dev/null >/dev/null 2>&1; then
        psql -X -q -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres -d postgres <<<"$1"
    else
        return 1
    fi
}

postgres_test_login() {
    PGPASSWORD="$TEST_PASSWORD" psql -X -q -w -h 127.0.0.1 -p 5432 -U "$TEST_USER" -d postgres \
        -tAc "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user" </dev/null 2>/dev/null |
        grep -qx t
}

if is_local_url "$GATEHOUSE_TEST_POSTGRES_URL" 5432; then
    if postgres_superuser_sql "$postgres_role_sql"; then
        info "PostgreSQL: role $TEST_USER (LOGIN CREATEDB CREATEROLE) ready"
    elif postgres_test_login; then
        info "PostgreSQL: no superuser access, but role $TEST_USER logs in with CREATEDB CREATEROLE"
    else
        die "cannot create the PostgreSQL role $TEST_USER: no superuser access." \
            "Run scripts/test.sh as root, or run this as a PostgreSQL superuser:" \
            "    CREATE ROLE $TEST_USER LOGIN CREATEDB CREATEROLE PASSWORD '$TEST_PASSWORD';"
    fi
    postgres_test_login ||
        die "PostgreSQL role $TEST_USER cannot log in over 127.0.0.1 with its password." \
            "Check pg_hba.conf allows password (scram-sha-256 or md5) logins from 127.0.0.1."
else
    info "PostgreSQL: using GATEHOUSE_TEST_POSTGRES_URL as given"
fi

mariadb_bin() {
    if have mariadb; then echo mariadb; elif have mysql; then echo mysql; fi
}

mariadb_user_sql=""
for host in 127.0.0.1 localhost; do
    mariadb_user_sql+="CREATE USER IF NOT EXISTS '$TEST_USER'@'$host' IDENTIFIED BY '$TEST_PASSWORD';
ALTER USER '$TEST_USER'@'$host' IDENTIFIED BY '$TEST_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$TEST_USER'@'$host' WITH GRANT OPTION;
"
done

mariadb_test_login() {
    local client
    client="$(mariadb_bin)"
    [[ -n "$client" ]] &&
        "$client" --protocol=tcp -h 127.0.0.1 -P 3306 -u "$TEST_USER" -p"$TEST_PASSWORD" \
            -N -e 'SHOW GRANTS' </dev/null 2>/dev/null | grep -q 'ALL PRIVILEGES ON \*\.\* .*WITH GRANT OPTION'
}

if is_local_url "$GATEHOUSE_TEST_MYSQL_URL" 3306; then
    client="$(mariadb_bin)"
    # root over the socket: unix_socket auth for the OS root user on a stock Debian server.
    if [[ -n "$client" ]] && "$client" -u root -e 'SELECT 1' </dev/null >/dev/null 2>&1; then
        "$client" -u root <<<"$mariadb_user_sql"
        info "MariaDB: user $TEST_USER@127.0.0.1 and @localhost (ALL ON *.* WITH GRANT OPTION) ready"
    elif mariadb_test_login; then
        info "MariaDB: no root access, but $TEST_USER logs in with ALL ON *.*"
    else
        die "cannot create the MariaDB user $TEST_USER: \`mariadb -u root\` does not log in." \
            "Run scripts/test.sh as root, or run this as a MariaDB administrator:" \
            "    $mariadb_user_sql"
    fi
    mariadb_test_login ||
        die "MariaDB user $TEST_USER cannot log in over 127.0.0.1 with ALL PRIVILEGES ON *.*."
else
    info "MariaDB: using GATEHOUSE_TEST_MYSQL_URL as given"
fi

info "Redis: no account needed"

# ---------------------------------------------------------------------------------------
# Set-up: Rust tools (protoc is not needed: build.rs compiles protos in pure Rust)

step tools "cargo, rustfmt, clippy, cargo-nextest"

if [[ -d "$HOME/.cargo/bin" ]] && [[ ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
have cargo || die "cargo not found. Install a Rust toolchain with rustup, then run scripts/test.sh again."

for component in rustfmt clippy; do
    subcommand="${component/rustfmt/fmt}"
    if ! cargo "$subcommand" --version </dev/null >/dev/null 2>&1; then
        have rustup || die "cargo $subcommand is missing and rustup is not installed to add it." \
            "Install the $component component of your Rust toolchain."
        info "rustup component add $component"
        rustup component add "$component" </dev/null
    fi
done
if ! cargo nextest --version </dev/null >/dev/null 2>&1; then
    info "cargo install cargo-nextest --locked (a few minutes, once)"
    # Its own temporary target dir: a release build of nextest has no place in ours.
    env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked </dev/null
fi
info "$(cargo --version)"
info "$(cargo fmt --version)"
info "$(cargo clippy --version)"
info "$(cargo nextest --version | head -n 1)"
info "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

if ((setup_only)); then
    end_step ""
    printf '\n==> set-up done (--setup-only: fmt, clippy and tests not run)\n'
    exit 0
fi

# ---------------------------------------------------------------------------------------
# Checks and tests, stopping at the first failure

step fmt "cargo fmt --all -- --check"
cargo fmt --all -- --check </dev/null

step clippy "cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings </dev/null

step tests "cargo nextest run --workspace --locked --no-fail-fast"
cargo nextest run --workspace --locked --no-fail-fast </dev/null
