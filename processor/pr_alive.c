/*
 * pr_alive.c - the last resort against a blocked loop: a thread of its own
 * that ends the process when the loop has not turned for
 * processor.loop_stall_exit_ms.
 *
 * Everything the processor decides runs on its libuv loop; a call there
 * that does not return (a rebalance that waits for a commit the brokers
 * cannot answer while the group's coordinator is away, a blocking query
 * to a server that swallows packets) stops it all, /readyz included, and
 * no watchdog on the loop can see it. The loop's 100 ms timer stamps
 * `beat`; this thread looks every second and, when the stamp is older than
 * the bound, logs why and calls _exit(1): as a SIGKILL would, which the
 * exactly-once design survives (docs/exactly-once.md), so the supervisor
 * restarts the processor under its name. It stops (pr_alive_stop) before
 * the processor's own shutdown, whose flushes may block on purpose.
 */
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "pr.h"
#include "px_log.h"
#include "px_time.h"

static void *alive_main(void *arg) {
    pr_ctx_t *pr = arg;
    pr_alive_t *a = &pr->alive;
    while (!atomic_load(&a->quit)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int64_t beat = atomic_load(&a->beat), now = px_mono_ms();
        if (atomic_load(&a->quit) || now - beat < pr->cfg.loop_stall_exit_ms) continue;
        PX_ERROR(PR_COMP, "stopping: the loop has not turned (a call that does not return); exiting for the "
                 "supervisor to restart the processor", "blocked_ms=%lld setting=processor.loop_stall_exit_ms",
                 (long long)(now - beat));
        _exit(1);
    }
    return NULL;
}

void pr_alive_beat(pr_ctx_t *pr) {
    atomic_store(&pr->alive.beat, px_mono_ms());
}

int pr_alive_start(pr_ctx_t *pr) {
    pr_alive_t *a = &pr->alive;
    if (!pr->cfg.loop_stall_exit_ms) return 0;
    pr_alive_beat(pr);
    atomic_store(&a->quit, false);
    if (pthread_create(&a->th, NULL, alive_main, pr)) return PX_EIO;
    a->started = true;
    return 0;
}

void pr_alive_stop(pr_ctx_t *pr) {
    pr_alive_t *a = &pr->alive;
    if (!a->started) return;
    atomic_store(&a->quit, true);
    pthread_join(a->th, NULL);
    a->started = false;
}
