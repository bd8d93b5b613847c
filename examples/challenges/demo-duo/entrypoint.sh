#!/bin/sh
# Two roles in one image, chosen by the first argument (the spec's `command`):
#   db   holds the flag ($FLAG, given to this container only) and answers every
#        connection to port 5000 with it;
#   web  serves HTTP on port 8080; GET / runs /www/cgi-bin/index.cgi, which asks
#        the db container, by its name on the instance network, for the flag.
# Anything else is run as a command (tests use it to wrap a role).
set -eu

db() {
    : "${FLAG:?FLAG is not set}"
    # As in demo-tcp: repeated -l makes a persistent server with a backlog of 64.
    set --
    for _ in $(seq 64); do set -- "$@" -l; done
    # shellcheck disable=SC2016 # $FLAG is expanded by the child shell
    exec nc "$@" -p 5000 -e sh -c 'printf "%s\n" "$FLAG"'
}

web() {
    exec httpd -f -p 8080 -h /www
}

case "${1:-}" in
    db) db ;;
    web) web ;;
    *) exec "$@" ;;
esac
