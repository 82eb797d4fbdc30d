/*
 * px_daemon.h - what the processor and the gateway do with their settings
 * once px_config_load has read them, declared once for both daemons.
 */
#ifndef PX_DAEMON_H
#define PX_DAEMON_H

#include "px_config.h"
#include "px_redis_conf.h"

/* The checks both daemons run on loaded settings, in this order: the log
 * level `log_level` (debug|info|warn|error; set as the process's level),
 * a notice (component `comp`) naming the PRESENCE_* environment variables
 * that are no setting of `prog`, then the Redis settings (`redis_host` a
 * host name or address, `redis` consistent; cluster and Sentinel both
 * taken). Returns 0, or 2 (the exit status of bad settings) after one line
 * "PROG: why" on stderr. */
int px_daemon_settings(const px_opt_t *opts, size_t nopts, const char *prog, const char *comp,
                       const char *log_level, const char *redis_host, const px_redis_conf_t *redis);

#endif
