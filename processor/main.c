/*
 * main.c - presence-processor, walking-skeleton version.
 *
 * Consumes presence.heartbeats in the consumer group, decodes each Avro
 * record and applies it to the Redis view with one Lua script per record
 * (pipelined on one hiredis async connection: no round trip per event),
 * then stores the record's offset once Redis acknowledged it. The script
 * publishes a change on presence:updates:{key} when the view changed, which
 * is what the gateways push to browsers.
 *
 * Guarantee of this version: at-least-once (the script is idempotent for a
 * re-delivered record). Exactly-once, the in-memory fold from core/, locks,
 * lifecycle, EXPIRE records, retry and DLQ topics are the processor issue;
 * see docs/architecture.md. Undecodable records are logged, counted and
 * skipped here.
 *
 * Redis outage: the consumer pauses its partitions, reconnects every
 * second, seeks back to the first record not acknowledged and resumes, so
 * nothing is skipped.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "px_avro.h"
#include "px_config.h"
#include "px_err.h"
#include "px_event.h"
#include "px_http.h"
#include "px_kafka.h"
#include "px_log.h"
#include "px_metrics.h"
#include "px_signal.h"
#include "px_view.h"

#define COMP "processor"
#define MAX_PARTITIONS 1024

typedef struct pr_config {
    char redis_host[PX_CONF_STR_MAX];
    int64_t redis_port;
    char topic_prefix[PX_CONF_STR_MAX];
    char topic_heartbeats[PX_CONF_STR_MAX];
    int64_t presence_ttl_ms;
    int64_t batch_max;
    int64_t max_inflight;
    char log_level[PX_CONF_STR_MAX];
    char http_host[PX_CONF_STR_MAX];
    int64_t http_port;
} pr_config_t;

#define OPT(n, t, d, h, f, lo, hi) {n, t, d, h, offsetof(pr_config_t, f), lo, hi}
static const px_opt_t pr_opts[] = {
    OPT("redis.host", PX_OPT_STR, "127.0.0.1", "Redis host", redis_host, 0, 0),
    OPT("redis.port", PX_OPT_INT, "6379", "Redis port", redis_port, 1, 65535),
    OPT("topic.prefix", PX_OPT_STR, "", "prefix of every topic name", topic_prefix, 0, 0),
    OPT("topic.heartbeats", PX_OPT_STR, "presence.heartbeats", "presence topic", topic_heartbeats, 0, 0),
    OPT("presence.ttl_ms", PX_OPT_INT, "60000", "a tab lives this long after its last heartbeat",
        presence_ttl_ms, 1000, 86400000),
    OPT("batch.max_records", PX_OPT_INT, "2000", "records taken from Kafka per loop turn", batch_max, 1,
        1000000),
    OPT("batch.max_inflight", PX_OPT_INT, "20000", "records sent to Redis and not yet acknowledged",
        max_inflight, 1, 10000000),
    OPT("log.level", PX_OPT_STR, "info", "debug | info | warn | error", log_level, 0, 0),
    OPT("http.host", PX_OPT_STR, "127.0.0.1", "address of /metrics, /healthz, /readyz", http_host, 0, 0),
    OPT("http.port", PX_OPT_INT, "9102", "port of /metrics, /healthz, /readyz (0: none)", http_port, 0, 65535),
};

/* Apply one presence record. KEYS: tabs zset, tab hash. ARGV: op, tab_id,
 * deadline_ms, tab value, channel, ts_ms, user_id. Tabs whose deadline is
 * at or before the record's event time are dropped first (TIMED_OUT). A
 * live tab belongs to the user who opened it: a record naming the same
 * tab id for another user changes nothing (tab ids come from clients). */
static const char APPLY_SCRIPT[] =
    "local tabs, tab, op, tid, ch, uid = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[5], ARGV[7]\n"
    "local gone = redis.call('ZRANGEBYSCORE', tabs, '-inf', ARGV[6])\n"
    "for _, g in ipairs(gone) do\n"
    "  redis.call('ZREM', tabs, g); redis.call('HDEL', tab, g)\n"
    "  redis.call('PUBLISH', ch, cjson.encode({type='TIMED_OUT', tab_id=g}))\n"
    "end\n"
    "local old = redis.call('HGET', tab, tid)\n"
    "if old and cjson.decode(old).user ~= uid then return -1 end\n"
    "if op == 'UNSUB' then\n"
    "  if redis.call('ZREM', tabs, tid) == 1 then\n"
    "    redis.call('HDEL', tab, tid)\n"
    "    redis.call('PUBLISH', ch, cjson.encode({type='LEFT', tab_id=tid, user=uid}))\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "redis.call('ZADD', tabs, ARGV[3], tid)\n"
    "redis.call('HSET', tab, tid, ARGV[4])\n"
    "local top = redis.call('ZRANGE', tabs, -1, -1, 'WITHSCORES')\n"
    "redis.call('PEXPIREAT', tabs, top[2]); redis.call('PEXPIREAT', tab, top[2])\n"
    "if not old then\n"
    "  redis.call('PUBLISH', ch, cjson.encode({type='JOINED', tab_id=tid, user=uid}))\n"
    "elseif old ~= ARGV[4] then\n"
    "  redis.call('PUBLISH', ch, cjson.encode({type='UPDATED', tab_id=tid, user=uid}))\n"
    "end\n"
    "return 1\n";

typedef struct pr_part {
    int32_t partition;
    int64_t first_failed; /* -1: none */
} pr_part_t;

typedef struct pr_ctx {
    pr_config_t cfg;
    px_kvlist_t kafka_kv;
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *rkqu; /* the consumer queue, watched by rk_uv */
    px_kafka_uv_t *rk_uv;
    char topic[PX_CONF_STR_MAX * 2];
    redisAsyncContext *redis;
    bool redis_up;
    bool paused;
    uv_timer_t redis_retry;
    px_avro_t *avro;
    px_buf_t val;
    px_metrics_t *metrics;
    int64_t inflight;
    bool stopping;
    pr_part_t parts[MAX_PARTITIONS];
    px_httpd_t *httpd;
    px_counter_t *m_ok, *m_bad, *m_redis_err;
    px_gauge_t *m_ready;
} pr_ctx_t;

typedef struct pr_req {
    pr_ctx_t *pr;
    int32_t partition;
    int64_t offset;
} pr_req_t;

static void consume(void *arg);
static void mark_failed(pr_ctx_t *pr, int32_t partition, int64_t offset);

/* ---- Redis ---------------------------------------------------------------- */

static void redis_dial(pr_ctx_t *pr);

static void on_redis_retry(uv_timer_t *t) {
    pr_ctx_t *pr = t->data;
    if (!pr->stopping && !pr->redis) redis_dial(pr);
}

static void set_paused(pr_ctx_t *pr, bool pause) {
    rd_kafka_topic_partition_list_t *a = NULL;
    if (pr->paused == pause || rd_kafka_assignment(pr->rk, &a) || !a) return;
    if (pause) {
        rd_kafka_pause_partitions(pr->rk, a);
    } else {
        /* rewind every partition to its first record Redis did not take */
        for (int i = 0; i < a->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &a->elems[i];
            if (tp->partition >= 0 && tp->partition < MAX_PARTITIONS &&
                pr->parts[tp->partition].first_failed >= 0) {
                tp->offset = pr->parts[tp->partition].first_failed;
                pr->parts[tp->partition].first_failed = -1;
            } else {
                tp->offset = RD_KAFKA_OFFSET_INVALID;
            }
        }
        rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(a->cnt);
        for (int i = 0; i < a->cnt; i++)
            if (a->elems[i].offset >= 0)
                rd_kafka_topic_partition_list_add(seek, a->elems[i].topic, a->elems[i].partition)
                    ->offset = a->elems[i].offset;
        if (seek->cnt) {
            rd_kafka_error_t *e = rd_kafka_seek_partitions(pr->rk, seek, 0);
            if (e) {
                PX_ERROR(COMP, "seek failed", "err=\"%s\"", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        }
        rd_kafka_topic_partition_list_destroy(seek);
        rd_kafka_resume_partitions(pr->rk, a);
    }
    rd_kafka_topic_partition_list_destroy(a);
    pr->paused = pause;
    PX_INFO(COMP, pause ? "paused: redis unavailable" : "resumed", NULL);
}

static void on_redis_connect(const redisAsyncContext *ac, int status) {
    pr_ctx_t *pr = ac->data;
    if (status != REDIS_OK) {
        px_counter_add(pr->m_redis_err, 1);
        PX_WARN(COMP, "redis connect failed", "err=\"%s\"", ac->errstr);
        pr->redis = NULL;
        uv_timer_start(&pr->redis_retry, on_redis_retry, 1000, 0);
        return;
    }
    PX_INFO(COMP, "redis connected", "host=%s port=%lld", pr->cfg.redis_host, (long long)pr->cfg.redis_port);
    pr->redis_up = true;
    set_paused(pr, false);
    consume(pr);
}

static void on_redis_disconnect(const redisAsyncContext *ac, int status) {
    pr_ctx_t *pr = ac->data;
    pr->redis = NULL;
    pr->redis_up = false;
    if (pr->stopping) return;
    px_counter_add(pr->m_redis_err, 1);
    PX_WARN(COMP, "redis disconnected", "err=\"%s\"", ac->errstr[0] ? ac->errstr : "closed");
    set_paused(pr, true);
    uv_timer_start(&pr->redis_retry, on_redis_retry, 1000, 0);
}

static void redis_dial(pr_ctx_t *pr) {
    redisAsyncContext *ac = redisAsyncConnect(pr->cfg.redis_host, (int)pr->cfg.redis_port);
    if (!ac || ac->err) {
        PX_WARN(COMP, "redis connect failed", "err=\"%s\"", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        uv_timer_start(&pr->redis_retry, on_redis_retry, 1000, 0);
        return;
    }
    ac->data = pr;
    redisLibuvAttach(ac, pr->loop);
    redisAsyncSetConnectCallback(ac, on_redis_connect);
    redisAsyncSetDisconnectCallback(ac, on_redis_disconnect);
    pr->redis = ac;
}

static void on_applied(redisAsyncContext *ac, void *r, void *priv) {
    pr_req_t *req = priv;
    pr_ctx_t *pr = req->pr;
    redisReply *reply = r;
    pr->inflight--;
    pr_part_t *p = req->partition < MAX_PARTITIONS ? &pr->parts[req->partition] : NULL;
    if (!reply) { /* connection lost: rewind to here once Redis is back */
        mark_failed(pr, req->partition, req->offset);
        free(req);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        /* the script refused this record: it will not pass on retry (the
         * DLQ comes with the processor issue), so count it and move on */
        px_counter_add(pr->m_redis_err, 1);
        PX_ERROR(COMP, "redis apply failed", "partition=%d offset=%lld err=\"%s\"", req->partition,
                 (long long)req->offset, reply->str);
    } else {
        px_counter_add(pr->m_ok, 1);
    }
    if (p && p->first_failed < 0 && !pr->stopping) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, pr->topic, req->partition)->offset = req->offset + 1;
        rd_kafka_offsets_store(pr->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    free(req);
    if (pr->inflight == pr->cfg.max_inflight / 2) consume(pr);
}

/* ---- Kafka ----------------------------------------------------------------- */

static int apply(pr_ctx_t *pr, const rd_kafka_message_t *m) {
    char errstr[256];
    px_event_t ev;
    if (px_avro_decode(pr->avro, m->payload, m->len, &ev, errstr, sizeof errstr)) {
        px_counter_add(pr->m_bad, 1);
        PX_WARN(COMP, "record skipped", "partition=%d offset=%lld err=\"%s\"", m->partition,
                (long long)m->offset, errstr);
        return 0;
    }
    if (ev.kind != PX_KIND_PRESENCE || ev.type == PX_PRES_EXPIRE) {
        px_counter_add(pr->m_bad, 1);
        return 0;
    }
    px_view_tab_t t;
    memset(&t, 0, sizeof t);
    memcpy(t.user_id, ev.user_id, sizeof t.user_id);
    memcpy(t.user_name, ev.user_name, sizeof t.user_name);
    memcpy(t.field, ev.field, sizeof t.field);
    memcpy(t.cursor, ev.cursor, sizeof t.cursor);
    t.mode = ev.mode;
    t.dirty = ev.dirty;
    t.status = ev.status;
    px_buf_reset(&pr->val);
    px_view_tab_encode(&t, &pr->val);
    char ktabs[PX_KEY_MAX + 64], ktab[PX_KEY_MAX + 64], ch[PX_KEY_MAX + 64], dl[24], ts[24];
    px_view_key(&ev.key, "tabs", ktabs, sizeof ktabs);
    px_view_key(&ev.key, "tab", ktab, sizeof ktab);
    px_view_channel(&ev.key, ch, sizeof ch);
    snprintf(dl, sizeof dl, "%lld", (long long)(ev.ts_ms + pr->cfg.presence_ttl_ms));
    snprintf(ts, sizeof ts, "%lld", (long long)ev.ts_ms);
    const char *argv[] = {"EVAL", APPLY_SCRIPT, "2", ktabs, ktab,
                          px_event_type_name(PX_KIND_PRESENCE, ev.type), ev.tab_id, dl,
                          pr->val.data, ch, ts, ev.user_id};
    pr_req_t *req = malloc(sizeof *req);
    if (!req) return -1;
    *req = (pr_req_t){pr, m->partition, m->offset};
    if (redisAsyncCommandArgv(pr->redis, on_applied, req, 12, argv, NULL) != REDIS_OK) {
        free(req);
        return -1;
    }
    pr->inflight++;
    return 0;
}

static void mark_failed(pr_ctx_t *pr, int32_t partition, int64_t offset) {
    if (partition < 0 || partition >= MAX_PARTITIONS) return;
    pr_part_t *p = &pr->parts[partition];
    if (p->first_failed < 0 || offset < p->first_failed) p->first_failed = offset;
}

/* Drain up to batch_max records while Redis keeps up. A record that cannot
 * go to Redis now is dropped and its partition rewound on resume. */
static void consume(void *arg) {
    pr_ctx_t *pr = arg;
    if (pr->stopping) return;
    for (int64_t n = 0; n < pr->cfg.batch_max; n++) {
        if (pr->redis_up && pr->inflight >= pr->cfg.max_inflight) return;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(pr->rk, 0);
        if (!m) return;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                PX_WARN(COMP, "consumer error", "err=\"%s\"", rd_kafka_message_errstr(m));
        } else if (!pr->redis_up || apply(pr, m)) {
            mark_failed(pr, m->partition, m->offset);
            set_paused(pr, true);
        }
        rd_kafka_message_destroy(m);
    }
}

/* Ready: Redis connected, consumption not paused, and the consumer holds
 * an assignment or is waiting for one without an error. */
static bool is_ready(pr_ctx_t *pr) { return pr->redis_up && !pr->paused; }

static void on_http(void *arg, const char *path, int *status, const char **ctype, px_buf_t *body) {
    pr_ctx_t *pr = arg;
    if (strcmp(path, "/healthz") == 0) {
        *status = 200;
        px_buf_puts(body, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        bool ready = is_ready(pr);
        *status = ready ? 200 : 503;
        px_buf_printf(body, "%s redis=%s consuming=%s\n", ready ? "ready" : "not-ready",
                      pr->redis_up ? "up" : "down", pr->paused ? "paused" : "yes");
    } else if (strcmp(path, "/metrics") == 0) {
        px_gauge_set(pr->m_ready, is_ready(pr));
        *status = px_metrics_render(pr->metrics, body) == 0 ? 200 : 500;
        *ctype = "text/plain; version=0.0.4";
    }
}

static void on_stop(void *arg) {
    pr_ctx_t *pr = arg;
    PX_INFO(COMP, "stopping", NULL);
    pr->stopping = true;
    uv_stop(pr->loop);
}

static int kafka_start(pr_ctx_t *pr, char *errstr, size_t n) {
    static const char *const defaults[][2] = {
        {"group.id", "presence-processor"},
        {"auto.offset.reset", "earliest"}, /* a new group starts at the beginning of the log */
        {"bootstrap.servers", "127.0.0.1:9092"},
    };
    rd_kafka_conf_t *conf = px_kafka_conf_new_with(defaults, sizeof defaults / sizeof defaults[0],
                                                   &pr->kafka_kv, "presence-processor", errstr, n);
    if (!conf) return PX_ECONFIG;
    static const char *fixed[][2] = {
        {"enable.auto.offset.store", "false"}, /* store only what Redis acknowledged */
        {"partition.assignment.strategy", "cooperative-sticky"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (px_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, n)) {
            rd_kafka_conf_destroy(conf);
            return PX_ECONFIG;
        }
    pr->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, n);
    if (!pr->rk) {
        rd_kafka_conf_destroy(conf);
        return PX_ECONFIG;
    }
    rd_kafka_poll_set_consumer(pr->rk);
    snprintf(pr->topic, sizeof pr->topic, "%s%s", pr->cfg.topic_prefix, pr->cfg.topic_heartbeats);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, pr->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(pr->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) return px_errf(PX_EBACKEND, errstr, n, "subscribe %s: %s", pr->topic, rd_kafka_err2str(err));
    pr->rkqu = rd_kafka_queue_get_consumer(pr->rk);
    pr->rk_uv = px_kafka_uv_start(pr->loop, pr->rkqu, 100, consume, pr);
    if (!pr->rk_uv) return px_errf(PX_EIO, errstr, n, "cannot watch the consumer queue");
    PX_INFO(COMP, "consuming", "topic=%s", pr->topic);
    return 0;
}

int main(int argc, char **argv) {
    static pr_ctx_t pr_storage;
    pr_ctx_t *pr = &pr_storage;
    char errstr[512];
    uv_loop_t loop;
    px_signal_uv_t *sig = NULL;
    int rc = px_config_load(pr_opts, sizeof pr_opts / sizeof pr_opts[0], &pr->cfg, &pr->kafka_kv, argc,
                            argv, "presence-processor", stdout, errstr, sizeof errstr);
    if (rc == PX_CONFIG_EXIT) return 0;
    if (rc) {
        fprintf(stderr, "presence-processor: %s\n", errstr);
        return 2;
    }
    int lvl = px_log_level_parse(pr->cfg.log_level);
    if (lvl < 0) {
        fprintf(stderr, "presence-processor: log.level '%s' is not debug|info|warn|error\n", pr->cfg.log_level);
        return 2;
    }
    px_log_set_level((px_log_level_t)lvl);
    for (int i = 0; i < MAX_PARTITIONS; i++) pr->parts[i] = (pr_part_t){i, -1};

    uv_loop_init(&loop);
    pr->loop = &loop;
    uv_timer_init(&loop, &pr->redis_retry);
    pr->redis_retry.data = pr;
    pr->metrics = px_metrics_new();
    pr->avro = px_avro_new(errstr, sizeof errstr);
    px_buf_init(&pr->val, 64 * 1024);
    if (!pr->metrics || !pr->avro) {
        PX_ERROR(COMP, "start-up failed", "err=\"%s\"", errstr);
        rc = 1;
        goto out;
    }
    pr->m_ok = px_metrics_counter(pr->metrics, "presence_processor_records_total", "records folded",
                                  "outcome=\"applied\"");
    pr->m_bad = px_metrics_counter(pr->metrics, "presence_processor_records_total", "records folded",
                                   "outcome=\"skipped\"");
    pr->m_redis_err = px_metrics_counter(pr->metrics, "presence_processor_redis_errors_total",
                                         "Redis errors and reconnects", NULL);
    pr->m_ready = px_metrics_gauge(pr->metrics, "presence_processor_ready",
                                   "1 when Redis is up and consumption runs", NULL);
    if (pr->cfg.http_port) {
        pr->httpd = px_httpd_start(&loop, pr->cfg.http_host, (int)pr->cfg.http_port, on_http, pr,
                                   errstr, sizeof errstr);
        if (!pr->httpd) {
            PX_ERROR(COMP, "start-up failed", "err=\"%s\"", errstr);
            rc = 1;
            goto out_loop;
        }
        PX_INFO(COMP, "ops endpoint", "url=http://%s:%lld/metrics", pr->cfg.http_host,
                (long long)pr->cfg.http_port);
    }
    redis_dial(pr);
    if (kafka_start(pr, errstr, sizeof errstr) || px_signal_uv_start(&loop, on_stop, pr, &sig)) {
        PX_ERROR(COMP, "start-up failed", "err=\"%s\"", errstr);
        rc = 1;
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = 0;
    }
out_loop:
    pr->stopping = true;
    px_httpd_stop(pr->httpd);
    px_kafka_uv_stop(pr->rk_uv);
    if (pr->rkqu) rd_kafka_queue_destroy(pr->rkqu);
    if (pr->redis) redisAsyncDisconnect(pr->redis); /* waits for pending replies */
    uv_timer_stop(&pr->redis_retry);
    uv_close((uv_handle_t *)&pr->redis_retry, NULL);
    px_signal_uv_stop(sig);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (pr->rk) {
        rd_kafka_consumer_close(pr->rk);
        rd_kafka_destroy(pr->rk);
    }
    uv_loop_close(&loop);
out:
    px_buf_term(&pr->val);
    px_avro_free(pr->avro);
    px_metrics_free(pr->metrics);
    PX_INFO(COMP, "stopped", "rc=%d", rc);
    return rc;
}
