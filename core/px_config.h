/*
 * px_config.h - configuration: defaults < file < environment < command line.
 *
 * Each program describes its options in a table of px_opt_t pointing into
 * its own config struct. px_config_load() fills the struct in that order
 * of precedence, validates every value once (type, range), and collects
 * `kafka.*` keys, unprefixed, into a list the program hands to librdkafka
 * (whose own error message stops start-up on an unknown key).
 *
 *   file:     key=value lines, '#' comments, blank lines   (--config FILE)
 *   env:      PRESENCE_<KEY> with '.' -> '_' and upper case,
 *             e.g. redis.port -> PRESENCE_REDIS_PORT;
 *             PRESENCE_KAFKA_<X> -> kafka.<x> with '_' -> '.'
 *   flags:    --set key=value (repeatable), --config FILE, --help
 *
 * An unknown key (not in the table and not kafka.*) is an error, so typos
 * do not pass silently. Related: docs/configuration.md.
 */
#ifndef PX_CONFIG_H
#define PX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PX_CONF_KEY_MAX 128
#define PX_CONF_STR_MAX 512
#define PX_CONF_KV_MAX 128 /* most kafka.* keys kept */

typedef enum { PX_OPT_STR = 0, PX_OPT_INT, PX_OPT_BOOL } px_opt_type_t;

typedef struct px_opt {
    const char *name;  /* "redis.port" */
    px_opt_type_t type;
    const char *def;   /* default, as text */
    const char *help;
    size_t offset;     /* offsetof(cfg struct, member): char[PX_CONF_STR_MAX],
                          int64_t or bool by type */
    int64_t min, max;  /* PX_OPT_INT range, inclusive */
} px_opt_t;

typedef struct px_kv {
    char key[PX_CONF_KEY_MAX];
    char val[PX_CONF_STR_MAX];
} px_kv_t;

/* kafka.* settings in the order they were given; a later key replaces an
 * earlier one of the same name. */
typedef struct px_kvlist {
    px_kv_t kv[PX_CONF_KV_MAX];
    size_t n;
} px_kvlist_t;

#define PX_CONFIG_EXIT 1 /* px_config_load printed --help; exit 0 */

/* Fill cfg (and kafka, which may be NULL to refuse kafka.* keys) from
 * defaults, the --config file, the environment and argv, in that order.
 * Returns 0, PX_CONFIG_EXIT after --help (usage printed to `out`), or
 * PX_ECONFIG with the reason (file:line, key, value) in errstr. */
int px_config_load(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                   int argc, char **argv, const char *prog, FILE *out, char *errstr,
                   size_t errstr_size);

/* Set one key=value on cfg/kafka (the path every source goes through). */
int px_config_set(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                  const char *key, const char *val, char *errstr, size_t errstr_size);

/* Print the option table (name, type, default, help) to out. */
void px_config_usage(const px_opt_t *opts, size_t nopts, const char *prog, FILE *out);

#endif
