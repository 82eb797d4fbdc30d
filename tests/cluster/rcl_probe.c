/*
 * rcl_probe.c - drives core/px_redis_cluster.c against a real Redis
 * Cluster for tests/cluster/test_redis_cluster_client.py, which starts the
 * cluster and forces the faults (pxcluster.py). Keys are `{PREFIX:i}:k`,
 * spread over every slot; commands go through px_rcl batches of 100.
 *
 * SEEDS is a cluster's host:port,... or, for a single server behind
 * Sentinels, sentinel:NAME@host:port,... (the Sentinels and the master's
 * name).
 *
 *   rcl_probe SEEDS write PREFIX N TAG     SET every key to TAG-i
 *   rcl_probe SEEDS check PREFIX N TAG     GET every key, compare
 *   rcl_probe SEEDS loop PREFIX N SECONDS  write then read back round
 *                                          after round for SECONDS
 *
 * Prints one line of key=value figures (rounds, failures, the longest gap
 * between two good rounds, redirections followed, map refreshes, changes of
 * the master the Sentinels name); exits 0
 * when every key read back what was written (check, loop's last round).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "px_redis_cluster.h"

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* One pass over the keys: SET (write) or GET and compare (read). Returns
 * the number of keys wrong or unanswered, or -1 when an exec failed. */
static long pass(px_rcl_t *c, const char *prefix, long n, const char *tag, int write, char *err, size_t errn) {
    px_rcl_batch_t b;
    px_rcl_batch_init(&b, 1 << 20);
    long bad = 0;
    for (long lo = 0; lo < n && bad >= 0; lo += 100) {
        long hi = lo + 100 < n ? lo + 100 : n;
        char key[128], val[128];
        for (long i = lo; i < hi; i++) {
            int kl = snprintf(key, sizeof key, "{%s:%ld}:k", prefix, i);
            int vl = snprintf(val, sizeof val, "%s-%ld", tag, i);
            const char *argv[3] = {write ? "SET" : "GET", key, val};
            size_t argvlen[3] = {3, (size_t)kl, (size_t)vl};
            px_rcl_add(&b, key, (size_t)kl, write ? 3 : 2, argv, argvlen);
        }
        if (px_rcl_exec(c, &b, err, errn) != 0) {
            bad = -1;
            break;
        }
        for (long i = lo; i < hi; i++) {
            redisReply *r = b.cmd[i - lo].reply;
            snprintf(val, sizeof val, "%s-%ld", tag, i);
            if (write ? (r->type != REDIS_REPLY_STATUS)
                      : (r->type != REDIS_REPLY_STRING || strcmp(r->str, val) != 0)) {
                if (bad < 3) fprintf(stderr, "key %ld: %s\n", i, r->type == REDIS_REPLY_ERROR ? r->str : "wrong");
                bad++;
            }
        }
        px_rcl_batch_reset(&b);
    }
    px_rcl_batch_term(&b);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: rcl_probe SEEDS write|check|loop PREFIX N TAG|SECONDS\n");
        return 2;
    }
    char err[512] = "";
    px_rcl_conf_t conf = {.cluster = true, .seeds = argv[1], .timeout_ms = 1000, .retry_ms = 3000};
    char name[256];
    const char *at = strchr(argv[1], '@');
    if (strncmp(argv[1], "sentinel:", 9) == 0 && at && (size_t)(at - argv[1]) - 9 < sizeof name) {
        snprintf(name, sizeof name, "%.*s", (int)(at - argv[1] - 9), argv[1] + 9);
        conf = (px_rcl_conf_t){.sentinels = at + 1, .master_name = name, .timeout_ms = 500, .retry_ms = 3000};
    }
    px_rcl_t *c = px_rcl_new(&conf, err, sizeof err);
    if (!c || px_rcl_connect(c, err, sizeof err)) {
        fprintf(stderr, "rcl_probe: %s\n", err);
        px_rcl_free(c);
        return 1;
    }
    long n = atol(argv[4]);
    int rc = 0;
    if (strcmp(argv[2], "loop") == 0) {
        long end = now_ms() + 1000 * atol(argv[5]), last_good = now_ms(), max_gap = 0, rounds = 0, failed = 0;
        char tag[32], good_tag[32] = "";
        while (now_ms() < end) {
            snprintf(tag, sizeof tag, "r%ld", rounds++);
            if (pass(c, argv[3], n, tag, 1, err, sizeof err) == 0 && pass(c, argv[3], n, tag, 0, err, sizeof err) == 0) {
                long t = now_ms();
                if (t - last_good > max_gap) max_gap = t - last_good;
                last_good = t;
                snprintf(good_tag, sizeof good_tag, "%s", tag);
            } else {
                failed++;
                fprintf(stderr, "round %s failed: %s\n", tag, err);
            }
        }
        if (now_ms() - last_good > max_gap) max_gap = now_ms() - last_good;
        /* The last round that failed may have written part of its keys:
         * write one more round, then it must read back whole. */
        rc = pass(c, argv[3], n, "final", 1, err, sizeof err) == 0 && pass(c, argv[3], n, "final", 0, err, sizeof err) == 0 ? 0 : 1;
        px_rcl_stats_t s = px_rcl_stats(c);
        printf("rounds=%ld failed=%ld max_gap_ms=%ld final=%s moved=%lu ask=%lu tryagain=%lu refreshes=%lu "
               "reconnects=%lu master_changes=%lu\n",
               rounds, failed, max_gap, rc ? "bad" : "ok", s.moved, s.ask, s.tryagain, s.refreshes, s.reconnects,
               s.master_changes);
    } else {
        int write = strcmp(argv[2], "write") == 0;
        long bad = pass(c, argv[3], n, argv[5], write, err, sizeof err);
        px_rcl_stats_t s = px_rcl_stats(c);
        printf("bad=%ld moved=%lu ask=%lu tryagain=%lu refreshes=%lu reconnects=%lu masters=%d\n", bad, s.moved, s.ask,
               s.tryagain, s.refreshes, s.reconnects, px_rcl_nodes(c));
        if (bad) fprintf(stderr, "rcl_probe: %s\n", bad < 0 ? err : "wrong values");
        rc = bad != 0;
    }
    px_rcl_free(c);
    return rc;
}
