/*
 * main.c - presence-gateway: configuration, start-up and clean shutdown.
 *
 * Start: config (defaults < file < env < flags), metrics, Avro codec, the
 * listener (a port that cannot be had stops start-up with exit 1), the two
 * Redis connections, then the Kafka producer. SIGTERM or
 * SIGINT stops the loop; shutdown then closes every WebSocket (publishing
 * UNSUB for its tabs), flushes the producer, disconnects Redis and runs the
 * loop until every handle is closed. Options: docs/configuration.md.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw.h"
#include "px_daemon.h"
#include "px_log.h"
#include "px_redis_addr.h"
#include "px_signal.h"

#define OPT(n, t, d, h, f, lo, hi) {n, t, d, h, offsetof(gw_config_t, f), lo, hi}
static const px_opt_t gw_opts[] = {
    OPT("http.host", PX_OPT_STR, "127.0.0.1", "address to listen on (0.0.0.0 for all)", http_host, 0, 0),
    OPT("http.port", PX_OPT_INT, "8080", "HTTP and WebSocket port", http_port, 1, 65535),
    OPT("http.reuse_port", PX_OPT_BOOL, "false",
        "share the port with other processes that set it too (SO_REUSEPORT: the kernel spreads connections)",
        reuse_port, 0, 0),
    OPT("redis.host", PX_OPT_STR, "127.0.0.1", "Redis host, or the path of its Unix socket (begins with /)",
        redis_host, 0, 0),
    OPT("redis.port", PX_OPT_INT, "6379", "Redis port", redis_port, 1, 65535),
    OPT("topic.prefix", PX_OPT_STR, "", "prefix of every topic name", topic_prefix, 0, 0),
    OPT("topic.heartbeats", PX_OPT_STR, "presence.heartbeats", "presence topic", topic_heartbeats, 0, 0),
    OPT("topic.locks", PX_OPT_STR, "presence.locks", "lock topic", topic_locks, 0, 0),
    OPT("auth.jwt_secret", PX_OPT_STR, "", "HS256 shared secret for access tokens", jwt_secret, 0, 0),
    OPT("auth.dev_mode", PX_OPT_BOOL, "false",
        "DEVELOPMENT ONLY: accept ?user=&name=&tenant= instead of a token", dev_mode, 0, 0),
    OPT("web.dir", PX_OPT_STR, PX_WEB_DIR, "directory of the demo page and client", web_dir, 0, 0),
    OPT("gateway.id", PX_OPT_STR, "", "name of this instance (default gw-<pid>)", gateway_id, 0, 0),
    OPT("log.level", PX_OPT_STR, "info", "debug | info | warn | error", log_level, 0, 0),
    OPT("limits.subscriptions_per_connection", PX_OPT_INT, "64", "entities one connection may watch",
        max_subs_per_conn, 1, 100000),
    OPT("limits.out_bytes_per_connection", PX_OPT_INT, "262144",
        "bytes queued to one client before it is closed as too slow", max_out_bytes, 4096, 1 << 30),
    OPT("limits.connections", PX_OPT_INT, "100000", "WebSocket connections per process",
        max_connections, 1, 10000000),
    OPT("limits.message_bytes", PX_OPT_INT, "4096", "largest client message (TOO_LARGE beyond)",
        max_msg_bytes, 64, PX_PROTO_MAX_MSG),
    OPT("limits.messages_per_second", PX_OPT_INT, "20", "messages one connection may send per second",
        msgs_per_sec, 1, 1000000),
    OPT("limits.messages_burst", PX_OPT_INT, "40", "messages one connection may send at once",
        msgs_burst, 1, 1000000),
    OPT("limits.rest_requests_per_minute", PX_OPT_INT, "600", "REST requests per minute per user",
        rest_per_min, 1, 100000000),
    OPT("fault.kafka_fatal_ms", PX_OPT_INT, "0", "testing only: this long after start the producer fails for good "
        "(a fatal error, as librdkafka raises on a desynchronised idempotent producer); 0: never",
        fault_kafka_fatal_ms, 0, 86400000),
    OPT("limits.lock_timeout_ms", PX_OPT_INT, "5000", "a LOCK without outcome this long gets ERROR TIMEOUT",
        lock_timeout_ms, 100, 600000),
    OPT("limits.pending_locks_per_connection", PX_OPT_INT, "16", "LOCKs awaiting their outcome per connection",
        max_pending_locks, 1, 10000),
    OPT("http.allowed_origins", PX_OPT_STR, "",
        "comma-separated Origins allowed to open a WebSocket (empty: any)", allowed_origins, 0, 0),
    OPT("http.deflate", PX_OPT_BOOL, "true", "offer permessage-deflate", deflate, 0, 0),
    OPT("limits.idle_ping_s", PX_OPT_INT, "30",
        "PING a connection silent this long; close it if still silent as long again (0: never)", idle_ping_s, 0,
        30000),
    PX_REGISTRY_OPTS(gw_config_t, schema),
    PX_REDIS_OPTS(gw_config_t, redis),
};

/* Shutdown starts inside the loop, as lws wants with a foreign loop: the
 * context is destroyed while the loop runs (every connection closes and
 * publishes its UNSUBs), Redis and the Kafka queue watcher let go of their
 * handles, and uv_run returns once nothing is left. */
static void on_stop(void *arg) {
    gw_ctx_t *gw = arg;
    PX_INFO(GW_COMP, "stopping", NULL);
    gw->stopping = true;
    gw_ws_stop(gw);
    gw_redis_stop(gw->redis);
    gw_locks_stop(gw);
    gw_kafka_unwatch(gw);
    px_signal_uv_stop(gw->sig);
    gw->sig = NULL;
}

static void register_metrics(gw_ctx_t *gw) {
    px_metrics_t *m = gw->metrics;
    gw->m_conns = px_metrics_gauge(m, "presence_gateway_connections", "open WebSocket connections", NULL);
    gw->m_entities = px_metrics_gauge(m, "presence_gateway_entities_watched",
                                      "entities watched by local connections", NULL);
    gw->m_msgs_in = px_metrics_counter(m, "presence_gateway_messages_in_total", "client messages received", NULL);
    gw->m_msgs_out = px_metrics_counter(m, "presence_gateway_messages_out_total", "messages sent to clients", NULL);
    gw->m_out_direct = px_metrics_counter(m, "presence_gateway_ws_writes_total",
                                          "WebSocket messages written: at once, or from the connection's queue",
                                          "path=\"direct\"");
    gw->m_out_queued = px_metrics_counter(m, "presence_gateway_ws_writes_total",
                                          "WebSocket messages written: at once, or from the connection's queue",
                                          "path=\"queued\"");
    gw->m_errors = px_metrics_counter(m, "presence_gateway_errors_total", "ERROR messages and refused requests", NULL);
    gw->m_kafka_err = px_metrics_counter(m, "presence_gateway_kafka_errors_total", "Kafka produce and client errors", NULL);
    gw->m_redis_err = px_metrics_counter(m, "presence_gateway_redis_errors_total", "Redis errors and reconnects", NULL);
    gw->m_pushes = px_metrics_counter(m, "presence_gateway_pushes_total", "PRESENCE fan-outs", NULL);
    for (int t = 0; t < PX_MSG__COUNT; t++) {
        char label[32];
        snprintf(label, sizeof label, "type=\"%s\"", px_msg_type_name((px_msg_type_t)t));
        gw->m_in_type[t] = px_metrics_counter(m, "presence_gateway_messages_in_by_type_total",
                                              "valid client messages by type", label);
    }
    gw->m_out_presence = px_metrics_counter(m, "presence_gateway_messages_out_by_type_total",
                                            "server messages queued by type", "type=\"PRESENCE\"");
    gw->m_out_lock_ack = px_metrics_counter(m, "presence_gateway_messages_out_by_type_total",
                                            "server messages queued by type", "type=\"LOCK_ACK\"");
    gw->m_out_error = px_metrics_counter(m, "presence_gateway_messages_out_by_type_total",
                                         "server messages queued by type", "type=\"ERROR\"");
    gw->m_coalesced = px_metrics_counter(m, "presence_gateway_presence_coalesced_total",
                                         "queued PRESENCE replaced by a newer one (slow readers)", NULL);
    gw->m_rest = px_metrics_counter(m, "presence_gateway_rest_requests_total", "REST requests", NULL);
    static const double lat[] = {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
    gw->m_push_latency = px_metrics_histogram(m, "presence_gateway_push_latency_seconds",
                                              "change notification to PRESENCE queued", NULL, lat,
                                              sizeof lat / sizeof lat[0]);
    gw->m_lock_latency = px_metrics_histogram(m, "presence_gateway_lock_ack_latency_seconds",
                                              "LOCK received to LOCK_ACK queued", NULL, lat, sizeof lat / sizeof lat[0]);
    /* the Kafka leg of a LOCK (and of a heartbeat): linger, the producer's
     * queue, the broker's append and the serving of the delivery report */
    static const char *const topic[2] = {"topic=\"heartbeats\"", "topic=\"locks\""};
    for (int i = 0; i < 2; i++)
        gw->m_delivery[i] = px_metrics_histogram(m, "presence_gateway_kafka_delivery_seconds",
                                                 "record handed to the producer -> acknowledged by the broker",
                                                 topic[i], lat, sizeof lat / sizeof lat[0]);
}

/* The registry, when one is set: with avro.wire_format=confluent the
 * gateway's two kinds are registered under their topics' subjects and its
 * records framed with the ids the registry gave. */
static int setup_schemas(gw_ctx_t *gw, char *errstr, size_t errstr_size) {
    static const px_kind_t kinds[2] = {PX_KIND_PRESENCE, PX_KIND_LOCK};
    const char *topics[2] = {gw->cfg.topic_heartbeats, gw->cfg.topic_locks};
    char why[400];
    if (px_schema_setup(&gw->cfg.schema, gw->avro, kinds, gw->cfg.topic_prefix, topics, 2, &gw->registry, why,
                        sizeof why)) {
        snprintf(errstr, errstr_size, "schema registry '%.120s': %.300s", gw->cfg.schema.url, why);
        return -1;
    }
    if (gw->registry)
        PX_INFO(GW_COMP, "schema registry", "url=\"%s\" wire_format=%s", px_registry_url(gw->registry),
                gw->cfg.schema.wire_format);
    return 0;
}

/* The Redis transport, its replies handed to gw_push.c. */
static int redis_start(gw_ctx_t *gw, char *errstr, size_t errstr_size) {
    gw_redis_handlers_t h = gw_push_handlers(gw);
    if (gw_view_init(gw)) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory");
    gw->redis = gw_redis_new(gw->loop, &gw->cfg.redis, gw->cfg.redis_host, (int)gw->cfg.redis_port, gw->m_redis_err,
                             &h, errstr, errstr_size);
    return gw->redis ? 0 : -1;
}

/* Configuration into gw->cfg, validated, the logger set. -1 to go on, or
 * the exit code (0 after --help, 2 for a bad setting, 1 when dev mode
 * cannot make its secret). */
static int configure(gw_ctx_t *gw, int argc, char **argv) {
    char errstr[512];
    int rc = px_config_load(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &gw->cfg, &gw->kafka_kv, argc,
                            argv, "presence-gateway", stdout, errstr, sizeof errstr);
    if (rc == PX_CONFIG_EXIT) return 0;
    if (rc) {
        fprintf(stderr, "presence-gateway: %s\n", errstr);
        return 2;
    }
    rc = px_daemon_settings(gw_opts, sizeof gw_opts / sizeof gw_opts[0], "presence-gateway", GW_COMP, gw->cfg.log_level,
                            gw->cfg.redis_host, &gw->cfg.redis);
    if (rc) return rc;
    if (!gw->cfg.gateway_id[0]) snprintf(gw->cfg.gateway_id, sizeof gw->cfg.gateway_id, "gw-%d", (int)getpid());
    if (strlen(gw->cfg.gateway_id) > 100 || !px_key_part_valid(gw->cfg.gateway_id, strlen(gw->cfg.gateway_id))) {
        fprintf(stderr, "presence-gateway: gateway.id must be 1-100 characters of [A-Za-z0-9._-]\n");
        return 2;
    }
    if (gw->cfg.dev_mode)
        PX_WARN(GW_COMP, "DEVELOPMENT MODE: identities come from the URL, no token is checked; never expose this",
                "auth.dev_mode=true");
    else if (!gw->cfg.jwt_secret[0])
        PX_WARN(GW_COMP, "no auth.jwt_secret: every WebSocket will be refused", NULL);
    return gw_dev_init(gw) ? 1 : -1;
}

int main(int argc, char **argv) {
    static gw_ctx_t gw_storage; /* large; zeroed; lives for the process */
    gw_ctx_t *gw = &gw_storage;
    char errstr[512];
    uv_loop_t loop;
    int rc = configure(gw, argc, argv);
    if (rc >= 0) return rc;

    uv_loop_init(&loop);
    gw->loop = &loop;
    gw->metrics = px_metrics_new();
    gw->avro = px_avro_new(errstr, sizeof errstr);
    px_buf_init(&gw->scratch, 1u << 20);
    px_buf_init(&gw->wbuf, LWS_PRE + (1u << 20));
    if (!gw->metrics || !gw->avro) {
        PX_ERROR(GW_COMP, "start-up failed", "err=\"%s\"", gw->avro ? "out of memory" : errstr);
        rc = 1;
        goto out;
    }
    register_metrics(gw);
    snprintf(errstr, sizeof errstr, "out of memory"); /* what the functions that name nothing else mean */
    /* The listener first: a port that cannot be had stops start-up before
     * anything connects to Kafka or Redis (exit 1, well within a second). */
    if (gw_subs_init(gw, 4096) || gw_locks_init(gw, 4096) || gw_rest_init(gw) ||
        gw_ws_start(gw, errstr, sizeof errstr) || setup_schemas(gw, errstr, sizeof errstr) ||
        redis_start(gw, errstr, sizeof errstr) || gw_kafka_start(gw, errstr, sizeof errstr) ||
        px_signal_uv_start(&loop, on_stop, gw, &gw->sig)) {
        PX_ERROR(GW_COMP, "start-up failed", "err=\"%s\"", errstr);
        on_stop(gw);
        rc = 1;
    } else {
        PX_INFO(GW_COMP, "started", "id=%s url=http://%s:%lld/", gw->cfg.gateway_id, gw->cfg.http_host,
                (long long)gw->cfg.http_port);
        rc = 0;
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* until on_stop let go of every handle */
    gw_ws_stop(gw);                /* lws finishes a destroy begun in the loop */
    gw_kafka_stop(gw);             /* flush what the closing connections produced */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop)) PX_WARN(GW_COMP, "loop closed with handles open", NULL);
out:
    gw_redis_free(gw->redis);
    gw_view_term(gw);
    gw_locks_term(gw);
    gw_rest_term(gw);
    gw_subs_term(gw);
    px_buf_term(&gw->scratch);
    px_buf_term(&gw->wbuf);
    px_avro_free(gw->avro);
    px_registry_free(gw->registry); /* after the codec that fetched through it */
    px_metrics_free(gw->metrics);
    PX_INFO(GW_COMP, "stopped", "rc=%d", rc);
    return rc;
}
