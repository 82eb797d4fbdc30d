/*
 * fold_helpers.h - the fixtures the fold tests share (test_fold.c,
 * test_fold_rules.c, test_fold_prop.c): a record of the change events one
 * apply emits, apply wrappers that name the record's natural topic, checks
 * of the changes' types and validity, item lookups, px_fold_due into a
 * record, and the group setup that sets K. Header-only; include it after
 * cmocka.h and px_testlib.h.
 */
#ifndef PX_FOLD_HELPERS_H
#define PX_FOLD_HELPERS_H

#include <stdarg.h>
#include <string.h>

#include "px_fold.h"
#include "px_testlib.h"

static inline void key_init(px_key_t *k, const char *id) {
    assert_int_equal(px_key_set(k, "acme", "doc", id, NULL, 0), 0);
}

#define REC_MAX 64
typedef struct {
    px_event_t ev[REC_MAX];
    size_t n;
} rec_t;

static inline void rec_emit(void *arg, const px_event_t *ev) {
    rec_t *r = arg;
    assert_true(r->n < REC_MAX);
    r->ev[r->n++] = *ev;
}

/* Apply ev from its natural topic at offset off, recording changes in r. */
static inline int app(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, int64_t off, rec_t *r) {
    px_src_t src = {topic_of(ev), 3, off};
    if (r) r->n = 0;
    return px_fold_apply(e, c, ev, &src, r ? rec_emit : NULL, r);
}

static inline void app_ok(px_entity_t *e, const px_fold_conf_t *c, px_event_t ev, int64_t off, rec_t *r) {
    int rc = app(e, c, &ev, off, r);
    if (rc) fail_msg("apply %s %s: %d", px_kind_name(ev.kind), px_event_type_name(ev.kind, ev.type), rc);
}

/* Every change must be a valid ChangeEvent once the caller names the topic. */
static inline void check_changes(const rec_t *r) {
    char err[256];
    for (size_t i = 0; i < r->n; i++) {
        px_event_t ch = r->ev[i];
        assert_int_equal(ch.kind, PX_KIND_CHANGE);
        assert_string_equal(ch.src_topic, "");
        strcpy(ch.src_topic, "t");
        if (px_event_validate(&ch, err, sizeof err)) fail_msg("invalid change: %s", err);
    }
}

static inline void expect_types(const rec_t *r, size_t n, ...) {
    check_changes(r);
    va_list ap;
    va_start(ap, n);
    if (r->n != n) fail_msg("expected %zu changes, got %zu (first %s)", n, r->n,
                            r->n ? px_event_type_name(PX_KIND_CHANGE, r->ev[0].type) : "-");
    for (size_t i = 0; i < n; i++) {
        int t = va_arg(ap, int);
        if (r->ev[i].type != t)
            fail_msg("change %zu: expected %s, got %s", i, px_event_type_name(PX_KIND_CHANGE, t),
                     px_event_type_name(PX_KIND_CHANGE, r->ev[i].type));
    }
    va_end(ap);
}

static inline const px_fold_tab_t *tab_get(const px_entity_t *e, const char *id) {
    for (size_t i = 0; i < e->n_tabs; i++)
        if (strcmp(px_fold_tab_id(&e->tabs[i]), id) == 0) return &e->tabs[i];
    return NULL;
}

static inline const px_fold_lock_t *lock_get(const px_entity_t *e, const char *field) {
    for (size_t i = 0; i < e->n_locks; i++)
        if (strcmp(px_fold_lock_field(&e->locks[i]), field) == 0) return &e->locks[i];
    return NULL;
}

typedef struct {
    px_event_t ev[REC_MAX];
    size_t n;
} due_t;

static inline void due_emit(void *arg, const px_event_t *ev) {
    due_t *d = arg;
    assert_true(d->n < REC_MAX);
    char err[256];
    if (px_event_validate(ev, err, sizeof err)) fail_msg("invalid EXPIRE: %s", err);
    d->ev[d->n++] = *ev;
}

static inline size_t due(px_entity_t *e, const px_fold_conf_t *c, int64_t now, due_t *d) {
    d->n = 0;
    size_t n = px_fold_due(e, c, now, due_emit, d);
    assert_int_equal(n, d->n);
    return n;
}

static inline int setup(void **state) {
    key_init(&K, "1");
    return 0;
}

#endif
