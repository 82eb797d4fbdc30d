/*
 * test_config.c - px_config: precedence, kafka.* collection, hostile input.
 *
 * A small option table (STR, INT with a range, BOOL) stands in for a
 * program's ("test": its own variables are PRESENCE_TEST_*); a second
 * one, shaped like the daemons' (an alias, a key whose shared name begins
 * with the program's prefix), for the environment's two forms. Files are mkstemp() temp files removed after each case; the
 * environment is set and unset around each case (every PRESENCE_* variable
 * the test sets is cleared in teardown).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "px_config.h"
#include "px_err.h"

extern char **environ;

typedef struct {
    char host[PX_CONF_STR_MAX];
    int64_t port;
    bool tls;
} tcfg_t;

static const px_opt_t opts[] = {
    {"redis.host", PX_OPT_STR, "127.0.0.1", "Redis host", offsetof(tcfg_t, host), 0, 0},
    {"redis.port", PX_OPT_INT, "6379", "Redis port", offsetof(tcfg_t, port), 1, 65535},
    {"redis.tls", PX_OPT_BOOL, "false", "Use TLS", offsetof(tcfg_t, tls), 0, 0},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static char tmpfile_path[64];

/* Write text to a fresh temp file; its path is tmpfile_path. */
static const char *write_file(const char *text) {
    snprintf(tmpfile_path, sizeof tmpfile_path, "/tmp/px_test_config_XXXXXX");
    int fd = mkstemp(tmpfile_path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return tmpfile_path;
}

/* Remove every PRESENCE_* variable (collect names first: unsetenv edits
 * environ). */
static void clear_env(void) {
    char names[64][512];
    size_t n = 0;
    for (char **e = environ; *e && n < 64; e++) {
        if (strncmp(*e, "PRESENCE_", 9) != 0) continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        if (len >= sizeof names[0]) len = sizeof names[0] - 1;
        memcpy(names[n], *e, len);
        names[n++][len] = '\0';
    }
    for (size_t i = 0; i < n; i++) unsetenv(names[i]);
}

static int setup(void **state) {
    (void)state;
    clear_env();
    tmpfile_path[0] = '\0';
    return 0;
}

static int teardown(void **state) {
    (void)state;
    clear_env();
    if (tmpfile_path[0]) unlink(tmpfile_path);
    tmpfile_path[0] = '\0';
    return 0;
}

static int load(tcfg_t *c, px_kvlist_t *kafka, int argc, char **argv, char *err, size_t errn) {
    memset(c, 0xAB, sizeof *c);
    err[0] = '\0';
    FILE *devnull = fopen("/dev/null", "w");
    int rc = px_config_load(opts, NOPTS, c, kafka, argc, argv, "test", devnull, err, errn);
    fclose(devnull);
    return rc;
}

static void test_defaults(void **state) {
    (void)state;
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", NULL};
    assert_int_equal(load(&c, &k, 1, argv, err, sizeof err), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 6379);
    assert_false(c.tls);
    assert_int_equal(k.n, 0);
}

static void test_precedence(void **state) {
    (void)state;
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    const char *path = write_file("# comment\n\nredis.host = filehost\nredis.port=1000\n"
                                  "redis.tls=yes\n");
    char *argv_file[] = {"prog", "--config", (char *)path, NULL};
    assert_int_equal(load(&c, &k, 3, argv_file, err, sizeof err), 0);
    assert_string_equal(c.host, "filehost");
    assert_int_equal(c.port, 1000);
    assert_true(c.tls);

    /* env over file */
    setenv("PRESENCE_REDIS_PORT", "2000", 1);
    setenv("PRESENCE_REDIS_TLS", "off", 1);
    assert_int_equal(load(&c, &k, 3, argv_file, err, sizeof err), 0);
    assert_string_equal(c.host, "filehost");
    assert_int_equal(c.port, 2000);
    assert_false(c.tls);

    /* --set over env, both spellings, later wins */
    char cfgarg[80];
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", path);
    char *argv_set[] = {"prog", cfgarg, "--set", "redis.port=3000", "--set=redis.host=sethost",
                        "--set", "redis.port=3001", NULL};
    assert_int_equal(load(&c, &k, 7, argv_set, err, sizeof err), 0);
    assert_string_equal(c.host, "sethost");
    assert_int_equal(c.port, 3001);
    assert_false(c.tls);
}

static void test_kafka_collect(void **state) {
    (void)state;
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    const char *path = write_file("kafka.acks=all\nkafka.linger.ms=5\nkafka.acks=1\n");
    setenv("PRESENCE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", 1);
    setenv("PRESENCE_KAFKA_CLIENT_RACK", "r1", 1);
    char *argv[] = {"prog", "--config", (char *)path, "--set", "kafka.linger.ms=7", NULL};
    assert_int_equal(load(&c, &k, 5, argv, err, sizeof err), 0);
    /* file order, replacements in place; then env sorted by name */
    assert_int_equal(k.n, 4);
    assert_string_equal(k.kv[0].key, "acks");
    assert_string_equal(k.kv[0].val, "1");
    assert_string_equal(k.kv[1].key, "linger.ms");
    assert_string_equal(k.kv[1].val, "7");
    assert_string_equal(k.kv[2].key, "bootstrap.servers");
    assert_string_equal(k.kv[2].val, "127.0.0.1:9092");
    assert_string_equal(k.kv[3].key, "client.rack");
    assert_string_equal(k.kv[3].val, "r1");
}

static void test_help(void **state) {
    (void)state;
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", "--set", "redis.port=1", "-h", NULL};
    assert_int_equal(load(&c, &k, 4, argv, err, sizeof err), PX_CONFIG_EXIT);
    char *argv2[] = {"prog", "--help", NULL};
    assert_int_equal(load(&c, &k, 2, argv2, err, sizeof err), PX_CONFIG_EXIT);

    char *out = NULL;
    size_t outn = 0;
    FILE *f = open_memstream(&out, &outn);
    px_config_usage(opts, NOPTS, "prog", f);
    fclose(f);
    assert_non_null(strstr(out, "Usage: prog"));
    assert_non_null(strstr(out, "redis.port"));
    assert_non_null(strstr(out, "[1..65535]"));
    free(out);
}

static void test_crlf_and_comments(void **state) {
    (void)state;
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    const char *path = write_file("# c\r\n\r\n   \r\n  # indented comment\r\nredis.port=42\r\n"
                                  "redis.host=h\r\nredis.tls=ON");
    char *argv[] = {"prog", "--config", (char *)path, NULL};
    assert_int_equal(load(&c, &k, 3, argv, err, sizeof err), 0);
    assert_int_equal(c.port, 42);
    assert_string_equal(c.host, "h");
    assert_true(c.tls);
}

static void test_limits_accepted(void **state) {
    (void)state;
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    static char longest[PX_CONF_STR_MAX + 32];
    memcpy(longest, "redis.host=", 11);
    memset(longest + 11, 'h', PX_CONF_STR_MAX - 1);
    longest[11 + PX_CONF_STR_MAX - 1] = '\0';
    char *argv[] = {"prog", "--set", longest, "--set", "redis.port=65535", "--set",
                    "redis.host=", NULL};
    assert_int_equal(load(&c, &k, 5, argv, err, sizeof err), 0);
    assert_int_equal(strlen(c.host), PX_CONF_STR_MAX - 1);
    assert_int_equal(c.port, 65535);
    /* empty string value is a value */
    assert_int_equal(load(&c, &k, 7, argv, err, sizeof err), 0);
    assert_string_equal(c.host, "");
}

/* Hostile input: each row must fail with PX_ECONFIG and errstr holding
 * every listed fragment (the key, where it came from). */
typedef struct {
    const char *name;
    const char *file;    /* contents of the --config file, or NULL */
    const char *envk, *envv;
    const char *args[4]; /* after argv[0] and any --config */
    bool no_kafka;
    const char *want[3];
} bad_t;

static char long_str_set[PX_CONF_STR_MAX + 32];
static char long_line[1100 + 32];

static const bad_t bad[] = {
    {"unknown key in file", "redis.port=1\nredis.prot=2\n", NULL, NULL, {NULL}, false,
     {":2:", "unknown key 'redis.prot'"}},
    {"unknown key in env (own form)", NULL, "PRESENCE_TEST_REDIS_PROT", "2", {NULL}, false,
     {"environment PRESENCE_TEST_REDIS_PROT", "unknown key 'redis.prot'"}},
    {"unknown key in argv", NULL, NULL, NULL, {"--set", "nope=1"}, false,
     {"argv[2] --set", "unknown key 'nope'"}},
    {"file line without =", "redis.port\n", NULL, NULL, {NULL}, false, {":1:", "key=value"}},
    {"file =value", "=value\n", NULL, NULL, {NULL}, false, {":1:", "key=value"}},
    {"argv key without =", NULL, NULL, NULL, {"--set", "redis.port"}, false,
     {"argv[2] --set", "expected key=value"}},
    {"argv =value", NULL, NULL, NULL, {"--set==value"}, false, {"argv[1] --set", "key=value"}},
    {"argv empty key", NULL, NULL, NULL, {"--set", " =1"}, false, {"argv[2] --set", "key=value"}},
    {"env empty kafka key", NULL, "PRESENCE_KAFKA_", "x", {NULL}, false,
     {"environment PRESENCE_KAFKA_", "empty key"}},
    {"int with suffix", NULL, NULL, NULL, {"--set", "redis.port=12x"}, false,
     {"redis.port", "not an integer", "12x"}},
    {"int overflow", NULL, NULL, NULL, {"--set", "redis.port=99999999999999999999"}, false,
     {"redis.port", "not an integer"}},
    {"int out of range high", NULL, NULL, NULL, {"--set", "redis.port=65536"}, false,
     {"redis.port", "out of range [1, 65535]"}},
    {"int out of range low", "redis.port=0\n", NULL, NULL, {NULL}, false,
     {":1:", "out of range"}},
    {"int empty", NULL, "PRESENCE_REDIS_PORT", "", {NULL}, false,
     {"environment PRESENCE_REDIS_PORT", "not an integer"}},
    {"int leading space", NULL, NULL, NULL, {"--set", "redis.port= 12"}, false,
     {"not an integer"}},
    {"int hex", NULL, NULL, NULL, {"--set", "redis.port=0x10"}, false, {"not an integer"}},
    {"bool maybe", NULL, NULL, NULL, {"--set", "redis.tls=maybe"}, false,
     {"redis.tls", "not a boolean", "maybe"}},
    {"string too long", NULL, NULL, NULL, {"--set", long_str_set}, false,
     {"argv[2] --set", "redis.host", "too long"}},
    {"file line too long", long_line, NULL, NULL, {NULL}, false,
     {":1:", "line longer than 1024"}},
    {"missing file", NULL, NULL, NULL, {"--config", "/nonexistent/px.conf"}, false,
     {"/nonexistent/px.conf", "cannot open"}},
    {"--set without argument", NULL, NULL, NULL, {"--set"}, false,
     {"argv[1] --set", "missing argument"}},
    {"--config without argument", NULL, NULL, NULL, {"--config"}, false,
     {"missing argument"}},
    {"unknown flag", NULL, NULL, NULL, {"--bogus"}, false, {"argv[1]", "--bogus"}},
    {"positional argument", NULL, NULL, NULL, {"extra"}, false, {"argv[1]", "extra"}},
    {"kafka.* when kafka is NULL (argv)", NULL, NULL, NULL, {"--set", "kafka.acks=1"}, true,
     {"argv[2] --set", "kafka.acks"}},
    {"kafka.* when kafka is NULL (env)", NULL, "PRESENCE_TEST_KAFKA_ACKS", "1", {NULL}, true,
     {"environment PRESENCE_TEST_KAFKA_ACKS", "kafka.acks"}},
    {"kafka.* when kafka is NULL (file)", "kafka.acks=1\n", NULL, NULL, {NULL}, true,
     {":1:", "kafka.acks"}},
    {"kafka. with empty name", NULL, NULL, NULL, {"--set", "kafka.=1"}, false,
     {"argv[2] --set", "empty key"}},
};

static void init_long_inputs(void) {
    memcpy(long_str_set, "redis.host=", 11);
    memset(long_str_set + 11, 'h', PX_CONF_STR_MAX);
    long_str_set[11 + PX_CONF_STR_MAX] = '\0';
    memcpy(long_line, "redis.host=", 11);
    memset(long_line + 11, 'h', 1100);
    strcpy(long_line + 11 + 1100, "\n");
}

static void test_hostile(void **state) {
    (void)state;
    assert_true(sizeof bad / sizeof bad[0] >= 20);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const bad_t *b = &bad[i];
        clear_env();
        char *argv[8];
        int argc = 0;
        argv[argc++] = "prog";
        if (b->file) {
            argv[argc++] = "--config";
            argv[argc++] = (char *)write_file(b->file);
        }
        for (size_t j = 0; j < 4 && b->args[j]; j++) argv[argc++] = (char *)b->args[j];
        argv[argc] = NULL;
        if (b->envk) setenv(b->envk, b->envv, 1);

        tcfg_t c;
        px_kvlist_t k;
        char err[512];
        int rc = load(&c, b->no_kafka ? NULL : &k, argc, argv, err, sizeof err);
        if (b->file) {
            unlink(tmpfile_path);
            tmpfile_path[0] = '\0';
        }
        if (rc != PX_ECONFIG) fail_msg("row '%s': rc %d, want PX_ECONFIG (err '%s')", b->name, rc, err);
        for (size_t j = 0; j < 3 && b->want[j]; j++)
            if (!strstr(err, b->want[j]))
                fail_msg("row '%s': error '%s' lacks '%s'", b->name, err, b->want[j]);
    }
}

/* The file line limit is on the content: exactly 1024 bytes (plus CRLF)
 * is accepted. */
static void test_line_at_limit(void **state) {
    (void)state;
    static char text[1024 + 8];
    memcpy(text, "redis.host=", 11);
    memset(text + 11, 'h', 1024 - 11);
    strcpy(text + 1024, "\r\n");
    const char *path = write_file(text);
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", "--config", (char *)path, NULL};
    /* 1013-byte value: over PX_CONF_STR_MAX, so the value is refused but
     * the line itself is read. */
    assert_int_equal(load(&c, &k, 3, argv, err, sizeof err), PX_ECONFIG);
    assert_non_null(strstr(err, "too long"));
    assert_null(strstr(err, "line longer"));
}

static void test_set_direct(void **state) {
    (void)state;
    tcfg_t c;
    px_kvlist_t k = {.n = 0};
    char err[256];
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "redis.port", "-1", err, sizeof err),
                     PX_ECONFIG);
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "redis.port", "+80", err, sizeof err), 0);
    assert_int_equal(c.port, 80);
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "redis.tls", "TRUE", err, sizeof err), 0);
    assert_true(c.tls);
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "redis.tls", "0", err, sizeof err), 0);
    assert_false(c.tls);
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "", "1", err, sizeof err), PX_ECONFIG);
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "redis.host", NULL, err, sizeof err),
                     PX_ECONFIG);
    /* kafka list bound */
    for (int i = 0; i < PX_CONF_KV_MAX; i++) {
        char key[32];
        snprintf(key, sizeof key, "kafka.k%d", i);
        assert_int_equal(px_config_set(opts, NOPTS, &c, &k, key, "v", err, sizeof err), 0);
    }
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "kafka.k0", "again", err, sizeof err), 0);
    assert_int_equal(px_config_set(opts, NOPTS, &c, &k, "kafka.more", "v", err, sizeof err),
                     PX_ECONFIG);
    assert_non_null(strstr(err, "too many"));
    assert_int_equal(k.n, PX_CONF_KV_MAX);
}


/* --- the environment's two forms ----------------------------------------- */

typedef struct {
    int64_t http_port, ops_port, redis_port;
    char id[PX_CONF_STR_MAX];
} dcfg_t;

/* Shaped like the daemons' tables: the processor's ops.* with its old
 * name http.port, the gateway's gateway.id (shared PRESENCE_GATEWAY_ID). */
static const px_opt_t dopts[] = {
    {"redis.port", PX_OPT_INT, "6379", "Redis port", offsetof(dcfg_t, redis_port), 1, 65535},
    {"ops.port", PX_OPT_INT, "9102", "ops port", offsetof(dcfg_t, ops_port), 0, 65535},
    {"gateway.id", PX_OPT_STR, "", "id", offsetof(dcfg_t, id), 0, 0},
    {"http.port", PX_OPT_ALIAS, "ops.port", NULL, 0, 0, 0},
};
#define NDOPTS (sizeof dopts / sizeof dopts[0])

static int dload(const char *prog, dcfg_t *c, px_kvlist_t *kafka, int argc, char **argv, char *err, size_t errn) {
    memset(c, 0, sizeof *c);
    err[0] = '\0';
    return px_config_load(dopts, NDOPTS, c, kafka, argc, argv, prog, NULL, err, errn);
}

/* The program's own variable overrides the shared one whatever the names'
 * order (PRESENCE_AAA_ sorts before PRESENCE_REDIS_, PRESENCE_ZZZ_ after),
 * and --set overrides both. */
static void test_env_own_over_shared(void **state) {
    (void)state;
    dcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", NULL};
    setenv("PRESENCE_REDIS_PORT", "2000", 1);
    assert_int_equal(dload("presence-aaa", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 2000);
    setenv("PRESENCE_AAA_REDIS_PORT", "3000", 1);
    setenv("PRESENCE_ZZZ_REDIS_PORT", "4000", 1);
    assert_int_equal(dload("presence-aaa", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 3000);
    assert_int_equal(dload("presence-zzz", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 4000);
    /* a third program reads only the shared one */
    assert_int_equal(dload("presence-gateway", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 2000);
    char *argv_set[] = {"prog", "--set", "redis.port=5000", NULL};
    assert_int_equal(dload("presence-aaa", &c, &k, 3, argv_set, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 5000);
    /* kafka.*: shared, then own */
    setenv("PRESENCE_KAFKA_ACKS", "1", 1);
    setenv("PRESENCE_AAA_KAFKA_ACKS", "all", 1);
    setenv("PRESENCE_KAFKA_LINGER_MS", "5", 1);
    assert_int_equal(dload("presence-aaa", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.kv[0].key, "acks");
    assert_string_equal(k.kv[0].val, "all");
    assert_string_equal(k.kv[1].key, "linger.ms");
    assert_string_equal(k.kv[1].val, "5");
}

/* The prefix comes from the program's name. */
static void test_env_prog_prefix(void **state) {
    (void)state;
    static const struct {
        const char *prog, *var;
    } rows[] = {
        {"presence-gateway", "PRESENCE_GATEWAY_REDIS_PORT"},
        {"presence-processor", "PRESENCE_PROCESSOR_REDIS_PORT"},
        {"presencectl", "PRESENCE_CTL_REDIS_PORT"},
        {"presence_x.y", "PRESENCE_X_Y_REDIS_PORT"},
        {"test", "PRESENCE_TEST_REDIS_PORT"},
    };
    dcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", NULL};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        clear_env();
        setenv(rows[i].var, "1234", 1);
        if (dload(rows[i].prog, &c, &k, 1, argv, err, sizeof err) != 0 || c.redis_port != 1234)
            fail_msg("%s: %s not applied (port %lld, err '%s')", rows[i].prog, rows[i].var,
                     (long long)c.redis_port, err);
    }
    /* no own form: "presence" alone, NULL */
    clear_env();
    setenv("PRESENCE_REDIS_PORT", "77", 1);
    assert_int_equal(dload("presence", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 77);
    assert_int_equal(dload(NULL, &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 77);
}

/* A shared name that begins with the program's prefix (gateway.id:
 * PRESENCE_GATEWAY_ID) stays shared; its own form is
 * PRESENCE_GATEWAY_GATEWAY_ID. */
static void test_env_shared_name_with_own_prefix(void **state) {
    (void)state;
    dcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", NULL};
    setenv("PRESENCE_GATEWAY_ID", "shared", 1);
    assert_int_equal(dload("presence-gateway", &c, &k, 1, argv, err, sizeof err), 0);
    assert_string_equal(c.id, "shared");
    setenv("PRESENCE_GATEWAY_GATEWAY_ID", "own", 1);
    assert_int_equal(dload("presence-gateway", &c, &k, 1, argv, err, sizeof err), 0);
    assert_string_equal(c.id, "own");
    /* the processor has gateway.id here too: reads the shared name */
    assert_int_equal(dload("presence-processor", &c, &k, 1, argv, err, sizeof err), 0);
    assert_string_equal(c.id, "shared");
}

/* An old name (alias) works in a file, --set and the own variable, loses
 * to the new name's own variable, and has no shared variable. */
static void test_env_alias(void **state) {
    (void)state;
    dcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", NULL};
    assert_int_equal(dload("presence-processor", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 9102);
    char *argv_set[] = {"prog", "--set", "http.port=5", NULL};
    assert_int_equal(dload("presence-processor", &c, &k, 3, argv_set, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 5);
    const char *path = write_file("http.port=6\n");
    char *argv_file[] = {"prog", "--config", (char *)path, NULL};
    assert_int_equal(dload("presence-processor", &c, &k, 3, argv_file, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 6);
    char *argv_bad[] = {"prog", "--set", "http.port=70000", NULL};
    assert_int_equal(dload("presence-processor", &c, &k, 3, argv_bad, err, sizeof err), PX_ECONFIG);
    assert_non_null(strstr(err, "'http.port' out of range"));

    setenv("PRESENCE_HTTP_PORT", "8", 1); /* the gateway's; not this program's old name */
    assert_int_equal(dload("presence-processor", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 9102);
    setenv("PRESENCE_OPS_PORT", "10", 1);
    assert_int_equal(dload("presence-processor", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 10);
    setenv("PRESENCE_PROCESSOR_HTTP_PORT", "7", 1);
    assert_int_equal(dload("presence-processor", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 7);
    setenv("PRESENCE_PROCESSOR_OPS_PORT", "9", 1);
    assert_int_equal(dload("presence-processor", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 9);

    char *out = NULL;
    size_t outn = 0;
    FILE *f = open_memstream(&out, &outn);
    px_config_usage(dopts, NDOPTS, "presence-processor", f);
    fclose(f);
    assert_non_null(strstr(out, "old name of ops.port"));
    assert_non_null(strstr(out, "PRESENCE_PROCESSOR_HTTP_PORT"));
    assert_non_null(strstr(out, "PRESENCE_PROCESSOR_<KEY>"));
    free(out);

    /* an alias of nothing is refused, not applied */
    static const px_opt_t broken[] = {{"a.b", PX_OPT_ALIAS, "no.such", NULL, 0, 0, 0}};
    assert_int_equal(px_config_set(broken, 1, &c, NULL, "a.b", "1", err, sizeof err), PX_ECONFIG);
    assert_non_null(strstr(err, "alias of no option"));
}

/* Shared variables that name nothing of this program are ignored, and
 * listed for the notice unless they are a sibling's own form. */
static void test_env_ignored(void **state) {
    (void)state;
    dcfg_t c;
    px_kvlist_t k;
    char err[512], buf[256];
    char *argv[] = {"prog", NULL};
    setenv("PRESENCE_CACHE", "/tmp/cache", 1);
    setenv("PRESENCE_REDIS_PROT", "1", 1);       /* a typo: noticed, not fatal */
    setenv("PRESENCE_redis_port", "1", 1);       /* lower case: no key's name */
    setenv("PRESENCE_HTTP_PORT", "8", 1);        /* the gateway's key */
    setenv("PRESENCE_GATEWAY_HTTP_PORT", "8", 1); /* a sibling's own: silent */
    setenv("PRESENCE_CTL_TIMEOUT_MS", "8", 1);
    setenv("PRESENCE_REDIS_PORT", "6000", 1);    /* applied: not listed */
    setenv("PRESENCE_KAFKA_ACKS", "1", 1);       /* applied when kafka.* is taken */
    assert_int_equal(dload("presence-processor", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 6000);
    assert_int_equal(px_config_env_ignored(dopts, NDOPTS, "presence-processor", true, buf, sizeof buf), 4);
    for (size_t i = 0; i < 4; i++) {
        static const char *const want[] = {"PRESENCE_CACHE", "PRESENCE_REDIS_PROT", "PRESENCE_redis_port",
                                           "PRESENCE_HTTP_PORT"};
        if (!strstr(buf, want[i])) fail_msg("'%s' lacks %s", buf, want[i]);
    }
    assert_null(strstr(buf, "GATEWAY"));
    assert_null(strstr(buf, "CTL"));
    assert_null(strstr(buf, "REDIS_PORT "));
    /* without kafka.*, PRESENCE_KAFKA_* is ignored too (listed) */
    assert_int_equal(dload("presence-processor", &c, NULL, 1, argv, err, sizeof err), 0);
    assert_int_equal(px_config_env_ignored(dopts, NDOPTS, "presence-processor", false, buf, sizeof buf), 5);
    assert_non_null(strstr(buf, "PRESENCE_KAFKA_ACKS"));
    /* for "presence-gateway" PRESENCE_GATEWAY_* is its own: applied (the
     * old name in this table), or an error when it names nothing */
    assert_int_equal(dload("presence-gateway", &c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.ops_port, 8);
    setenv("PRESENCE_GATEWAY_NO_SUCH", "1", 1);
    assert_int_equal(dload("presence-gateway", &c, &k, 1, argv, err, sizeof err), PX_ECONFIG);
    assert_non_null(strstr(err, "environment PRESENCE_GATEWAY_NO_SUCH: unknown key 'no.such'"));
    unsetenv("PRESENCE_GATEWAY_NO_SUCH");
    /* a small buffer is cut with " ...", never overrun; the count is whole */
    char small[24];
    memset(small, 'x', sizeof small);
    assert_int_equal(px_config_env_ignored(dopts, NDOPTS, "presence-processor", true, small, 20), 4);
    assert_true(strlen(small) < 20);
    assert_int_equal(small[21], 'x');
    assert_non_null(strstr(small, "..."));
    assert_int_equal(px_config_env_ignored(dopts, NDOPTS, "presence-processor", true, NULL, 0), 4);
    clear_env();
    assert_int_equal(px_config_env_ignored(dopts, NDOPTS, "presence-processor", true, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
}

/* Hostile names in the program's own form: each is a start-up error that
 * names the variable. */
static void test_env_hostile_own(void **state) {
    (void)state;
    static char long_name[400];
    memcpy(long_name, "PRESENCE_TEST_", 14);
    memset(long_name + 14, 'A', sizeof long_name - 15);
    long_name[sizeof long_name - 1] = '\0';
    static const struct {
        const char *name, *val, *want;
    } rows[] = {
        {"PRESENCE_TEST_", "1", "environment PRESENCE_TEST_: unknown key"},
        {"PRESENCE_TEST_REDIS_PROT", "1", "unknown key 'redis.prot'"},
        {"PRESENCE_TEST_redis_port", "1", "environment PRESENCE_TEST_redis_port: unknown key"},
        {"PRESENCE_TEST_REDIS.PORT", "1", "environment PRESENCE_TEST_REDIS.PORT: unknown key"},
        {"PRESENCE_TEST__REDIS_PORT", "1", "environment PRESENCE_TEST__REDIS_PORT: unknown key"},
        {"PRESENCE_TEST_REDIS_PORT_", "1", "environment PRESENCE_TEST_REDIS_PORT_: unknown key"},
        {"PRESENCE_TEST_REDIS_PORT ", "1", "unknown key"},
        {"PRESENCE_TEST_\xc3\xa9", "1", "unknown key"},
        {"PRESENCE_TEST_\x01\x7f", "1", "unknown key"},
        {"PRESENCE_TEST_KAFKA_", "1", "empty key"},
        {"PRESENCE_TEST_REDIS_PORT", "12x", "environment PRESENCE_TEST_REDIS_PORT: value for 'redis.port' is not"},
        {"PRESENCE_TEST_REDIS_PORT", "", "not an integer"},
        {"PRESENCE_TEST_REDIS_PORT", "0", "out of range"},
        {"PRESENCE_TEST_REDIS_TLS", "maybe", "not a boolean"},
        {long_name, "1", "name too long"},
    };
    tcfg_t c;
    px_kvlist_t k;
    char err[512];
    char *argv[] = {"prog", NULL};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        clear_env();
        setenv("PRESENCE_REDIS_PORT", "2000", 1); /* a valid neighbour changes nothing */
        assert_int_equal(setenv(rows[i].name, rows[i].val, 1), 0);
        int rc = load(&c, &k, 1, argv, err, sizeof err);
        if (rc != PX_ECONFIG || !strstr(err, rows[i].want))
            fail_msg("row %zu: rc %d, err '%s', want '%s'", i, rc, err, rows[i].want);
    }
}

/* Hostile shared names: ignored (no error, nothing set), and an entry of
 * environ without '=' (execve allows it) is a name with an empty value. */
static void test_env_hostile_shared(void **state) {
    (void)state;
    static char long_name[400];
    memcpy(long_name, "PRESENCE_REDIS_PORT", 19);
    memset(long_name + 19, 'X', sizeof long_name - 20);
    long_name[sizeof long_name - 1] = '\0';
    const char *names[] = {"PRESENCE_", "PRESENCE__REDIS_PORT", "PRESENCE_REDIS_PORT_", "PRESENCE_REDIS.PORT",
                           "PRESENCE_\xff\xfe", long_name, "PRESENCE_GATEWAY_", "PRESENCE_CTL"};
    tcfg_t c;
    px_kvlist_t k;
    char err[512], buf[1024];
    char *argv[] = {"prog", NULL};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_int_equal(setenv(names[i], "1", 1), 0);
    assert_int_equal(load(&c, &k, 1, argv, err, sizeof err), 0);
    assert_int_equal(c.port, 6379);
    assert_int_equal(k.n, 0);
    /* all but the sibling's PRESENCE_GATEWAY_ are listed; the long one cut */
    assert_int_equal(px_config_env_ignored(opts, NOPTS, "test", true, buf, sizeof buf), 7);
    assert_null(strstr(buf, "PRESENCE_GATEWAY_"));
    assert_true(strlen(buf) < 7 * 50);
    clear_env();

    char **saved = environ;
    char *raw_shared[] = {"PRESENCE_REDIS_HOST", "PATH=/bin", NULL};
    environ = raw_shared;
    int rc = load(&c, &k, 1, argv, err, sizeof err);
    environ = saved;
    assert_int_equal(rc, 0);
    assert_string_equal(c.host, "");
    char *raw_own[] = {"PRESENCE_TEST_REDIS_PORT", NULL};
    environ = raw_own;
    rc = load(&c, &k, 1, argv, err, sizeof err);
    environ = saved;
    assert_int_equal(rc, PX_ECONFIG);
    assert_non_null(strstr(err, "environment PRESENCE_TEST_REDIS_PORT"));
}

int main(void) {
    init_long_inputs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_collect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_and_comments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_at_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_own_over_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_prog_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_shared_name_with_own_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_hostile_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_hostile_shared, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
