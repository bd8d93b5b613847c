/* identity.c: see identity.h. Reads CTFD_USER_ID (set by nginx from the auth
 * endpoint's answer), then the user, team and mode from CTFd's tables. */
#include "identity.h"

#include <string.h>

static int resolve_user(const struct http_req *r, struct store *s, struct identity *id,
                        struct cc_error *err)
{
    const char *raw = http_param(r, "CTFD_USER_ID");
    int64_t uid;
    struct cc_error ignore;
    if (raw == NULL || *raw == '\0' || http_valid_id("CTFD_USER_ID", raw, &uid, &ignore) < 0)
        return err_set(err, ERR_NOT_AUTHENTICATED, NULL);
    bool found;
    if (store_user(s, r->arena, uid, &id->user, &found, err) < 0)
        return -1;
    if (!found)
        return err_set(err, ERR_NOT_AUTHENTICATED, NULL);
    if (id->user.banned)
        return err_set(err, ERR_USER_BANNED, NULL);
    return 0;
}

static int resolve_account(const struct http_req *r, struct store *s, struct identity *id,
                           struct cc_error *err)
{
    const struct ctfd_user *u = &id->user;
    if (!id->settings.team_mode) {
        id->account_kind = "user";
        id->account_id = u->id;
        id->account_name = u->name;
        return 0;
    }
    if (u->team_id <= 0)
        return err_set(err, ERR_TEAM_REQUIRED, NULL);
    struct ctfd_team t;
    bool found;
    if (store_team(s, r->arena, u->team_id, &t, &found, err) < 0)
        return -1;
    if (!found)
        return err_set(err, ERR_TEAM_REQUIRED, NULL);
    if (t.banned)
        return err_set(err, ERR_TEAM_BANNED, NULL);
    if (t.hidden && !u->admin)
        return err_set(err, ERR_TEAM_HIDDEN, NULL);
    id->account_kind = "team";
    id->account_id = t.id;
    id->account_name = t.name;
    return 0;
}

int identity_resolve(const struct http_req *r, struct store *s, enum identity_need need,
                     struct identity *id, struct cc_error *err)
{
    memset(id, 0, sizeof(*id));
    if (resolve_user(r, s, id, err) < 0)
        return -1;
    if (need == NEED_ADMIN)
        return id->user.admin ? 0 : err_set(err, ERR_ADMIN_REQUIRED, NULL);
    if (id->user.hidden && !id->user.admin)
        return err_set(err, ERR_USER_HIDDEN, NULL);
    if (store_settings(s, r->arena, &id->settings, err) < 0)
        return -1;
    if (id->settings.verify_emails && id->user.unverified && !id->user.admin)
        return err_set(err, ERR_EMAIL_UNVERIFIED, NULL);
    return resolve_account(r, s, id, err);
}
