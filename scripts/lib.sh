# scripts/lib.sh: shared steps of scripts/run, scripts/test and .ci/run.
# Sourced, not run. Every step is safe to repeat and installs what it needs
# on a fresh Debian 12 (root), so the README's two commands work on a
# minimal machine (no make, compiler, curl or Python).

CC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CC_BUILD=${CC_BUILD:-$CC_ROOT/build}

step() { echo "==> [${SECONDS}s] $*"; }
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Debian packages: the build, the tests, nginx, MariaDB, Docker, and curl for
# the try-it lines that scripts/run and the README print; clang-tidy for
# test_static.sh, clang and its libFuzzer runtime for `make fuzz`.
CC_PACKAGES="autoconf automake libtool pkg-config make gcc libc6-dev
 libfcgi-dev libjansson-dev libmariadb-dev libcurl4-openssl-dev libssl-dev libcmocka-dev
 nginx mariadb-server mariadb-client docker.io busybox-static python3 ca-certificates
 iproute2 procps valgrind cppcheck openssl curl
 clang-tidy clang libclang-rt-14-dev libnginx-mod-stream iptables"

cc_packages() {
    local missing=() p
    for p in $CC_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages (${missing[*]}); run as root to install them"
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists; a stale one may point at old versions.
    apt-get update -qq
    # nginx and MariaDB try to start through init scripts that fail without
    # systemd in a container; we start both ourselves.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
}

cc_mariadb() {
    if mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
    step "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    for _ in $(seq 60); do
        mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "MariaDB did not start (see /var/log/mysql or run mariadbd by hand)"
}

cc_docker() {
    step "Docker engine"
    "$CC_ROOT/scripts/docker-up"
    step "isolation firewall for the containers' networks (scripts/isolation-firewall)"
    "$CC_ROOT/scripts/isolation-firewall" apply
    step "demo challenge images"
    "$CC_ROOT/scripts/build-images"
}

# Build in $CC_BUILD (out of tree). CC_CONFIGURE_FLAGS adds configure options.
cc_build() {
    step "build ($CC_BUILD ${CC_CONFIGURE_FLAGS:-})"
    cd "$CC_ROOT"
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
        autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    fi
    mkdir -p "$CC_BUILD"
    cd "$CC_BUILD"
    local stamp="$CC_BUILD/.configured-with"
    if [ ! -f Makefile ] || [ "$(cat "$stamp" 2>/dev/null)" != "${CC_CONFIGURE_FLAGS:-}" ]; then
        # shellcheck disable=SC2086 # flags are words
        "$CC_ROOT/configure" -q ${CC_CONFIGURE_FLAGS:-}
        echo "${CC_CONFIGURE_FLAGS:-}" >"$stamp"
    fi
    make -s -j"$(nproc)"
    cd "$CC_ROOT"
}
