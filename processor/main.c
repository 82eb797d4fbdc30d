/*
 * main.c - presence-processor: configuration, start-up, the loop's timers,
 * what the operations endpoint says, and clean shutdown.
 *
 * The loop wakes on the consumer queue (px_kafka_uv) and on a 100 ms timer
 * (deadlines, Redis reconnects, pauses); each wake runs pr_loop_turn, and
 * the timer then publishes the readiness for the operations endpoint,
 * which a thread of its own serves (pr_ops.c), so it answers while the
 * loop is held. SIGTERM/SIGINT stop the loop between batches, so no
 * transaction is left open; the consumer then leaves its group (the revoke
 * flushes pending Redis writes) and the producer is destroyed.
 * Options: docs/configuration.md. Design: docs/exactly-once.md.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pr.h"
#include "pr_kafka.h"
#include "px_daemon.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_signal.h"
#include "px_time.h"

#define OPT(n, t, d, h, f, lo, hi) {n, t, d, h, offsetof(pr_config_t, f), lo, hi}
static const px_opt_t pr_opts[] = {
    OPT("redis.host", PX_OPT_STR, "127.0.0.1", "Redis host, or the path of its Unix socket (begins with /)",
        redis_host, 0, 0),
    OPT("redis.port", PX_OPT_INT, "6379", "Redis port", redis_port, 1, 65535),
    OPT("redis.timeout_ms", PX_OPT_INT, "5000", "Redis connect and command timeout", redis_timeout_ms, 100,
        600000),
    OPT("topic.prefix", PX_OPT_STR, "", "prefix of every topic name", topic_prefix, 0, 0),
    OPT("topic.heartbeats", PX_OPT_STR, "presence.heartbeats", "presence topic", topic_heartbeats, 0, 0),
    OPT("topic.locks", PX_OPT_STR, "presence.locks", "lock topic", topic_locks, 0, 0),
    OPT("topic.mutating", PX_OPT_STR, "core.entities.lifecycle.mutating", "lifecycle MUTATING topic",
        topic_mutating, 0, 0),
    OPT("topic.mutated", PX_OPT_STR, "core.entities.lifecycle.mutated", "lifecycle MUTATED topic",
        topic_mutated, 0, 0),
    OPT("topic.changes", PX_OPT_STR, "presence.changes", "change events topic", topic_changes, 0, 0),
    OPT("processor.instance", PX_OPT_STR, "", "stable name of this instance: its group.instance.id and part of "
        "its transactional.ids (default: host name-ops port); restart an instance with the same name", instance, 0, 0),
    OPT("processor.static_membership", PX_OPT_BOOL, "true", "the consumer is a static group member named "
        "processor.instance: a restart under the name resumes its partitions at once", static_membership, 0, 0),
    OPT("presence.ttl_ms", PX_OPT_INT, "60000", "a tab lives this long after its last heartbeat",
        presence_ttl_ms, 1000, 86400000),
    OPT("lock.ttl_ms", PX_OPT_INT, "120000", "a lock lives this long after its grant or holder heartbeat",
        lock_ttl_ms, 1000, 86400000),
    OPT("stale.ttl_ms", PX_OPT_INT, "300000", "a record is stale at most this long without MUTATED",
        stale_ttl_ms, 1000, 86400000),
    OPT("batch.max_records", PX_OPT_INT, "10000", "records per batch (one transaction)", batch_max, 1, 1000000),
    OPT("batch.flush_defer_ms", PX_OPT_INT, "10000", "while a backlog waits, Redis writes are deferred up to this "
        "long so repeated changes of an entity coalesce into one write (0: write after every batch)",
        flush_defer_ms, 0, 60000),
    OPT("batch.commit_interval_ms", PX_OPT_INT, "50", "a batch stays open (folding, publishing its lock decisions) "
        "until this long after the previous transaction was dispatched, so live traffic makes fewer, larger "
        "transactions",
        commit_interval_ms, 0, 10000),
    OPT("kafka.transaction_timeout_ms", PX_OPT_INT, "60000",
        "transaction.timeout.ms (and so message.timeout.ms) of the producers: long enough to ride through a "
        "partition leader's election; a departed instance's open transaction is aborted at once by the survivor "
        "that fences it, else it blocks readers this long", txn_timeout_ms, 1000, 900000),
    OPT("processor.stall_ms", PX_OPT_INT, "30000", "an owned partition with records waiting and no progress this "
        "long is stalled: /readyz says not-ready and names it, the stall is counted", stall_ms, 1000, 3600000),
    OPT("processor.stall_exit_ms", PX_OPT_INT, "180000", "a stall this long while Redis and the schema registry "
        "answer is one the processor cannot leave by itself: it exits 1 for its supervisor to restart it "
        "(0: never)", stall_exit_ms, 0, 86400000),
    OPT("processor.commit_wait_ms", PX_OPT_INT, "30000", "the loop waits for a transaction in flight (to seal the "
        "next batch, in a revoke, before a flush) until it has been in flight this long; then the brokers are out of "
        "reach and the processor exits 1 at once, its partitions going on elsewhere (0: wait as long as the "
        "transaction's own timeouts)", commit_wait_ms, 0, 3600000),
    OPT("retry.max_attempts", PX_OPT_INT, "3", "retries of a record whose failure may pass, then the DLQ",
        retry_max_attempts, 0, 20),
    OPT("retry.base_ms", PX_OPT_INT, "1000", "delay before retry k: base * 3^(k-1) (1 s, 3 s, 9 s)", retry_base_ms,
        1, 3600000),
    OPT("fault.abort_every", PX_OPT_INT, "0", "testing only: abort every Nth transaction instead of committing it "
        "(the batch and the one folded on top of it are rewound and folded again); 0: never", fault_abort_every, 0,
        1000000),
    OPT("fault.hang_loop_ms", PX_OPT_INT, "0", "testing only: this long after start the loop thread blocks for good, "
        "as in a call that never returns (processor.stall_exit_ms ends the process); 0: never", fault_hang_loop_ms, 0,
        86400000),
    OPT("fault.consumer_fenced_ms", PX_OPT_INT, "0", "testing only: this long after it is made, each consumer fails "
        "for good as fenced under its own instance name (rd_kafka_test_fatal_error); 0: never",
        fault_consumer_fenced_ms, 0, 86400000),
    OPT("log.level", PX_OPT_STR, "info", "debug | info | warn | error", log_level, 0, 0),
    OPT("ops.host", PX_OPT_STR, "127.0.0.1", "address of the operations endpoint (/metrics, /healthz, /readyz)",
        http_host, 0, 0),
    OPT("ops.port", PX_OPT_INT, "9102", "port of /metrics, /healthz, /readyz (0: none)", http_port, 0, 65535),
    /* the old names, before the gateway's http.* and these parted */
    {"http.host", PX_OPT_ALIAS, "ops.host", NULL, 0, 0, 0},
    {"http.port", PX_OPT_ALIAS, "ops.port", NULL, 0, 0, 0},
    PX_REGISTRY_OPTS(pr_config_t, schema),
    PX_REDIS_OPTS(pr_config_t, redis),
};

/* Ready: Redis and Kafka answer, nothing paused, and the partitions
 * owned (or none, the group said so), checked and moving (pr_watch.c);
 * why gets the partitions' part of the answer (NULL: not wanted). */
static bool is_ready(pr_ctx_t *pr, px_buf_t *why) {
    bool parts = pr_watch_ready(pr, why);
    return pr_redis_up(pr) && !pr->paused && pr->kc.kafka_ok && !pr->reg.down && parts;
}

/* The redis_presence_* gauges are kept up to date by the table
 * (pr_heap_update): setting them costs nothing per entity. */
static void update_gauges(pr_ctx_t *pr, bool ready) {
    px_gauge_set(pr->m_users, pr->tab.g_users);
    px_gauge_set(pr->m_tabs, pr->tab.g_tabs);
    px_gauge_set(pr->m_locks, pr->tab.g_locks);
    px_gauge_set(pr->m_stale, pr->tab.g_stale);
    px_gauge_set(pr->m_ready, ready);
}

/* Every 100 ms: the readiness and its /readyz line for the ops endpoint's
 * thread (pr_ops.c), and the gauges the loop computes. */
static void publish(pr_ctx_t *pr) {
    px_buf_t parts, line;
    px_buf_init(&parts, PR_OPS_TEXT_MAX / 2);
    px_buf_init(&line, PR_OPS_TEXT_MAX);
    bool ready = is_ready(pr, &parts);
    px_buf_printf(&line, "%s redis=%s kafka=%s consuming=%s%s%.*s\n", ready ? "ready" : "not-ready",
                  pr_redis_up(pr) ? "up" : "down", pr->kc.kafka_ok ? "up" : "down",
                  pr->paused || pr->reg.down ? "paused" : "yes", pr->reg.down ? " registry=down" : "",
                  (int)parts.len, parts.data ? parts.data : "");
    pr_ops_publish(pr, ready, line.data ? line.data : "", line.len);
    update_gauges(pr, ready);
    px_buf_term(&line);
    px_buf_term(&parts);
}

static void on_timer(uv_timer_t *t) {
    pr_guard_alive(t->data);
    pr_loop_turn(t->data);
    publish(t->data);
}

static void on_stop(void *arg) {
    pr_ctx_t *pr = arg;
    PX_INFO(PR_COMP, "stopping", NULL);
    pr->stopping = true;
    uv_stop(pr->loop);
}

static void register_metrics(pr_ctx_t *pr) {
    px_metrics_t *m = pr->metrics;
    static const char *const src_label[PX_SRC__COUNT] = {"topic=\"heartbeats\"", "topic=\"locks\"",
                                                         "topic=\"mutating\"", "topic=\"mutated\""};
    for (int s = 0; s < PX_SRC__COUNT; s++)
        pr->m_folded[s] = px_metrics_counter(m, "presence_processor_records_total", "input records folded",
                                             src_label[s]);
    pr->m_dlq = px_metrics_counter(m, "presence_processor_dlq_total", "records sent to a dead-letter topic", NULL);
    pr->m_retries = px_metrics_counter(m, "presence_processor_retries_total",
                                       "records sent to a retry topic after a failure that may pass", NULL);
    pr->m_retry_dlq = px_metrics_counter(m, "presence_processor_retries_exhausted_total",
                                         "records sent to the DLQ after their last retry", NULL);
    pr->m_registry_err = px_metrics_counter(m, "presence_processor_registry_errors_total",
                                            "batches rewound because the schema registry did not answer for a "
                                            "record's schema", NULL);
    pr->m_skipped = px_metrics_counter(m, "presence_processor_duplicates_total",
                                       "records skipped because their entity's watermark covered them", NULL);
    pr->m_wskipped = px_metrics_counter(m, "presence_processor_writes_skipped_total",
                                        "entity writes Redis refused because it held a newer state", NULL);
    pr->m_repaired = px_metrics_counter(m, "presence_processor_repaired_total",
                                        "records folded again after a partition moved (no events)", NULL);
    pr->m_changes = px_metrics_counter(m, "presence_processor_changes_total", "change events produced", NULL);
    pr->m_expires = px_metrics_counter(m, "presence_processor_expires_total", "EXPIRE records produced", NULL);
    pr->m_batches = px_metrics_counter(m, "presence_processor_batches_total", "transactions committed", NULL);
    pr->m_aborts = px_metrics_counter(m, "presence_processor_aborts_total", "transactions aborted", NULL);
    pr->m_redis_err = px_metrics_counter(m, "presence_processor_redis_errors_total", "Redis failures", NULL);
    pr->m_kafka_err = px_metrics_counter(m, "presence_processor_kafka_errors_total", "Kafka errors", NULL);
    pr->m_entities = px_metrics_gauge(m, "presence_processor_entities", "entities in memory", NULL);
    pr->m_ready = px_metrics_gauge(m, "presence_processor_ready",
                                   "1 when /readyz says ready: Redis and Kafka up, the partitions owned and moving", NULL);
    pr->m_users = px_metrics_gauge(m, "redis_presence_active_users", "users present, summed over entities", NULL);
    pr->m_tabs = px_metrics_gauge(m, "redis_presence_active_tabs", "live tabs", NULL);
    pr->m_locks = px_metrics_gauge(m, "redis_presence_active_locks", "held locks", NULL);
    pr->m_stale = px_metrics_gauge(m, "redis_presence_stale_entities", "entities being written now", NULL);
    pr->m_locks_acquired = px_metrics_counter(m, "redis_presence_locks_acquired_total", "lock grants", NULL);
    pr->m_deferred = px_metrics_counter(m, "presence_processor_writes_deferred_total",
                                        "batches whose Redis writes waited to coalesce (batch.flush_defer_ms)", NULL);
    pr->m_decided = px_metrics_counter(m, "presence_processor_lock_decisions_early_total",
                                       "entities whose lock decisions were published before the commit", NULL);
    static const double ms[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
    static const char *const phase[5] = {"phase=\"load\"", "phase=\"fold\"", "phase=\"commit\"",
                                         "phase=\"redis\"", "phase=\"poll\""};
    for (int i = 0; i < 5; i++)
        pr->m_phase_us[i] = px_metrics_counter(m, "presence_processor_batch_phase_us_total",
                                               "time spent per batch phase (microseconds)", phase[i]);
    pr->m_batch_ms = px_metrics_histogram(m, "presence_processor_batch_ms", "batch latency (ms)", NULL, ms,
                                          sizeof ms / sizeof ms[0]);
    /* Where a LOCK's time goes before the processor answers it: the age
     * of each input record when a batch takes it (its producer's
     * timestamp to now: the producer, the broker and the wait for the
     * previous batch), and from then to the batch's early decisions. */
    static const double age[] = {1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
                                 1000, 2000, 5000, 10000, 30000, 60000};
    static const char *const topic[PX_SRC__COUNT] = {"topic=\"heartbeats\"", "topic=\"locks\"",
                                                     "topic=\"mutating\"", "topic=\"mutated\""};
    for (int i = 0; i < PX_SRC__COUNT; i++)
        pr->m_age_ms[i] = px_metrics_histogram(m, "presence_processor_record_age_ms",
                                               "input record age when a batch takes it: now - its Kafka timestamp (ms)",
                                               topic[i], age, sizeof age / sizeof age[0]);
    pr->m_decide_ms = px_metrics_histogram(m, "presence_processor_decision_ms",
                                           "batch taken -> its early lock decisions published (ms)", NULL, age,
                                           sizeof age / sizeof age[0]);
}

/* What the settings imply: the instance name (default: the host name)
 * and the fold's deadlines. */
/* The registry, when one is set: the four kinds the processor writes
 * (changes, and EXPIRE records into three input topics) registered under
 * their topics' subjects when it writes the Confluent framing. */
static int setup_schemas(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    static const px_kind_t kinds[4] = {PX_KIND_CHANGE, PX_KIND_PRESENCE, PX_KIND_LOCK, PX_KIND_LIFECYCLE};
    const char *topics[4] = {pr->cfg.topic_changes, pr->cfg.topic_heartbeats, pr->cfg.topic_locks,
                             pr->cfg.topic_mutating};
    int rc = px_schema_setup(&pr->cfg.schema, pr->avro, kinds, pr->cfg.topic_prefix, topics, 4, &pr->registry,
                             errstr, errstr_size);
    if (!rc && pr->registry)
        PX_INFO(PR_COMP, "schema registry", "url=\"%s\" wire_format=%s", px_registry_url(pr->registry),
                pr->cfg.schema.wire_format);
    return rc;
}

/* The instance's default name: the host name and the ops port, stable
 * across restarts and distinct for instances side by side on one host. */
static void derive_settings(pr_ctx_t *pr) {
    if (!pr->cfg.instance[0]) {
        char host[256] = "default";
        if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "default");
        host[sizeof host - 1] = 0;
        if (pr->cfg.http_port) snprintf(pr->cfg.instance, sizeof pr->cfg.instance, "%s-%lld", host,
                                        (long long)pr->cfg.http_port);
        else snprintf(pr->cfg.instance, sizeof pr->cfg.instance, "%s", host);
    }
    pr->fold = px_fold_conf_default();
    pr->fold.presence_ttl_ms = pr->cfg.presence_ttl_ms;
    pr->fold.lock_ttl_ms = pr->cfg.lock_ttl_ms;
    pr->fold.stale_ttl_ms = pr->cfg.stale_ttl_ms;
}

/* The loop and the handles the turn runs on. */
static void init_loop(pr_ctx_t *pr, uv_loop_t *loop) {
    uv_loop_init(loop);
    pr->loop = loop;
    uv_timer_init(loop, &pr->timer);
    pr->timer.data = pr;
    uv_idle_init(loop, &pr->idle);
    pr->idle.data = pr;
}

/* The loop stopped (or never ran): close its handles, then leave the
 * group (the revoke writes what is committed) and stop the threads. */
static void close_loop(pr_ctx_t *pr, px_signal_uv_t *sig) {
    pr_guard_shutdown(pr); /* the shutdown gets the guard's time too */
    pr->stopping = true;
    const char *stopping = "not-ready stopping\n";
    pr_ops_publish(pr, false, stopping, strlen(stopping));
    px_gauge_set(pr->m_ready, 0);
    pr_loop_unwatch(pr);
    uv_timer_stop(&pr->timer);
    uv_close((uv_handle_t *)&pr->timer, NULL);
    uv_idle_stop(&pr->idle);
    uv_close((uv_handle_t *)&pr->idle, NULL);
    px_signal_uv_stop(sig);
    uv_run(pr->loop, UV_RUN_DEFAULT);
    pr->stopping = false; /* let the revoke on close flush */
    pr_loop_stop(pr);
    uv_loop_close(pr->loop);
}

static void free_ctx(pr_ctx_t *pr) {
    pr_redis_close(pr);
    pr_batch_free(pr);
    pr_table_term(pr);
    px_buf_term(&pr->scratch);
    px_buf_term(&pr->val);
    px_avro_free(pr->avro);
    px_registry_free(pr->registry); /* after the codec that fetched through it */
    px_metrics_free(pr->metrics);
}

int main(int argc, char **argv) {
    static pr_ctx_t pr_storage;
    pr_ctx_t *pr = &pr_storage;
    char errstr[512];
    uv_loop_t loop;
    px_signal_uv_t *sig = NULL;
    int rc = px_config_load(pr_opts, sizeof pr_opts / sizeof pr_opts[0], &pr->cfg, &pr->kafka_kv, argc, argv,
                            "presence-processor", stdout, errstr, sizeof errstr);
    if (rc == PX_CONFIG_EXIT) return 0;
    if (rc) {
        fprintf(stderr, "presence-processor: %s\n", errstr);
        return 2;
    }
    rc = px_daemon_settings(pr_opts, sizeof pr_opts / sizeof pr_opts[0], "presence-processor", PR_COMP, pr->cfg.log_level,
                            pr->cfg.redis_host, &pr->cfg.redis);
    if (rc) return rc;
    derive_settings(pr);
    init_loop(pr, &loop);
    pr->metrics = px_metrics_new();
    pr->avro = px_avro_new(errstr, sizeof errstr);
    px_buf_init(&pr->scratch, 1u << 20);
    px_buf_init(&pr->val, 1u << 20);
    if (!pr->metrics || !pr->avro || pr_table_init(pr, 1u << 16)) {
        PX_ERROR(PR_COMP, "start-up failed", "err=\"%s\"", pr->avro ? "out of memory" : errstr);
        rc = 1;
        goto out;
    }
    register_metrics(pr);
    pr_guard_init(pr);
    if (setup_schemas(pr, errstr, sizeof errstr)) {
        PX_ERROR(PR_COMP, "start-up failed", "err=\"%s\" setting=schema.registry.url url=\"%s\"", errstr,
                 pr->cfg.schema.url);
        rc = 1;
        goto out_loop;
    }
    if (pr_ops_start(pr, errstr, sizeof errstr)) { /* ops.port 0: none */
        char q[600];
        PX_ERROR(PR_COMP, "start-up failed", "err=%s setting=ops.port", px_log_q(q, sizeof q, errstr));
        rc = 1;
        goto out_loop;
    }
    pr_redis_ensure(pr); /* failures are retried with backoff by the turns */
    if (pr_loop_start(pr, errstr, sizeof errstr) || pr_kafka_start(pr, errstr, sizeof errstr) ||
        px_signal_uv_start(&loop, on_stop, pr, &sig) || pr_guard_start(pr, errstr, sizeof errstr)) {
        PX_ERROR(PR_COMP, "start-up failed", "err=\"%s\"", errstr);
        rc = 1;
        goto out_loop;
    }
    publish(pr); /* not ready yet: /readyz says why, and that the loop is blocked if its first turn is */
    uv_timer_start(&pr->timer, on_timer, 100, 100);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = pr->exit_code;
out_loop:
    close_loop(pr, sig);
out:
    pr_ops_stop(pr);
    pr_guard_stop(pr);
    free_ctx(pr);
    PX_INFO(PR_COMP, "stopped", "rc=%d", rc);
    return rc;
}
