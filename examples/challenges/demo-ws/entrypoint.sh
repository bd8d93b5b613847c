#!/bin/sh
# 8080: httpd (index: the flag; /cgi-bin/size). 8081: a 101 answer, then an echo.
set -eu
: "${FLAG:?FLAG is not set}"
# httpd serves a read-only tree: the flag page is made by a CGI at request time.
httpd -p 8080 -h /www
set --
for _ in $(seq 32); do set -- "$@" -l; done
# shellcheck disable=SC2016
exec nc "$@" -p 8081 -e sh -c 'read -r line; printf "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"; exec cat'
