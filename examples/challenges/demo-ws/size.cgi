#!/bin/sh
# The body's size as received, the upgrade headers and the cookies, as text.
n=$(wc -c | tr -d ' ')
printf 'Content-Type: text/plain\r\n\r\n'
printf 'length=%s received=%s upgrade=%s connection=%s cookie=%s\n' "${CONTENT_LENGTH:-}" "$n" \
    "${HTTP_UPGRADE:-}" "${HTTP_CONNECTION:-}" "${HTTP_COOKIE:-}"
