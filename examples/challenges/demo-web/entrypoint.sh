#!/bin/sh
# Write the instance's flag to the page and serve it: GET / returns "$FLAG\n".
set -eu
: "${FLAG:?FLAG is not set}"
printf '%s\n' "$FLAG" >/www/index.html
exec httpd -f -p 8080 -h /www
