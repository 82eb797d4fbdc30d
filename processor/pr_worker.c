/*
 * pr_worker.c - a helper thread that runs one job at a time for the loop
 * (the committer and the writer). The loop hands a job over
 * (pr_worker_submit), sees it done (pr_worker_ended, or the wake-up the
 * worker sends) and waits for it (pr_worker_wait) before reading its
 * outcome. One lock and condition serve both workers.
 */
#include <time.h>

#include "pr.h"
#include "px_time.h"

static void on_async(uv_async_t *h) {
    pr_ctx_t *pr = h->data;
    pr->wake(pr);
}

int pr_threads_init(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_threads_t *t = &pr->threads;
    /* the condition's clock is the monotonic one: bounded waits
     * (pr_worker_wait_for) do not move with the wall clock */
    pthread_condattr_t ca;
    bool made = pthread_condattr_init(&ca) == 0;
    made = made && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_mutex_init(&t->mu, NULL) == 0 &&
           pthread_cond_init(&t->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!made) return px_errf(PX_ENOMEM, errstr, errstr_size, "workers: mutex or condition not created");
    if (uv_async_init(pr->loop, &t->async, on_async))
        return px_errf(PX_EIO, errstr, errstr_size, "workers: wake-up handle not created");
    t->async.data = pr;
    t->async_live = true;
    t->inited = true;
    return 0;
}

void pr_threads_unwatch(pr_ctx_t *pr) {
    pr_threads_t *t = &pr->threads;
    if (!t->inited) return;
    pthread_mutex_lock(&t->mu);
    bool live = t->async_live;
    t->async_live = false;
    pthread_mutex_unlock(&t->mu);
    if (live) uv_close((uv_handle_t *)&t->async, NULL);
}

static void *worker_main(void *arg) {
    pr_worker_t *w = arg;
    pr_ctx_t *pr = w->pr;
    pr_threads_t *t = &pr->threads;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!w->has_job && !w->quit) pthread_cond_wait(&t->cv, &t->mu);
        if (!w->has_job) break;
        w->has_job = false;
        pthread_mutex_unlock(&t->mu);
        w->job(pr);
        pthread_mutex_lock(&t->mu);
        w->done = true;
        pthread_cond_broadcast(&t->cv);
        if (t->async_live) uv_async_send(&t->async);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int pr_worker_start(pr_ctx_t *pr, pr_worker_t *w, void (*job)(pr_ctx_t *)) {
    w->pr = pr;
    w->job = job;
    if (pthread_create(&w->th, NULL, worker_main, w)) return PX_EIO;
    w->started = true;
    return 0;
}

void pr_threads_term(pr_ctx_t *pr) {
    pr_threads_t *t = &pr->threads;
    if (!t->inited) return;
    pr_threads_unwatch(pr);
    pr_worker_t *ws[3] = {&pr->cm.w, &pr->wr.w, &pr->wd.w};
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < 3; i++) ws[i]->quit = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < 3; i++)
        if (ws[i]->started) {
            pthread_join(ws[i]->th, NULL);
            ws[i]->started = false;
        }
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    t->inited = false;
}

void pr_worker_submit(pr_ctx_t *pr, pr_worker_t *w) {
    pr_threads_t *t = &pr->threads;
    w->busy = true;
    pthread_mutex_lock(&t->mu);
    w->done = false;
    w->has_job = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

bool pr_worker_ended(pr_ctx_t *pr, pr_worker_t *w) {
    if (!w->busy) return false;
    pthread_mutex_lock(&pr->threads.mu);
    bool done = w->done;
    pthread_mutex_unlock(&pr->threads.mu);
    return done;
}

void pr_worker_wait(pr_ctx_t *pr, pr_worker_t *w, int phase) {
    int64_t t0 = px_mono_us();
    pthread_mutex_lock(&pr->threads.mu);
    while (!w->done) pthread_cond_wait(&pr->threads.cv, &pr->threads.mu);
    pthread_mutex_unlock(&pr->threads.mu);
    px_counter_add(pr->m_phase_us[phase], (uint64_t)(px_mono_us() - t0));
}

bool pr_worker_wait_for(pr_ctx_t *pr, pr_worker_t *w, int phase, int64_t ms) {
    int64_t t0 = px_mono_us();
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&pr->threads.mu);
    for (int rc = 0; !w->done && rc == 0;) rc = pthread_cond_timedwait(&pr->threads.cv, &pr->threads.mu, &until);
    bool done = w->done;
    pthread_mutex_unlock(&pr->threads.mu);
    px_counter_add(pr->m_phase_us[phase], (uint64_t)(px_mono_us() - t0));
    return done;
}
