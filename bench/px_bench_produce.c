/*
 * px_bench_produce - fills the input topics with a realistic workload for
 * the processor benchmark (bench/run_processor.sh): the realistic mix of
 * 80% HB, 10% SUB/UNSUB, 8% LOCK/UNLOCK, 2% lifecycle over E entities, in
 * Avro single-object encoding, keyed tenant:entity:id, murmur2_random.
 *
 *   px_bench_produce BOOTSTRAP PREFIX COUNT ENTITIES [SEED]
 *
 * Prints records produced and the rate, then one line "ends: S:P=O ..."
 * with the end offset O of each partition P of input topic S (the source
 * numbers of the processor's applied marks, docs/redis-keys.md): the bench
 * waits until Redis's marks reach them. Deterministic for a seed. Not a
 * test: a load generator.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "px_avro.h"
#include "px_registry.h"
#include "px_time.h"

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

#define MAX_PARTS 256
static int64_t ends[4][MAX_PARTS]; /* next offset per topic and partition */
static long failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    int t = (int)(intptr_t)m->_private;
    if (m->err) {
        if (!failed++) fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
        return;
    }
    if (t >= 0 && t < 4 && m->partition >= 0 && m->partition < MAX_PARTS && m->offset + 1 > ends[t][m->partition])
        ends[t][m->partition] = m->offset + 1;
}

/* Record n of the run: presence 90%, locks 8%, lifecycle 2%, over
 * `entities` entities of tenant bench; its event time `now` plus a second
 * per 1000 records. Returns the index of its topic. */
static int random_event(px_event_t *ev, long n, long entities, int64_t now) {
    static const char *fields[] = {"amount", "customer", "notes", "date"};
    long eid = (long)(rnd() % (uint64_t)entities);
    uint64_t r = rnd() % 100;
    int user = (int)(rnd() % 20), tab = (int)(eid * 3 + rnd() % 3);
    int topic;
    if (r < 90) {
        px_event_init(ev, PX_KIND_PRESENCE);
        ev->type = r < 80 ? PX_PRES_HB : (r < 85 ? PX_PRES_SUB : PX_PRES_UNSUB);
        ev->mode = rnd() % 4 ? PX_MODE_VIEW : PX_MODE_EDIT;
        ev->dirty = rnd() % 8 == 0;
        topic = 0;
    } else if (r < 98) {
        px_event_init(ev, PX_KIND_LOCK);
        ev->type = r < 94 ? PX_LOCK_LOCK : PX_LOCK_UNLOCK;
        snprintf(ev->field, sizeof ev->field, "%s", fields[rnd() % 4]);
        snprintf(ev->request_id, sizeof ev->request_id, "r%ld", n);
        topic = 1;
    } else {
        px_event_init(ev, PX_KIND_LIFECYCLE);
        ev->type = r < 99 ? PX_LC_MUTATING : PX_LC_MUTATED;
        snprintf(ev->write_id, sizeof ev->write_id, "w%ld", eid % 1000);
        if (ev->type == PX_LC_MUTATING) snprintf(ev->busy_by, sizeof ev->busy_by, "erp");
        topic = ev->type == PX_LC_MUTATING ? 2 : 3;
    }
    if (topic < 2) {
        snprintf(ev->tab_id, sizeof ev->tab_id, "tab%d", tab);
        snprintf(ev->user_id, sizeof ev->user_id, "user%d", user);
        snprintf(ev->user_name, sizeof ev->user_name, "User %d", user);
    }
    snprintf(ev->key.tenant, sizeof ev->key.tenant, "bench");
    snprintf(ev->key.entity, sizeof ev->key.entity, "order");
    snprintf(ev->key.id, sizeof ev->key.id, "%ld", eid);
    ev->ts_ms = now + n / 1000; /* a second of event time per 1000 records */
    return topic;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: px_bench_produce BOOTSTRAP PREFIX COUNT ENTITIES [SEED]\n");
        return 2;
    }
    const char *boot = argv[1], *prefix = argv[2];
    long count = atol(argv[3]), entities = atol(argv[4]);
    rng_state = argc > 5 ? strtoull(argv[5], NULL, 10) | 1 : 88172645463325252ULL;
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {{"bootstrap.servers", boot}, {"partitioner", "murmur2_random"},
                           {"linger.ms", "20"}, {"batch.num.messages", "10000"},
                           {"queue.buffering.max.messages", "1000000"}, {"compression.type", "lz4"},
                           {"enable.idempotence", "true"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    px_avro_t *avro = px_avro_new(err, sizeof err);
    if (!rk || !avro) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    static const char *topics[] = {"presence.heartbeats", "presence.locks", "core.entities.lifecycle.mutating",
                                   "core.entities.lifecycle.mutated"};
    char tn[4][512];
    for (int i = 0; i < 4; i++) snprintf(tn[i], sizeof tn[i], "%s%s", prefix, topics[i]);
    /* PX_BENCH_REGISTRY=URL: the records in the Confluent wire format, with
     * the ids that registry gives the schemas under the topics' subjects */
    px_registry_t *reg = NULL;
    const char *reg_url = getenv("PX_BENCH_REGISTRY");
    if (reg_url && *reg_url) {
        px_registry_conf_t rc = {reg_url, NULL, NULL, 10000};
        static const px_kind_t kinds[4] = {PX_KIND_PRESENCE, PX_KIND_LOCK, PX_KIND_LIFECYCLE, PX_KIND_LIFECYCLE};
        const char *subj[4] = {tn[0], tn[1], tn[2], tn[3]};
        if (!(reg = px_registry_new(&rc, err, sizeof err)) || px_registry_bind(reg, avro, kinds, subj, 4, err, sizeof err)) {
            fprintf(stderr, "px_bench_produce: registry %s: %s\n", reg_url, err);
            return 2;
        }
    }
    px_buf_t val;
    px_buf_init(&val, 1 << 16);
    int64_t t0 = px_mono_ms(), now = px_now_ms();
    for (long n = 0; n < count; n++) {
        px_event_t ev;
        int topic = random_event(&ev, n, entities, now);
        char key[PX_KEY_MAX + 1];
        int kl = px_key_format(&ev.key, key, sizeof key);
        px_buf_reset(&val);
        if (px_avro_encode(avro, &ev, &val, err, sizeof err)) {
            fprintf(stderr, "encode: %s\n", err);
            return 1;
        }
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(tn[topic]), RD_KAFKA_V_KEY(key, (size_t)kl),
                                 RD_KAFKA_V_VALUE(val.data, val.len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_OPAQUE((void *)(intptr_t)topic), RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR || failed) {
        fprintf(stderr, "not every record was delivered (%ld failed)\n", failed);
        return 1;
    }
    double s = (double)(px_mono_ms() - t0) / 1000.0;
    printf("produced %ld records over %ld entities in %.1f s (%.0f records/s)\n", count, entities, s, count / s);
    printf("ends:");
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < MAX_PARTS; p++)
            if (ends[t][p]) printf(" %d:%d=%lld", t, p, (long long)ends[t][p]);
    printf("\n");
    px_buf_term(&val);
    px_avro_free(avro);
    px_registry_free(reg);
    rd_kafka_destroy(rk);
    return 0;
}
