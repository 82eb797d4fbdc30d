/*
 * px_metrics.h - a small metrics registry rendered as Prometheus text.
 *
 * Counters, gauges and histograms, each a name, help text and an optional
 * fixed label set ("topic=\"a\",outcome=\"ok\""). Registering returns a
 * handle that stays valid until the registry is freed; registering the same
 * name+labels twice returns the same handle. Updates are lock-free
 * (C11 atomics) and may come from any thread; registration and rendering
 * take a mutex. Bounded: at most PX_METRICS_MAX series per registry;
 * past that, registration returns a shared "overflow" sink and counts it
 * in presence_metrics_dropped_series_total.
 */
#ifndef PX_METRICS_H
#define PX_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"

#define PX_METRICS_MAX 1024
#define PX_HIST_MAX_BUCKETS 32

typedef struct px_metrics px_metrics_t;
typedef struct px_counter px_counter_t;
typedef struct px_gauge px_gauge_t;
typedef struct px_hist px_hist_t;

px_metrics_t *px_metrics_new(void);
void px_metrics_free(px_metrics_t *m); /* NULL is a no-op */

/* labels may be NULL; it is copied. Never returns NULL (see overflow above)
 * unless allocation fails at the first registration. */
px_counter_t *px_metrics_counter(px_metrics_t *m, const char *name, const char *help,
                                 const char *labels);
px_gauge_t *px_metrics_gauge(px_metrics_t *m, const char *name, const char *help,
                             const char *labels);
/* bounds: ascending upper bounds (le), n <= PX_HIST_MAX_BUCKETS; +Inf is implied. */
px_hist_t *px_metrics_histogram(px_metrics_t *m, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t n);

void px_counter_add(px_counter_t *c, uint64_t n);
uint64_t px_counter_get(const px_counter_t *c);
void px_gauge_set(px_gauge_t *g, int64_t v);
void px_gauge_add(px_gauge_t *g, int64_t d);
int64_t px_gauge_get(const px_gauge_t *g);
void px_hist_observe(px_hist_t *h, double v);

/* Append the Prometheus text exposition (version 0.0.4) of every series,
 * grouped by name with one HELP/TYPE each, to out. 0 or PX_ENOMEM. */
int px_metrics_render(px_metrics_t *m, px_buf_t *out);

#endif
