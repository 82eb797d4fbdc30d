/*
 * px_signal.h - the stop flag, and SIGINT/SIGTERM handling.
 *
 * px_stop_requested is the one global of the project: a
 * `volatile sig_atomic_t` that a signal handler sets and main loops read.
 * Two ways to wire it, never both in one process:
 *   - px_signal_install(): sigaction() handlers for blocking loops
 *     (poll-style programs such as presencectl and the processor);
 *   - px_signal_uv_start(): uv_signal_t watchers for libuv programs (the
 *     gateway), which call a stop callback on the loop thread.
 * Both also ignore SIGPIPE (a closed peer is an EPIPE return, not a death)
 * and leave every other signal alone.
 */
#ifndef PX_SIGNAL_H
#define PX_SIGNAL_H

#include <signal.h>
#include <uv.h>

/* Set to 1 on the first SIGINT or SIGTERM; never reset by this module. */
extern volatile sig_atomic_t px_stop_requested;

/* Install SIGINT/SIGTERM handlers that set px_stop_requested (without
 * SA_RESTART, so a blocking call returns EINTR and the loop can look at the
 * flag) and ignore SIGPIPE (a closed peer is an EPIPE return, not a death).
 * 0, or PX_EIO if sigaction fails (logged). */
int px_signal_install(void);

typedef struct px_signal_uv px_signal_uv_t;

/* Ignore SIGPIPE and watch SIGINT and SIGTERM on `loop`; the first of them sets
 * px_stop_requested and calls on_stop(arg) once, on the loop thread. Later
 * signals are ignored (the program is already stopping). The watchers keep
 * the loop alive until px_signal_uv_stop(). On success *out owns the
 * watcher; 0, or PX_EIO/PX_ENOMEM (logged, *out NULL). */
int px_signal_uv_start(uv_loop_t *loop, void (*on_stop)(void *), void *arg,
                       px_signal_uv_t **out);

/* Stop watching and free once libuv has closed the handles (so the loop
 * must run a little longer). NULL is a no-op. */
void px_signal_uv_stop(px_signal_uv_t *s);

#endif
