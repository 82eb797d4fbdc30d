/*
 * px_metrics.c - the metrics registry and its Prometheus text rendering.
 * See px_metrics.h.
 *
 * Layout: series are grouped into families (one per metric name, holding
 * the help text and the type), so rendering walks families in registration
 * order and prints one HELP/TYPE per name without sorting. Each series is
 * its own allocation, so a handle stays put while the tables grow; updates
 * touch only the handle's atomics (relaxed: a scrape needs no ordering
 * between series).
 *
 * Histograms keep per-bucket counts (not cumulative) so an observation is
 * one fetch_add on its bucket plus the sum; rendering accumulates them and
 * prints the +Inf bucket and _count as the same total, which keeps the two
 * equal in every scrape even while observations race with it.
 *
 * Limits: label strings are trusted (fixed at registration by the program,
 * escaped by it); registering a name with a different type, an invalid
 * name or bad histogram bounds is a program bug, logged and sent to the
 * overflow sink like a series past PX_METRICS_MAX.
 */
#include "px_metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_log.h"

#define PX_METRICS_DROPPED "presence_metrics_dropped_series_total"

typedef enum { PX_M_COUNTER = 0, PX_M_GAUGE, PX_M_HIST } px_mkind_t;

struct px_counter {
    _Atomic uint64_t v;
};

struct px_gauge {
    _Atomic int64_t v;
};

struct px_hist {
    size_t n;                                        /* finite bounds */
    double bounds[PX_HIST_MAX_BUCKETS];
    _Atomic uint64_t buckets[PX_HIST_MAX_BUCKETS + 1]; /* [n] is +Inf; not cumulative */
    _Atomic uint64_t sum_bits;                       /* a double, CAS-updated */
};

typedef struct px_series {
    struct px_series *next; /* in its family */
    char *labels;           /* NULL when unlabelled */
    union {
        struct px_counter counter;
        struct px_gauge gauge;
        struct px_hist hist;
    } u;
} px_series_t;

typedef struct px_family {
    char *name;
    char *help;
    px_mkind_t kind;
    px_series_t *head, *tail;
} px_family_t;

struct px_metrics {
    pthread_mutex_t mu;
    px_family_t fam[PX_METRICS_MAX];
    size_t nfam;
    size_t nseries;
    px_counter_t *dropped; /* the registry's own series, registered first */
    /* Sinks handed out past the bound; updated, never rendered. */
    struct px_counter sink_counter;
    struct px_gauge sink_gauge;
    struct px_hist sink_hist;
};

static const char *const px_kind_names[] = {"counter", "gauge", "histogram"};

/* [a-zA-Z_:][a-zA-Z0-9_:]* per the exposition format. */
static bool px_metrics_name_ok(const char *s) {
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p != s && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static bool px_labels_eq(const char *a, const char *b) {
    if (!a || !*a) return !b || !*b;
    return b && strcmp(a, b) == 0;
}

static char *px_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Find or create the series; called with the mutex held. Returns NULL
 * when the caller must hand out a sink (the reason is logged and counted
 * by the caller's path). */
static px_series_t *px_metrics_get_locked(px_metrics_t *m, px_mkind_t kind, const char *name,
                                          const char *help, const char *labels,
                                          const double *bounds, size_t n) {
    if (!px_metrics_name_ok(name)) {
        PX_ERROR("metrics", "invalid metric name", "name=\"%s\"", name ? name : "");
        return NULL;
    }
    px_family_t *f = NULL;
    for (size_t i = 0; i < m->nfam; i++) {
        if (strcmp(m->fam[i].name, name) == 0) {
            f = &m->fam[i];
            break;
        }
    }
    if (f) {
        if (f->kind != kind) {
            PX_ERROR("metrics", "metric registered with two types", "name=%s first=%s then=%s",
                     name, px_kind_names[f->kind], px_kind_names[kind]);
            return NULL;
        }
        for (px_series_t *s = f->head; s; s = s->next)
            if (px_labels_eq(s->labels, labels)) return s;
    }
    if (m->nseries >= PX_METRICS_MAX) {
        PX_WARN("metrics", "series limit reached, dropping", "name=%s max=%d", name,
                PX_METRICS_MAX);
        return NULL;
    }
    if (kind == PX_M_HIST) {
        bool ok = n <= PX_HIST_MAX_BUCKETS && (n == 0 || bounds);
        for (size_t i = 0; ok && i < n; i++)
            ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
        if (!ok) {
            PX_ERROR("metrics", "invalid histogram bounds", "name=%s n=%zu", name, n);
            return NULL;
        }
    }

    px_series_t *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    if (labels && *labels && !(s->labels = px_strdup(labels))) goto oom;
    if (kind == PX_M_HIST) {
        s->u.hist.n = n;
        if (n) memcpy(s->u.hist.bounds, bounds, n * sizeof *bounds);
    }
    if (!f) {
        /* nfam <= nseries < PX_METRICS_MAX, so there is room. */
        f = &m->fam[m->nfam];
        f->name = px_strdup(name);
        f->help = px_strdup(help ? help : "");
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            f->name = f->help = NULL;
            goto oom;
        }
        f->kind = kind;
        f->head = f->tail = NULL;
        m->nfam++;
    }
    if (f->tail) f->tail->next = s;
    else f->head = s;
    f->tail = s;
    m->nseries++;
    return s;
oom:
    PX_ERROR("metrics", "out of memory registering series", "name=%s", name);
    if (s) free(s->labels);
    free(s);
    return NULL;
}

static px_series_t *px_metrics_get(px_metrics_t *m, px_mkind_t kind, const char *name,
                                   const char *help, const char *labels, const double *bounds,
                                   size_t n) {
    pthread_mutex_lock(&m->mu);
    px_series_t *s = px_metrics_get_locked(m, kind, name, help, labels, bounds, n);
    if (!s && m->dropped) atomic_fetch_add_explicit(&m->dropped->v, 1, memory_order_relaxed);
    pthread_mutex_unlock(&m->mu);
    return s;
}

px_metrics_t *px_metrics_new(void) {
    px_metrics_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    px_series_t *s = px_metrics_get(m, PX_M_COUNTER, PX_METRICS_DROPPED,
                                    "Metric series not registered because the registry was "
                                    "full or the registration was invalid.",
                                    NULL, NULL, 0);
    if (!s) {
        px_metrics_free(m);
        return NULL;
    }
    m->dropped = &s->u.counter;
    return m;
}

void px_metrics_free(px_metrics_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->nfam; i++) {
        px_series_t *s = m->fam[i].head;
        while (s) {
            px_series_t *next = s->next;
            free(s->labels);
            free(s);
            s = next;
        }
        free(m->fam[i].name);
        free(m->fam[i].help);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

px_counter_t *px_metrics_counter(px_metrics_t *m, const char *name, const char *help,
                                 const char *labels) {
    if (!m) return NULL;
    px_series_t *s = px_metrics_get(m, PX_M_COUNTER, name, help, labels, NULL, 0);
    return s ? &s->u.counter : &m->sink_counter;
}

px_gauge_t *px_metrics_gauge(px_metrics_t *m, const char *name, const char *help,
                             const char *labels) {
    if (!m) return NULL;
    px_series_t *s = px_metrics_get(m, PX_M_GAUGE, name, help, labels, NULL, 0);
    return s ? &s->u.gauge : &m->sink_gauge;
}

/* Registering an existing name+labels returns the existing histogram with
 * its original bounds; the bounds passed are then ignored. */
px_hist_t *px_metrics_histogram(px_metrics_t *m, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t n) {
    if (!m) return NULL;
    px_series_t *s = px_metrics_get(m, PX_M_HIST, name, help, labels, bounds, n);
    return s ? &s->u.hist : &m->sink_hist;
}

void px_counter_add(px_counter_t *c, uint64_t n) {
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t px_counter_get(const px_counter_t *c) {
    return atomic_load_explicit(&((px_counter_t *)c)->v, memory_order_relaxed);
}

void px_gauge_set(px_gauge_t *g, int64_t v) {
    atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

void px_gauge_add(px_gauge_t *g, int64_t d) {
    atomic_fetch_add_explicit(&g->v, d, memory_order_relaxed);
}

int64_t px_gauge_get(const px_gauge_t *g) {
    return atomic_load_explicit(&((px_gauge_t *)g)->v, memory_order_relaxed);
}

static uint64_t px_dbl_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double px_bits_dbl(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Linear scan: bucket lists are short (<= 32) and this beats a binary
 * search's branches at that size. A NaN lands in +Inf. */
void px_hist_observe(px_hist_t *h, double v) {
    size_t i = 0;
    while (i < h->n && !(v <= h->bounds[i])) i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
                                                  px_dbl_bits(px_bits_dbl(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* Shortest %g text that reads back as the same double, Prometheus-style
 * for the special values. */
static void px_fmt_double(char *buf, size_t size, double v) {
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
}

/* HELP text escaping per the exposition format: backslash and newline. */
static int px_render_help(px_buf_t *out, const char *help) {
    for (const char *p = help; *p; p++) {
        int rc;
        if (*p == '\\') rc = px_buf_puts(out, "\\\\");
        else if (*p == '\n') rc = px_buf_puts(out, "\\n");
        else rc = px_buf_append(out, p, 1);
        if (rc) return rc;
    }
    return 0;
}

static int px_render_hist(px_buf_t *out, const char *name, const px_series_t *s) {
    const struct px_hist *h = &s->u.hist;
    const char *lb = s->labels ? s->labels : "";
    const char *sep = s->labels ? "," : "";
    uint64_t cum = 0;
    char num[64];
    int rc = 0;
    for (size_t i = 0; i <= h->n && !rc; i++) {
        cum += atomic_load_explicit(&((struct px_hist *)h)->buckets[i], memory_order_relaxed);
        if (i < h->n) px_fmt_double(num, sizeof num, h->bounds[i]);
        else snprintf(num, sizeof num, "+Inf");
        rc = px_buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, lb, sep, num, cum);
    }
    if (rc) return rc;
    px_fmt_double(num, sizeof num,
                  px_bits_dbl(atomic_load_explicit(&((struct px_hist *)h)->sum_bits,
                                                   memory_order_relaxed)));
    if (s->labels) {
        rc = px_buf_printf(out, "%s_sum{%s} %s\n%s_count{%s} %" PRIu64 "\n", name, lb, num, name,
                           lb, cum);
    } else {
        rc = px_buf_printf(out, "%s_sum %s\n%s_count %" PRIu64 "\n", name, num, name, cum);
    }
    return rc;
}

/* Holds the mutex for the whole render so a concurrent registration cannot
 * relink a family under us; updates do not take it and keep flowing. */
int px_metrics_render(px_metrics_t *m, px_buf_t *out) {
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nfam && !rc; i++) {
        const px_family_t *f = &m->fam[i];
        rc = px_buf_printf(out, "# HELP %s ", f->name);
        if (!rc) rc = px_render_help(out, f->help);
        if (!rc) rc = px_buf_printf(out, "\n# TYPE %s %s\n", f->name, px_kind_names[f->kind]);
        for (const px_series_t *s = f->head; s && !rc; s = s->next) {
            const char *open = s->labels ? "{" : "", *close = s->labels ? "}" : "";
            const char *lb = s->labels ? s->labels : "";
            switch (f->kind) {
            case PX_M_COUNTER:
                rc = px_buf_printf(out, "%s%s%s%s %" PRIu64 "\n", f->name, open, lb, close,
                                   px_counter_get(&s->u.counter));
                break;
            case PX_M_GAUGE:
                rc = px_buf_printf(out, "%s%s%s%s %" PRId64 "\n", f->name, open, lb, close,
                                   px_gauge_get(&s->u.gauge));
                break;
            case PX_M_HIST:
                rc = px_render_hist(out, f->name, s);
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc ? PX_ENOMEM : 0;
}
