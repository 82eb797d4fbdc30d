/*
 * test_redis_sentinel.c - unit tests for px_redis_sentinel.c: the replies
 * of SENTINEL get-master-addr-by-name and ROLE as real RESP bytes through
 * hiredis's own reader, whole and one byte at a time, with hostile tables;
 * and px_sentinel_master's refusals without a server (no Sentinels, no
 * name, a Sentinel that refuses connections). Asking real Sentinels
 * through a failover is tests/cluster/test_sentinel_master.py. Run under
 * ASan/UBSan and valgrind by ctest (label unit).
 */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_redis_sentinel.h"

/* A reply parsed by hiredis's reader from s[0..len), fed whole or one byte
 * at a time (bytewise); NULL when the reader finds no complete reply or
 * refuses the bytes (then *reader_err is set). */
static redisReply *resp_n(const char *s, size_t len, int bytewise, int *reader_err) {
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    void *reply = NULL;
    *reader_err = 0;
    for (size_t i = 0; i < len && !reply && !*reader_err; i += bytewise ? 1 : len) {
        size_t n = bytewise ? 1 : len;
        if (redisReaderFeed(r, s + i, n) != REDIS_OK || redisReaderGetReply(r, &reply) != REDIS_OK) *reader_err = 1;
    }
    redisReaderFree(r);
    return reply;
}

static redisReply *resp(const char *s) {
    int err;
    redisReply *r = resp_n(s, strlen(s), 0, &err);
    assert_int_equal(err, 0);
    assert_non_null(r);
    return r;
}

static void test_addr_parse_good(void **state) {
    (void)state;
    static const struct {
        const char *bytes, *host;
        int port;
    } good[] = {
        {"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n", "127.0.0.1", 6379},
        {"*2\r\n$3\r\n::1\r\n$5\r\n65535\r\n", "::1", 65535},
        {"*2\r\n$19\r\nredis-0.example.com\r\n$1\r\n1\r\n", "redis-0.example.com", 1},
        {"*2\r\n$9\r\n10.1.2.30\r\n$5\r\n00080\r\n", "10.1.2.30", 80},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            int rerr;
            redisReply *r = resp_n(good[i].bytes, strlen(good[i].bytes), bytewise, &rerr);
            assert_non_null(r);
            px_redis_node_t n;
            char err[128];
            if (px_sentinel_addr_parse(r, &n, err, sizeof err) != 0) fail_msg("good[%zu]: %s", i, err);
            assert_string_equal(n.host, good[i].host);
            assert_int_equal(n.port, good[i].port);
            freeReplyObject(r);
        }
}

/* The longest host accepted, and one byte more. */
static void test_addr_parse_host_bounds(void **state) {
    (void)state;
    for (size_t len = PX_REDIS_HOST_MAX; len <= PX_REDIS_HOST_MAX + 1; len++) {
        char *buf = malloc(len + 64);
        assert_non_null(buf);
        int k = snprintf(buf, 64, "*2\r\n$%zu\r\n", len);
        memset(buf + k, 'h', len);
        memcpy(buf + k + len, "\r\n$4\r\n6379\r\n", 13);
        redisReply *r = resp(buf);
        px_redis_node_t n = {.host = "unchanged", .port = 7};
        char err[128];
        int rc = px_sentinel_addr_parse(r, &n, err, sizeof err);
        if (len == PX_REDIS_HOST_MAX) {
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(n.host), PX_REDIS_HOST_MAX);
        } else {
            assert_int_equal(rc, PX_EPROTO);
            assert_string_equal(n.host, "unchanged");
            assert_int_equal(n.port, 7);
        }
        freeReplyObject(r);
        free(buf);
    }
}

/* A string literal and its length, NULs included. */
#define B(lit) lit, sizeof(lit) - 1

static void test_addr_parse_hostile(void **state) {
    (void)state;
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
        int want;
    } bad[] = {
        {"nil: unknown master", B("$-1\r\n"), PX_EINVAL},
        {"nil array", B("*-1\r\n"), PX_EINVAL},
        {"error reply", B("-IDONTKNOW No such master with that name\r\n"), PX_EBACKEND},
        {"error: loading", B("-LOADING Redis is loading\r\n"), PX_EBACKEND},
        {"empty array", B("*0\r\n"), PX_EPROTO},
        {"one element", B("*1\r\n$9\r\n127.0.0.1\r\n"), PX_EPROTO},
        {"three elements", B("*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n$1\r\nx\r\n"), PX_EPROTO},
        {"status, not array", B("+OK\r\n"), PX_EPROTO},
        {"integer, not array", B(":6379\r\n"), PX_EPROTO},
        {"bulk, not array", B("$14\r\n127.0.0.1:6379\r\n"), PX_EPROTO},
        {"integer port", B("*2\r\n$9\r\n127.0.0.1\r\n:6379\r\n"), PX_EPROTO},
        {"integer host", B("*2\r\n:1\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"nil host", B("*2\r\n$-1\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"nil port", B("*2\r\n$9\r\n127.0.0.1\r\n$-1\r\n"), PX_EPROTO},
        {"nested array host", B("*2\r\n*1\r\n$1\r\na\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"empty host", B("*2\r\n$0\r\n\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"empty port", B("*2\r\n$9\r\n127.0.0.1\r\n$0\r\n\r\n"), PX_EPROTO},
        {"port 0", B("*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n"), PX_EPROTO},
        {"port 65536", B("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n"), PX_EPROTO},
        {"port 99999", B("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n99999\r\n"), PX_EPROTO},
        {"port six digits", B("*2\r\n$9\r\n127.0.0.1\r\n$6\r\n006379\r\n"), PX_EPROTO},
        {"port overflow", B("*2\r\n$9\r\n127.0.0.1\r\n$20\r\n18446744073709557994\r\n"), PX_EPROTO},
        {"negative port", B("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n-6379\r\n"), PX_EPROTO},
        {"signed port", B("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n+6379\r\n"), PX_EPROTO},
        {"port with space", B("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n 6379\r\n"), PX_EPROTO},
        {"hex port", B("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n0x10\r\n"), PX_EPROTO},
        {"port with NUL", B("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n63\0" "79\r\n"), PX_EPROTO},
        {"host with NUL", B("*2\r\n$10\r\n127.0\0.0.1\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"host with space", B("*2\r\n$9\r\n127.0 0.1\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"host with CR LF", B("*2\r\n$12\r\n127.0\r\n0.0.1\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"host with DEL", B("*2\r\n$3\r\nab\x7f\r\n$4\r\n6379\r\n"), PX_EPROTO},
        {"host:port in host", B("*2\r\n$14\r\n127.0.0.1:6379\r\n$4\r\n6379\r\n"), 0}, /* an IPv6-like host */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            size_t len = bad[i].len;
            int rerr;
            redisReply *r = resp_n(bad[i].bytes, len, bytewise, &rerr);
            if (!r) fail_msg("%s: the reader found no reply", bad[i].name);
            px_redis_node_t n = {.host = "unchanged", .port = 7};
            char err[128] = "";
            int rc = px_sentinel_addr_parse(r, &n, err, sizeof err);
            if (rc != bad[i].want) fail_msg("%s: %d, not %d (%s)", bad[i].name, rc, bad[i].want, err);
            if (rc) {
                assert_string_equal(n.host, "unchanged");
                assert_int_equal(n.port, 7);
                assert_true(err[0] != '\0');
            }
            freeReplyObject(r);
        }
    char err[64];
    assert_int_equal(px_sentinel_addr_parse(NULL, NULL, err, sizeof err), PX_EPROTO);
}

/* Bytes hiredis's reader refuses or leaves incomplete never reach the
 * parser: the contract starts at a reply. */
static void test_reader_refuses(void **state) {
    (void)state;
    static const char *const junk[] = {
        "*2\r\n$9\r\n127.0.0.1\r\n",       /* truncated: no port */
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n63", /* truncated inside the port */
        "*2\r\n$99999999999\r\n",          /* absurd length */
        "!2\r\nab\r\n",                    /* a RESP3 type hiredis 0.14 does not know */
        "*2\r\n$-5\r\n",                   /* negative length */
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            int rerr;
            redisReply *r = resp_n(junk[i], strlen(junk[i]), bytewise, &rerr);
            if (r) fail_msg("junk[%zu] gave a reply", i);
        }
}

static void test_role_parse(void **state) {
    (void)state;
    static const struct {
        const char *bytes;
        px_redis_role_t want;
    } t[] = {
        {"*3\r\n$6\r\nmaster\r\n:3129659\r\n*0\r\n", PX_REDIS_ROLE_MASTER},
        {"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9839\r\n$9\r\nconnected\r\n:3167038\r\n", PX_REDIS_ROLE_REPLICA},
        {"*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\npresence\r\n", PX_REDIS_ROLE_SENTINEL},
        {"*1\r\n+master\r\n", PX_REDIS_ROLE_MASTER},
        {"*1\r\n$7\r\nreplica\r\n", PX_REDIS_ROLE_UNKNOWN}, /* Redis says "slave" */
        {"*1\r\n$7\r\nmasters\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*1\r\n$5\r\nmaste\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*1\r\n$6\r\nMASTER\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*1\r\n$0\r\n\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*1\r\n:1\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*1\r\n$-1\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*1\r\n*0\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*0\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"*-1\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"$6\r\nmaster\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"+master\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"-ERR unknown command 'ROLE'\r\n", PX_REDIS_ROLE_UNKNOWN},
        {"-master\r\n", PX_REDIS_ROLE_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            int rerr;
            redisReply *r = resp_n(t[i].bytes, strlen(t[i].bytes), bytewise, &rerr);
            assert_non_null(r);
            if (px_redis_role_parse(r) != t[i].want) fail_msg("role[%zu]: %d", i, px_redis_role_parse(r));
            freeReplyObject(r);
        }
    assert_int_equal(px_redis_role_parse(NULL), PX_REDIS_ROLE_UNKNOWN);
}

/* A loopback port nobody listens on: bound without listen, kept bound so
 * no other program takes it while the test runs. */
static int closed_port(int *fd) {
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &alen), 0);
    return ntohs(a.sin_port);
}

static void test_master_refusals(void **state) {
    (void)state;
    px_redis_node_t s[2] = {{.host = "127.0.0.1"}, {.host = "127.0.0.1"}}, m = {.host = "unchanged"};
    char err[512];
    int which = -7;
    assert_int_equal(px_sentinel_master(s, 0, "presence", 100, &m, &which, err, sizeof err), PX_ECONFIG);
    assert_int_equal(px_sentinel_master(s, 1, "", 100, &m, &which, err, sizeof err), PX_ECONFIG);
    assert_int_equal(px_sentinel_master(s, 1, NULL, 100, &m, &which, err, sizeof err), PX_ECONFIG);
    assert_non_null(strstr(err, "redis.sentinels"));
    int fd0, fd1;
    s[0].port = closed_port(&fd0);
    s[1].port = closed_port(&fd1);
    assert_int_equal(px_sentinel_master(s, 2, "presence", 200, &m, &which, err, sizeof err), PX_EBACKEND);
    char want0[64], want1[64];
    snprintf(want0, sizeof want0, "sentinel 127.0.0.1:%d: ", s[0].port);
    snprintf(want1, sizeof want1, "; sentinel 127.0.0.1:%d: ", s[1].port);
    if (!strstr(err, want0) || !strstr(err, want1)) fail_msg("%s", err);
    assert_string_equal(m.host, "unchanged");
    assert_int_equal(which, -7);
    char tiny[24]; /* the notes are cut, never overrun */
    assert_int_equal(px_sentinel_master(s, 2, "presence", 200, &m, NULL, tiny, sizeof tiny), PX_EBACKEND);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    close(fd0);
    close(fd1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_good),   cmocka_unit_test(test_addr_parse_host_bounds),
        cmocka_unit_test(test_addr_parse_hostile), cmocka_unit_test(test_reader_refuses),
        cmocka_unit_test(test_role_parse),         cmocka_unit_test(test_master_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
