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
 *   env:      shared PRESENCE_<KEY> with '.' -> '_' and upper case,
 *             e.g. redis.port -> PRESENCE_REDIS_PORT, read by every
 *             program that has the key and ignored by the others; then
 *             the program's own PRESENCE_<PROG>_<KEY>, which overrides the
 *             shared one (<PROG> from the `prog` name: "presence-gateway"
 *             -> GATEWAY, "presence-processor" -> PROCESSOR, "presencectl"
 *             -> CTL). PRESENCE_KAFKA_<X> and PRESENCE_<PROG>_KAFKA_<X>
 *             -> kafka.<x> with '_' -> '.'
 *   flags:    --set key=value (repeatable), --config FILE, --help
 *
 * An unknown key (not in the table and not kafka.*) is an error in a file,
 * in --set and in a PRESENCE_<PROG>_* variable, so typos do not pass
 * silently; a shared PRESENCE_* variable that names no key of this program
 * may belong to a sibling program or a script and is ignored
 * (px_config_env_ignored lists such variables for a notice).
 * Related: docs/configuration.md.
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

/* PX_OPT_ALIAS: an old name kept for compatibility; `def` names the key
 * it sets (offset, min and max are unused). It is accepted in files,
 * --set and the program's own variable PRESENCE_<PROG>_<OLD NAME>, but
 * has no shared variable: PRESENCE_<OLD NAME> may be a sibling's key. */
typedef enum { PX_OPT_STR = 0, PX_OPT_INT, PX_OPT_BOOL, PX_OPT_ALIAS } px_opt_type_t;

typedef struct px_opt {
    const char *name;  /* "redis.port" */
    px_opt_type_t type;
    const char *def;   /* default, as text (PX_OPT_ALIAS: the key it sets) */
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
 * prog names the program ("presence-gateway") in --help and gives its own
 * environment prefix (NULL: none).
 * Returns 0, PX_CONFIG_EXIT after --help (usage printed to `out`), or
 * PX_ECONFIG with the reason (file:line, key, value) in errstr. */
int px_config_load(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                   int argc, char **argv, const char *prog, FILE *out, char *errstr,
                   size_t errstr_size);

/* Set one key=value on cfg/kafka (the path every source goes through). */
int px_config_set(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                  const char *key, const char *val, char *errstr, size_t errstr_size);

/* The PRESENCE_* variables of the environment that px_config_load ignores
 * for this program (shared names of no key of it, not in another presence
 * program's own form), space-separated into buf (cut with " ..." when it
 * is full). Returns how many there are; 0 when none. `kafka`: whether the
 * program takes kafka.* settings (the kafka argument of px_config_load was
 * not NULL). For a notice at start-up, after the log level is set. */
size_t px_config_env_ignored(const px_opt_t *opts, size_t nopts, const char *prog, bool kafka,
                             char *buf, size_t size);

/* Print the option table (name, type, default, help) to out. */
void px_config_usage(const px_opt_t *opts, size_t nopts, const char *prog, FILE *out);

#endif
