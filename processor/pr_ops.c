/*
 * pr_ops.c - the operations endpoint (/healthz, /readyz, /metrics) on a
 * thread of its own.
 *
 * The loop thread may be held for a long time by a call it is waiting in:
 * a rebalance's revoke or a seal waits for the transaction in flight,
 * which cut off from the brokers runs into its timeouts (pr_commit_wait
 * bounds that wait with processor.commit_wait_ms), a repair check or a
 * fence waits for brokers. An endpoint served by the loop would not
 * answer meanwhile, and an orchestrator probing /readyz would see a hang
 * rather than "not ready". So this thread runs a libuv loop of its own
 * with the HTTP listener and answers from what the loop thread published:
 *
 * - the loop's readiness line, published by its 100 ms timer
 *   (pr_ops_publish, under the lock);
 * - the guard's stamp of the loop's last turn (pr_guard_away_ms) and the
 *   step it began (pr_guard_doing), the age of the transaction in flight
 *   (pr_commit_inflight_ms) and whether a broker is up (kafka_ok): all
 *   atomics. A loop that has not come back for PR_BLOCKED_MS is blocked:
 *   /readyz says not-ready and why, whatever it published before.
 *
 * /metrics renders the registry (its updates are atomics, its render takes
 * its own lock); the gauges the loop computes are set by its timer.
 */
#include <stdio.h>
#include <string.h>

#include "pr.h"
#include "px_log.h"

/* /readyz while the loop is blocked: why, from the atomics alone. */
static void answer_blocked(pr_ctx_t *pr, int64_t away, px_buf_t *body) {
    const char *doing = pr_guard_doing(pr);
    int64_t txn = pr_commit_inflight_ms(pr);
    px_buf_printf(body, "not-ready blocked=%.1fs step=\"%s\" kafka=%s", (double)away / 1000.0,
                  doing ? doing : "none", atomic_load(&pr->kc.kafka_ok) ? "up" : "down");
    if (txn >= 0) px_buf_printf(body, " commit_in_flight=%.1fs", (double)txn / 1000.0);
    px_buf_puts(body, "\n");
}

static void answer_ready(pr_ctx_t *pr, int *status, px_buf_t *body) {
    pr_ops_t *o = &pr->ops;
    int64_t away = pr_guard_away_ms(pr);
    pthread_mutex_lock(&o->mu);
    bool published = o->published, blocked = published && away >= PR_BLOCKED_MS;
    bool ready = published && !blocked && o->ready;
    if (published && !blocked) px_buf_append(body, o->text, o->len);
    pthread_mutex_unlock(&o->mu);
    if (blocked) answer_blocked(pr, away, body);
    else if (!published) px_buf_puts(body, "not-ready starting\n");
    *status = ready ? 200 : 503;
}

static void on_http(void *arg, const char *path, int *status, const char **ctype, px_buf_t *body) {
    pr_ctx_t *pr = arg;
    if (strcmp(path, "/healthz") == 0) {
        *status = 200;
        px_buf_puts(body, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        answer_ready(pr, status, body);
    } else if (strcmp(path, "/metrics") == 0) {
        if (pr_guard_away_ms(pr) >= PR_BLOCKED_MS) px_gauge_set(pr->m_ready, 0); /* the loop sets it no more */
        *status = px_metrics_render(pr->metrics, body) == 0 ? 200 : 500;
        *ctype = "text/plain; version=0.0.4";
    }
}

static void on_quit(uv_async_t *h) {
    pr_ops_t *o = h->data;
    px_httpd_stop(o->httpd);
    o->httpd = NULL;
    uv_close((uv_handle_t *)&o->quit, NULL);
}

static void *ops_main(void *arg) {
    pr_ops_t *o = arg;
    uv_run(&o->loop, UV_RUN_DEFAULT); /* until on_quit closed every handle */
    return NULL;
}

int pr_ops_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_ops_t *o = &pr->ops;
    if (!pr->cfg.http_port) return 0;
    if (pthread_mutex_init(&o->mu, NULL) || uv_loop_init(&o->loop))
        return px_errf(PX_EIO, errstr, errstr_size, "the ops endpoint's lock or loop not created");
    o->inited = true;
    o->httpd = px_httpd_start(&o->loop, pr->cfg.http_host, (int)pr->cfg.http_port, on_http, pr, errstr,
                              errstr_size);
    if (!o->httpd) return PX_EIO;
    uv_async_init(&o->loop, &o->quit, on_quit);
    o->quit.data = o;
    if (pthread_create(&o->th, NULL, ops_main, o)) {
        on_quit(&o->quit);
        uv_run(&o->loop, UV_RUN_DEFAULT);
        return px_errf(PX_EIO, errstr, errstr_size, "the ops endpoint's thread not started");
    }
    o->started = true;
    PX_INFO(PR_COMP, "ops endpoint", "url=http://%s:%lld/metrics", pr->cfg.http_host, (long long)pr->cfg.http_port);
    return 0;
}

void pr_ops_publish(pr_ctx_t *pr, bool ready, const char *text, size_t len) {
    pr_ops_t *o = &pr->ops;
    if (!o->inited) return;
    if (len > sizeof o->text) len = sizeof o->text;
    pthread_mutex_lock(&o->mu);
    memcpy(o->text, text, len);
    o->len = len;
    o->ready = ready;
    o->published = true;
    pthread_mutex_unlock(&o->mu);
}

void pr_ops_stop(pr_ctx_t *pr) {
    pr_ops_t *o = &pr->ops;
    if (o->started) {
        uv_async_send(&o->quit);
        pthread_join(o->th, NULL);
        o->started = false;
    } else if (o->httpd) {
        px_httpd_stop(o->httpd); /* the thread never ran */
        o->httpd = NULL;
        uv_run(&o->loop, UV_RUN_DEFAULT);
    }
    if (!o->inited) return;
    uv_loop_close(&o->loop);
    pthread_mutex_destroy(&o->mu);
    o->inited = false;
}
