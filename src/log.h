/* log.h: the one logger. Lines go to stderr as "time level [role pid] message".
 *
 * Never pass a flag, key, token, cookie or nonce to these functions: the
 * callers log ids and codes only. log_sanitize() strips control characters so
 * a logged value cannot forge a line. */
#ifndef CC_LOG_H
#define CC_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *role, enum log_level min);
void log_set_role(const char *role);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
/* Parse "debug|info|warn|error"; -1 if unknown. */
int log_level_parse(const char *s);

#endif
