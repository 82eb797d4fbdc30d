/* px_time.c - wall and monotonic clocks in ms. See px_time.h. */
#include "px_time.h"

#include <time.h>

/* clock_gettime cannot fail for these two clocks on Linux; a zeroed
 * timespec is the fallback rather than an assert in a hot path. */
static int64_t px_clock_ms(clockid_t id) {
    struct timespec ts = {0, 0};
    (void)clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

int64_t px_now_ms(void) { return px_clock_ms(CLOCK_REALTIME); }

int64_t px_mono_ms(void) { return px_clock_ms(CLOCK_MONOTONIC); }

int64_t px_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
