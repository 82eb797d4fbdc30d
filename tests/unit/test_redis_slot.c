/*
 * test_redis_slot.c - unit tests for px_redis_slot.c: CRC16 and key slots
 * against the values the Redis Cluster specification gives, hash tag
 * edge cases, CLUSTER SLOTS replies (real RESP bytes through hiredis's own
 * reader) with a hostile table, and MOVED/ASK parsing with a hostile table.
 * Run under ASan/UBSan and valgrind by ctest (label unit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_redis_slot.h"

static void test_crc16_and_slots(void **state) {
    (void)state;
    assert_int_equal(px_redis_crc16("123456789", 9), 0x31C3); /* the spec's check value */
    assert_int_equal(px_redis_crc16("", 0), 0);
    assert_int_equal(px_redis_slot("foo", 3), 12182);          /* CLUSTER KEYSLOT foo */
    assert_int_equal(px_redis_slot("somekey", 7), 11058);      /* CLUSTER KEYSLOT somekey */
    static const struct {
        const char *key, *hashed;
    } tags[] = {
        {"{user1000}.following", "user1000"},
        {"foo{}{bar}", "foo{}{bar}"},          /* empty first tag: the whole key */
        {"foo{{bar}}zap", "{bar"},             /* from the first { to the first } */
        {"foo{bar}{zap}", "bar"},
        {"{", "{"},
        {"}{", "}{"},
        {"presence:{acme:order:42}:view", "acme:order:42"},
        {"no tag at all", "no tag at all"},
        {"x{unclosed", "x{unclosed"},
    };
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        size_t n = strlen(tags[i].key);
        char *k = malloc(n ? n : 1); /* exact size: no terminator to lean on */
        assert_non_null(k);
        memcpy(k, tags[i].key, n);
        int want = px_redis_crc16(tags[i].hashed, strlen(tags[i].hashed)) & 16383;
        if (px_redis_slot(k, n) != want) fail_msg("%s", tags[i].key);
        free(k);
    }
    assert_int_equal(px_redis_slot("{user1000}.following", 20), px_redis_slot("{user1000}.followers", 20));
}

/* A reply parsed from RESP text by hiredis's reader. */
static redisReply *resp(const char *s) {
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    assert_int_equal(redisReaderFeed(r, s, strlen(s)), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(r);
    return reply;
}

#define MASTER(lo, hi, host, port)                                                                           \
    "*4\r\n:" #lo "\r\n:" #hi "\r\n*3\r\n$" host "\r\n:" #port "\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:1\r\n$3\r\nrid\r\n"

/* Row i of the bad CLUSTER SLOTS replies, text (a row whose why is "bad
 * host" holds a NUL): refused with PX_EPROTO, err naming why, m unchanged. */
static void check_bad_slots(px_redis_slots_t *m, const char *text, const char *why, size_t i) {
    char err[160];
    px_redis_slots_t before = *m;
    /* resp() needs strlen: rows with a NUL are fed by their real length */
    redisReader *rd = redisReaderCreate();
    size_t len = strlen(text);
    if (strstr(why, "bad host")) len = strlen(text) + 1 + strlen(text + strlen(text) + 1);
    redisReaderFeed(rd, text, len);
    void *rep = NULL;
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
    redisReaderFree(rd);
    assert_non_null(rep);
    assert_int_equal(px_redis_slots_parse(rep, "h", m, err, sizeof err), PX_EPROTO);
    freeReplyObject(rep);
    if (!strstr(err, why)) fail_msg("row %zu: '%s' lacks '%s'", i, err, why);
    assert_memory_equal(&before, m, sizeof *m); /* unchanged on error */
}

static void test_slots_parse(void **state) {
    (void)state;
    px_redis_slots_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    char err[160];
    redisReply *r = resp("*3\r\n" MASTER(0, 5460, "9\r\n127.0.0.1", 7001) MASTER(5461, 10922, "9\r\n127.0.0.1", 7002)
                             MASTER(10923, 16383, "0\r\n", 7003));
    assert_int_equal(px_redis_slots_parse(r, "10.0.0.9", m, err, sizeof err), 0);
    freeReplyObject(r);
    assert_int_equal(m->nnodes, 3);
    assert_string_equal(m->node[m->owner[0]].host, "127.0.0.1");
    assert_int_equal(m->node[m->owner[0]].port, 7001);
    assert_int_equal(m->node[m->owner[5461]].port, 7002);
    assert_int_equal(m->node[m->owner[16383]].port, 7003);
    assert_string_equal(m->node[m->owner[16383]].host, "10.0.0.9"); /* empty host: the default */
    /* Two ranges of one master: one node; unnamed slots have no owner. */
    r = resp("*2\r\n" MASTER(0, 9, "9\r\n127.0.0.1", 7001) MASTER(20, 29, "9\r\n127.0.0.1", 7001));
    assert_int_equal(px_redis_slots_parse(r, "h", m, err, sizeof err), 0);
    freeReplyObject(r);
    assert_int_equal(m->nnodes, 1);
    assert_int_equal(m->owner[9], 0);
    assert_int_equal(m->owner[10], PX_REDIS_NO_NODE);
    assert_int_equal(m->owner[25], 0);

    static const struct {
        const char *resp, *why;
    } bad[] = {
        {"+OK\r\n", "not an array"},
        {"-ERR This instance has cluster support disabled\r\n", "not an array"},
        {"*1\r\n:1\r\n", "entry 0"},
        {"*1\r\n*2\r\n:0\r\n:1\r\n", "entry 0"},
        {"*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", "entry 0"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n", "entry 0"},
        {"*1\r\n" MASTER(5, 4, "1\r\nh", 1), "slots 5-4"},
        {"*1\r\n" MASTER(0, 16384, "1\r\nh", 1), "slots 0-16384"},
        {"*1\r\n" MASTER(-1, 3, "1\r\nh", 1), "slots -1-3"},
        {"*1\r\n" MASTER(0, 1, "1\r\nh", 0), "port 0"},
        {"*1\r\n" MASTER(0, 1, "1\r\nh", 65536), "port 65536"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:7\r\n:1\r\n", "not host, port"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\0b\r\n:1\r\n", "bad host"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) check_bad_slots(m, bad[i].resp, bad[i].why, i);
    /* An empty host with an empty default, a host over 255 bytes, 65 masters. */
    r = resp("*1\r\n" MASTER(0, 1, "0\r\n", 7000));
    assert_int_equal(px_redis_slots_parse(r, "", m, err, sizeof err), PX_EPROTO);
    freeReplyObject(r);
    char big[2048];
    char host[300];
    memset(host, 'h', 256);
    host[256] = '\0';
    snprintf(big, sizeof big, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$256\r\n%s\r\n:1\r\n", host);
    r = resp(big);
    assert_int_equal(px_redis_slots_parse(r, "h", m, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "bad host"));
    freeReplyObject(r);
    char *many = malloc(65 * 64 + 16);
    assert_non_null(many);
    int off = sprintf(many, "*65\r\n");
    for (int i = 0; i < 65; i++) off += sprintf(many + off, "*3\r\n:%d\r\n:%d\r\n*2\r\n$1\r\nh\r\n:%d\r\n", i, i, 1000 + i);
    r = resp(many);
    free(many);
    assert_int_equal(px_redis_slots_parse(r, "h", m, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "more than 64 masters"));
    freeReplyObject(r);
    assert_int_equal(px_redis_slots_parse(NULL, "h", m, err, sizeof err), PX_EPROTO);
    free(m);
}

static void test_redirects(void **state) {
    (void)state;
    static const struct {
        const char *in;
        px_redis_redirect_kind_t kind;
        int slot;
        const char *host;
        int port;
    } rows[] = {
        {"MOVED 3999 127.0.0.1:6381", PX_REDIS_MOVED, 3999, "127.0.0.1", 6381},
        {"ASK 16383 10.1.2.3:7000", PX_REDIS_ASK, 16383, "10.1.2.3", 7000},
        {"MOVED 0 ::1:6379", PX_REDIS_MOVED, 0, "::1", 6379},
        {"MOVED 12 :7002", PX_REDIS_MOVED, 12, "", 7002},
        {"MOVED 16384 h:1", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1 h:0", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1 h:65536", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1 h:99999999999999999999", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1 h:", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1 h", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED  1 h:1", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED x h:1", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1234567 h:1", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1 a b:1", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"MOVED 1 h:1x", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"moved 1 h:1", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"TRYAGAIN Multiple keys request during rehashing of slot", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"CLUSTERDOWN The cluster is down", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
        {"ASK", PX_REDIS_REDIRECT_NONE, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n = strlen(rows[i].in);
        char *in = malloc(n ? n : 1);
        assert_non_null(in);
        memcpy(in, rows[i].in, n);
        px_redis_redirect_t r = {.slot = -7};
        px_redis_redirect_kind_t k = px_redis_redirect_parse(in, n, &r);
        free(in);
        if (k != rows[i].kind) fail_msg("row %zu '%s': kind %d", i, rows[i].in, (int)k);
        if (k == PX_REDIS_REDIRECT_NONE) {
            assert_int_equal(r.slot, -7);
            continue;
        }
        assert_int_equal(r.slot, rows[i].slot);
        assert_string_equal(r.to.host, rows[i].host);
        assert_int_equal(r.to.port, rows[i].port);
    }
    char longhost[400] = "MOVED 1 ";
    memset(longhost + 8, 'h', 300);
    memcpy(longhost + 308, ":1", 3);
    px_redis_redirect_t r;
    assert_int_equal(px_redis_redirect_parse(longhost, strlen(longhost), &r), PX_REDIS_REDIRECT_NONE);
}

/* Seed and Sentinel lists (redis.nodes, redis.sentinels): good lists and
 * a hostile table, each refused with the item at fault named. */
static void test_nodes_parse(void **state) {
    (void)state;
    px_redis_node_t n[4];
    char err[256];
    assert_int_equal(px_redis_nodes_parse("", "x", n, 4, err, sizeof err), 0);
    assert_int_equal(px_redis_nodes_parse(NULL, "x", n, 4, err, sizeof err), 0);
    assert_int_equal(px_redis_nodes_parse("a:1, b.example:65535 ,,::1:7000", "x", n, 4, err, sizeof err), 3);
    assert_string_equal(n[0].host, "a");
    assert_int_equal(n[0].port, 1);
    assert_string_equal(n[1].host, "b.example");
    assert_int_equal(n[1].port, 65535);
    assert_string_equal(n[2].host, "::1");
    assert_int_equal(n[2].port, 7000);
    static const char *bad[] = {"a", "a:", ":1", "a:0", "a:65536", "a:1x", "a:-1", "a:1,b", "a:99999999999999999999",
                                "a:1,b:2,c:3,d:4,e:5", "a :1:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = px_redis_nodes_parse(bad[i], "redis.nodes", n, 4, err, sizeof err);
        if (rc != PX_ECONFIG || !strstr(err, "redis.nodes")) fail_msg("'%s': rc %d err '%s'", bad[i], rc, err);
    }
    char longhost[400];
    memset(longhost, 'h', 300);
    memcpy(longhost + 300, ":1", 3);
    assert_int_equal(px_redis_nodes_parse(longhost, "x", n, 4, err, sizeof err), PX_ECONFIG);
}

/* Hash tags that land in a chosen slot: each slot checked against the
 * CRC16 of its tag; bad slots and a short buffer refused. */
static void test_slot_tag(void **state) {
    (void)state;
    char tag[16], key[64];
    static const int slots[] = {0, 1, 5460, 5461, 8192, 10922, 10923, 12182, 16382, 16383};
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        int n = px_redis_slot_tag(slots[i], tag, sizeof tag);
        assert_true(n > 0 && n < 8);
        int k = snprintf(key, sizeof key, "presence:shard:{%s}:epoch", tag);
        assert_int_equal(px_redis_slot(key, (size_t)k), slots[i]);
    }
    assert_int_equal(px_redis_slot_tag(0, tag, sizeof tag), 4);
    assert_string_equal(tag, "3560"); /* docs/redis-keys.md names it */
    assert_int_equal(px_redis_slot_tag(-1, tag, sizeof tag), -1);
    assert_int_equal(px_redis_slot_tag(16384, tag, sizeof tag), -1);
    assert_int_equal(px_redis_slot_tag(0, tag, 7), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_and_slots),
        cmocka_unit_test(test_slots_parse),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_nodes_parse),
        cmocka_unit_test(test_slot_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
