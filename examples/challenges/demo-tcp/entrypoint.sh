#!/bin/sh
# Each connection to port 9000 gets "$FLAG\n", then is closed.
set -eu
: "${FLAG:?FLAG is not set}"

# Busybox nc has no -k: repeating -l makes it a persistent server that forks
# one child per connection (the rest of argv after -e is the child's command).
# It also uses the number of -l flags as the listen backlog: with just -ll,
# concurrent clients overflow it and, as the server speaks first, they hang
# silently until SYN-ACK retries (up to a minute). 64 flags = backlog of 64.
set --
for _ in $(seq 64); do set -- "$@" -l; done
# shellcheck disable=SC2016 # $FLAG is expanded by the child shell
exec nc "$@" -p 9000 -e sh -c 'printf "%s\n" "$FLAG"'
