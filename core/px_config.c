/*
 * px_config.c - defaults < file < environment < command line. See px_config.h.
 *
 * Every source goes through px_config_set(), so a value is checked the same
 * way wherever it came from; each source only adds where it came from to
 * the error ("app.conf:12: ...", "environment PRESENCE_X: ...",
 * "argv[3] --set: ..."). The first error stops loading: a half-read config
 * is never used because start-up stops.
 *
 * Limits: file lines are at most PX_CONF_LINE_MAX bytes (not counting the
 * line ending; CRLF is accepted). In a file, blanks around the key and the
 * value are trimmed; in --set only around the key, and environment values
 * are taken as they are (the shell already did the quoting). No quoting,
 * escapes or includes. Every PRESENCE_<PROG>_* variable must name a key
 * of the program or a kafka.* property; environment names longer than
 * PX_CONF_KEY_MAX + 31 bytes are ignored, or refused with the program's
 * prefix. If --config is given twice, the last one is read.
 */
#include "px_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "px_err.h"

#define PX_CONF_LINE_MAX 1024
#define PX_CONF_ENV_PREFIX "PRESENCE_"
#define PX_CONF_ENV_KAFKA "PRESENCE_KAFKA_"
#define PX_CONF_PROG_PREFIX_MAX 64 /* "PRESENCE_GATEWAY_" and the like */

extern char **environ;

static const char *const px_opt_type_names[] = {"string", "int", "bool", "alias"};

static const px_opt_t *px_config_find(const px_opt_t *opts, size_t nopts, const char *key) {
    for (size_t i = 0; i < nopts; i++)
        if (strcmp(opts[i].name, key) == 0) return &opts[i];
    return NULL;
}

/* Strict: the whole string is one base-10 integer (optional sign, no
 * blanks, no suffix) that fits int64_t. */
static int px_config_parse_int(const char *s, int64_t *out) {
    if (!(isdigit((unsigned char)s[0]) ||
          ((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1]))))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0') return -1;
    *out = (int64_t)v;
    return 0;
}

static int px_config_parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

/* Add or replace a kafka.* setting (key already unprefixed). Replacing
 * keeps the first position: librdkafka applies properties one by one, so
 * only the final value matters. */
static int px_config_kafka_set(px_kvlist_t *kafka, const char *key, const char *val,
                               char *errstr, size_t errstr_size) {
    if (!*key) return px_errf(PX_ECONFIG, errstr, errstr_size, "empty key after 'kafka.'");
    if (strlen(key) >= PX_CONF_KEY_MAX)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "key 'kafka.%.32s...' too long (max %d bytes)",
                       key, PX_CONF_KEY_MAX - 1);
    size_t vlen = strlen(val);
    if (vlen >= PX_CONF_STR_MAX)
        return px_errf(PX_ECONFIG, errstr, errstr_size,
                       "value for 'kafka.%s' too long (%zu bytes, max %d)", key, vlen,
                       PX_CONF_STR_MAX - 1);
    px_kv_t *kv = NULL;
    for (size_t i = 0; i < kafka->n; i++)
        if (strcmp(kafka->kv[i].key, key) == 0) kv = &kafka->kv[i];
    if (!kv) {
        if (kafka->n >= PX_CONF_KV_MAX)
            return px_errf(PX_ECONFIG, errstr, errstr_size,
                           "too many kafka.* keys (max %d) at 'kafka.%s'", PX_CONF_KV_MAX, key);
        kv = &kafka->kv[kafka->n++];
        memcpy(kv->key, key, strlen(key) + 1);
    }
    memcpy(kv->val, val, vlen + 1);
    return 0;
}

/* Table options first, so a program may own a name under kafka. if it
 * really wants to; then kafka.*; then unknown. */
int px_config_set(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                  const char *key, const char *val, char *errstr, size_t errstr_size) {
    if (!key || !*key) return px_errf(PX_ECONFIG, errstr, errstr_size, "empty key");
    if (!val) return px_errf(PX_ECONFIG, errstr, errstr_size, "no value for '%s'", key);
    const px_opt_t *o = px_config_find(opts, nopts, key);
    if (o && o->type == PX_OPT_ALIAS) {
        /* an old name: set its key (messages keep the name as given) */
        const px_opt_t *to = o->def ? px_config_find(opts, nopts, o->def) : NULL;
        if (!to || to->type == PX_OPT_ALIAS)
            return px_errf(PX_ECONFIG, errstr, errstr_size, "option '%s' is an alias of no option", key);
        o = to;
    }
    if (!o) {
        if (strncmp(key, "kafka.", 6) == 0) {
            if (!kafka)
                return px_errf(PX_ECONFIG, errstr, errstr_size,
                               "unknown key '%s' (this program takes no kafka.* settings)", key);
            return px_config_kafka_set(kafka, key + 6, val, errstr, errstr_size);
        }
        return px_errf(PX_ECONFIG, errstr, errstr_size, "unknown key '%.*s'", PX_CONF_KEY_MAX,
                       key);
    }
    char *dst = (char *)cfg + o->offset;
    switch (o->type) {
    case PX_OPT_STR: {
        size_t n = strlen(val);
        if (n >= PX_CONF_STR_MAX)
            return px_errf(PX_ECONFIG, errstr, errstr_size,
                           "value for '%s' too long (%zu bytes, max %d)", key, n,
                           PX_CONF_STR_MAX - 1);
        memcpy(dst, val, n + 1);
        return 0;
    }
    case PX_OPT_INT: {
        int64_t v;
        if (px_config_parse_int(val, &v) != 0)
            return px_errf(PX_ECONFIG, errstr, errstr_size,
                           "value for '%s' is not an integer: '%.64s'", key, val);
        if (v < o->min || v > o->max)
            return px_errf(PX_ECONFIG, errstr, errstr_size,
                           "value for '%s' out of range [%lld, %lld]: %lld", key,
                           (long long)o->min, (long long)o->max, (long long)v);
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    case PX_OPT_ALIAS: break; /* resolved above */
    case PX_OPT_BOOL: {
        bool b;
        if (px_config_parse_bool(val, &b) != 0)
            return px_errf(PX_ECONFIG, errstr, errstr_size,
                           "value for '%s' is not a boolean (true/false/1/0/yes/no/on/off): "
                           "'%.64s'",
                           key, val);
        memcpy(dst, &b, sizeof b);
        return 0;
    }
    }
    return px_errf(PX_ECONFIG, errstr, errstr_size, "option '%s' has a bad type", key);
}

/* Put `where` (the source of the setting) in front of the reason already
 * in errstr and return rc. */
static int px_config_where(int rc, char *errstr, size_t errstr_size, const char *where) {
    if (!errstr || errstr_size == 0) return rc;
    char reason[PX_CONF_STR_MAX];
    snprintf(reason, sizeof reason, "%s", errstr);
    snprintf(errstr, errstr_size, "%s: %s", where, reason);
    return rc;
}

static char *px_trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* Split "key=value" in place at the first '='; blanks around both are
 * trimmed. -1 when there is no '=' or the key is empty. */
static int px_config_split(char *s, char **key, char **val) {
    char *eq = strchr(s, '=');
    if (!eq) return -1;
    *eq = '\0';
    *key = px_trim(s);
    *val = px_trim(eq + 1);
    return **key ? 0 : -1;
}

static int px_config_file(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                          const char *path, char *errstr, size_t errstr_size) {
    int rc = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "%s: cannot open config file: %s", path,
                       strerror(errno));
    char line[PX_CONF_LINE_MAX + 3]; /* content, "\r\n", NUL */
    long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        bool eol = n && line[n - 1] == '\n';
        if (eol) line[--n] = '\0';
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        if (n > PX_CONF_LINE_MAX || (!eol && n == sizeof line - 1)) {
            rc = px_errf(PX_ECONFIG, errstr, errstr_size, "%s:%ld: line longer than %d bytes",
                         path, lineno, PX_CONF_LINE_MAX);
            goto out;
        }
        char *s = px_trim(line);
        if (!*s || *s == '#') continue;
        char *key, *val;
        if (px_config_split(s, &key, &val) != 0) {
            rc = px_errf(PX_ECONFIG, errstr, errstr_size, "%s:%ld: expected key=value", path,
                         lineno);
            goto out;
        }
        rc = px_config_set(opts, nopts, cfg, kafka, key, val, errstr, errstr_size);
        if (rc) {
            char where[PX_CONF_STR_MAX];
            snprintf(where, sizeof where, "%s:%ld", path, lineno);
            px_config_where(rc, errstr, errstr_size, where);
            goto out;
        }
    }
    if (ferror(f))
        rc = px_errf(PX_ECONFIG, errstr, errstr_size, "%s: read error: %s", path, strerror(errno));
out:
    fclose(f);
    return rc;
}

/* The programs of this repository, by the word of their own prefix
 * (PRESENCE_<WORD>_): a variable in a sibling's own form is none of this
 * program's business and is passed over without a notice. */
static const char *const px_conf_programs[] = {"GATEWAY", "PROCESSOR", "CTL"};

/* The program's own prefix: "presence-gateway" -> "PRESENCE_GATEWAY_",
 * "presencectl" -> "PRESENCE_CTL_", "test" -> "PRESENCE_TEST_". A leading
 * "presence" and then any '-' or '_' are dropped, letters are upper-cased
 * and anything but [A-Za-z0-9] becomes '_'. buf is "" when nothing is left
 * or it does not fit: the program then has no own form. */
static void px_config_prog_prefix(const char *prog, char *buf, size_t size) {
    buf[0] = '\0';
    if (!prog) return;
    if (strncmp(prog, "presence", 8) == 0) prog += 8;
    while (*prog == '-' || *prog == '_') prog++;
    size_t n = strlen(prog), p = strlen(PX_CONF_ENV_PREFIX);
    if (n == 0 || p + n + 2 > size) return;
    memcpy(buf, PX_CONF_ENV_PREFIX, p);
    for (const char *c = prog; *c; c++)
        buf[p++] = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c) : '_';
    buf[p++] = '_';
    buf[p] = '\0';
}

/* True when s is key's environment spelling: upper case, '.' -> '_'
 * ("redis.port" and "REDIS_PORT"). */
static bool px_config_env_is(const char *key, const char *s) {
    for (; *key; key++, s++) {
        char want = *key == '.' ? '_' : (char)toupper((unsigned char)*key);
        if (*s != want) return false;
    }
    return *s == '\0';
}

/* What one PRESENCE_* variable is to this program. */
typedef enum {
    PX_ENV_NONE = 0,  /* names nothing of this program: ignored (with a notice) */
    PX_ENV_SIBLING,   /* another program's own form: ignored silently */
    PX_ENV_SHARED,    /* PRESENCE_<KEY> of one of its keys, or PRESENCE_KAFKA_<X> */
    PX_ENV_OWN_ALIAS, /* PRESENCE_<PROG>_<OLD NAME>: applied before the rest */
    PX_ENV_OWN,       /* PRESENCE_<PROG>_<KEY>, PRESENCE_<PROG>_KAFKA_<X> */
    PX_ENV_OWN_BAD,   /* PRESENCE_<PROG>_ and no key of it: start-up error */
} px_env_class_t;

/* "KAFKA_BOOTSTRAP_SERVERS" (after the prefix) -> "kafka.bootstrap.servers";
 * '_' -> '.', lower case. Truncated to size (the key is then refused as
 * too long by px_config_set). */
static void px_config_env_kafka_key(const char *rest, char *key, size_t size) {
    size_t k = (size_t)snprintf(key, size, "kafka.");
    for (const char *c = rest; *c && k + 1 < size; c++)
        key[k++] = *c == '_' ? '.' : (char)tolower((unsigned char)*c);
    key[k] = '\0';
}

/* Classify the variable `name` for the program with own prefix `own`
 * ("" for none) and write the key it sets into key. A name that is the
 * shared spelling of one of the program's keys is shared even when it
 * begins with the program's prefix (the processor's processor.instance is
 * PRESENCE_PROCESSOR_INSTANCE): its own spelling is then
 * PRESENCE_PROCESSOR_PROCESSOR_INSTANCE. Aliases have no shared spelling
 * (PRESENCE_HTTP_PORT is the gateway's, not the processor's old name). */
static px_env_class_t px_config_env_class(const px_opt_t *opts, size_t nopts, bool kafka,
                                          const char *own, const char *name, char *key,
                                          size_t keysize) {
    size_t plen = strlen(PX_CONF_ENV_PREFIX), olen = strlen(own);
    key[0] = '\0';
    for (size_t j = 0; j < nopts; j++)
        if (opts[j].type != PX_OPT_ALIAS && px_config_env_is(opts[j].name, name + plen)) {
            snprintf(key, keysize, "%s", opts[j].name);
            return PX_ENV_SHARED;
        }
    if (olen && strncmp(name, own, olen) == 0) {
        const char *rest = name + olen;
        for (size_t j = 0; j < nopts; j++)
            if (px_config_env_is(opts[j].name, rest)) {
                snprintf(key, keysize, "%s", opts[j].name);
                return opts[j].type == PX_OPT_ALIAS ? PX_ENV_OWN_ALIAS : PX_ENV_OWN;
            }
        if (strncmp(rest, "KAFKA_", 6) == 0) {
            px_config_env_kafka_key(rest + 6, key, keysize);
            return PX_ENV_OWN;
        }
        /* Name the key as it would be written in a file, when the name
         * has the shape of one. */
        size_t k = 0;
        bool shaped = *rest != '\0';
        for (const char *c = rest; *c && shaped; c++)
            shaped = isupper((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_';
        for (const char *c = rest; shaped && *c && k + 1 < keysize; c++)
            key[k++] = *c == '_' ? '.' : (char)tolower((unsigned char)*c);
        key[k] = '\0';
        return PX_ENV_OWN_BAD;
    }
    if (kafka && strncmp(name, PX_CONF_ENV_KAFKA, strlen(PX_CONF_ENV_KAFKA)) == 0) {
        px_config_env_kafka_key(name + strlen(PX_CONF_ENV_KAFKA), key, keysize);
        return PX_ENV_SHARED;
    }
    for (size_t j = 0; j < sizeof px_conf_programs / sizeof px_conf_programs[0]; j++) {
        size_t w = strlen(px_conf_programs[j]);
        if (strncmp(name + plen, px_conf_programs[j], w) == 0 && name[plen + w] == '_')
            return PX_ENV_SIBLING;
    }
    return PX_ENV_NONE;
}

static int px_config_env_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Copy the name of environment entry e ("NAME=value") into name; false
 * when it does not fit. */
static bool px_config_env_entry(const char *e, char *name, size_t size, const char **val) {
    const char *eq = strchr(e, '=');
    size_t nlen = eq ? (size_t)(eq - e) : strlen(e);
    *val = eq ? eq + 1 : "";
    if (nlen >= size) return false;
    memcpy(name, e, nlen);
    name[nlen] = '\0';
    return true;
}

#define PX_CONF_ENV_NAME_MAX (PX_CONF_KEY_MAX + 32)

/* The environment in three passes: shared variables, then the program's
 * own for old names (aliases), then its own for the rest, each pass
 * sorted by name, so an own variable overrides a shared one and the result
 * never depends on the order of environ. A variable with the program's
 * prefix must name one of its keys or a kafka.* property (a typo stops
 * start-up like a typo in the file); a shared one that names nothing of
 * this program is left to its siblings and scripts. */
static int px_config_env(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                         const char *prog, char *errstr, size_t errstr_size) {
    size_t n = 0, plen = strlen(PX_CONF_ENV_PREFIX);
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, PX_CONF_ENV_PREFIX, plen) == 0) n++;
    if (n == 0) return 0;
    char **vars = malloc(n * sizeof *vars);
    if (!vars) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory reading environment");
    size_t i = 0;
    for (char **e = environ; e && *e && i < n; e++)
        if (strncmp(*e, PX_CONF_ENV_PREFIX, plen) == 0) vars[i++] = *e;
    n = i;
    qsort(vars, n, sizeof *vars, px_config_env_cmp);

    char own[PX_CONF_PROG_PREFIX_MAX];
    px_config_prog_prefix(prog, own, sizeof own);
    size_t olen = strlen(own);
    static const px_env_class_t passes[] = {PX_ENV_SHARED, PX_ENV_OWN_ALIAS, PX_ENV_OWN};
    int rc = 0;
    char name[PX_CONF_ENV_NAME_MAX];
    char key[PX_CONF_ENV_NAME_MAX];
    for (size_t p = 0; p < sizeof passes / sizeof passes[0] && !rc; p++) {
        for (i = 0; i < n && !rc; i++) {
            const char *val;
            if (!px_config_env_entry(vars[i], name, sizeof name, &val)) {
                if (olen && strncmp(vars[i], own, olen) == 0)
                    rc = px_errf(PX_ECONFIG, errstr, errstr_size,
                                 "environment %.40s...: unknown key (name too long)", vars[i]);
                continue;
            }
            px_env_class_t cls = px_config_env_class(opts, nopts, kafka != NULL, own, name, key, sizeof key);
            if (cls == PX_ENV_OWN_BAD) {
                if (key[0])
                    rc = px_errf(PX_ECONFIG, errstr, errstr_size,
                                 "environment %s: unknown key '%s' (see %s --help)", name, key,
                                 prog ? prog : "--help");
                else
                    rc = px_errf(PX_ECONFIG, errstr, errstr_size,
                                 "environment %s: unknown key (after %s: a key in upper case, "
                                 "'.' as '_')",
                                 name, own);
                break;
            }
            if (cls != passes[p]) continue;
            rc = px_config_set(opts, nopts, cfg, kafka, key, val, errstr, errstr_size);
            if (rc) {
                char where[sizeof name + 16];
                snprintf(where, sizeof where, "environment %s", name);
                px_config_where(rc, errstr, errstr_size, where);
            }
        }
    }
    free(vars);
    return rc;
}

size_t px_config_env_ignored(const px_opt_t *opts, size_t nopts, const char *prog, bool kafka,
                             char *buf, size_t size) {
    char own[PX_CONF_PROG_PREFIX_MAX];
    char name[PX_CONF_ENV_NAME_MAX], key[PX_CONF_ENV_NAME_MAX];
    size_t count = 0, used = 0, plen = strlen(PX_CONF_ENV_PREFIX);
    bool full = false;
    px_config_prog_prefix(prog, own, sizeof own);
    if (buf && size) buf[0] = '\0';
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, PX_CONF_ENV_PREFIX, plen) != 0) continue;
        const char *val;
        const char *shown = name;
        if (!px_config_env_entry(*e, name, sizeof name, &val)) {
            if (own[0] && strncmp(*e, own, strlen(own)) == 0) continue; /* an error of load */
            snprintf(name, 48, "%s", *e);
            memcpy(name + 44, "...", 4);
        } else if (px_config_env_class(opts, nopts, kafka, own, name, key, sizeof key) != PX_ENV_NONE) {
            continue;
        }
        count++;
        if (!buf || size == 0 || full) continue;
        size_t need = strlen(shown) + (used ? 1 : 0);
        if (used + need + 4 < size) { /* room for a later "..." */
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? " " : "", shown);
        } else {
            snprintf(buf + used, size - used, "%s", used + 4 < size ? " ..." : "");
            full = true;
        }
    }
    return count;
}

void px_config_usage(const px_opt_t *opts, size_t nopts, const char *prog, FILE *out) {
    char own[PX_CONF_PROG_PREFIX_MAX];
    px_config_prog_prefix(prog, own, sizeof own);
    fprintf(out,
            "Usage: %s [--config FILE] [--set key=value]... [--help]\n"
            "\n"
            "Settings, lowest precedence first: defaults, the --config file (key=value\n"
            "lines, '#' comments), the environment, --set key=value. Environment: the\n"
            "shared PRESENCE_<KEY> ('.' -> '_', upper case; read by every program that\n"
            "has the key, ignored by the others), then this program's own\n"
            "%s<KEY>, which overrides it and must name a key below.\n"
            "kafka.<property> goes to librdkafka (environment: PRESENCE_KAFKA_<PROPERTY>\n"
            "or %sKAFKA_<PROPERTY>, '_' -> '.').\n"
            "\n"
            "Options:\n",
            prog ? prog : "presence", own[0] ? own : "PRESENCE_<PROGRAM>_", own[0] ? own : "PRESENCE_<PROGRAM>_");
    for (size_t i = 0; i < nopts; i++) {
        const px_opt_t *o = &opts[i];
        if (o->type == PX_OPT_ALIAS) {
            /* accepted in a file, --set and the program's own variable only */
            fprintf(out, "  %-32s old name of %s (files, --set, %s", o->name, o->def ? o->def : "?",
                    own[0] ? own : "PRESENCE_<PROGRAM>_");
            for (const char *c = o->name; *c; c++) fputc(*c == '.' ? '_' : toupper((unsigned char)*c), out);
            fputs(")\n", out);
            continue;
        }
        fprintf(out, "  %-32s %-6s default: %s", o->name, px_opt_type_names[o->type],
                o->def && *o->def ? o->def : "(empty)");
        if (o->type == PX_OPT_INT)
            fprintf(out, " [%lld..%lld]", (long long)o->min, (long long)o->max);
        fprintf(out, "\n      %s\n", o->help ? o->help : "");
    }
}

/* argv is read twice: once for --help, --config and the shape of every
 * flag (so a bad flag fails before anything is read), then for --set in
 * order after the file and the environment. */
int px_config_load(const px_opt_t *opts, size_t nopts, void *cfg, px_kvlist_t *kafka,
                   int argc, char **argv, const char *prog, FILE *out, char *errstr,
                   size_t errstr_size) {
    int rc;
    const char *file = NULL;
    if (kafka) kafka->n = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            px_config_usage(opts, nopts, prog, out ? out : stdout);
            return PX_CONFIG_EXIT;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 || strcmp(a, "--set") == 0) {
            if (i + 1 >= argc)
                return px_errf(PX_ECONFIG, errstr, errstr_size, "argv[%d] %s: missing argument", i,
                               a);
            if (a[2] == 'c') file = argv[i + 1];
            i++;
        } else if (strncmp(a, "--config=", 9) == 0) {
            file = a + 9;
        } else if (strncmp(a, "--set=", 6) != 0) {
            return px_errf(PX_ECONFIG, errstr, errstr_size,
                           "argv[%d]: unknown argument '%.64s' (try --help)", i, a);
        }
    }

    for (size_t i = 0; i < nopts; i++) {
        if (opts[i].type == PX_OPT_ALIAS) continue;
        rc = px_config_set(opts, nopts, cfg, kafka, opts[i].name, opts[i].def ? opts[i].def : "",
                           errstr, errstr_size);
        if (rc) return px_config_where(rc, errstr, errstr_size, "default");
    }
    if (file && *file == '\0')
        return px_errf(PX_ECONFIG, errstr, errstr_size, "--config: empty file name");
    if (file && (rc = px_config_file(opts, nopts, cfg, kafka, file, errstr, errstr_size)) != 0)
        return rc;
    if ((rc = px_config_env(opts, nopts, cfg, kafka, prog, errstr, errstr_size)) != 0) return rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *kv;
        if (strcmp(a, "--set") == 0) kv = argv[++i];
        else if (strncmp(a, "--set=", 6) == 0) kv = a + 6;
        else {
            if (strcmp(a, "--config") == 0) i++;
            continue;
        }
        /* The key is trimmed like in a file; the value is taken verbatim
         * (the shell already did the quoting). */
        char where[32];
        snprintf(where, sizeof where, "argv[%d] --set", i);
        const char *eq = strchr(kv, '=');
        const char *k0 = kv, *k1 = eq ? eq : kv;
        while (k0 < k1 && (*k0 == ' ' || *k0 == '\t')) k0++;
        while (k1 > k0 && (k1[-1] == ' ' || k1[-1] == '\t')) k1--;
        if (!eq || k1 == k0)
            return px_errf(PX_ECONFIG, errstr, errstr_size, "%s: expected key=value, got '%.64s'",
                           where, kv);
        char key[PX_CONF_KEY_MAX];
        if ((size_t)(k1 - k0) >= sizeof key)
            return px_errf(PX_ECONFIG, errstr, errstr_size, "%s: key '%.32s...' too long", where,
                           k0);
        memcpy(key, k0, (size_t)(k1 - k0));
        key[k1 - k0] = '\0';
        rc = px_config_set(opts, nopts, cfg, kafka, key, eq + 1, errstr, errstr_size);
        if (rc) return px_config_where(rc, errstr, errstr_size, where);
    }
    return 0;
}
