/*
 * gw_rate.h - the gateway's two rate limits as pure decisions: the caller
 * passes the time, nothing here reads a clock, allocates per call or does
 * I/O, so both are unit-tested alone (tests/unit/test_gw_rate.c).
 *
 * - gw_bucket_t, one per WebSocket connection (gw_msg.c): a token bucket
 *   refilled at `rate` messages a second up to `burst`; a message over the
 *   limit is dropped, and the client is told at most once a second.
 * - gw_windows_t, one per process for REST (gw_rest.c): a fixed one-minute
 *   window per user in a table of fixed size, probed GW_WINDOW_PROBE slots
 *   from the user's hash. A free or expired slot is reused; when every
 *   probed slot holds a live window, the oldest is taken over, so memory
 *   stays bounded whatever the number of users (the evicted user starts a
 *   fresh window later: the limit errs on the loose side, never refuses a
 *   user who is within it).
 * Time going backwards (a wall clock set back) counts as no time passing:
 * it adds no tokens, brings no second notice and ends no window.
 */
#ifndef PX_GW_RATE_H
#define PX_GW_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_bucket {
    double tokens;
    int64_t at_ms;       /* last refill */
    int64_t noticed_ms;  /* last time the client was told */
    bool noticed;        /* noticed_ms is set */
} gw_bucket_t;

typedef enum {
    GW_BUCKET_PASS,        /* a token was taken */
    GW_BUCKET_DROP,        /* over the limit; the client was told less than a second ago */
    GW_BUCKET_DROP_NOTIFY, /* over the limit; tell the client (RATE_LIMITED) */
} gw_bucket_verdict_t;

/* A full bucket (burst tokens) at now_ms. */
void gw_bucket_init(gw_bucket_t *b, int64_t burst, int64_t now_ms);
/* Refill for the time since the last call (rate tokens a second, capped
 * at burst), then take one token if there is one. rate and burst >= 1. */
gw_bucket_verdict_t gw_bucket_take(gw_bucket_t *b, int64_t rate, int64_t burst, int64_t now_ms);

/* Longest user name a window keys on ("tenant:user"); a longer one is
 * refused by gw_windows_take. */
#define GW_WINDOW_WHO_MAX 257 /* a tenant and a user id of 128 bytes each, and the colon */
#define GW_WINDOW_PROBE 8

typedef struct gw_window {
    char who[GW_WINDOW_WHO_MAX + 1]; /* empty: free */
    int64_t start_ms;                /* start of the current window */
    int64_t count;                   /* requests taken in it */
} gw_window_t;

typedef struct gw_windows {
    gw_window_t *slots;
    size_t n;
    int64_t width_ms;
} gw_windows_t;

/* Allocate n (>= 1) free slots of windows width_ms long. 0 or PX_ENOMEM. */
int gw_windows_init(gw_windows_t *t, size_t n, int64_t width_ms);
/* Free the slots; a zeroed or terminated table is a no-op. */
void gw_windows_term(gw_windows_t *t);
/* true if one more request of `who` fits in its current window (and it is
 * counted), false if `who` has had `limit` already, or is empty or longer
 * than GW_WINDOW_WHO_MAX. */
bool gw_windows_take(gw_windows_t *t, const char *who, int64_t limit, int64_t now_ms);

#endif
