/*
 * gw_rate.c - the token bucket and the fixed-window table (gw_rate.h).
 */
#include <stdlib.h>
#include <string.h>

#include "gw_rate.h"
#include "px_err.h"
#include "px_hash.h"

void gw_bucket_init(gw_bucket_t *b, int64_t burst, int64_t now_ms) {
    b->tokens = (double)burst;
    b->at_ms = now_ms;
    b->noticed_ms = 0;
    b->noticed = false;
}

gw_bucket_verdict_t gw_bucket_take(gw_bucket_t *b, int64_t rate, int64_t burst, int64_t now_ms) {
    if (now_ms < b->at_ms) now_ms = b->at_ms; /* a clock set back: no time passed */
    b->tokens += (double)(now_ms - b->at_ms) * (double)rate / 1000.0;
    if (b->tokens > (double)burst) b->tokens = (double)burst;
    b->at_ms = now_ms;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return GW_BUCKET_PASS;
    }
    if (!b->noticed || now_ms - b->noticed_ms >= 1000) {
        b->noticed = true;
        b->noticed_ms = now_ms;
        return GW_BUCKET_DROP_NOTIFY;
    }
    return GW_BUCKET_DROP;
}

int gw_windows_init(gw_windows_t *t, size_t n, int64_t width_ms) {
    t->slots = calloc(n, sizeof *t->slots);
    t->n = t->slots ? n : 0;
    t->width_ms = width_ms;
    return t->slots ? 0 : PX_ENOMEM;
}

void gw_windows_term(gw_windows_t *t) {
    free(t->slots);
    t->slots = NULL;
    t->n = 0;
}

static bool expired(const gw_windows_t *t, const gw_window_t *w, int64_t now_ms) {
    return now_ms - w->start_ms >= t->width_ms;
}

/* The slot of `who`: its own, else the first free or expired one probed,
 * else the probed slot whose window started first. */
static gw_window_t *slot_of(gw_windows_t *t, const char *who, int64_t now_ms) {
    size_t base = px_fnv1a_str(PX_FNV1A_INIT, who) % t->n;
    gw_window_t *reusable = NULL, *oldest = NULL;
    for (size_t i = 0; i < GW_WINDOW_PROBE && i < t->n; i++) {
        gw_window_t *w = &t->slots[(base + i) % t->n];
        if (strcmp(w->who, who) == 0) return w;
        if (!w->who[0] || expired(t, w, now_ms)) {
            if (!reusable) reusable = w;
        } else if (!oldest || w->start_ms < oldest->start_ms) {
            oldest = w;
        }
    }
    return reusable ? reusable : oldest;
}

bool gw_windows_take(gw_windows_t *t, const char *who, int64_t limit, int64_t now_ms) {
    size_t len = strlen(who);
    if (!t->n || len == 0 || len > GW_WINDOW_WHO_MAX) return false;
    gw_window_t *w = slot_of(t, who, now_ms);
    if (strcmp(w->who, who) != 0) {
        memcpy(w->who, who, len + 1);
        w->start_ms = now_ms;
        w->count = 0;
    } else if (expired(t, w, now_ms)) {
        w->start_ms = now_ms;
        w->count = 0;
    }
    if (w->count >= limit) return false;
    w->count++;
    return true;
}
