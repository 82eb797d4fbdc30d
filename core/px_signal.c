/*
 * px_signal.c - stop flag and signal wiring. See px_signal.h.
 *
 * The sigaction handler only stores to the flag (async-signal-safe). The
 * libuv variant runs its callback on the loop thread, so it may log and
 * close handles freely.
 */
#include "px_signal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_log.h"

volatile sig_atomic_t px_stop_requested = 0;

struct px_signal_uv {
    uv_signal_t sigint;
    uv_signal_t sigterm;
    void (*on_stop)(void *);
    void *arg;
    int fired;   /* on_stop has been called */
    int nopen;   /* handles not yet closed; free at 0 */
};

static void px_signal_handler(int sig) {
    (void)sig;
    px_stop_requested = 1;
}

int px_signal_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = px_signal_handler;
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) goto err;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0) goto err;
    return 0;
err:
    PX_ERROR("signal", "sigaction failed", "error=\"%s\"", strerror(errno));
    return PX_EIO;
}

static void px_signal_uv_on_close(uv_handle_t *h) {
    px_signal_uv_t *s = h->data;
    if (--s->nopen == 0) free(s);
}

static void px_signal_uv_on_signal(uv_signal_t *h, int signum) {
    px_signal_uv_t *s = h->data;
    px_stop_requested = 1;
    if (s->fired) return;
    s->fired = 1;
    PX_INFO("signal", "stop requested", "signal=%d", signum);
    if (s->on_stop) s->on_stop(s->arg);
}

int px_signal_uv_start(uv_loop_t *loop, void (*on_stop)(void *), void *arg,
                       px_signal_uv_t **out) {
    *out = NULL;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        PX_ERROR("signal", "sigaction failed", "error=\"%s\"", strerror(errno));
        return PX_EIO;
    }
    px_signal_uv_t *s = calloc(1, sizeof *s);
    if (!s) {
        PX_ERROR("signal", "out of memory", NULL);
        return PX_ENOMEM;
    }
    s->on_stop = on_stop;
    s->arg = arg;
    int rc = uv_signal_init(loop, &s->sigint);
    if (rc != 0) goto err_free;
    s->sigint.data = s;
    s->nopen++;
    rc = uv_signal_init(loop, &s->sigterm);
    if (rc != 0) goto err_close;
    s->sigterm.data = s;
    s->nopen++;
    rc = uv_signal_start(&s->sigint, px_signal_uv_on_signal, SIGINT);
    if (rc == 0) rc = uv_signal_start(&s->sigterm, px_signal_uv_on_signal, SIGTERM);
    if (rc != 0) goto err_close;
    *out = s;
    return 0;
err_close:
    /* Handles that were initialised must go through uv_close; the last
     * close callback frees s. */
    PX_ERROR("signal", "uv_signal failed", "error=\"%s\"", uv_strerror(rc));
    uv_close((uv_handle_t *)&s->sigint, px_signal_uv_on_close);
    if (s->nopen == 2) uv_close((uv_handle_t *)&s->sigterm, px_signal_uv_on_close);
    return PX_EIO;
err_free:
    PX_ERROR("signal", "uv_signal_init failed", "error=\"%s\"", uv_strerror(rc));
    free(s);
    return PX_EIO;
}

void px_signal_uv_stop(px_signal_uv_t *s) {
    if (!s) return;
    uv_close((uv_handle_t *)&s->sigint, px_signal_uv_on_close);
    uv_close((uv_handle_t *)&s->sigterm, px_signal_uv_on_close);
}
