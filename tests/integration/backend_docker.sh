#!/bin/sh
# backend_docker.sh: runs the backend contract check (a C program, TAP on
# stdout) against the docker backend, for automake's TAP driver. It only locates the program built in
# $CC_BUILDDIR (default .); it must not start engines or build images.
prog="${CC_BUILDDIR:-.}/tests/integration/backend_check"
if [ ! -x "$prog" ]; then
    echo "Bail out! $prog is not built (make check builds it)"
    exit 1
fi
exec "$prog" docker
