/* store.c: MariaDB access (see store.h). Every statement is a row of the
 * table below, prepared once per connection on first use and re-prepared
 * after a reconnect. Results are copied into the caller's arena.
 *
 * Must not: build SQL from values, log values (only statement names and
 * error numbers), or hold a transaction across a call to the engine. */
#include "store.h"

#include <errmsg.h>
#include <inttypes.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"

enum stmt_id {
    Q_USER, Q_TEAM, Q_CONFIG, Q_CHALLENGE, Q_CHALLENGE_EXISTS, Q_SOLVED_TEAM, Q_SOLVED_USER,
    Q_ACCOUNT_ENSURE, Q_ACCOUNT_LOCK, Q_ACCOUNT_TOUCH, Q_CAPACITY_LOCK, Q_COUNT_LIVE_ACCOUNT,
    Q_COUNT_LIVE_TOTAL, Q_FIND_LIVE, Q_GET_INSTANCE, Q_INSERT_INSTANCE, Q_SET_NAME,
    Q_PORT_INSERT, Q_PORTS_USED, Q_FLAG_INSERT, Q_FLAG_GET, Q_MARK_RUNNING, Q_CAS_STATE,
    Q_END, Q_PORTS_FREE, Q_FLAG_RETIRE, Q_EXTEND, Q_LIST, Q_LIST_COUNT, Q_IDS_EXPIRED,
    Q_IDS_STALE, Q_IDS_LIVE, Q_EVENT, Q_STATUS_SET, Q_STATUS_GET, Q_SCHEMA_GET, Q_SCHEMA_SET,
    Q_LOCK_MIGRATE, Q_UNLOCK_MIGRATE, Q_PING, Q_ACCOUNT_RESTORE, Q_PORTS_ENDED, Q_END_IF_STATE,
    Q_LOCK_LIVE_STATE, Q_READ_LIVE, Q_LIST_DESC, Q_LIVE_BY_CHALLENGE, Q_EVENTS, Q_EVENTS_COUNT,
    /* warm pools */
    Q_POOL_NEEDS, Q_POOL_MEMBERS, Q_POOL_LOCK, Q_POOL_COUNT_TOTAL, Q_POOL_COUNT_CHALLENGE,
    Q_POOL_MARK, Q_POOL_PICK, Q_POOL_CLAIM, Q_POOL_FLAG_CLAIM, Q_POOL_RETIRE,
    /* migrations by file (a gap in the numbers is applied later) */
    Q_MIGRATIONS_TABLE, Q_MIGRATIONS_GET, Q_MIGRATION_ADD,
    /* exposure (docs/exposure.md) */
    Q_SET_ROUTE, Q_GET_ROUTE, Q_ROUTE_LOOKUP, Q_ROUTES_RUNNING, Q_CHALLENGE_EXPOSURE,
    /* switch, canary, fallback; the whale backend (ctfd-whale's own table) */
    Q_SET_BACKEND, Q_FLAG_REPLACE, Q_LIVE_BACKENDS, Q_BACKENDS_IN_USE, Q_INSTANCE_BY_NAME,
    Q_WHALE_BY_USER, Q_WHALE_BY_UUID, Q_WHALE_OURS,
    Q_IMAGES, /* --sync-images */
    /* the admin list of live containers: on the (live, deadline) index */
    Q_LIST_LIVE, Q_LIST_LIVE_DESC, Q_LIST_LIVE_COUNT,
    Q__MAX
};

#define INSTANCE_COLS                                                                          \
    "i.id, i.account_kind, i.account_id, i.user_id, i.challenge_id, i.backend, i.name, "       \
    "i.engine_id, i.image, i.state, i.live, i.host, i.ports, i.created_at, i.updated_at, "     \
    "i.started_at, i.deadline, i.renewals, i.ended_at, i.end_reason"
#define NAME_JOINS                                                                             \
    "LEFT JOIN teams t ON i.account_kind = 'team' AND t.id = i.account_id "                   \
    "LEFT JOIN users u ON i.account_kind = 'user' AND u.id = i.account_id "                   \
    "LEFT JOIN challenges c ON c.id = i.challenge_id "                                         \
    "LEFT JOIN docker_challenge d ON d.id = i.challenge_id"
/* What a listing adds to INSTANCE_COLS (columns 20-22, see joined_from). */
#define JOINED_COLS ", COALESCE(t.name, u.name, ''), COALESCE(c.name, ''), d.max_renewals "
#define LIST_FILTER                                                                            \
    " WHERE (? = 0 OR i.challenge_id = ?) AND (? = 0 OR i.account_id = ?)"                    \
    " AND ((? = '' AND i.live = 1) OR i.state = ?) AND i.account_kind <> 'pool'"

/* The default listing (live containers, no state asked for): `i.live = 1` with
 * no OR around it, so MariaDB reads a page off the (live, deadline) index
 * instead of sorting every live row (the OR in LIST_FILTER forces that). */
#define LIVE_FILTER                                                                            \
    " WHERE (? = 0 OR i.challenge_id = ?) AND (? = 0 OR i.account_id = ?)"                    \
    " AND i.live = 1 AND i.account_kind <> 'pool'"

static const char *const sql[Q__MAX] = {
    [Q_USER] = "SELECT id, team_id, type, banned, hidden, verified, name FROM users WHERE id = ?",
    [Q_TEAM] = "SELECT id, banned, hidden, name FROM teams WHERE id = ?",
    [Q_CONFIG] = "SELECT `key`, value FROM config WHERE `key` IN "
                 "('user_mode', 'start', 'end', 'paused', 'verify_emails') ORDER BY id",
    [Q_CHALLENGE] = "SELECT c.id, c.name, c.state, c.requirements, d.image, d.ports, "
                    "d.flag_template, d.flag_env, d.memory_mb, d.cpus, d.lifetime_seconds, "
                    "d.max_renewals, d.backend, d.placement FROM challenges c "
                    "JOIN docker_challenge d ON d.id = c.id WHERE c.id = ?",
    [Q_CHALLENGE_EXISTS] = "SELECT id FROM challenges WHERE id = ?",
    [Q_SOLVED_TEAM] = "SELECT challenge_id FROM solves WHERE team_id = ?",
    [Q_SOLVED_USER] = "SELECT challenge_id FROM solves WHERE user_id = ?",
    /* Not INSERT IGNORE: its shared lock on an existing row, upgraded by the
     * FOR UPDATE that follows, deadlocks concurrent actions of one account.
     * ON DUPLICATE KEY UPDATE takes the exclusive lock at once. */
    [Q_ACCOUNT_ENSURE] = "INSERT INTO container_accounts (account_kind, account_id) "
                         "VALUES (?, ?) ON DUPLICATE KEY UPDATE account_id = account_id",
    [Q_ACCOUNT_LOCK] = "SELECT last_action_at FROM container_accounts "
                       "WHERE account_kind = ? AND account_id = ? FOR UPDATE",
    [Q_ACCOUNT_TOUCH] = "UPDATE container_accounts SET last_action_at = ? "
                        "WHERE account_kind = ? AND account_id = ?",
    [Q_CAPACITY_LOCK] = "SELECT name FROM container_locks WHERE name = 'capacity' FOR UPDATE",
    [Q_COUNT_LIVE_ACCOUNT] = "SELECT COUNT(*) FROM container_instances "
                             "WHERE account_kind = ? AND account_id = ? AND live = 1",
    /* Capacity counts players' containers; warm pool ones have their own cap. */
    [Q_COUNT_LIVE_TOTAL] = "SELECT COUNT(*) FROM container_instances WHERE live = 1 "
                           "AND account_kind <> 'pool'",
    [Q_FIND_LIVE] = "SELECT " INSTANCE_COLS " FROM container_instances i WHERE "
                    "i.account_kind = ? AND i.account_id = ? AND i.challenge_id = ? "
                    "AND i.live = 1 FOR UPDATE",
    [Q_GET_INSTANCE] = "SELECT " INSTANCE_COLS JOINED_COLS "FROM container_instances i "
                       NAME_JOINS " WHERE i.id = ?",
    [Q_INSERT_INSTANCE] =
        "INSERT INTO container_instances (account_kind, account_id, user_id, challenge_id, "
        "backend, name, image, state, live, created_at, updated_at, deadline, renewals) "
        "VALUES (?, ?, ?, ?, ?, '', ?, 'starting', 1, ?, ?, ?, 0)",
    [Q_SET_NAME] = "UPDATE container_instances SET name = ? WHERE id = ?",
    [Q_PORT_INSERT] = "INSERT INTO container_ports (host_port, instance_id) VALUES (?, ?)",
    [Q_PORTS_USED] = "SELECT host_port FROM container_ports WHERE host_port BETWEEN ? AND ? "
                     "ORDER BY host_port",
    [Q_FLAG_INSERT] = "INSERT INTO container_flags (instance_id, account_kind, account_id, "
                      "challenge_id, key_id, nonce, ciphertext, digest, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [Q_FLAG_GET] = "SELECT key_id, nonce, ciphertext FROM container_flags WHERE instance_id = ?",
    [Q_MARK_RUNNING] = "UPDATE container_instances SET state = 'running', engine_id = ?, "
                       "host = ?, ports = ?, started_at = ?, updated_at = ? "
                       "WHERE id = ? AND state = 'starting'",
    [Q_CAS_STATE] = "UPDATE container_instances SET state = ?, updated_at = ? "
                    "WHERE id = ? AND state = ? AND live = 1",
    [Q_END] = "UPDATE container_instances SET state = ?, live = NULL, ended_at = ?, "
              "updated_at = ?, end_reason = ? WHERE id = ? AND live = 1",
    [Q_PORTS_FREE] = "DELETE FROM container_ports WHERE instance_id = ?",
    [Q_FLAG_RETIRE] = "UPDATE container_flags SET retired_at = ? "
                      "WHERE instance_id = ? AND retired_at IS NULL",
    [Q_EXTEND] = "UPDATE container_instances SET deadline = ?, renewals = renewals + 1, "
                 "updated_at = ? WHERE id = ? AND state = 'running' AND renewals = ?",
    [Q_LIST] = "SELECT " INSTANCE_COLS JOINED_COLS "FROM container_instances i " NAME_JOINS
               LIST_FILTER
               " ORDER BY i.deadline ASC, i.id ASC LIMIT ? OFFSET ?",
    [Q_LIST_COUNT] = "SELECT COUNT(*) FROM container_instances i" LIST_FILTER,
    [Q_LIST_LIVE] = "SELECT " INSTANCE_COLS JOINED_COLS "FROM container_instances i " NAME_JOINS
                    LIVE_FILTER " ORDER BY i.deadline ASC, i.id ASC LIMIT ? OFFSET ?",
    [Q_LIST_LIVE_DESC] = "SELECT " INSTANCE_COLS JOINED_COLS "FROM container_instances i "
                         NAME_JOINS LIVE_FILTER
                         " ORDER BY i.deadline DESC, i.id DESC LIMIT ? OFFSET ?",
    [Q_LIST_LIVE_COUNT] = "SELECT COUNT(*) FROM container_instances i" LIVE_FILTER,
    [Q_LIST_DESC] = "SELECT " INSTANCE_COLS JOINED_COLS "FROM container_instances i "
                    NAME_JOINS LIST_FILTER
                    " ORDER BY i.deadline DESC, i.id DESC LIMIT ? OFFSET ?",
    [Q_LIVE_BY_CHALLENGE] = "SELECT i.challenge_id, COALESCE(c.name, ''), COUNT(*) "
                            "FROM container_instances i "
                            "LEFT JOIN challenges c ON c.id = i.challenge_id WHERE i.live = 1 "
                            "AND i.account_kind <> 'pool' "
                            "GROUP BY i.challenge_id, c.name ORDER BY COUNT(*) DESC, "
                            "i.challenge_id LIMIT 200",
    [Q_EVENTS] = "SELECT e.id, e.at, e.kind, e.actor_user_id, COALESCE(au.name, ''), "
                 "e.instance_id, e.account_kind, e.account_id, COALESCE(t.name, u.name, ''), "
                 "e.challenge_id, COALESCE(c.name, ''), e.detail FROM container_events e "
                 "LEFT JOIN users au ON au.id = e.actor_user_id "
                 "LEFT JOIN teams t ON e.account_kind = 'team' AND t.id = e.account_id "
                 "LEFT JOIN users u ON e.account_kind = 'user' AND u.id = e.account_id "
                 "LEFT JOIN challenges c ON c.id = e.challenge_id "
                 "WHERE (? = '' OR e.kind = ?) ORDER BY e.id DESC LIMIT ? OFFSET ?",
    [Q_EVENTS_COUNT] = "SELECT COUNT(*) FROM container_events e WHERE (? = '' OR e.kind = ?)",
    /* ---- warm pools: rows of account_kind 'pool' (account_id = their own id) ---- */
    [Q_POOL_NEEDS] = "SELECT d.id, d.warm_pool, (SELECT COALESCE(MAX(f.ended_at), 0) "
                     "FROM container_instances f WHERE f.account_kind = 'pool' "
                     "AND f.challenge_id = d.id AND f.state = 'failed') "
                     "FROM docker_challenge d WHERE d.warm_pool > 0 ORDER BY d.id LIMIT 1000",
    [Q_POOL_MEMBERS] = "SELECT id, challenge_id, state, COALESCE(pool_spec, ''), deadline, name "
                       "FROM container_instances WHERE account_kind = 'pool' AND live = 1 "
                       "ORDER BY id LIMIT 10000",
    [Q_POOL_LOCK] = "SELECT name FROM container_locks WHERE name = 'pool' FOR UPDATE",
    [Q_POOL_COUNT_TOTAL] = "SELECT COUNT(*) FROM container_instances "
                           "WHERE account_kind = 'pool' AND live = 1",
    [Q_POOL_COUNT_CHALLENGE] = "SELECT COUNT(*) FROM container_instances "
                               "WHERE account_kind = 'pool' AND live = 1 AND challenge_id = ?",
    [Q_POOL_MARK] = "UPDATE container_instances SET account_id = id, pool_spec = ? "
                    "WHERE id = ? AND account_kind = 'pool'",
    /* SKIP LOCKED: simultaneous claims take different rows without waiting. */
    [Q_POOL_PICK] = "SELECT id FROM container_instances WHERE account_kind = 'pool' "
                    "AND live = 1 AND challenge_id = ? AND state = 'running' AND pool_spec = ? "
                    "AND deadline > ? ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    [Q_POOL_CLAIM] = "UPDATE container_instances SET account_kind = ?, account_id = ?, "
                     "user_id = ?, created_at = ?, updated_at = ?, claimed_at = ?, deadline = ?, "
                     "renewals = 0 WHERE id = ? AND account_kind = 'pool' AND live = 1 "
                     "AND state = 'running'",
    [Q_POOL_FLAG_CLAIM] = "UPDATE container_flags SET account_kind = ?, account_id = ?, "
                          "created_at = ? WHERE instance_id = ? AND account_kind = 'pool' "
                          "AND retired_at IS NULL",
    [Q_POOL_RETIRE] = "UPDATE container_instances SET state = 'stopping', updated_at = ? "
                      "WHERE id = ? AND account_kind = 'pool' AND live = 1 AND state = 'running'",
    [Q_MIGRATIONS_TABLE] = "CREATE TABLE IF NOT EXISTS container_migrations ("
                           "version INT NOT NULL PRIMARY KEY, name VARCHAR(128) NOT NULL, "
                           "applied_at BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    [Q_MIGRATIONS_GET] = "SELECT version FROM container_migrations",
    [Q_MIGRATION_ADD] = "INSERT IGNORE INTO container_migrations (version, name, applied_at) "
                        "VALUES (?, ?, ?)",
    /* --sync-images: every image a challenge names */
    [Q_IMAGES] = "SELECT DISTINCT image FROM docker_challenge WHERE image <> '' ORDER BY image",
    [Q_IDS_EXPIRED] = "SELECT id FROM container_instances WHERE live = 1 AND state = 'running' "
                      "AND deadline <= ? ORDER BY deadline LIMIT 200",
    [Q_IDS_STALE] = "SELECT id FROM container_instances WHERE live = 1 AND state = ? "
                    "AND updated_at <= ? ORDER BY id LIMIT 200",
    [Q_IDS_LIVE] = "SELECT id FROM container_instances WHERE live = 1",
    [Q_EVENT] = "INSERT INTO container_events (at, kind, actor_user_id, instance_id, "
                "account_kind, account_id, challenge_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [Q_STATUS_SET] = "INSERT INTO container_status (name, value, updated_at) VALUES (?, ?, ?) "
                     "ON DUPLICATE KEY UPDATE value = VALUES(value), "
                     "updated_at = VALUES(updated_at)",
    [Q_STATUS_GET] = "SELECT value, updated_at FROM container_status WHERE name = ?",
    [Q_SCHEMA_GET] = "SELECT version FROM container_schema WHERE id = 1",
    [Q_SCHEMA_SET] = "INSERT INTO container_schema (id, version, updated_at) VALUES (1, ?, ?) "
                     "ON DUPLICATE KEY UPDATE version = VALUES(version), "
                     "updated_at = VALUES(updated_at)",
    [Q_LOCK_MIGRATE] = "SELECT GET_LOCK('ctfd-containers-migrate', 60)",
    [Q_UNLOCK_MIGRATE] = "SELECT RELEASE_LOCK('ctfd-containers-migrate')",
    [Q_PING] = "SELECT 1",
    [Q_ACCOUNT_RESTORE] = "UPDATE container_accounts SET last_action_at = ? "
                          "WHERE account_kind = ? AND account_id = ? AND last_action_at = ?",
    [Q_END_IF_STATE] = "UPDATE container_instances SET state = ?, live = NULL, ended_at = ?, "
                       "updated_at = ?, end_reason = ? WHERE id = ? AND live = 1 AND state = ?",
    [Q_LOCK_LIVE_STATE] = "SELECT state FROM container_instances WHERE id = ? AND live = 1 "
                          "FOR UPDATE",
    [Q_READ_LIVE] = "SELECT " INSTANCE_COLS " FROM container_instances i WHERE "
                    "i.account_kind = ? AND i.account_id = ? AND i.challenge_id = ? "
                    "AND i.live = 1",
    [Q_PORTS_ENDED] = "SELECT DISTINCT p.instance_id FROM container_ports p "
                      "LEFT JOIN container_instances i ON i.id = p.instance_id "
                      "WHERE i.live IS NULL LIMIT 500",
    /* exposure (docs/exposure.md) */
    [Q_SET_ROUTE] = "UPDATE container_instances SET route = ? WHERE id = ?",
    [Q_GET_ROUTE] = "SELECT route FROM container_instances WHERE id = ?",
    [Q_ROUTE_LOOKUP] = "SELECT i.id, i.account_kind, i.account_id, i.ports, "
                       "COALESCE(d.route_owner_only, 0) FROM container_instances i "
                       "LEFT JOIN docker_challenge d ON d.id = i.challenge_id "
                       "WHERE i.route = ? AND i.live = 1 AND i.state = 'running'",
    [Q_ROUTES_RUNNING] = "SELECT route, ports FROM container_instances WHERE live = 1 "
                         "AND state = 'running' AND route IS NOT NULL ORDER BY id",
    [Q_CHALLENGE_EXPOSURE] = "SELECT route_owner_only, `connect`, allow_internet, cap_add, "
                             "read_only FROM docker_challenge WHERE id = ?",
    /* switch, canary, fallback */
    [Q_SET_BACKEND] = "UPDATE container_instances SET backend = ?, updated_at = ? "
                      "WHERE id = ? AND live = 1 AND state = 'starting'",
    [Q_FLAG_REPLACE] = "UPDATE container_flags SET key_id = ?, nonce = ?, ciphertext = ?, "
                       "digest = ? WHERE instance_id = ? AND retired_at IS NULL",
    [Q_LIVE_BACKENDS] = "SELECT id, backend FROM container_instances WHERE live = 1 ORDER BY id",
    [Q_BACKENDS_IN_USE] = "SELECT DISTINCT backend FROM container_instances WHERE live = 1 "
                          "OR ended_at >= ? OR id IN (SELECT instance_id FROM container_ports) "
                          "UNION SELECT DISTINCT backend FROM docker_challenge "
                          "WHERE backend IS NOT NULL AND backend <> ''",
    [Q_INSTANCE_BY_NAME] = "SELECT " INSTANCE_COLS " FROM container_instances i WHERE i.name = ?",
    /* the whale backend: ctfd-whale's table, read only */
    [Q_WHALE_BY_USER] = "SELECT id, user_id, challenge_id, UNIX_TIMESTAMP(start_time), "
                        "renew_count, port, uuid, flag FROM whale_container WHERE user_id = ? "
                        "ORDER BY id LIMIT 1",
    [Q_WHALE_BY_UUID] = "SELECT id, user_id, challenge_id, UNIX_TIMESTAMP(start_time), "
                        "renew_count, port, uuid, flag FROM whale_container WHERE uuid = ?",
    [Q_WHALE_OURS] = "SELECT w.id, w.user_id, w.challenge_id, UNIX_TIMESTAMP(w.start_time), "
                     "w.renew_count, w.port, w.uuid, i.id, i.name, i.deadline "
                     "FROM whale_container w JOIN container_instances i "
                     "ON i.engine_id = w.uuid AND i.backend = 'whale' LIMIT 5000",
};

static const char *const stmt_names[Q__MAX] = {
    "user", "team", "config", "challenge", "challenge_exists", "solved_team", "solved_user",
    "account_ensure", "account_lock", "account_touch", "capacity_lock", "count_live_account",
    "count_live_total", "find_live", "get_instance", "insert_instance", "set_name",
    "port_insert", "ports_used", "flag_insert", "flag_get", "mark_running", "cas_state",
    "end", "ports_free", "flag_retire", "extend", "list", "list_count", "ids_expired",
    "ids_stale", "ids_live", "event", "status_set", "status_get", "schema_get", "schema_set",
    "lock_migrate", "unlock_migrate", "ping", "account_restore", "ports_ended", "end_if_state",
    "lock_live_state", "read_live", "list_desc", "live_by_challenge", "events", "events_count",
    "pool_needs", "pool_members", "pool_lock", "pool_count_total", "pool_count_challenge",
    "pool_mark", "pool_pick", "pool_claim", "pool_flag_claim", "pool_retire",
    "migrations_table", "migrations_get", "migration_add",
    "set_route", "get_route", "route_lookup", "routes_running", "challenge_exposure",
    "set_backend", "flag_replace", "live_backends", "backends_in_use", "instance_by_name",
    "whale_by_user", "whale_by_uuid", "whale_ours",
    "images",
    "list_live", "list_live_desc", "list_live_count",
};

struct store {
    const struct cc_config *cfg;
    MYSQL *db;
    MYSQL_STMT *stmt[Q__MAX];
    bool in_tx;
    bool broken;           /* the connection dropped: reconnect before the next use */
    unsigned last_errno;
};

/* One bound argument. */
enum arg_type { A_NULL, A_I64, A_STR, A_BLOB, A_DOUBLE };
struct arg {
    enum arg_type t;
    long long i;
    double d;
    const void *p;
    unsigned long len;
};
#define AI(v) ((struct arg){.t = A_I64, .i = (long long)(v)})
#define AS(v) ((struct arg){.t = A_STR, .p = (v), .len = (unsigned long)strlen(v)})
#define AB(v, n) ((struct arg){.t = A_BLOB, .p = (v), .len = (unsigned long)(n)})
#define ANULL ((struct arg){.t = A_NULL})

/* A result: rows of columns as NUL-terminated copies (binary-safe via len). */
struct row {
    char **v;
    unsigned long *len;
};
struct result {
    size_t nrows, ncols;
    struct row *rows;
    unsigned long long affected;
    unsigned long long insert_id;
};

static int db_connect(struct store *s, struct cc_error *err)
{
    const struct cc_config *c = s->cfg;
    s->db = mysql_init(NULL);
    if (s->db == NULL)
        return err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
    unsigned int timeout = 5;
    mysql_optionsv(s->db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_optionsv(s->db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    /* Counts read after taking a row lock must see the latest committed rows. */
    mysql_optionsv(s->db, MYSQL_INIT_COMMAND,
                   "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    mysql_optionsv(s->db, MYSQL_INIT_COMMAND, "SET SESSION innodb_lock_wait_timeout = 10");
    const char *sock = c->database_socket[0] ? c->database_socket : NULL;
    if (!mysql_real_connect(s->db, sock ? NULL : c->database_host, c->database_user,
                            c->database_password, c->database_name,
                            (unsigned)c->database_port, sock, 0)) {
        s->last_errno = mysql_errno(s->db);
        log_error("database: connect failed (error %u)", s->last_errno);
        mysql_close(s->db);
        s->db = NULL;
        return err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
    }
    s->broken = false;
    return 0;
}

static void db_drop_statements(struct store *s)
{
    for (int i = 0; i < Q__MAX; i++) {
        if (s->stmt[i])
            mysql_stmt_close(s->stmt[i]);
        s->stmt[i] = NULL;
    }
}

static void db_disconnect(struct store *s)
{
    db_drop_statements(s);
    if (s->db)
        mysql_close(s->db);
    s->db = NULL;
}

struct store *store_open(const struct cc_config *cfg, struct cc_error *err)
{
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        err_set(err, ERR_INTERNAL, NULL);
        return NULL;
    }
    s->cfg = cfg;
    if (db_connect(s, err) < 0) {
        /* Keep the handle: the next call reconnects (the database may come back). */
        s->broken = true;
    }
    return s;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    db_disconnect(s);
    free(s);
}

static bool lost_connection(unsigned e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == ER_CONNECTION_KILLED;
}

static int bind_args(MYSQL_STMT *st, const struct arg *args, size_t n, MYSQL_BIND *b)
{
    memset(b, 0, sizeof(MYSQL_BIND) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        switch (args[i].t) {
        case A_NULL:
            b[i].buffer_type = MYSQL_TYPE_NULL;
            break;
        case A_I64:
            b[i].buffer_type = MYSQL_TYPE_LONGLONG;
            b[i].buffer = (void *)&args[i].i;
            break;
        case A_DOUBLE:
            b[i].buffer_type = MYSQL_TYPE_DOUBLE;
            b[i].buffer = (void *)&args[i].d;
            break;
        case A_STR:
        case A_BLOB:
            b[i].buffer_type = args[i].t == A_STR ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
            b[i].buffer = (void *)args[i].p;
            b[i].buffer_length = args[i].len;
            b[i].length = (unsigned long *)&args[i].len;
            break;
        }
    }
    return n ? (mysql_stmt_bind_param(st, b) ? -1 : 0) : 0;
}

/* Copy every row into the arena: bind lengths first, then fetch each column. */
static int fetch_all(MYSQL_STMT *st, arena_t *a, struct result *res)
{
    MYSQL_RES *meta = mysql_stmt_result_metadata(st);
    if (meta == NULL)
        return 0;
    size_t ncols = mysql_num_fields(meta);
    mysql_free_result(meta);
    res->ncols = ncols;
    MYSQL_BIND *b = arena_alloc(a, sizeof(*b) * ncols);
    unsigned long *lens = arena_alloc(a, sizeof(*lens) * ncols);
    my_bool *nulls = arena_alloc(a, sizeof(*nulls) * ncols);
    for (size_t c = 0; c < ncols; c++) {
        b[c].buffer_type = MYSQL_TYPE_STRING;
        b[c].length = &lens[c];
        b[c].is_null = &nulls[c];
    }
    if (mysql_stmt_bind_result(st, b) || mysql_stmt_store_result(st))
        return -1;
    size_t cap = mysql_stmt_num_rows(st);
    res->rows = arena_alloc(a, sizeof(struct row) * (cap ? cap : 1));
    int rc;
    while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
        if (res->nrows >= cap)
            break;
        struct row *r = &res->rows[res->nrows++];
        r->v = arena_alloc(a, sizeof(char *) * ncols);
        r->len = arena_alloc(a, sizeof(unsigned long) * ncols);
        for (size_t c = 0; c < ncols; c++) {
            if (nulls[c])
                continue;
            r->len[c] = lens[c];
            r->v[c] = arena_alloc(a, lens[c] + 1);
            MYSQL_BIND one = {.buffer_type = MYSQL_TYPE_STRING, .buffer = r->v[c],
                              .buffer_length = lens[c] + 1};
            if (lens[c] && mysql_stmt_fetch_column(st, &one, (unsigned)c, 0))
                return -1;
        }
    }
    return rc == 1 ? -1 : 0;
}

static MYSQL_STMT *prepared(struct store *s, enum stmt_id id)
{
    if (s->stmt[id])
        return s->stmt[id];
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (st == NULL)
        return NULL;
    if (mysql_stmt_prepare(st, sql[id], (unsigned long)strlen(sql[id]))) {
        s->last_errno = mysql_stmt_errno(st);
        if (!((id == Q_SCHEMA_GET || id == Q_MIGRATIONS_GET) &&
              s->last_errno == ER_NO_SUCH_TABLE))
            log_error("database: prepare %s failed (error %u)", stmt_names[id], s->last_errno);
        mysql_stmt_close(st);
        return NULL;
    }
    s->stmt[id] = st;
    return st;
}

static int exec_once(struct store *s, arena_t *a, enum stmt_id id, const struct arg *args,
                     size_t n, struct result *res)
{
    if (s->db == NULL || s->broken)
        return -1;
    MYSQL_STMT *st = prepared(s, id);
    if (st == NULL) {
        if (s->last_errno == 0 && s->db)
            s->last_errno = mysql_errno(s->db);
        return -1;
    }
    MYSQL_BIND binds[16];
    if (n > 16 || bind_args(st, args, n, binds) < 0 || mysql_stmt_execute(st)) {
        s->last_errno = mysql_stmt_errno(st);
        return -1;
    }
    memset(res, 0, sizeof(*res));
    res->affected = mysql_stmt_affected_rows(st);
    res->insert_id = mysql_stmt_insert_id(st);
    /* A result set is always read whole, so the connection stays in sync. */
    int rc;
    if (a != NULL) {
        rc = fetch_all(st, a, res);
    } else {
        arena_t *tmp = arena_new(1024);
        rc = fetch_all(st, tmp, res);
        arena_free(tmp);
        res->rows = NULL; /* the caller wanted no rows */
    }
    if (rc < 0)
        s->last_errno = mysql_stmt_errno(st);
    mysql_stmt_free_result(st);
    return rc;
}

/* Execute a statement; outside a transaction, a lost connection is
 * re-established and the statement retried once. */
static int exec(struct store *s, arena_t *a, enum stmt_id id, const struct arg *args, size_t n,
                struct result *res, struct cc_error *err)
{
    s->last_errno = 0;
    if ((s->db == NULL || s->broken) && !s->in_tx) {
        db_disconnect(s);
        if (db_connect(s, err) < 0)
            return -1;
    }
    if (exec_once(s, a, id, args, n, res) == 0)
        return 0;
    unsigned e = s->last_errno;
    if ((lost_connection(e) || s->db == NULL) && !s->in_tx) {
        log_warn("database: connection lost during %s (error %u); reconnecting", stmt_names[id],
                 e);
        db_disconnect(s);
        if (db_connect(s, err) < 0)
            return -1;
        if (exec_once(s, a, id, args, n, res) == 0)
            return 0;
        e = s->last_errno;
    }
    if (lost_connection(e))
        s->broken = true;
    if (e == ER_DUP_ENTRY)
        return err_set(err, ERR_INTERNAL, NULL); /* callers that expect it read last_errno */
    if (e != ER_LOCK_DEADLOCK && e != ER_LOCK_WAIT_TIMEOUT && e != ER_NO_SUCH_TABLE)
        log_error("database: %s failed (error %u)", stmt_names[id], e);
    return err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
}

#define EXEC(s, a, id, res, err, ...)                                                         \
    exec((s), (a), (id), (struct arg[]){__VA_ARGS__},                                          \
         sizeof((struct arg[]){__VA_ARGS__}) / sizeof(struct arg), (res), (err))
#define EXEC0(s, a, id, res, err) exec((s), (a), (id), NULL, 0, (res), (err))

static int64_t col_i64(const struct row *r, size_t c, int64_t dflt)
{
    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): callers read rows only when exec gave them rows (analyzer false positive) */
    return r->v[c] ? strtoll(r->v[c], NULL, 10) : dflt;
}

static const char *col_str(const struct row *r, size_t c)
{
    return r->v[c];
}

static bool col_true(const struct row *r, size_t c)
{
    return r->v[c] && (strcmp(r->v[c], "1") == 0 || strcasecmp(r->v[c], "true") == 0);
}

bool store_retryable(const struct store *s)
{
    return s->last_errno == ER_LOCK_DEADLOCK || s->last_errno == ER_LOCK_WAIT_TIMEOUT;
}

int store_transaction(struct store *s, int (*body)(void *arg, struct cc_error *err),
                      void (*undo)(void *arg), void *arg, struct cc_error *err)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        if (store_begin(s, err) < 0)
            return -1;
        if (body(arg, err) == 0 && store_commit(s, err) == 0)
            return 0;
        store_rollback(s);
        if (undo != NULL)
            undo(arg);
        if (!store_retryable(s))
            return -1;
        err_clear(err);
    }
    return err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
}

int store_begin(struct store *s, struct cc_error *err)
{
    s->last_errno = 0;
    if (s->db == NULL || s->broken) {
        db_disconnect(s);
        if (db_connect(s, err) < 0)
            return -1;
    }
    if (mysql_autocommit(s->db, 0)) {
        s->last_errno = mysql_errno(s->db);
        s->broken = lost_connection(s->last_errno);
        /* One retry on a fresh connection: nothing ran yet. */
        db_disconnect(s);
        if (db_connect(s, err) < 0 || mysql_autocommit(s->db, 0))
            return err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
    }
    s->in_tx = true;
    return 0;
}

int store_commit(struct store *s, struct cc_error *err)
{
    s->in_tx = false;
    if (s->db == NULL || s->broken)
        return err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
    if (mysql_commit(s->db)) {
        s->last_errno = mysql_errno(s->db);
        s->broken = lost_connection(s->last_errno);
        mysql_rollback(s->db);
        mysql_autocommit(s->db, 1);
        return err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
    }
    mysql_autocommit(s->db, 1);
    return 0;
}

void store_rollback(struct store *s)
{
    s->in_tx = false;
    if (s->db == NULL || s->broken)
        return;
    unsigned keep = s->last_errno;
    if (mysql_rollback(s->db) || mysql_autocommit(s->db, 1))
        s->broken = true;
    s->last_errno = keep;
}

int store_ping(struct store *s, struct cc_error *err)
{
    struct result r;
    return EXEC0(s, NULL, Q_PING, &r, err);
}

/* ---- CTFd's tables ---- */

int store_user(struct store *s, arena_t *a, int64_t id, struct ctfd_user *out, bool *found,
               struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    if (EXEC(s, a, Q_USER, &r, err, AI(id)) < 0)
        return -1;
    *found = r.nrows == 1;
    if (!*found)
        return 0;
    struct row *w = &r.rows[0];
    out->id = col_i64(w, 0, 0);
    out->team_id = col_i64(w, 1, 0);
    out->admin = w->v[2] && strcmp(w->v[2], "admin") == 0;
    out->banned = col_true(w, 3);
    out->hidden = col_true(w, 4);
    out->unverified = w->v[5] && strcmp(w->v[5], "0") == 0;
    out->name = col_str(w, 6) ? col_str(w, 6) : "";
    return 0;
}

int store_team(struct store *s, arena_t *a, int64_t id, struct ctfd_team *out, bool *found,
               struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    if (EXEC(s, a, Q_TEAM, &r, err, AI(id)) < 0)
        return -1;
    *found = r.nrows == 1;
    if (!*found)
        return 0;
    out->id = col_i64(&r.rows[0], 0, 0);
    out->banned = col_true(&r.rows[0], 1);
    out->hidden = col_true(&r.rows[0], 2);
    out->name = col_str(&r.rows[0], 3) ? col_str(&r.rows[0], 3) : "";
    return 0;
}

/* CTFd keeps config values as text; empty means unset. Digits are numbers. */
static int64_t config_int(const char *v)
{
    if (v == NULL || *v == '\0')
        return 0;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return strtoll(v, NULL, 10);
}

static bool config_true(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

int store_settings(struct store *s, arena_t *a, struct ctfd_settings *out, struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    if (EXEC0(s, a, Q_CONFIG, &r, err) < 0)
        return -1;
    /* `key` is not unique in CTFd's table: the first row wins, as in CTFd's
     * get_config (Q_CONFIG orders by id). */
    unsigned seen = 0;
    static const char *const keys[] = {"user_mode", "start", "end", "paused", "verify_emails"};
    for (size_t i = 0; i < r.nrows; i++) {
        const char *k = r.rows[i].v[0], *v = r.rows[i].v[1];
        if (k == NULL)
            continue;
        unsigned bit = 0;
        for (unsigned j = 0; j < 5; j++)
            if (strcmp(k, keys[j]) == 0)
                bit = 1u << j;
        if (bit == 0 || (seen & bit))
            continue;
        seen |= bit;
        if (strcmp(k, "user_mode") == 0)
            out->team_mode = v && strcmp(v, "teams") == 0;
        else if (strcmp(k, "start") == 0)
            out->start = config_int(v);
        else if (strcmp(k, "end") == 0)
            out->end = config_int(v);
        else if (strcmp(k, "paused") == 0)
            out->paused = config_true(v);
        else if (strcmp(k, "verify_emails") == 0)
            out->verify_emails = config_true(v);
    }
    return 0;
}

int store_challenge(struct store *s, arena_t *a, int64_t id, struct ctfd_challenge *out,
                    bool *found, struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    if (EXEC(s, a, Q_CHALLENGE, &r, err, AI(id)) < 0)
        return -1;
    *found = r.nrows == 1;
    if (!*found)
        return 0;
    struct row *w = &r.rows[0];
    out->id = col_i64(w, 0, 0);
    out->name = col_str(w, 1) ? col_str(w, 1) : "";
    out->state = col_str(w, 2) ? col_str(w, 2) : "visible";
    out->requirements = col_str(w, 3);
    out->image = col_str(w, 4) ? col_str(w, 4) : "";
    out->ports = col_str(w, 5) ? col_str(w, 5) : "";
    out->flag_template = col_str(w, 6) ? col_str(w, 6) : "";
    out->flag_env = col_str(w, 7) && *col_str(w, 7) ? col_str(w, 7) : "FLAG";
    out->memory_mb = col_i64(w, 8, -1);
    out->cpus = w->v[9] ? strtod(w->v[9], NULL) : -1;
    out->lifetime = col_i64(w, 10, -1);
    out->max_renewals = col_i64(w, 11, -1);
    out->backend = col_str(w, 12) && *col_str(w, 12) ? col_str(w, 12) : NULL;
    out->placement = col_str(w, 13) && *col_str(w, 13) ? col_str(w, 13) : NULL;
    return 0;
}

int store_challenge_images(struct store *s, arena_t *a, const char ***images, size_t *n,
                           struct cc_error *err)
{
    struct result r;
    *images = NULL;
    *n = 0;
    if (EXEC0(s, a, Q_IMAGES, &r, err) < 0)
        return -1;
    *images = arena_alloc(a, sizeof(char *) * (r.nrows ? r.nrows : 1));
    for (size_t i = 0; i < r.nrows; i++)
        if (col_str(&r.rows[i], 0) != NULL)
            (*images)[(*n)++] = col_str(&r.rows[i], 0);
    return 0;
}

int store_challenge_exists(struct store *s, int64_t id, bool *found, struct cc_error *err)
{
    struct result r;
    arena_t *a = arena_new(1024);
    int rc = EXEC(s, a, Q_CHALLENGE_EXISTS, &r, err, AI(id));
    *found = rc == 0 && r.nrows > 0;
    arena_free(a);
    return rc;
}

static int ids_from(const struct result *r, arena_t *a, int64_t **ids, size_t *n)
{
    *ids = arena_alloc(a, sizeof(int64_t) * (r->nrows ? r->nrows : 1));
    *n = 0;
    for (size_t i = 0; i < r->nrows; i++)
        if (r->rows[i].v[0])
            (*ids)[(*n)++] = strtoll(r->rows[i].v[0], NULL, 10);
    return 0;
}

int store_solved(struct store *s, arena_t *a, bool team_mode, int64_t account_id, int64_t **ids,
                 size_t *n, struct cc_error *err)
{
    struct result r;
    if (EXEC(s, a, team_mode ? Q_SOLVED_TEAM : Q_SOLVED_USER, &r, err, AI(account_id)) < 0)
        return -1;
    return ids_from(&r, a, ids, n);
}

/* ---- our tables ---- */

int store_lock_account(struct store *s, const char *kind, int64_t account_id,
                       int64_t *last_action_at, struct cc_error *err)
{
    struct result r;
    arena_t *a = arena_new(1024);
    int rc = EXEC(s, NULL, Q_ACCOUNT_ENSURE, &r, err, AS(kind), AI(account_id));
    if (rc == 0)
        rc = EXEC(s, a, Q_ACCOUNT_LOCK, &r, err, AS(kind), AI(account_id));
    if (rc == 0)
        *last_action_at = r.nrows ? col_i64(&r.rows[0], 0, 0) : 0;
    arena_free(a);
    return rc;
}

int store_touch_account(struct store *s, const char *kind, int64_t account_id, int64_t now,
                        struct cc_error *err)
{
    struct result r;
    return EXEC(s, NULL, Q_ACCOUNT_TOUCH, &r, err, AI(now), AS(kind), AI(account_id));
}

int store_lock_capacity(struct store *s, struct cc_error *err)
{
    struct result r;
    return EXEC0(s, NULL, Q_CAPACITY_LOCK, &r, err);
}

static int count(struct store *s, enum stmt_id id, const struct arg *args, size_t n, int64_t *out,
                 struct cc_error *err)
{
    struct result r;
    arena_t *a = arena_new(1024);
    int rc = exec(s, a, id, args, n, &r, err);
    *out = rc == 0 && r.nrows ? col_i64(&r.rows[0], 0, 0) : 0;
    arena_free(a);
    return rc;
}

int store_count_live_account(struct store *s, const char *kind, int64_t account_id, int64_t *n,
                             struct cc_error *err)
{
    struct arg args[] = {AS(kind), AI(account_id)};
    return count(s, Q_COUNT_LIVE_ACCOUNT, args, 2, n, err);
}

int store_count_live_total(struct store *s, int64_t *n, struct cc_error *err)
{
    return count(s, Q_COUNT_LIVE_TOTAL, NULL, 0, n, err);
}

static void instance_from(const struct row *w, struct instance *o)
{
    memset(o, 0, sizeof(*o));
    o->id = col_i64(w, 0, 0);
    o->account_kind = col_str(w, 1);
    o->account_id = col_i64(w, 2, 0);
    o->user_id = col_i64(w, 3, 0);
    o->challenge_id = col_i64(w, 4, 0);
    o->backend = col_str(w, 5);
    o->name = col_str(w, 6);
    o->engine_id = col_str(w, 7);
    o->image = col_str(w, 8);
    o->state = col_str(w, 9);
    o->live = w->v[10] != NULL;
    o->host = col_str(w, 11) ? col_str(w, 11) : "";
    o->ports = col_str(w, 12) ? col_str(w, 12) : "";
    o->created_at = col_i64(w, 13, 0);
    o->updated_at = col_i64(w, 14, 0);
    o->started_at = col_i64(w, 15, 0);
    o->deadline = col_i64(w, 16, 0);
    o->renewals = col_i64(w, 17, 0);
    o->ended_at = col_i64(w, 18, 0);
    o->end_reason = col_str(w, 19);
    o->challenge_max_renewals = -1; /* known only where joined_from() ran */
}

/* The names and the challenge's renewal limit a listing joins in. */
static void joined_from(const struct row *w, struct instance *o)
{
    o->account_name = col_str(w, 20);
    o->challenge_name = col_str(w, 21);
    o->challenge_max_renewals = col_i64(w, 22, -1);
}

int store_find_live(struct store *s, arena_t *a, const char *kind, int64_t account_id,
                    int64_t challenge_id, struct instance *out, bool *found, struct cc_error *err)
{
    struct result r;
    /* Locking read inside a transaction; a plain read for lookups outside one
     * (a status poll must never wait behind a start's row locks). */
    enum stmt_id id = s->in_tx ? Q_FIND_LIVE : Q_READ_LIVE;
    if (EXEC(s, a, id, &r, err, AS(kind), AI(account_id), AI(challenge_id)) < 0)
        return -1;
    *found = r.nrows > 0;
    if (*found)
        instance_from(&r.rows[0], out);
    return 0;
}

int store_get_instance(struct store *s, arena_t *a, int64_t id, struct instance *out, bool *found,
                       struct cc_error *err)
{
    struct result r;
    if (EXEC(s, a, Q_GET_INSTANCE, &r, err, AI(id)) < 0)
        return -1;
    *found = r.nrows > 0;
    if (*found) {
        instance_from(&r.rows[0], out);
        joined_from(&r.rows[0], out);
    }
    return 0;
}

int store_insert_instance(struct store *s, arena_t *a, struct instance *inst,
                          struct cc_error *err)
{
    struct result r;
    if (EXEC(s, NULL, Q_INSERT_INSTANCE, &r, err, AS(inst->account_kind), AI(inst->account_id),
             AI(inst->user_id), AI(inst->challenge_id), AS(inst->backend), AS(inst->image),
             AI(inst->created_at), AI(inst->created_at), AI(inst->deadline)) < 0)
        return -1;
    inst->id = (int64_t)r.insert_id;
    /* The engine object's name: SITE-ID (sites sharing an engine differ in SITE). */
    inst->name = arena_printf(a, "%s-%" PRId64, s->cfg->site, inst->id);
    inst->state = "starting";
    inst->live = true;
    return EXEC(s, NULL, Q_SET_NAME, &r, err, AS(inst->name), AI(inst->id));
}

static int try_port(struct store *s, int64_t port, int64_t instance_id, bool *taken,
                    struct cc_error *err)
{
    struct result r;
    struct cc_error e2;
    *taken = false;
    if (EXEC(s, NULL, Q_PORT_INSERT, &r, &e2, AI(port), AI(instance_id)) == 0)
        return 0;
    if (s->last_errno == ER_DUP_ENTRY) {
        *taken = true;
        return 0;
    }
    *err = e2;
    return -1;
}

/* Random probes first (cheap while the range is mostly free), then the first
 * gap after a random offset among the ports in use. */
int store_reserve_port(struct store *s, int64_t instance_id, int64_t min, int64_t max,
                       int64_t *port, struct cc_error *err)
{
    int64_t span = max - min + 1;
    bool taken;
    for (int i = 0; i < 8; i++) {
        int64_t p = min + (int64_t)(arc4random_uniform((uint32_t)span));
        if (try_port(s, p, instance_id, &taken, err) < 0)
            return -1;
        if (!taken) {
            *port = p;
            return 0;
        }
    }
    struct result r;
    arena_t *a = arena_new(64 * 1024);
    int rc = EXEC(s, a, Q_PORTS_USED, &r, err, AI(min), AI(max));
    int64_t start = min + (int64_t)arc4random_uniform((uint32_t)span);
    unsigned char *used = arena_alloc(a, (size_t)span / 8 + 1);
    for (size_t j = 0; rc == 0 && j < r.nrows; j++) {
        int64_t p = col_i64(&r.rows[j], 0, 0) - min;
        if (p >= 0 && p < span)
            used[p / 8] |= (unsigned char)(1u << (p % 8));
    }
    for (int64_t k = 0; rc == 0 && k < span; k++) {
        int64_t off = (start - min + k) % span;
        if (used[off / 8] & (1u << (off % 8)))
            continue;
        rc = try_port(s, min + off, instance_id, &taken, err);
        if (rc == 0 && !taken) {
            *port = min + off;
            arena_free(a);
            return 0;
        }
    }
    arena_free(a);
    return rc < 0 ? -1 : err_set(err, ERR_PORTS_EXHAUSTED, NULL);
}

int store_insert_flag(struct store *s, int64_t instance_id, const char *kind, int64_t account_id,
                      int64_t challenge_id, const char *key_id,
                      const unsigned char nonce[FLAG_NONCE_LEN], const unsigned char *ct,
                      size_t ctlen, const unsigned char digest[FLAG_DIGEST_LEN], int64_t now,
                      bool *duplicate, struct cc_error *err)
{
    struct result r;
    *duplicate = false;
    int rc = EXEC(s, NULL, Q_FLAG_INSERT, &r, err, AI(instance_id), AS(kind), AI(account_id),
                  AI(challenge_id), AS(key_id), AB(nonce, FLAG_NONCE_LEN), AB(ct, ctlen),
                  AB(digest, FLAG_DIGEST_LEN), AI(now));
    if (rc < 0 && s->last_errno == ER_DUP_ENTRY)
        *duplicate = true;
    return rc;
}

int store_get_flag(struct store *s, arena_t *a, int64_t instance_id, struct stored_flag *out,
                   bool *found, struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    if (EXEC(s, a, Q_FLAG_GET, &r, err, AI(instance_id)) < 0)
        return -1;
    *found = false;
    if (r.nrows == 0)
        return 0;
    struct row *w = &r.rows[0];
    if (!w->v[0] || !w->v[1] || !w->v[2] || w->len[1] != FLAG_NONCE_LEN ||
        w->len[2] > sizeof(out->ct))
        return err_set(err, ERR_INTERNAL, NULL);
    out->key_id = w->v[0];
    memcpy(out->nonce, w->v[1], FLAG_NONCE_LEN);
    memcpy(out->ct, w->v[2], w->len[2]);
    out->ctlen = w->len[2];
    *found = true;
    return 0;
}

int store_mark_running(struct store *s, int64_t id, const char *engine_id, const char *host,
                       const char *ports, int64_t now, bool *changed, struct cc_error *err)
{
    struct result r;
    int rc = EXEC(s, NULL, Q_MARK_RUNNING, &r, err, AS(engine_id), AS(host), AS(ports), AI(now),
                  AI(now), AI(id));
    *changed = rc == 0 && r.affected == 1;
    return rc;
}

int store_cas_state(struct store *s, int64_t id, const char *from, const char *to, int64_t now,
                    bool *changed, struct cc_error *err)
{
    struct result r;
    int rc = EXEC(s, NULL, Q_CAS_STATE, &r, err, AS(to), AI(now), AI(id), AS(from));
    *changed = rc == 0 && r.affected == 1;
    return rc;
}

static int end_rows(struct store *s, int64_t id, const char *state, const char *reason,
                    int64_t now, bool free_ports, bool *changed, struct cc_error *err)
{
    struct result r;
    if (EXEC(s, NULL, Q_END, &r, err, AS(state), AI(now), AI(now), AS(reason ? reason : ""),
             AI(id)) < 0)
        return -1;
    *changed = r.affected == 1;
    if (free_ports && EXEC(s, NULL, Q_PORTS_FREE, &r, err, AI(id)) < 0)
        return -1;
    return EXEC(s, NULL, Q_FLAG_RETIRE, &r, err, AI(now), AI(id));
}

int store_end_if_state(struct store *s, int64_t id, const char *from, const char *state,
                       const char *reason, int64_t now, bool *changed, struct cc_error *err)
{
    struct result r;
    *changed = false;
    if (EXEC(s, NULL, Q_END_IF_STATE, &r, err, AS(state), AI(now), AI(now),
             AS(reason ? reason : ""), AI(id), AS(from)) < 0)
        return -1;
    *changed = r.affected == 1;
    return *changed ? EXEC(s, NULL, Q_FLAG_RETIRE, &r, err, AI(now), AI(id)) : 0;
}

int store_lock_live_state(struct store *s, arena_t *a, int64_t id, const char **state,
                          struct cc_error *err)
{
    struct result r;
    *state = NULL;
    if (EXEC(s, a, Q_LOCK_LIVE_STATE, &r, err, AI(id)) < 0)
        return -1;
    if (r.nrows)
        *state = col_str(&r.rows[0], 0);
    return 0;
}

int store_end_keep_ports(struct store *s, int64_t id, const char *state, const char *reason,
                         int64_t now, bool *changed, struct cc_error *err)
{
    return end_rows(s, id, state, reason, now, false, changed, err);
}

int store_free_ports(struct store *s, int64_t id, struct cc_error *err)
{
    struct result r;
    return EXEC(s, NULL, Q_PORTS_FREE, &r, err, AI(id));
}

int store_ids_ports_ended(struct store *s, arena_t *a, int64_t **ids, size_t *n,
                          struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_PORTS_ENDED, &r, err) < 0)
        return -1;
    return ids_from(&r, a, ids, n);
}

int store_restore_action(struct store *s, const char *kind, int64_t account_id, int64_t now,
                         int64_t previous, struct cc_error *err)
{
    struct result r;
    return EXEC(s, NULL, Q_ACCOUNT_RESTORE, &r, err, AI(previous), AS(kind), AI(account_id),
                AI(now));
}

int store_end(struct store *s, int64_t id, const char *state, const char *reason, int64_t now,
              bool *changed, struct cc_error *err)
{
    *changed = false;
    if (s->in_tx)
        return end_rows(s, id, state, reason, now, true, changed, err);
    for (int attempt = 0; attempt < 3; attempt++) {
        if (store_begin(s, err) < 0)
            return -1;
        if (end_rows(s, id, state, reason, now, true, changed, err) == 0 &&
            store_commit(s, err) == 0)
            return 0;
        store_rollback(s);
        if (!store_retryable(s))
            return -1;
    }
    return -1;
}

int store_extend(struct store *s, int64_t id, int64_t renewals_seen, int64_t new_deadline,
                 int64_t now, bool *changed, struct cc_error *err)
{
    struct result r;
    int rc = EXEC(s, NULL, Q_EXTEND, &r, err, AI(new_deadline), AI(now), AI(id),
                  AI(renewals_seen));
    *changed = rc == 0 && r.affected == 1;
    return rc;
}

#define FILTER_ARGS(f, st)                                                                     \
    AI((f)->challenge_id), AI((f)->challenge_id), AI((f)->account_id), AI((f)->account_id),     \
        AS(st), AS(st)

int store_list(struct store *s, arena_t *a, const struct instance_filter *f,
               struct instance **rows, size_t *n, int64_t *total, struct cc_error *err)
{
    const char *st = f->state && strcmp(f->state, "live") ? f->state : "";
    struct arg cargs[] = {FILTER_ARGS(f, st)};
    struct result r;
    if (st[0] == '\0') { /* live containers: the statements the index serves */
        if (count(s, Q_LIST_LIVE_COUNT, cargs, 4, total, err) < 0 ||
            EXEC(s, a, f->newest_deadline_first ? Q_LIST_LIVE_DESC : Q_LIST_LIVE, &r, err,
                 AI(f->challenge_id), AI(f->challenge_id), AI(f->account_id), AI(f->account_id),
                 AI(f->per_page), AI((f->page - 1) * f->per_page)) < 0)
            return -1;
    } else if (count(s, Q_LIST_COUNT, cargs, 6, total, err) < 0 ||
               EXEC(s, a, f->newest_deadline_first ? Q_LIST_DESC : Q_LIST, &r, err,
                    FILTER_ARGS(f, st), AI(f->per_page), AI((f->page - 1) * f->per_page)) < 0) {
        return -1;
    }
    *rows = arena_alloc(a, sizeof(struct instance) * (r.nrows ? r.nrows : 1));
    *n = r.nrows;
    for (size_t i = 0; i < r.nrows; i++) {
        instance_from(&r.rows[i], &(*rows)[i]);
        joined_from(&r.rows[i], &(*rows)[i]);
    }
    return 0;
}

int store_ids_expired(struct store *s, arena_t *a, int64_t now, int64_t **ids, size_t *n,
                      struct cc_error *err)
{
    struct result r;
    if (EXEC(s, a, Q_IDS_EXPIRED, &r, err, AI(now)) < 0)
        return -1;
    return ids_from(&r, a, ids, n);
}

int store_ids_stale(struct store *s, arena_t *a, const char *state, int64_t before,
                    int64_t **ids, size_t *n, struct cc_error *err)
{
    struct result r;
    if (EXEC(s, a, Q_IDS_STALE, &r, err, AS(state), AI(before)) < 0)
        return -1;
    return ids_from(&r, a, ids, n);
}

int store_ids_live(struct store *s, arena_t *a, int64_t **ids, size_t *n, struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_IDS_LIVE, &r, err) < 0)
        return -1;
    return ids_from(&r, a, ids, n);
}

static struct arg opt_id(int64_t v)
{
    return v > 0 ? AI(v) : ANULL;
}

int store_event(struct store *s, const char *kind, int64_t actor_user_id, int64_t instance_id,
                const char *account_kind, int64_t account_id, int64_t challenge_id,
                const char *detail, int64_t now, struct cc_error *err)
{
    struct result r;
    char short_detail[1024];
    snprintf(short_detail, sizeof(short_detail), "%s", detail ? detail : "");
    return EXEC(s, NULL, Q_EVENT, &r, err, AI(now), AS(kind), opt_id(actor_user_id),
                opt_id(instance_id), account_kind ? AS(account_kind) : ANULL, opt_id(account_id),
                opt_id(challenge_id), AS(short_detail));
}

int store_set_status(struct store *s, const char *name, const char *value, int64_t now,
                     struct cc_error *err)
{
    struct result r;
    return EXEC(s, NULL, Q_STATUS_SET, &r, err, AS(name), AS(value), AI(now));
}

int store_get_status(struct store *s, arena_t *a, const char *name, const char **value,
                     int64_t *updated_at, struct cc_error *err)
{
    struct result r;
    *value = NULL;
    *updated_at = 0;
    if (EXEC(s, a, Q_STATUS_GET, &r, err, AS(name)) < 0)
        return -1;
    if (r.nrows) {
        *value = col_str(&r.rows[0], 0);
        *updated_at = col_i64(&r.rows[0], 1, 0);
    }
    return 0;
}

/* ---- warm pools ---- */

int store_pool_needs(struct store *s, arena_t *a, struct pool_need **rows, size_t *n,
                     struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_POOL_NEEDS, &r, err) < 0)
        return -1;
    *rows = arena_alloc(a, sizeof(**rows) * (r.nrows ? r.nrows : 1));
    *n = r.nrows;
    for (size_t i = 0; i < r.nrows; i++) {
        (*rows)[i].challenge_id = col_i64(&r.rows[i], 0, 0);
        (*rows)[i].size = col_i64(&r.rows[i], 1, 0);
        (*rows)[i].last_failure = col_i64(&r.rows[i], 2, 0);
    }
    return 0;
}

int store_pool_members(struct store *s, arena_t *a, struct pool_member **rows, size_t *n,
                       struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_POOL_MEMBERS, &r, err) < 0)
        return -1;
    *rows = arena_alloc(a, sizeof(**rows) * (r.nrows ? r.nrows : 1));
    *n = r.nrows;
    for (size_t i = 0; i < r.nrows; i++) {
        struct pool_member *m = &(*rows)[i];
        m->id = col_i64(&r.rows[i], 0, 0);
        m->challenge_id = col_i64(&r.rows[i], 1, 0);
        m->state = col_str(&r.rows[i], 2) ? col_str(&r.rows[i], 2) : "";
        m->spec = col_str(&r.rows[i], 3) ? col_str(&r.rows[i], 3) : "";
        m->deadline = col_i64(&r.rows[i], 4, 0);
        m->name = col_str(&r.rows[i], 5) ? col_str(&r.rows[i], 5) : "";
    }
    return 0;
}

int store_pool_lock(struct store *s, int64_t challenge_id, int64_t *live_total,
                    int64_t *live_challenge, struct cc_error *err)
{
    struct result r;
    struct arg one[] = {AI(challenge_id)};
    if (EXEC0(s, NULL, Q_POOL_LOCK, &r, err) < 0 ||
        count(s, Q_POOL_COUNT_TOTAL, NULL, 0, live_total, err) < 0)
        return -1;
    return count(s, Q_POOL_COUNT_CHALLENGE, one, 1, live_challenge, err);
}

int store_pool_count(struct store *s, int64_t *n, struct cc_error *err)
{
    return count(s, Q_POOL_COUNT_TOTAL, NULL, 0, n, err);
}

int store_pool_mark(struct store *s, int64_t id, const char *spec, struct cc_error *err)
{
    struct result r;
    if (EXEC(s, NULL, Q_POOL_MARK, &r, err, AS(spec), AI(id)) < 0)
        return -1;
    return r.affected == 1 ? 0 : err_set(err, ERR_INTERNAL, NULL);
}

/* Take one running pool row: pick it (skipping rows another claim holds),
 * then move it and its flag to the account by compare-and-set. */
int store_pool_claim(struct store *s, const struct pool_claim *c, int64_t *id, bool *claimed,
                     struct cc_error *err)
{
    *claimed = false;
    *id = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct result r;
        arena_t *a = arena_new(1024);
        int rc = EXEC(s, a, Q_POOL_PICK, &r, err, AI(c->challenge_id), AS(c->spec),
                      AI(c->min_deadline));
        int64_t pick = rc == 0 && r.nrows ? col_i64(&r.rows[0], 0, 0) : 0;
        arena_free(a);
        if (rc < 0)
            return -1;
        if (pick == 0)
            return 0; /* the pool is empty: the caller starts one cold */
        if (EXEC(s, NULL, Q_POOL_CLAIM, &r, err, AS(c->account_kind), AI(c->account_id),
                 AI(c->user_id), AI(c->now), AI(c->now), AI(c->now), AI(c->deadline),
                 AI(pick)) < 0)
            return -1;
        if (r.affected != 1)
            continue; /* it moved between the pick and the claim: the next one */
        if (EXEC(s, NULL, Q_POOL_FLAG_CLAIM, &r, err, AS(c->account_kind), AI(c->account_id),
                 AI(c->now), AI(pick)) < 0)
            return -1;
        if (r.affected != 1) /* no live flag: never hand that container out */
            return err_set(err, ERR_INTERNAL, NULL);
        *id = pick;
        *claimed = true;
        return 0;
    }
    return 0;
}

int store_pool_retire(struct store *s, int64_t id, int64_t now, bool *changed,
                      struct cc_error *err)
{
    struct result r;
    int rc = EXEC(s, NULL, Q_POOL_RETIRE, &r, err, AI(now), AI(id));
    *changed = rc == 0 && r.affected == 1;
    return rc;
}

/* ---- migrations ---- */

struct migration {
    int version;
    const char *name;
    const char *text;
};
/* sql_migrations.c holds the compiled-in src/sql files. */
size_t store_migrations(const struct migration **out);

/* DDL from our own compiled-in files, still through a prepared statement. */
static int exec_ddl(struct store *s, const char *text, size_t len, struct cc_error *err)
{
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    int rc = 0;
    if (st == NULL || mysql_stmt_prepare(st, text, (unsigned long)len) ||
        mysql_stmt_execute(st)) {
        s->last_errno = st ? mysql_stmt_errno(st) : mysql_errno(s->db);
        log_error("migrate: statement failed (error %u): %.200s", s->last_errno,
                  st ? mysql_stmt_error(st) : "");
        rc = err_set(err, ERR_DATABASE_UNAVAILABLE, NULL);
    }
    if (st)
        mysql_stmt_close(st);
    return rc;
}

/* Run each statement of a file: a statement ends at a line ending in ';'. */
static int run_file(struct store *s, const char *text, struct cc_error *err)
{
    const char *p = text, *start = NULL;
    while (*p) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        bool comment = end - q >= 2 && q[0] == '-' && q[1] == '-';
        if (!comment && q < end && start == NULL)
            start = p;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'))
            last--;
        if (!comment && start && last > p && last[-1] == ';') {
            if (exec_ddl(s, start, (size_t)(last - 1 - start), err) < 0)
                return -1;
            start = NULL;
        }
        p = eol ? eol + 1 : end;
    }
    return 0;
}

int store_schema_version(struct store *s, int64_t *version, struct cc_error *err)
{
    struct result r;
    arena_t *a = arena_new(1024);
    int rc = EXEC0(s, a, Q_SCHEMA_GET, &r, err);
    if (rc < 0 && s->last_errno == ER_NO_SUCH_TABLE) {
        err_clear(err);
        s->stmt[Q_SCHEMA_GET] = NULL; /* never prepared: retry after the table exists */
        *version = 0;
        rc = 0;
    } else if (rc == 0) {
        *version = r.nrows ? col_i64(&r.rows[0], 0, 0) : 0;
    }
    arena_free(a);
    return rc;
}

int store_latest_version(void)
{
    const struct migration *m;
    size_t n = store_migrations(&m);
    return n ? m[n - 1].version : 0;
}

/* Which compiled-in files are applied: the rows of container_migrations; when
 * it has none (a schema migrated before files were recorded one by one), every
 * file up to container_schema.version. record: write that back-fill. */
static int applied_set(struct store *s, const struct migration *m, size_t n, int64_t version,
                       bool record, bool *done, struct cc_error *err)
{
    struct result r;
    arena_t *a = arena_new(1024);
    int rc = EXEC0(s, a, Q_MIGRATIONS_GET, &r, err);
    size_t rows = 0;
    if (rc < 0 && !record && s->last_errno == ER_NO_SUCH_TABLE) {
        err_clear(err);
        rc = 0;
    } else if (rc == 0) {
        rows = r.nrows;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        done[i] = false;
        for (size_t j = 0; j < rows; j++)
            if (col_i64(&r.rows[j], 0, -1) == m[i].version)
                done[i] = true;
        if (rows == 0 && m[i].version <= version) {
            done[i] = true;
            if (record)
                rc = EXEC(s, NULL, Q_MIGRATION_ADD, &r, err, AI(m[i].version), AS(m[i].name),
                          AI(time(NULL)));
        }
    }
    arena_free(a);
    return rc;
}

int store_schema_pending(struct store *s, int64_t *version, int *pending, struct cc_error *err)
{
    const struct migration *m;
    size_t n = store_migrations(&m);
    bool done[64];
    *pending = 0;
    if (store_schema_version(s, version, err) < 0 ||
        applied_set(s, m, n, *version, false, done, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!done[i])
            (*pending)++;
    if (*pending == 0 && *version < store_latest_version())
        *pending = 1; /* the version row says older than this build */
    return 0;
}

int store_migrate(struct store *s, FILE *report, struct cc_error *err)
{
    struct result r;
    arena_t *a = arena_new(1024);
    int64_t version = 0;
    const struct migration *m;
    size_t n = store_migrations(&m);
    bool done[64];
    /* One migrator at a time, whatever the number of hosts. */
    int rc = EXEC0(s, a, Q_LOCK_MIGRATE, &r, err);
    if (rc == 0)
        rc = store_schema_version(s, &version, err);
    if (rc == 0)
        rc = EXEC0(s, NULL, Q_MIGRATIONS_TABLE, &r, err);
    if (rc == 0)
        rc = applied_set(s, m, n, version, true, done, err);
    /* Every file not yet applied, in number order: one merged later with a
     * lower number than the last applied is applied too. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (done[i])
            continue;
        if (report)
            fprintf(report, "migrate: applying %s\n", m[i].name);
        rc = run_file(s, m[i].text, err);
        if (rc == 0)
            rc = EXEC(s, NULL, Q_MIGRATION_ADD, &r, err, AI(m[i].version), AS(m[i].name),
                      AI(time(NULL)));
        if (m[i].version > version)
            version = m[i].version;
        if (rc == 0)
            rc = EXEC(s, NULL, Q_SCHEMA_SET, &r, err, AI(version), AI(time(NULL)));
    }
    if (rc == 0 && report)
        fprintf(report, "migrate: schema at version %lld\n", (long long)version);
    struct cc_error ignore;
    EXEC0(s, a, Q_UNLOCK_MIGRATE, &r, &ignore);
    arena_free(a);
    return rc;
}

int store_live_by_challenge(struct store *s, arena_t *a, struct challenge_count **rows, size_t *n,
                            struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_LIVE_BY_CHALLENGE, &r, err) < 0)
        return -1;
    *rows = arena_alloc(a, sizeof(**rows) * (r.nrows ? r.nrows : 1));
    *n = r.nrows;
    for (size_t i = 0; i < r.nrows; i++) {
        (*rows)[i].challenge_id = col_i64(&r.rows[i], 0, 0);
        (*rows)[i].challenge_name = col_str(&r.rows[i], 1) ? col_str(&r.rows[i], 1) : "";
        (*rows)[i].live = col_i64(&r.rows[i], 2, 0);
    }
    return 0;
}

int store_events(struct store *s, arena_t *a, const char *kind, int64_t page, int64_t per_page,
                 struct event **rows, size_t *n, int64_t *total, struct cc_error *err)
{
    const char *k = kind ? kind : "";
    struct arg cargs[] = {AS(k), AS(k)};
    if (count(s, Q_EVENTS_COUNT, cargs, 2, total, err) < 0)
        return -1;
    struct result r;
    if (EXEC(s, a, Q_EVENTS, &r, err, AS(k), AS(k), AI(per_page), AI((page - 1) * per_page)) < 0)
        return -1;
    *rows = arena_alloc(a, sizeof(**rows) * (r.nrows ? r.nrows : 1));
    *n = r.nrows;
    for (size_t i = 0; i < r.nrows; i++) {
        struct row *w = &r.rows[i];
        struct event *e = &(*rows)[i];
        e->id = col_i64(w, 0, 0);
        e->at = col_i64(w, 1, 0);
        e->kind = col_str(w, 2) ? col_str(w, 2) : "";
        e->actor_user_id = col_i64(w, 3, 0);
        e->actor_name = col_str(w, 4) ? col_str(w, 4) : "";
        e->instance_id = col_i64(w, 5, 0);
        e->account_kind = col_str(w, 6);
        e->account_id = col_i64(w, 7, 0);
        e->account_name = col_str(w, 8) ? col_str(w, 8) : "";
        e->challenge_id = col_i64(w, 9, 0);
        e->challenge_name = col_str(w, 10) ? col_str(w, 10) : "";
        e->detail = col_str(w, 11) ? col_str(w, 11) : "";
    }
    return 0;
}

/* ---- exposure (docs/exposure.md) ---- */

int store_set_route(struct store *s, int64_t id, const char *route, bool *duplicate,
                    struct cc_error *err)
{
    struct result r;
    *duplicate = false;
    int rc = EXEC(s, NULL, Q_SET_ROUTE, &r, err, AS(route), AI(id));
    if (rc < 0 && s->last_errno == ER_DUP_ENTRY)
        *duplicate = true;
    return rc;
}

int store_get_route(struct store *s, arena_t *a, int64_t id, const char **route,
                    struct cc_error *err)
{
    struct result r;
    *route = NULL;
    if (EXEC(s, a, Q_GET_ROUTE, &r, err, AI(id)) < 0)
        return -1;
    if (r.nrows)
        *route = col_str(&r.rows[0], 0);
    return 0;
}

int store_route_lookup(struct store *s, arena_t *a, const char *route, struct route_target *out,
                       bool *found, struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    *found = false;
    if (EXEC(s, a, Q_ROUTE_LOOKUP, &r, err, AS(route)) < 0)
        return -1;
    if (r.nrows == 0)
        return 0;
    struct row *w = &r.rows[0];
    out->instance_id = col_i64(w, 0, 0);
    out->account_kind = col_str(w, 1) ? col_str(w, 1) : "";
    out->account_id = col_i64(w, 2, 0);
    out->ports = col_str(w, 3) ? col_str(w, 3) : "";
    out->owner_only = col_true(w, 4);
    *found = true;
    return 0;
}

int store_routes_running(struct store *s, arena_t *a, struct route_row **rows, size_t *n,
                         struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_ROUTES_RUNNING, &r, err) < 0)
        return -1;
    *rows = arena_alloc(a, sizeof(**rows) * (r.nrows ? r.nrows : 1));
    *n = r.nrows;
    for (size_t i = 0; i < r.nrows; i++) {
        (*rows)[i].route = col_str(&r.rows[i], 0) ? col_str(&r.rows[i], 0) : "";
        (*rows)[i].ports = col_str(&r.rows[i], 1) ? col_str(&r.rows[i], 1) : "";
    }
    return 0;
}

/* ---- switch, canary, fallback ------------------------------------------- */

int store_set_backend(struct store *s, int64_t id, const char *backend, bool *changed,
                      struct cc_error *err)
{
    struct result r;
    int rc = EXEC(s, NULL, Q_SET_BACKEND, &r, err, AS(backend), AI(time(NULL)), AI(id));
    *changed = rc == 0 && r.affected == 1;
    return rc;
}

int store_replace_flag(struct store *s, int64_t instance_id, const char *key_id,
                       const unsigned char nonce[FLAG_NONCE_LEN], const unsigned char *ct,
                       size_t ctlen, const unsigned char digest[FLAG_DIGEST_LEN],
                       struct cc_error *err)
{
    struct result r;
    if (EXEC(s, NULL, Q_FLAG_REPLACE, &r, err, AS(key_id), AB(nonce, FLAG_NONCE_LEN),
             AB(ct, ctlen), AB(digest, FLAG_DIGEST_LEN), AI(instance_id)) < 0)
        return -1;
    return r.affected == 1 ? 0 : err_set(err, ERR_INTERNAL, NULL);
}

int store_live_backends(struct store *s, arena_t *a, int64_t **ids, const char ***backends,
                        size_t *n, struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_LIVE_BACKENDS, &r, err) < 0)
        return -1;
    *ids = arena_alloc(a, sizeof(int64_t) * (r.nrows ? r.nrows : 1));
    *backends = arena_alloc(a, sizeof(char *) * (r.nrows ? r.nrows : 1));
    *n = 0;
    for (size_t i = 0; i < r.nrows; i++) {
        (*ids)[*n] = col_i64(&r.rows[i], 0, 0);
        (*backends)[(*n)++] = col_str(&r.rows[i], 1) ? col_str(&r.rows[i], 1) : "";
    }
    return 0;
}

int store_challenge_exposure(struct store *s, arena_t *a, int64_t id,
                             struct challenge_exposure *out, struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    if (EXEC(s, a, Q_CHALLENGE_EXPOSURE, &r, err, AI(id)) < 0) {
        if (s->last_errno != ER_BAD_FIELD_ERROR)
            return -1;
        /* The plugin's migration 5e1f0c7a9b24 has not run yet: every setting off. */
        err_clear(err);
        return 0;
    }
    if (r.nrows == 0)
        return 0;
    struct row *w = &r.rows[0];
    out->owner_only = col_true(w, 0);
    out->connect = col_str(w, 1);
    out->allow_internet = col_true(w, 2);
    out->cap_add = col_str(w, 3);
    out->read_only = col_true(w, 4);
    return 0;
}

int store_backends_in_use(struct store *s, arena_t *a, int64_t since, const char ***names,
                          size_t *n, struct cc_error *err)
{
    struct result r;
    if (EXEC(s, a, Q_BACKENDS_IN_USE, &r, err, AI(since)) < 0)
        return -1;
    *names = arena_alloc(a, sizeof(char *) * (r.nrows ? r.nrows : 1));
    *n = 0;
    for (size_t i = 0; i < r.nrows; i++)
        if (col_str(&r.rows[i], 0))
            (*names)[(*n)++] = col_str(&r.rows[i], 0);
    return 0;
}

int store_instance_by_name(struct store *s, arena_t *a, const char *name, struct instance *out,
                           bool *found, struct cc_error *err)
{
    struct result r;
    if (EXEC(s, a, Q_INSTANCE_BY_NAME, &r, err, AS(name)) < 0)
        return -1;
    *found = r.nrows > 0;
    if (*found)
        instance_from(&r.rows[0], out);
    return 0;
}

/* ---- the whale backend: ctfd-whale's whale_container (read only) --------- */

static void whale_from(const struct row *w, struct whale_row *o)
{
    memset(o, 0, sizeof(*o));
    o->id = col_i64(w, 0, 0);
    o->user_id = col_i64(w, 1, 0);
    o->challenge_id = col_i64(w, 2, 0);
    o->start_time = col_i64(w, 3, 0);
    o->renew_count = col_i64(w, 4, 0);
    o->port = col_i64(w, 5, 0);
    o->uuid = col_str(w, 6) ? col_str(w, 6) : "";
}

int store_whale_find(struct store *s, arena_t *a, int64_t user_id, const char *uuid,
                     struct whale_row *out, bool *found, struct cc_error *err)
{
    struct result r;
    memset(out, 0, sizeof(*out));
    int rc = uuid ? EXEC(s, a, Q_WHALE_BY_UUID, &r, err, AS(uuid))
                  : EXEC(s, a, Q_WHALE_BY_USER, &r, err, AI(user_id));
    if (rc < 0)
        return -1;
    *found = r.nrows > 0;
    if (*found) {
        whale_from(&r.rows[0], out);
        out->flag = col_str(&r.rows[0], 7); /* plaintext in whale's table: never log it */
    }
    return 0;
}

int store_whale_ours(struct store *s, arena_t *a, struct whale_row **rows, size_t *n,
                     struct cc_error *err)
{
    struct result r;
    if (EXEC0(s, a, Q_WHALE_OURS, &r, err) < 0)
        return -1;
    *rows = arena_alloc(a, sizeof(struct whale_row) * (r.nrows ? r.nrows : 1));
    *n = r.nrows;
    for (size_t i = 0; i < r.nrows; i++) {
        whale_from(&r.rows[i], &(*rows)[i]);
        (*rows)[i].instance_id = col_i64(&r.rows[i], 7, -1);
        (*rows)[i].name = col_str(&r.rows[i], 8);
        (*rows)[i].deadline = col_i64(&r.rows[i], 9, 0);
    }
    return 0;
}
