/* errors.h: the one table of error codes: stable string, HTTP status, message.
 *
 * Adapters (store, backends, curlx) translate their failures into these once,
 * at their edge, and mark them temporary (worth retrying) or permanent. A
 * message never carries internals (SQL, engine bodies, paths) or secrets. */
#ifndef CC_ERRORS_H
#define CC_ERRORS_H

#include <stdbool.h>

/* X(enum, stable code, http status, default message) */
#define CC_ERRORS(X)                                                                              \
    X(ERR_OK, "OK", 200, "OK")                                                                    \
    X(ERR_BAD_REQUEST, "BAD_REQUEST", 400, "The request is malformed.")                           \
    X(ERR_INVALID_JSON, "INVALID_JSON", 400, "The body is not a JSON object.")                    \
    X(ERR_INVALID_FIELD, "INVALID_FIELD", 400, "A field is missing or invalid.")                  \
    X(ERR_CONFIRM_REQUIRED, "CONFIRM_REQUIRED", 400, "Add confirm=all to stop every container.")  \
    X(ERR_NOT_AUTHENTICATED, "NOT_AUTHENTICATED", 401, "Log in to CTFd first.")                   \
    X(ERR_USER_BANNED, "USER_BANNED", 403, "Your account is banned.")                             \
    X(ERR_USER_HIDDEN, "USER_HIDDEN", 403, "Your account is hidden.")                             \
    X(ERR_TEAM_REQUIRED, "TEAM_REQUIRED", 403, "Join or create a team first.")                    \
    X(ERR_TEAM_BANNED, "TEAM_BANNED", 403, "Your team is banned.")                                \
    X(ERR_TEAM_HIDDEN, "TEAM_HIDDEN", 403, "Your team is hidden.")                                \
    X(ERR_EMAIL_UNVERIFIED, "EMAIL_UNVERIFIED", 403, "Confirm your email address first.")         \
    X(ERR_ADMIN_REQUIRED, "ADMIN_REQUIRED", 403, "Only admins may do this.")                      \
    X(ERR_CTF_NOT_STARTED, "CTF_NOT_STARTED", 403, "The CTF has not started yet.")                \
    X(ERR_CTF_ENDED, "CTF_ENDED", 403, "The CTF is over.")                                        \
    X(ERR_CTF_PAUSED, "CTF_PAUSED", 403, "The CTF is paused.")                                    \
    X(ERR_CHALLENGE_LOCKED, "CHALLENGE_LOCKED", 403, "This challenge is locked.")                 \
    X(ERR_PREREQUISITES_UNMET, "PREREQUISITES_UNMET", 403,                                        \
      "Solve this challenge's prerequisites first.")                                              \
    X(ERR_NOT_FOUND, "NOT_FOUND", 404, "No such route.")                                          \
    X(ERR_CHALLENGE_NOT_FOUND, "CHALLENGE_NOT_FOUND", 404, "No such container challenge.")        \
    X(ERR_CONTAINER_NOT_FOUND, "CONTAINER_NOT_FOUND", 404, "No live container.")                  \
    X(ERR_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", 405, "This method is not allowed here.")      \
    X(ERR_CONTAINER_LIMIT_REACHED, "CONTAINER_LIMIT_REACHED", 409,                                \
      "Your account already has as many live containers as allowed; stop one first.")            \
    X(ERR_RENEWAL_LIMIT_REACHED, "RENEWAL_LIMIT_REACHED", 409,                                    \
      "This container cannot be extended any more.")                                              \
    X(ERR_CONTAINER_BUSY, "CONTAINER_BUSY", 409,                                                  \
      "The container is starting or stopping; try again in a moment.")                            \
    X(ERR_BODY_TOO_LARGE, "BODY_TOO_LARGE", 413, "The request body is too large.")                \
    X(ERR_UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", 415,                                  \
      "Send the body as application/json.")                                                       \
    X(ERR_COOLDOWN, "COOLDOWN", 429, "Wait before starting, reverting or extending again.")       \
    X(ERR_INTERNAL, "INTERNAL_ERROR", 500, "Something went wrong on our side.")                   \
    X(ERR_CHALLENGE_MISCONFIGURED, "CHALLENGE_MISCONFIGURED", 500,                                \
      "This challenge is misconfigured; tell the organisers.")                                    \
    X(ERR_IMAGE_MISSING, "IMAGE_MISSING", 500,                                                    \
      "The challenge image is missing on the engine; tell the organisers.")                       \
    X(ERR_START_FAILED, "START_FAILED", 502, "The container failed to start.")                    \
    X(ERR_CAPACITY_FULL, "CAPACITY_FULL", 503,                                                    \
      "All container slots are in use; try again later.")                                         \
    X(ERR_PORTS_EXHAUSTED, "PORTS_EXHAUSTED", 503, "No host port is free; try again later.")      \
    X(ERR_ENGINE_UNAVAILABLE, "ENGINE_UNAVAILABLE", 503,                                          \
      "The container engine is unreachable; try again shortly.")                                  \
    X(ERR_DATABASE_UNAVAILABLE, "DATABASE_UNAVAILABLE", 503,                                      \
      "The database is unreachable; try again shortly.")                                          \
    X(ERR_NONCE_INVALID, "NONCE_INVALID", 403,                                                    \
      "This form is out of date or did not come from this page; reload it and try again.")       \
    /* Answered by nginx (nginx/ctfd-containers.conf), never by the app: */                      \
    X(ERR_FORBIDDEN, "FORBIDDEN", 403,                                                            \
      "CTFd refused this request (session, token or CSRF nonce).")                                \
    X(ERR_AUTH_UNAVAILABLE, "AUTH_UNAVAILABLE", 503,                                              \
      "CTFd could not confirm who you are; try again shortly.")                                   \
    X(ERR_APP_UNAVAILABLE, "APP_UNAVAILABLE", 503,                                                \
      "The container service is not answering; try again shortly.")                              \
    /* Exposure and hardening (docs/exposure.md): */                                             \
    X(ERR_CAPABILITY_FORBIDDEN, "CAPABILITY_FORBIDDEN", 500,                                      \
      "This challenge asks for a privilege containers never get; tell the organisers.")         \
    X(ERR_ROUTE_NOT_FOUND, "ROUTE_NOT_FOUND", 404, "No running container answers at this name.")

enum cc_err {
#define CC_ERR_ENUM(e, code, status, msg) e,
    CC_ERRORS(CC_ERR_ENUM)
#undef CC_ERR_ENUM
        ERR__MAX
};

/* A failure as it travels up: code, whether a retry may help, and an optional
 * specific message (a field name, an image name) that replaces the default. */
struct cc_error {
    enum cc_err code;
    bool temporary;
    int retry_after; /* seconds, for 429/503; 0 if none */
    char message[256];
};

const char *err_code_str(enum cc_err e);
int err_status(enum cc_err e);
const char *err_default_message(enum cc_err e);
/* The message to show: the specific one when set, else the table's. */
const char *err_message(const struct cc_error *err);
/* Fill err (fmt may be NULL for the default message); always returns -1. */
int err_set(struct cc_error *err, enum cc_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void err_clear(struct cc_error *err);
/* Look a stable code string up (for tests and clients); ERR__MAX if unknown. */
enum cc_err err_from_str(const char *code);

#endif
