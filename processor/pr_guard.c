/*
 * pr_guard.c - the loop thread's guard: ends the process when the loop
 * thread stops coming back.
 *
 * Every call the loop thread makes into librdkafka, Redis or a helper
 * thread is meant to be bounded; the longest (a transaction's commit and
 * abort on the committer, the transactions' initialisation) take about a
 * minute at worst. A call that never returns (a library waiting for an
 * answer that never comes) holds the loop thread: no turn runs, no signal
 * and no ops request is served, /readyz cannot answer, and the
 * partitions' watchdog (pr_watch.c), which runs on the loop, never sees
 * it. So a thread of its own watches the stamp the loop's 100 ms timer
 * leaves (pr_guard_alive): a stamp older than processor.stall_exit_ms
 * means the loop thread is stuck. The guard logs it once, with the step
 * the loop last began (pr_doing), and exits 1 at once: a clean shutdown
 * needs the loop. The supervisor starts the processor again; the next
 * owner of its partitions repairs them from the applied marks
 * (pr_repair.c) and its open transaction is aborted by a fence or its
 * timeout. Once the loop stopped, the shutdown has the same time
 * (pr_guard_shutdown).
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "pr.h"
#include "px_log.h"
#include "px_time.h"

#define GUARD_PERIOD_MS 200

static void *guard_main(void *arg) {
    pr_ctx_t *pr = arg;
    pr_guard_t *g = &pr->guard;
    const struct timespec period = {0, GUARD_PERIOD_MS * 1000000L};
    while (!atomic_load(&g->quit)) {
        nanosleep(&period, NULL);
        int64_t away = px_mono_ms() - atomic_load(&g->alive_ms);
        if (away < g->limit_ms) continue;
        const char *doing = atomic_load(&g->doing);
        char why[256];
        snprintf(why, sizeof why, "the loop thread has not come back for %lld ms (its last step begun: %s)",
                 (long long)away, doing ? doing : "none");
        PX_ERROR(PR_COMP, "stopping: the processor cannot go on (its supervisor restarts it)", "why=\"%s\"", why);
        _exit(1);
    }
    return NULL;
}

int pr_guard_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_guard_t *g = &pr->guard;
    g->limit_ms = pr->cfg.stall_exit_ms;
    g->started_ms = px_mono_ms();
    atomic_store(&g->alive_ms, g->started_ms);
    if (!g->limit_ms) return 0;
    if (pthread_create(&g->th, NULL, guard_main, pr))
        return px_errf(PX_EIO, errstr, errstr_size, "the loop's guard thread not started");
    g->started = true;
    return 0;
}

void pr_guard_alive(pr_ctx_t *pr) { atomic_store_explicit(&pr->guard.alive_ms, px_mono_ms(), memory_order_relaxed); }

void pr_guard_shutdown(pr_ctx_t *pr) {
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
