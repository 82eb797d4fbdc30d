/*
 * px_testlib.h - helpers shared by the fold and store tests (test_fold*.c,
 * test_store*.c, tests/integration/test_store_redis.c): the entity key K the
 * builders use, a splitmix64 PRNG for the seeded property tests, builders of
 * input records, and the topic a record belongs on. Header-only; include it
 * after cmocka.h. Each test sets K in its setup.
 */
#ifndef PX_TESTLIB_H
#define PX_TESTLIB_H

#include <stdint.h>
#include <stdio.h>

#include "px_event.h"
#include "px_fold.h"

static px_key_t K;

typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint32_t rng_below(rng_t *r, uint32_t n) { return (uint32_t)(rng_next(r) % n); }

/* A PresenceEvent of K: user_name "Name <user>". */
static inline px_event_t pres(int type, const char *tab, const char *user, int64_t ts) {
    px_event_t ev;
    px_event_init(&ev, PX_KIND_PRESENCE);
    ev.type = type;
    ev.key = K;
    ev.ts_ms = ts;
    snprintf(ev.tab_id, sizeof ev.tab_id, "%s", tab);
    snprintf(ev.user_id, sizeof ev.user_id, "%s", user);
    snprintf(ev.user_name, sizeof ev.user_name, "Name %s", user);
    return ev;
}

/* A LockEvent of K, request id "req". */
static inline px_event_t lockev(int type, const char *field, const char *tab, const char *user, int64_t ts) {
    px_event_t ev;
    px_event_init(&ev, PX_KIND_LOCK);
    ev.type = type;
    ev.key = K;
    ev.ts_ms = ts;
    snprintf(ev.field, sizeof ev.field, "%s", field);
    snprintf(ev.tab_id, sizeof ev.tab_id, "%s", tab);
    snprintf(ev.user_id, sizeof ev.user_id, "%s", user);
    snprintf(ev.user_name, sizeof ev.user_name, "Name %s", user);
    snprintf(ev.request_id, sizeof ev.request_id, "req");
    return ev;
}

/* A LifecycleEvent of K; a MUTATING is busy by its write id (or "anon"). */
static inline px_event_t lcev(int type, const char *write_id, int64_t ts, int64_t version) {
    px_event_t ev;
    px_event_init(&ev, PX_KIND_LIFECYCLE);
    ev.type = type;
    ev.key = K;
    ev.ts_ms = ts;
    snprintf(ev.write_id, sizeof ev.write_id, "%s", write_id);
    if (type == PX_LC_MUTATING) snprintf(ev.busy_by, sizeof ev.busy_by, "%s", write_id[0] ? write_id : "anon");
    ev.version = version;
    return ev;
}

/* The input topic a record belongs on. */
static inline px_src_topic_t topic_of(const px_event_t *ev) {
    switch (ev->kind) {
    case PX_KIND_PRESENCE: return PX_SRC_HEARTBEATS;
    case PX_KIND_LOCK: return PX_SRC_LOCKS;
    default: return ev->type == PX_LC_MUTATED ? PX_SRC_MUTATED : PX_SRC_MUTATING;
    }
}

#endif
