#!/bin/sh
# configure names the Debian package to install when a library is missing:
# for each library, a pkg-config wrapper hides just that one, and configure
# must stop with one line naming its package.
set -u
src=${CC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for pair in fcgi:libfcgi-dev jansson:libjansson-dev libmariadb:libmariadb-dev \
            libcurl:libcurl4-openssl-dev libcrypto:libssl-dev cmocka:libcmocka-dev; do
    module=${pair%%:*} package=${pair#*:}
    n=$((n + 1))
    cat >"$tmp/pkg-config" <<WRAP
#!/bin/sh
for a in "\$@"; do [ "\$a" = "$module" ] && exit 1; done
exec /usr/bin/pkg-config "\$@"
WRAP
    chmod +x "$tmp/pkg-config"
    mkdir -p "$tmp/b$n"
    out=$(cd "$tmp/b$n" && PKG_CONFIG="$tmp/pkg-config" "$src/configure" 2>&1)
    rc=$?
    line=$(printf '%s\n' "$out" | grep 'error:' | tail -n 1)
    if [ $rc -ne 0 ] && printf '%s' "$line" | grep -q "apt-get install $package"; then
        echo "ok $n - missing $module: $line"
    else
        echo "not ok $n - missing $module: configure exit $rc, last error: $line"
    fi
done
n=$((n + 1))
if grep -q -- '-Werror' "$src/configure" && grep -q -- '-fstack-protector-strong' "$src/configure"; then
    echo "ok $n - -Werror and hardening flags are the default"
else
    echo "not ok $n - -Werror and hardening flags are the default"
fi
echo "1..$n"
