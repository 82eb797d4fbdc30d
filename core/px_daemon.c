/*
 * px_daemon.c - the settings checks the processor and the gateway share
 * (px_daemon.h).
 */
#include "px_daemon.h"

#include "px_log.h"
#include "px_redis_addr.h"

#include <stdio.h>

int px_daemon_settings(const px_opt_t *opts, size_t nopts, const char *prog, const char *comp,
                       const char *log_level, const char *redis_host, const px_redis_conf_t *redis) {
    int lvl = px_log_level_parse(log_level);
    if (lvl < 0) {
        fprintf(stderr, "%s: log.level '%s' is not debug|info|warn|error\n", prog, log_level);
        return 2;
    }
    px_log_set_level((px_log_level_t)lvl);
    char ignored[256];
    if (px_config_env_ignored(opts, nopts, prog, true, ignored, sizeof ignored)) {
        char q[300];
        px_log(PX_LOG_INFO, comp, "environment variables ignored: no setting of this program", "names=%s",
               px_log_q(q, sizeof q, ignored));
    }
    char errstr[512];
    if (px_redis_host_check(redis_host, errstr, sizeof errstr) || px_redis_conf_check(redis, errstr, sizeof errstr) ||
        px_redis_conf_limit(redis, prog, true, true, errstr, sizeof errstr)) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        return 2;
    }
    return 0;
}
