/*
 * px_kafka.c - librdkafka conf building, log routing and the libuv bridge.
 * See px_kafka.h for the librdkafka notes.
 *
 * The bridge follows librdkafka's own recipe for event loops: a queue's IO
 * event writes one byte to a pipe when the queue goes from empty to
 * non-empty; the loop watches the read end, empties the pipe and lets the
 * owner drain the queue. Because the wake-up is edge-triggered, the owner
 * must drain until empty, and a repeating timer covers what an edge can
 * miss (events queued before the bridge started, a consumer that must keep
 * polling to stay in its group).
 *
 * Limits: one bridge per queue; start/stop on the loop thread only.
 */
#include "px_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "px_err.h"
#include "px_log.h"

struct px_kafka_uv {
    uv_poll_t poll;
    uv_timer_t timer;
    rd_kafka_queue_t *rkqu; /* borrowed */
    px_kafka_uv_cb cb;
    void *arg;
    int rfd, wfd;
    int nopen;    /* handles still open; the last close frees */
};

/* librdkafka logs with syslog levels from its own threads; px_log is
 * thread-safe, so the line is written right there. */
static void px_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    px_log_level_t l;
    if (level <= 3) l = PX_LOG_ERROR;
    else if (level == 4) l = PX_LOG_WARN;
    else if (level <= 6) l = PX_LOG_INFO;
    else l = PX_LOG_DEBUG;
    char qfac[64];
    px_log(l, "rdkafka", buf, "facility=%s client=%s", px_log_q(qfac, sizeof qfac, fac),
           rk ? rd_kafka_name(rk) : "-");
}

int px_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *errstr,
                      size_t errstr_size) {
    char rkerr[512];
    rkerr[0] = '\0';
    if (rd_kafka_conf_set(conf, key, val, rkerr, sizeof rkerr) != RD_KAFKA_CONF_OK)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "%s: %s", key, rkerr);
    return 0;
}

rd_kafka_conf_t *px_kafka_conf_new(const px_kvlist_t *kafka, const char *client_id,
                                   char *errstr, size_t errstr_size) {
    return px_kafka_conf_new_with(NULL, 0, kafka, client_id, errstr, errstr_size);
}

rd_kafka_conf_t *px_kafka_conf_new_with(const char *const (*defaults)[2], size_t ndefaults,
                                        const px_kvlist_t *kafka, const char *client_id,
                                        char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        px_errf(PX_ENOMEM, errstr, errstr_size, "rd_kafka_conf_new failed");
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, px_kafka_log_cb);
    if (client_id && px_kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) != 0)
        goto err;
    for (size_t i = 0; i < ndefaults; i++)
        if (px_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size) != 0)
            goto err;
    for (size_t i = 0; kafka && i < kafka->n; i++) {
        char rkerr[512];
        if (px_kafka_conf_set(conf, kafka->kv[i].key, kafka->kv[i].val, rkerr, sizeof rkerr)) {
            /* Name the key the way the user wrote it. */
            px_errf(PX_ECONFIG, errstr, errstr_size, "kafka.%s", rkerr);
            goto err;
        }
    }
    return conf;
err:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void px_kafka_uv_on_close(uv_handle_t *h) {
    px_kafka_uv_t *k = h->data;
    if (--k->nopen > 0) return;
    close(k->rfd);
    close(k->wfd);
    free(k);
}

bool px_kafka_stats_broker_up(const json_t *stats) {
    const char *name;
    json_t *b;
    json_object_foreach(json_object_get(stats, "brokers"), name, b) {
        const char *state = json_string_value(json_object_get(b, "state"));
        if (state && strcmp(state, "UP") == 0) return true;
    }
    return false;
}

int px_kafka_header_int(const rd_kafka_headers_t *h, const char *name, int64_t *out) {
    const void *v = NULL;
    size_t n = 0;
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) || !v) return PX_EINVAL;
    const char *s = v;
    size_t i = n && s[0] == '-' ? 1 : 0;
    if (n == i || n - i > 19) return PX_EINVAL;
    int64_t x = 0;
    for (size_t k = i; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return PX_EINVAL;
        int d = s[k] - '0';
        if (x > (INT64_MAX - d) / 10) return PX_EINVAL; /* overflow */
        x = x * 10 + d;
    }
    *out = i ? -x : x;
    return 0;
}

/* Empty the pipe first: a byte written after this read wakes the loop
 * again, so no event is lost between the read and the drain in cb. */
static void px_kafka_uv_on_readable(uv_poll_t *h, int status, int events) {
    px_kafka_uv_t *k = h->data;
    if (status < 0)
        PX_WARN("kafka", "queue wake-up poll failed", "error=\"%s\"", uv_strerror(status));
    char buf[256];
    for (;;) {
        ssize_t n = read(k->rfd, buf, sizeof buf);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        break; /* EAGAIN: empty; 0 cannot happen while wfd is open */
    }
    k->cb(k->arg);
}

static void px_kafka_uv_on_timer(uv_timer_t *h) {
    px_kafka_uv_t *k = h->data;
    k->cb(k->arg);
}

/* The timer fires once right away (timeout 0) to serve whatever was
 * queued before the IO event was enabled, then every period_ms (never
 * again if period_ms is 0). */
px_kafka_uv_t *px_kafka_uv_start(uv_loop_t *loop, rd_kafka_queue_t *rkqu, uint64_t period_ms,
                                 px_kafka_uv_cb cb, void *arg) {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        PX_ERROR("kafka", "pipe2 failed", "error=\"%s\"", strerror(errno));
        return NULL;
    }
    px_kafka_uv_t *k = calloc(1, sizeof *k);
    if (!k) {
        PX_ERROR("kafka", "out of memory", NULL);
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    k->rkqu = rkqu;
    k->cb = cb;
    k->arg = arg;
    k->rfd = fds[0];
    k->wfd = fds[1];

    int rc = uv_timer_init(loop, &k->timer);
    if (rc != 0) {
        PX_ERROR("kafka", "uv_timer_init failed", "error=\"%s\"", uv_strerror(rc));
        close(k->rfd);
        close(k->wfd);
        free(k);
        return NULL;
    }
    k->timer.data = k;
    k->nopen = 1;
    rc = uv_poll_init(loop, &k->poll, k->rfd);
    if (rc != 0) {
        PX_ERROR("kafka", "uv_poll_init failed", "error=\"%s\"", uv_strerror(rc));
        uv_close((uv_handle_t *)&k->timer, px_kafka_uv_on_close); /* frees k */
        return NULL;
    }
    k->poll.data = k;
    k->nopen = 2;
    rc = uv_poll_start(&k->poll, UV_READABLE, px_kafka_uv_on_readable);
    if (rc == 0) rc = uv_timer_start(&k->timer, px_kafka_uv_on_timer, 0, period_ms);
    if (rc != 0) {
        PX_ERROR("kafka", "uv start failed", "error=\"%s\"", uv_strerror(rc));
        uv_close((uv_handle_t *)&k->poll, px_kafka_uv_on_close);
        uv_close((uv_handle_t *)&k->timer, px_kafka_uv_on_close);
        return NULL;
    }
    rd_kafka_queue_io_event_enable(rkqu, k->wfd, "1", 1);
    return k;
}

/* Disable the IO event before anything else, so librdkafka never writes
 * to a pipe that is about to close; the fds and k go in the last close
 * callback, after libuv has stopped watching rfd. */
void px_kafka_uv_stop(px_kafka_uv_t *k) {
    if (!k) return;
    rd_kafka_queue_io_event_enable(k->rkqu, -1, NULL, 0);
    k->rkqu = NULL;
    uv_poll_stop(&k->poll);
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->poll, px_kafka_uv_on_close);
    uv_close((uv_handle_t *)&k->timer, px_kafka_uv_on_close);
}
