#!/bin/sh
# Static checks that are habits (STYLE.md 7, 12): cppcheck finds nothing in
# src/, and no source calls system(), popen() or a shell, or builds SQL with
# printf (SQL text only in store.c's statement table and src/sql/).
set -u
src=${CC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CC_BUILDDIR:-$src}
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; shift; printf '%s\n' "$@" | sed 's/^/# /'; }

if command -v cppcheck >/dev/null; then
    out=$(cppcheck --quiet --enable=warning,performance,portability --std=c11 -D_GNU_SOURCE \
        -I "$src/src" -I "$build/src" --suppress=missingIncludeSystem "$src"/src/*.c 2>&1)
    if [ -z "$out" ]; then ok "cppcheck: src/ is clean"; else nok "cppcheck: src/ is clean" "$out"; fi
else
    n=$((n + 1)); echo "ok $n - cppcheck # SKIP cppcheck is not installed"
fi

# clang-tidy with the checks of .clang-tidy (issue 19): no finding in src/.
# Debian's clang-tidy package; scripts/lib.sh installs it for CI.
if command -v clang-tidy >/dev/null && command -v pkg-config >/dev/null; then
    # shellcheck disable=SC2046 # flags are words
    out=$(ls "$src"/src/*.c | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} clang-tidy --quiet \
        --config-file="$src/.clang-tidy" {} -- -std=c11 -D_GNU_SOURCE -DPACKAGE_VERSION='"0"' \
        -DCC_TEST_FAULTS -I "$src/src" -I "$build/src" \
        $(pkg-config --cflags jansson libmariadb libcurl libcrypto fcgi 2>/dev/null) 2>&1 |
        grep -E 'warning:|error:' || true)
    if [ -z "$out" ]; then ok "clang-tidy: src/ is clean"; else nok "clang-tidy: src/ is clean" "$out"; fi
else
    n=$((n + 1)); echo "ok $n - clang-tidy # SKIP clang-tidy is not installed (Debian: clang-tidy)"
fi

hits=$(grep -nE '\b(system|popen|execl|execlp|execv|execvp)\s*\(' "$src"/src/*.c || true)
if [ -z "$hits" ]; then ok "no system(), popen() or exec*() in src/"; else nok "no system(), popen() or exec*() in src/" "$hits"; fi

# SQL keywords inside a printf-family format would mean SQL built from values.
hits=$(grep -nE '(printf|snprintf|sb_printf|arena_printf)\s*\([^;]*"(SELECT|INSERT|UPDATE|DELETE|REPLACE) ' "$src"/src/*.c || true)
if [ -z "$hits" ]; then ok "no SQL built with printf"; else nok "no SQL built with printf" "$hits"; fi

hits=$(grep -ln 'mysql_real_query\|mysql_query(' "$src"/src/*.c || true)
if [ -z "$hits" ]; then ok "SQL only through prepared statements (no mysql_query)"; else nok "SQL only through prepared statements" "$hits"; fi

# The layering (STYLE.md): handlers never call libcurl or MariaDB; lifecycle has no I/O.
hits=$(grep -lE '#include <(curl/curl|mysql)\.h>' "$src"/src/api_*.c "$src"/src/router.c "$src"/src/lifecycle.c || true)
if [ -z "$hits" ]; then ok "handlers and rules include neither libcurl nor MariaDB"; else nok "layering" "$hits"; fi
# Docs for every knob and every code: each option --config-doc prints is in
# docs/configuration.md, each code of src/errors.h in docs/api.md.
missing=""
if [ -x "$build/src/ctfd-containers" ]; then
    for key in $("$build/src/ctfd-containers" --config-doc | sed -n 's/^| `\([a-z_]*\)`.*/\1/p'); do
        grep -q "\`$key\`" "$src/docs/configuration.md" || missing="$missing $key"
    done
    if [ -z "$missing" ]; then ok "every option is documented in docs/configuration.md"
    else nok "every option is documented in docs/configuration.md" "missing:$missing"; fi
else
    nok "every option is documented" "no binary at $build/src/ctfd-containers"
fi
missing=""
for code in $(sed -n 's/.*X(ERR_[A-Z_]*, "\([A-Z_]*\)".*/\1/p' "$src/src/errors.h"); do
    grep -q "\`$code\`" "$src/docs/api.md" || missing="$missing $code"
done
if [ -z "$missing" ]; then ok "every error code is documented in docs/api.md"
else nok "every error code is documented in docs/api.md" "missing:$missing"; fi
echo "1..$n"
