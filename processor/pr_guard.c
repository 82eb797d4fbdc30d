/*
 * pr_guard.c - the loop thread's guard: says when the loop thread is
 * blocked, and ends the process when it stops coming back.
 *
 * Every call the loop thread makes into librdkafka, Redis or a helper
 * thread is meant to be bounded; the longest (a transaction's commit and
 * abort on the committer, the transactions' initialisation) take about a
 * minute at worst. While one holds the loop thread no turn runs and no
 * signal is served, and the partitions' watchdog (pr_watch.c), which runs
 * on the loop, never sees it. So a thread of its own watches the stamp
 * the loop's 100 ms timer leaves (pr_guard_alive):
 *
 * - a stamp older than PR_BLOCKED_MS (5 s) means the loop is blocked: the
 *   guard logs it once with the step the loop last began (pr_doing) and
 *   counts it, and the ops endpoint (pr_ops.c, a thread of its own) says
 *   not-ready and why until the loop is back;
 * - a stamp older than processor.stall_exit_ms means the loop thread is
 *   stuck: the guard logs it once and exits 1 at once (pr_guard_exit: a
 *   clean shutdown needs the loop). The supervisor starts the processor
 *   again; the next owner of its partitions repairs them from the applied
 *   marks (pr_repair.c) and its open transaction is aborted by a fence or
 *   its timeout. Once the loop stopped, the shutdown has the same time
 *   (pr_guard_shutdown).
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "pr.h"
#include "px_log.h"
#include "px_time.h"

#define GUARD_PERIOD_MS 200

_Noreturn void pr_guard_exit(const char *why) {
    PX_ERROR(PR_COMP, "stopping: the processor cannot go on (its supervisor restarts it)", "why=\"%s\"", why);
    _exit(1);
}

/* A loop away for PR_BLOCKED_MS is blocked: logged once and counted when
 * it begins, logged with its length when the loop is back. */
static void watch_blocked(pr_ctx_t *pr, int64_t alive, int64_t away) {
    pr_guard_t *g = &pr->guard;
    if (g->blocked_at && alive != g->blocked_at) {
        PX_INFO(PR_COMP, "the loop thread is back", "blocked_ms=%lld", (long long)(alive - g->blocked_at));
        g->blocked_at = 0;
    }
    if (g->blocked_at || away < PR_BLOCKED_MS || atomic_load(&g->closing)) return;
    g->blocked_at = alive;
    px_counter_add(g->m_blocked, 1);
    const char *doing = pr_guard_doing(pr);
    PX_WARN(PR_COMP, "the loop thread is blocked: /readyz says not-ready until it is back", "away_ms=%lld step=\"%s\"",
            (long long)away, doing ? doing : "none");
}

static void *guard_main(void *arg) {
    pr_ctx_t *pr = arg;
    pr_guard_t *g = &pr->guard;
    const struct timespec period = {0, GUARD_PERIOD_MS * 1000000L};
    while (!atomic_load(&g->quit)) {
        nanosleep(&period, NULL);
        int64_t alive = atomic_load(&g->alive_ms), away = px_mono_ms() - alive;
        px_gauge_set(g->m_away, away);
        watch_blocked(pr, alive, away);
        if (!g->limit_ms || away < g->limit_ms) continue;
        const char *doing = pr_guard_doing(pr);
        char why[256];
        snprintf(why, sizeof why, "the loop thread has not come back for %lld ms (its last step begun: %s)",
                 (long long)away, doing ? doing : "none");
        pr_guard_exit(why);
    }
    return NULL;
}

void pr_guard_init(pr_ctx_t *pr) {
    pr_guard_t *g = &pr->guard;
    g->limit_ms = pr->cfg.stall_exit_ms;
    g->started_ms = px_mono_ms();
    atomic_store(&g->alive_ms, g->started_ms);
    g->m_blocked = px_metrics_counter(pr->metrics, "presence_processor_loop_blocked_total",
                                      "times the loop thread did not come back for 5 s (/readyz said not-ready)",
                                      NULL);
    g->m_away = px_metrics_gauge(pr->metrics, "presence_processor_loop_away_ms",
                                 "milliseconds since the loop thread last came back (every 100 ms when it turns)",
                                 NULL);
}

int pr_guard_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_guard_t *g = &pr->guard;
    pr_guard_alive(pr); /* the loop runs from now on */
    if (pthread_create(&g->th, NULL, guard_main, pr))
        return px_errf(PX_EIO, errstr, errstr_size, "the loop's guard thread not started");
    g->started = true;
    return 0;
}

void pr_guard_alive(pr_ctx_t *pr) { atomic_store_explicit(&pr->guard.alive_ms, px_mono_ms(), memory_order_relaxed); }

int64_t pr_guard_away_ms(const pr_ctx_t *pr) {
    return px_mono_ms() - atomic_load_explicit(&pr->guard.alive_ms, memory_order_relaxed);
}

const char *pr_guard_doing(const pr_ctx_t *pr) {
    return atomic_load_explicit(&((pr_ctx_t *)pr)->guard.doing, memory_order_relaxed);
}

void pr_guard_shutdown(pr_ctx_t *pr) {
    atomic_store(&pr->guard.closing, true);
    pr_doing(pr, "the shutdown");
    pr_guard_alive(pr);
}

void pr_guard_stop(pr_ctx_t *pr) {
    pr_guard_t *g = &pr->guard;
    if (!g->started) return;
    atomic_store(&g->quit, true);
    pthread_join(g->th, NULL);
    g->started = false;
}
