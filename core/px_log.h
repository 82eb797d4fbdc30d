/*
 * px_log.h - the one logger: logfmt lines on stderr.
 *
 *   ts=2026-11-22T08:35:41.123Z level=info comp=gateway msg="listening" port=8080
 *
 * `msg` is quoted and escaped by the logger; the key=value tail is the
 * caller's printf format, appended as given (quote values that may hold
 * spaces with px_log_q()). librdkafka's log callback and libwebsockets'
 * emit function are routed here (px_kafka.h, gateway/) so every line of a
 * process has one shape. Thread-safe: one write(2) per line.
 * Hot paths count in px_metrics; they do not log.
 */
#ifndef PX_LOG_H
#define PX_LOG_H

#include <stdio.h>

typedef enum { PX_LOG_DEBUG = 0, PX_LOG_INFO, PX_LOG_WARN, PX_LOG_ERROR } px_log_level_t;

/* Lines below `level` are dropped. Default PX_LOG_INFO. */
void px_log_set_level(px_log_level_t level);
px_log_level_t px_log_get_level(void);
/* "debug" | "info" | "warn" | "error" -> level, or -1. */
int px_log_level_parse(const char *name);
/* Send lines to fd (default 2). For tests. */
void px_log_set_fd(int fd);

/* Write one line. kvfmt may be NULL. */
void px_log(px_log_level_t level, const char *comp, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Quote s for a logfmt value: returns buf holding "..." with \" and \\ and
 * control characters escaped, truncated to fit. */
const char *px_log_q(char *buf, size_t size, const char *s);

#define PX_DEBUG(comp, msg, ...) px_log(PX_LOG_DEBUG, comp, msg, __VA_ARGS__)
#define PX_INFO(comp, msg, ...) px_log(PX_LOG_INFO, comp, msg, __VA_ARGS__)
#define PX_WARN(comp, msg, ...) px_log(PX_LOG_WARN, comp, msg, __VA_ARGS__)
#define PX_ERROR(comp, msg, ...) px_log(PX_LOG_ERROR, comp, msg, __VA_ARGS__)

#endif
