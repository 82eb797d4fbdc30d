/*
 * px_time.h - the two clocks presence reads.
 *
 * px_now_ms() is wall-clock time (ms since the Unix epoch): what the gateway
 * stamps into an event's `ts` and what deadlines in Redis are compared to.
 * px_mono_ms() never jumps backwards: use it for timeouts, backoff and rate
 * limits inside one process. The fold reads neither (it runs on event time).
 */
#ifndef PX_TIME_H
#define PX_TIME_H

#include <stdint.h>

/* CLOCK_REALTIME in ms since 1970-01-01T00:00:00Z. */
int64_t px_now_ms(void);
/* CLOCK_MONOTONIC in ms from an unspecified start; only differences mean
 * anything. */
int64_t px_mono_ms(void);
/* CLOCK_MONOTONIC in microseconds, for timing phases. */
int64_t px_mono_us(void);

#endif
