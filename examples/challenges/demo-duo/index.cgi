#!/bin/sh
# GET / on the web container: ask the db container, by its name on the instance
# network, for the flag. nc sends nothing (stdin is empty) and prints what the db
# says before it closes the connection.
flag=$(nc "${DB_HOST:-db}" 5000 </dev/null 2>/dev/null) || flag=""
if [ -z "$flag" ]; then
    printf 'Status: 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nthe db did not answer\n'
    exit 0
fi
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$flag"
