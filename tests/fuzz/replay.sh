#!/bin/sh
# Replay every fuzz target's corpus (tests/fuzz/corpus/<target>/) through its
# replay build, so `make check` runs each parser over every input ever saved.
# One TAP line per target.
set -u
src=${CC_SRCDIR:-.}/tests/fuzz
bin=${CC_BUILDDIR:-.}/tests/fuzz
n=0
fail=0
for corpus in "$src"/corpus/*/; do
    name=$(basename "$corpus")
    n=$((n + 1))
    prog="$bin/replay_$name"
    if [ ! -x "$prog" ]; then
        echo "not ok $n - $name: no replay program $prog"
        fail=1
        continue
    fi
    if out=$("$prog" "$corpus" 2>&1); then
        echo "ok $n - $name: $(ls "$corpus" | wc -l) inputs"
    else
        echo "not ok $n - $name"
        echo "$out" | tail -n 20 | sed 's/^/# /'
    fi
done
echo "1..$n"
