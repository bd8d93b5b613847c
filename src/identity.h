/* identity.h: who is asking, from the FastCGI parameters nginx sets after
 * auth_request (CTFD_USER_ID, ...), re-checked in CTFd's tables on every
 * request so bans, hiding and deletion take effect at once.
 *
 * Must not: read HTTP_* parameters (client headers) for identity. */
#ifndef CC_IDENTITY_H
#define CC_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "http.h"
#include "store.h"

struct identity {
    struct ctfd_user user;
    struct ctfd_settings settings;
    const char *account_kind;   /* "team" or "user" */
    int64_t account_id;         /* the team in team mode, the user in user mode */
    const char *account_name;
};

enum identity_need { NEED_PLAYER, NEED_ADMIN };

/* 0, or -1 with NOT_AUTHENTICATED, USER_BANNED, USER_HIDDEN, TEAM_REQUIRED,
 * TEAM_BANNED, TEAM_HIDDEN, EMAIL_UNVERIFIED or ADMIN_REQUIRED. */
int identity_resolve(const struct http_req *r, struct store *s, enum identity_need need,
                     struct identity *id, struct cc_error *err);

#endif
