/*
 * px_naive_processor - the comparison baseline of the processor benchmark
 * (docs/benchmarks.md): a presence
 * processor written the way typical service code does it. It consumes the
 * same input topics, decodes the same Avro records with the same codec,
 * and for each event makes synchronous Redis round trips, one per command:
 *
 *   SUB / HB        SADD presence:{K}:tabs <tab>, EXPIRE ... 60
 *   UNSUB           SREM presence:{K}:tabs <tab>
 *   LOCK            SET presence:{K}:lock:<field> <tab> NX PX 120000
 *   UNLOCK          GET presence:{K}:lock:<field>, then DEL if <tab> holds it
 *   MUTATING        HSET presence:{K}:meta stale 1 busyBy <who>
 *   MUTATED         HSET presence:{K}:meta stale 0, INCR presence:{K}:version
 *
 * No batching, no pipelining, no exactly-once (auto-committed offsets:
 * at-least-once), no change events, no deadlines in the log. It is what the
 * project is measured against, not something to run.
 *
 *   px_naive_processor BOOTSTRAP PREFIX REDIS_PORT COUNT
 *
 * Consumes from the start of the PREFIX topics until COUNT records were
 * handled and prints "naive: N records in S s from launch: R records/s
 * (C Redis commands)". Timed from launch, like bench/run_processor.sh.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "px_avro.h"
#include "px_time.h"

/* One command, one round trip: the reply is read before the next. */
static int cmd(redisContext *r, long *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    (*n)++;
    if (!rep) {
        fprintf(stderr, "naive: redis: %s\n", r->errstr);
        return -1;
    }
    int ok = rep->type != REDIS_REPLY_ERROR;
    if (!ok) fprintf(stderr, "naive: redis error: %s\n", rep->str);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

static int handle(redisContext *r, const px_event_t *ev, long *n) {
    char k[PX_KEY_MAX + 1];
    if (px_key_format(&ev->key, k, sizeof k) < 0) return -1;
    switch (ev->kind) {
    case PX_KIND_PRESENCE:
        if (ev->type == PX_PRES_SUB || ev->type == PX_PRES_HB)
            return cmd(r, n, "SADD presence:{%s}:tabs %s", k, ev->tab_id) ||
                   cmd(r, n, "EXPIRE presence:{%s}:tabs 60", k);
        if (ev->type == PX_PRES_UNSUB) return cmd(r, n, "SREM presence:{%s}:tabs %s", k, ev->tab_id);
        return 0;
    case PX_KIND_LOCK:
        if (ev->type == PX_LOCK_LOCK)
            return cmd(r, n, "SET presence:{%s}:lock:%s %s NX PX 120000", k, ev->field, ev->tab_id);
        if (ev->type == PX_LOCK_UNLOCK) {
            redisReply *rep = redisCommand(r, "GET presence:{%s}:lock:%s", k, ev->field);
            (*n)++;
            if (!rep) return -1;
            int mine = rep->type == REDIS_REPLY_STRING && strcmp(rep->str, ev->tab_id) == 0;
            freeReplyObject(rep);
            return mine ? cmd(r, n, "DEL presence:{%s}:lock:%s", k, ev->field) : 0;
        }
        return 0;
    case PX_KIND_LIFECYCLE:
        if (ev->type == PX_LC_MUTATING)
            return cmd(r, n, "HSET presence:{%s}:meta stale 1 busyBy %s", k, ev->busy_by[0] ? ev->busy_by : "-");
        if (ev->type == PX_LC_MUTATED)
            return cmd(r, n, "HSET presence:{%s}:meta stale 0", k) || cmd(r, n, "INCR presence:{%s}:version", k);
        return 0;
    default:
        return 0;
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: px_naive_processor BOOTSTRAP PREFIX REDIS_PORT COUNT\n");
        return 2;
    }
    int64_t t0 = px_mono_us();
    long count = atol(argv[4]), done = 0, bad = 0, cmds = 0;
    char err[512], group[600];
    snprintf(group, sizeof group, "%snaive", argv[2]);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {{"bootstrap.servers", argv[1]}, {"group.id", group}, {"auto.offset.reset", "earliest"},
                           {"enable.auto.commit", "true"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err)) {
            fprintf(stderr, "naive: %s\n", err);
            return 2;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    px_avro_t *avro = px_avro_new(err, sizeof err);
    redisContext *r = redisConnect("127.0.0.1", atoi(argv[3]));
    if (!rk || !avro || !r || r->err) {
        fprintf(stderr, "naive: start-up failed: %s\n", r && r->err ? r->errstr : err);
        return 2;
    }
    rd_kafka_poll_set_consumer(rk);
    static const char *topics[] = {"presence.heartbeats", "presence.locks", "core.entities.lifecycle.mutating",
                                   "core.entities.lifecycle.mutated"};
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(4);
    for (int i = 0; i < 4; i++) {
        char t[600];
        snprintf(t, sizeof t, "%s%s", argv[2], topics[i]);
        rd_kafka_topic_partition_list_add(sub, t, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    int rc = 0;
    int64_t idle_since = px_mono_us();
    while (done < count) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            if (px_mono_us() - idle_since > 60 * 1000000LL) {
                fprintf(stderr, "naive: no record for 60 s after %ld of %ld\n", done, count);
                rc = 1;
                break;
            }
            continue;
        }
        idle_since = px_mono_us();
        if (!m->err) {
            px_event_t ev;
            if (px_avro_decode(avro, m->payload, m->len, &ev, err, sizeof err) == 0) {
                if (handle(r, &ev, &cmds) && r->err) {
                    rd_kafka_message_destroy(m);
                    rc = 1;
                    break;
                }
            } else {
                bad++;
            }
            done++;
        }
        rd_kafka_message_destroy(m);
    }
    double s = (double)(px_mono_us() - t0) / 1e6;
    printf("naive: %ld records in %.2f s from launch: %.0f records/s (%ld Redis commands, %ld undecodable)\n", done, s,
           (double)done / s, cmds, bad);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    px_avro_free(avro);
    redisFree(r);
    return rc;
}
