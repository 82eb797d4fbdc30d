/*
 * ctl_main.c - presencectl's entry: the command, its flags, the shared
 * configuration (px_config: defaults < --config file < PRESENCE_* env <
 * --set), and the small helpers every command uses (topic names, Redis
 * connection, time ranges). See ctl.h for the layout and exit codes and
 * docs/presencectl.md for the commands.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "px_err.h"
#include "px_kafka.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_time.h"
#include "px_utf8.h"
#include "px_view.h"
#include "px_when.h"

#define OPT(n, t, d, h, f, lo, hi) {n, t, d, h, offsetof(ctl_config_t, f), lo, hi}
static const px_opt_t ctl_opts[] = {
    OPT("redis.host", PX_OPT_STR, "127.0.0.1", "Redis host, or the path of its Unix socket (begins with /)",
        redis_host, 0, 0),
    OPT("redis.port", PX_OPT_INT, "6379", "Redis port", redis_port, 1, 65535),
    OPT("redis.db", PX_OPT_INT, "0", "Redis database (SELECT) read or written", redis_db, 0, 1024),
    OPT("redis.key_prefix", PX_OPT_STR, "", "prefix before every Redis key (replay into a copy)", redis_key_prefix, 0,
        0),
    OPT("topic.prefix", PX_OPT_STR, "", "prefix of every topic name", topic_prefix, 0, 0),
    OPT("presence.ttl_ms", PX_OPT_INT, "60000", "as the processor", presence_ttl_ms, 1000, 86400000),
    OPT("lock.ttl_ms", PX_OPT_INT, "120000", "as the processor", lock_ttl_ms, 1000, 86400000),
    OPT("stale.ttl_ms", PX_OPT_INT, "300000", "as the processor", stale_ttl_ms, 1000, 86400000),
    OPT("timeout_ms", PX_OPT_INT, "10000", "how long to wait for Kafka (--timeout)", timeout_ms, 100, 3600000),
    PX_REGISTRY_OPTS(ctl_config_t, schema),
    PX_REDIS_OPTS(ctl_config_t, redis),
};
#define NOPTS (sizeof ctl_opts / sizeof ctl_opts[0])

const char *const CTL_SRC_TOPICS[PX_SRC__COUNT] = {"presence.heartbeats", "presence.locks",
                                                   "core.entities.lifecycle.mutating",
                                                   "core.entities.lifecycle.mutated"};

/* The flags each command takes; '=' after a name: it takes a value. */
static const struct {
    const char *cmd;
    const char *flags;
} CMD_FLAGS[] = {
    {"verify", " scan-redis "},
    {"replay", " from= to= dry-run key-prefix= db= strict "},
    {"audit", " entity= tenant= user= from= to= format= "},
    {"dlq", " topic= format= record= all value-file= force dry-run "},
    {"produce", " key= type= ts= busy-by= write-id= version= tab= user= name= mode= status= dirty field= cursor= "
                "request-id= expires-at= json "},
    {"topics", " partitions= replication-factor= min-insync-replicas= "},
};
/* Flags every command takes. */
#define COMMON_FLAGS " timeout= "

static void usage(FILE *f) {
    fprintf(f,
            "usage: presencectl COMMAND [flags] [--config FILE] [--set key=value ...]\n"
            "  verify [--scan-redis]                fold the input topics, compare with Redis and presence.changes\n"
            "  replay [--from T] [--to T] [--dry-run] [--key-prefix P] [--db N] [--strict]\n"
            "                                       fold the input topics into a (target) Redis\n"
            "  audit (--entity T:E:I | --tenant T [--user U]) [--from T] [--to T] [--format table|jsonl|csv]\n"
            "                                       the timeline of changes, in event-time order\n"
            "  dlq list [--topic T]... [--format table|jsonl]\n"
            "  dlq show --record TOPIC.dlt:PARTITION:OFFSET\n"
            "  dlq reinject (--all | --record C ...) [--topic T]... [--value-file F] [--force] [--dry-run]\n"
            "  produce lifecycle|presence|lock --key T:E:I --type TYPE [--ts T] [--busy-by B] [--write-id W]\n"
            "          [--version N] [--tab ID --user ID --name N --mode view|edit --status online|away --dirty\n"
            "          --field F --cursor C --request-id R] [--json]\n"
            "  topics create|check [--partitions N] [--replication-factor N] [--min-insync-replicas N]\n"
            "every command: [--timeout D] how long to wait for Kafka: seconds (10, 2.5) or 500ms, 30s, 2m\n"
            "                                       (default 10 s; the timeout_ms setting)\n"
            "times T: now, -15m, epoch ms, 2026-11-22, 2026-11-22T10:00:00Z (docs/presencectl.md)\n"
            "exit: 0 ok, 1 differences (verify, topics check), 2 error\n"
            "options (kafka.* go to librdkafka, e.g. --set kafka.bootstrap.servers=host:9092):\n");
    px_config_usage(ctl_opts, NOPTS, "presencectl", f);
}

const char *ctl_flag(const ctl_t *c, const char *name) {
    const char *v = NULL;
    for (size_t i = 0; i < c->flags.n; i++)
        if (strcmp(c->flags.name[i], name) == 0) v = c->flags.val[i];
    return v;
}

bool ctl_flag_set(const ctl_t *c, const char *name) { return ctl_flag(c, name) != NULL; }

void ctl_topic_name(const ctl_t *c, const char *base, char *out, size_t out_size) {
    snprintf(out, out_size, "%s%s", c->cfg.topic_prefix, base);
}

int ctl_redis_key(const ctl_t *c, const px_key_t *k, const char *suffix, char *out, size_t out_size) {
    size_t pl = strlen(c->cfg.redis_key_prefix);
    if (pl >= out_size) return -1;
    memcpy(out, c->cfg.redis_key_prefix, pl);
    int n = px_view_key(k, suffix, out + pl, out_size - pl);
    return n < 0 ? -1 : (int)pl + n;
}

/* c->redis_where once connected: every master px_rcl reads, and how it
 * found them. */
static void redis_where_nodes(ctl_t *c, px_rcl_t *r) {
    size_t n = sizeof c->redis_where, w = 0;
    const px_redis_conf_t *rc = &c->cfg.redis;
    char name[PX_REDIS_HOST_MAX + 16];
    if (rc->cluster)
        w = (size_t)snprintf(c->redis_where, n, "Redis Cluster of %d master%s", px_rcl_nodes(r),
                             px_rcl_nodes(r) == 1 ? "" : "s");
    else
        w = (size_t)snprintf(c->redis_where, n, "Redis");
    for (int i = 0; i < px_rcl_nodes(r) && w < n; i++)
        w += (size_t)snprintf(c->redis_where + w, n - w, "%s %s", i ? "," : "", px_rcl_node_name(r, i, name, sizeof name));
    if (rc->sentinels[0] && w < n)
        w += (size_t)snprintf(c->redis_where + w, n - w, ", master '%s' of Sentinels %s", rc->master_name,
                              rc->sentinels);
    if (!rc->cluster && w < n) w += (size_t)snprintf(c->redis_where + w, n - w, " db %lld", (long long)c->cfg.redis_db);
    if (c->cfg.redis_key_prefix[0] && w < n)
        snprintf(c->redis_where + w, n - w, " key prefix '%s'", c->cfg.redis_key_prefix);
}

px_rcl_t *ctl_redis_connect(ctl_t *c) {
    px_rcl_conf_t conf;
    char err[1024] = "";
    long tmo = c->cfg.timeout_ms > 5000 ? 5000 : (long)c->cfg.timeout_ms;
    px_redis_conf_rcl(&c->cfg.redis, c->cfg.redis_host, (int)c->cfg.redis_port, tmo, &conf);
    conf.retry_ms = (long)c->cfg.timeout_ms; /* how long a failover is followed */
    conf.db = (int)c->cfg.redis_db;
    px_rcl_t *r = px_rcl_new(&conf, err, sizeof err);
    if (!r || px_rcl_connect(r, err, sizeof err)) {
        char what[2 * PX_CONF_STR_MAX + 64];
        fprintf(stderr, "presencectl %s: Redis %s unreachable: %s\n", c->cmd,
                px_redis_conf_describe(&c->cfg.redis, c->cfg.redis_host, (int)c->cfg.redis_port, what, sizeof what),
                err);
        px_rcl_free(r);
        return NULL;
    }
    redis_where_nodes(c, r);
    return r;
}

int ctl_redis_exec(ctl_t *c, px_rcl_t *r, px_rcl_batch_t *b, const char *what) {
    char err[1024];
    if (px_rcl_exec(r, b, err, sizeof err) == 0) return 0;
    fprintf(stderr, "presencectl %s: %s: %s: %s\n", c->cmd, c->redis_where, what, err);
    return CTL_EXIT_ERR;
}

int ctl_when(ctl_t *c, const char *flag, const char *s, int64_t now, int64_t *ms) {
    char err[256];
    if (px_when_parse(s, now, ms, err, sizeof err) == 0) return 0;
    fprintf(stderr, "presencectl %s: --%s: %s; a time is one of: %s\n", c->cmd, flag, err, CTL_WHEN_FORMS);
    return CTL_EXIT_ERR;
}

int ctl_time_range(ctl_t *c, int64_t *from_ms, int64_t *to_ms) {
    const char *from = ctl_flag(c, "from"), *to = ctl_flag(c, "to");
    int64_t now = px_now_ms(), f = 0, t = INT64_MAX;
    if ((from && ctl_when(c, "from", from, now, &f)) || (to && ctl_when(c, "to", to, now, &t)))
        return CTL_EXIT_ERR;
    if (f >= t) {
        fprintf(stderr, "presencectl %s: empty time range: --from is not before --to\n", c->cmd);
        return CTL_EXIT_ERR;
    }
    *from_ms = f;
    *to_ms = t;
    return 0;
}

/* Visit the characters of s as ctl_table_row prints them: fn(arg, p, n)
 * with a well-formed UTF-8 character p[0..n), or p NULL for a byte shown
 * as '?' (a control byte, or one of a broken sequence). */
static void cells_walk(const char *s, void (*fn)(void *arg, const char *p, size_t n), void *arg) {
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left) {
        int k = px_utf8_seq(p, left);
        size_t n = (size_t)(k < 0 ? -k : k);
        if (k < 0 || *p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] < 0xa0)) /* C0, DEL, C1 */
            for (size_t i = 0; i < n; i++) fn(arg, NULL, 1);
        else fn(arg, (const char *)p, n);
        p += n;
        left -= n;
    }
}

static void count_char(void *arg, const char *p, size_t n) {
    (void)p;
    (void)n;
    (*(size_t *)arg)++;
}

static void put_char(void *arg, const char *p, size_t n) {
    if (p) fwrite(p, 1, n, arg);
    else fputc('?', arg);
}

size_t ctl_cell_width(const char *s) {
    if (!*s) return 1; /* "-" */
    size_t w = 0;
    cells_walk(s, count_char, &w);
    return w;
}

void ctl_table_row(FILE *f, const char *const *cells, const size_t *width, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!cells[i][0]) fputc('-', f);
        cells_walk(cells[i], put_char, f);
        if (i + 1 == n) break;
        for (size_t w = ctl_cell_width(cells[i]); w <= width[i]; w++) fputc(' ', f);
    }
    fputc('\n', f);
}

/* --timeout: seconds (10, 2.5) or a duration (500ms, 30s, 2m, 1h) into
 * *ms, 100 ms to 1 h. 0 or -1. */
static int parse_timeout(const char *s, int64_t *ms) {
    int64_t whole = 0, milli = 0;
    const char *p = s;
    int nd = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if (++nd > 7) return -1;
        else whole = whole * 10 + (*p - '0');
    if (*p == '.') {
        int nf = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, nf++)
            if (nf < 3) milli += (*p - '0') * (nf == 0 ? 100 : nf == 1 ? 10 : 1);
        if (!nf) return -1;
    }
    if (!nd) return -1;
    static const struct {
        const char *u;
        int64_t ms;
    } units[] = {{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60000}, {"h", 3600000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(p, units[i].u) == 0) {
            int64_t v = whole * units[i].ms + milli * units[i].ms / 1000;
            if (v < 100 || v > 3600000) return -1;
            *ms = v;
            return 0;
        }
    return -1;
}

/* Split argv (after the command and its subcommand) into our flags, kept
 * in c->flags, and the px_config arguments, copied to cargv. */
static int parse_flags(ctl_t *c, const char *allowed, int argc, char **argv, int *cargc, char **cargv) {
    *cargc = 0;
    cargv[(*cargc)++] = (char *)c->cmd;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--set") == 0 || strcmp(a, "--config") == 0) {
            cargv[(*cargc)++] = argv[i];
            if (i + 1 < argc) cargv[(*cargc)++] = argv[++i];
            continue;
        }
        if (strncmp(a, "--set=", 6) == 0 || strncmp(a, "--config=", 9) == 0 || strcmp(a, "--help") == 0 ||
            strcmp(a, "-h") == 0) {
            cargv[(*cargc)++] = argv[i];
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            fprintf(stderr, "presencectl %s: unexpected argument '%.64s'\n", c->cmd, a);
            return CTL_EXIT_ERR;
        }
        char name[64], pat[80];
        const char *eq = strchr(a + 2, '=');
        size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nl >= sizeof name || strspn(a + 2, "abcdefghijklmnopqrstuvwxyz-") < nl) {
            fprintf(stderr, "presencectl %s: unknown flag '%.64s' (try --help)\n", c->cmd, a);
            return CTL_EXIT_ERR;
        }
        memcpy(name, a + 2, nl);
        name[nl] = '\0';
        snprintf(pat, sizeof pat, " %s= ", name);
        bool takes = strstr(allowed, pat) != NULL;
        snprintf(pat, sizeof pat, " %s ", name);
        if (!takes && !strstr(allowed, pat)) {
            char list[512];
            size_t ll = 0;
            for (const char *q = allowed; *q && ll < sizeof list - 80;) {
                size_t w = strcspn(q, " =");
                if (w) ll += (size_t)snprintf(list + ll, sizeof list - ll, " --%.*s", (int)w, q);
                q += w;
                q += strspn(q, " =");
            }
            fprintf(stderr, "presencectl %s: unknown flag --%s (%s takes%s, and --set, --config; try --help)\n",
                    c->cmd, name, c->cmd, list);
            return CTL_EXIT_ERR;
        }
        const char *val = "";
        if (takes) {
            if (eq) val = eq + 1;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) val = argv[++i];
            else {
                fprintf(stderr, "presencectl %s: --%s needs a value\n", c->cmd, name);
                return CTL_EXIT_ERR;
            }
        } else if (eq) {
            fprintf(stderr, "presencectl %s: --%s takes no value\n", c->cmd, name);
            return CTL_EXIT_ERR;
        }
        if (c->flags.n == CTL_FLAGS_MAX) {
            fprintf(stderr, "presencectl %s: too many flags\n", c->cmd);
            return CTL_EXIT_ERR;
        }
        static char names[CTL_FLAGS_MAX][64]; /* the flags live as long as the process */
        memcpy(names[c->flags.n], name, nl + 1);
        c->flags.name[c->flags.n] = names[c->flags.n];
        c->flags.val[c->flags.n++] = val;
    }
    cargv[*cargc] = NULL;
    return 0;
}

/* The settings the flags give past the configuration: the replay target's
 * key prefix and db, --timeout, and where Redis is, as messages name it.
 * 0, or CTL_EXIT_ERR after saying why. */
static int ctl_settings(ctl_t *c) {
    char errstr[512];
    /* shortcuts for the replay target */
    const char *kp = ctl_flag(c, "key-prefix"), *db = ctl_flag(c, "db");
    if ((kp && px_config_set(ctl_opts, NOPTS, &c->cfg, &c->kafka, "redis.key_prefix", kp, errstr, sizeof errstr)) ||
        (db && px_config_set(ctl_opts, NOPTS, &c->cfg, &c->kafka, "redis.db", db, errstr, sizeof errstr)) ||
        px_redis_host_check(c->cfg.redis_host, errstr, sizeof errstr) ||
        px_redis_conf_check(&c->cfg.redis, errstr, sizeof errstr)) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        return CTL_EXIT_ERR;
    }
    const char *tmo = ctl_flag(c, "timeout");
    if (tmo && parse_timeout(tmo, &c->cfg.timeout_ms)) {
        fprintf(stderr,
                "presencectl %s: --timeout '%.64s': expected seconds (10, 2.5) or a duration (500ms, 30s, 2m), "
                "from 100ms to 1h\n",
                c->cmd, tmo);
        return CTL_EXIT_ERR;
    }
    if (c->cfg.redis.cluster && c->cfg.redis_db) {
        fprintf(stderr, "presencectl: redis.db %lld: a Redis Cluster has database 0 only\n", (long long)c->cfg.redis_db);
        return CTL_EXIT_ERR;
    }
    char addr[2 * PX_CONF_STR_MAX + 64];
    px_redis_conf_describe(&c->cfg.redis, c->cfg.redis_host, (int)c->cfg.redis_port, addr, sizeof addr);
    int wl = snprintf(c->redis_where, sizeof c->redis_where, "Redis %s db %lld", addr, (long long)c->cfg.redis_db);
    if (c->cfg.redis_key_prefix[0])
        snprintf(c->redis_where + wl, sizeof c->redis_where - (size_t)wl, " key prefix '%s'", c->cfg.redis_key_prefix);
    return 0;
}

int main(int argc, char **argv) {
    static ctl_t c;
    char errstr[512];
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_ERR : CTL_EXIT_OK;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout); /* every command's flags and the shared options */
            return CTL_EXIT_OK;
        }
    c.cmd = argv[1];
    char allowed[512] = "";
    for (size_t i = 0; i < sizeof CMD_FLAGS / sizeof CMD_FLAGS[0]; i++)
        if (strcmp(c.cmd, CMD_FLAGS[i].cmd) == 0)
            snprintf(allowed, sizeof allowed, "%s%s", CMD_FLAGS[i].flags, COMMON_FLAGS + 1);
    if (!allowed[0]) {
        fprintf(stderr, "presencectl: unknown command '%.64s'\n", c.cmd);
        usage(stderr);
        return CTL_EXIT_ERR;
    }
    /* dlq, produce and topics take a subcommand first */
    int first = 2;
    bool has_sub = strcmp(c.cmd, "dlq") == 0 || strcmp(c.cmd, "produce") == 0 || strcmp(c.cmd, "topics") == 0;
    if (has_sub) {
        if (argc < 3 || argv[2][0] == '-') {
            if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
                usage(stdout);
                return CTL_EXIT_OK;
            }
            fprintf(stderr, "presencectl %s: a subcommand is needed (try --help)\n", c.cmd);
            return CTL_EXIT_ERR;
        }
        first = 3;
    }
    char **cargv = calloc((size_t)argc + 2, sizeof *cargv);
    if (!cargv) return CTL_EXIT_ERR;
    int cargc, rc = parse_flags(&c, allowed, argc - first, argv + first, &cargc, cargv);
    if (!rc) {
        rc = px_config_load(ctl_opts, NOPTS, &c.cfg, &c.kafka, cargc, cargv, "presencectl", stdout, errstr,
                            sizeof errstr);
        if (rc == PX_CONFIG_EXIT) rc = -1;
        else if (rc) {
            fprintf(stderr, "presencectl: %s\n", errstr);
            rc = CTL_EXIT_ERR;
        }
    }
    free(cargv);
    if (rc) return rc < 0 ? CTL_EXIT_OK : rc;
    if (ctl_settings(&c)) return CTL_EXIT_ERR;
    if (ctl_kafka_init(&c)) return CTL_EXIT_ERR;
    px_log_set_level(PX_LOG_WARN);
    c.progress = isatty(STDERR_FILENO);
    c.fold = px_fold_conf_default();
    c.fold.presence_ttl_ms = c.cfg.presence_ttl_ms;
    c.fold.lock_ttl_ms = c.cfg.lock_ttl_ms;
    c.fold.stale_ttl_ms = c.cfg.stale_ttl_ms;
    if (ctl_fold_init(&c)) return CTL_EXIT_ERR;
    if (strcmp(c.cmd, "verify") == 0) rc = ctl_verify(&c);
    else if (strcmp(c.cmd, "replay") == 0) rc = ctl_replay(&c);
    else if (strcmp(c.cmd, "audit") == 0) rc = ctl_audit(&c);
    else if (strcmp(c.cmd, "dlq") == 0) rc = ctl_dlq(&c, argc - 2, argv + 2);
    else if (strcmp(c.cmd, "produce") == 0) rc = ctl_produce(&c, argc - 2, argv + 2);
    else rc = ctl_topics(&c, argc - 2, argv + 2);
    ctl_fold_term(&c);
    return rc;
}
