/*
 * test_fold_prop.c - three property tests of the fold (core/px_fold.h)
 * with a seeded PRNG: (1) interleaving invariance: random per-topic logs
 * (EXPIREs taken from px_fold_due at random times) applied in many
 * interleavings that keep each topic's order give equal states and, per
 * source record, identical change events; (2) an independent brute-force
 * model of presence and locks compared state by state; (3) small caps and
 * hostile values: caps hold, refused records change nothing, nothing crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_fold.h"
#include "px_testlib.h"
#include "fold_helpers.h"

/* ---- property 1: interleaving invariance -------------------------------------------- */

#define LOG_MAX 600

typedef struct {
    px_event_t *ev[PX_SRC__COUNT]; /* per topic, in topic order */
    size_t n[PX_SRC__COUNT];
} logs_t;

static void logs_push(logs_t *l, px_src_topic_t t, const px_event_t *ev) {
    assert_true(l->n[t] < LOG_MAX);
    l->ev[t][l->n[t]++] = *ev;
}

/* A random input record of the entity at time now. */
static px_event_t random_record(rng_t *g, int64_t now) {
    static const char *const tabs[] = {"t1", "t2", "t3", "t4", "t5"};
    static const char *const owner[] = {"u1", "u1", "u2", "u3", "u3"};
    static const char *const fields[] = {"a", "b", "c", "d"};
    int64_t ts = now - (int64_t)rng_below(g, 3000); /* gateways' clocks differ a little */
    uint32_t k = rng_below(g, 100), ti = rng_below(g, 5);
    const char *user = rng_below(g, 20) == 0 ? "u9" : owner[ti]; /* sometimes a hijack */
    if (k < 45) {
        static const int types[] = {PX_PRES_SUB, PX_PRES_HB, PX_PRES_HB, PX_PRES_HB, PX_PRES_UNSUB};
        px_event_t ev = pres(types[rng_below(g, 5)], tabs[ti], user, ts);
        ev.mode = (px_mode_t)rng_below(g, 2);
        ev.dirty = rng_below(g, 2);
        ev.status = (px_status_t)rng_below(g, 2);
        if (rng_below(g, 2)) strcpy(ev.field, fields[rng_below(g, 4)]);
        return ev;
    }
    if (k < 75) {
        px_event_t ev = lockev(rng_below(g, 3) ? PX_LOCK_LOCK : PX_LOCK_UNLOCK, fields[rng_below(g, 4)], tabs[ti],
                               user, ts);
        snprintf(ev.request_id, sizeof ev.request_id, "r%u", rng_below(g, 1000));
        return ev;
    }
    char wid[16] = "";
    if (rng_below(g, 3)) snprintf(wid, sizeof wid, "w%u", rng_below(g, 10));
    if (k < 88) return lcev(PX_LC_MUTATING, wid, ts - (int64_t)rng_below(g, 20000), PX_NONE);
    return lcev(PX_LC_MUTATED, wid, ts, rng_below(g, 3) ? PX_NONE : (int64_t)rng_below(g, 30));
}

/* Generate one entity's four topic logs: records arrive in one random
 * order, the generating fold applies them, and at random times the EXPIREs
 * px_fold_due asks for are appended to their topics. */
static void gen_logs(rng_t *g, const px_fold_conf_t *c, logs_t *l, size_t steps) {
    px_entity_t e;
    px_entity_init(&e, &K);
    int64_t now = 1700000000000LL;
    size_t pos[PX_SRC__COUNT] = {0};
    for (size_t i = 0; i < steps; i++) {
        now += rng_below(g, 15000);
        if (rng_below(g, 8) == 0) {
            due_t d;
            due(&e, c, now, &d);
            for (size_t j = 0; j < d.n; j++) logs_push(l, topic_of(&d.ev[j]), &d.ev[j]);
        } else {
            px_event_t ev = random_record(g, now);
            logs_push(l, topic_of(&ev), &ev);
        }
        /* the generating fold consumes some of what is in the logs, topic by topic at random */
        for (int t = 0; t < PX_SRC__COUNT; t++)
            while (pos[t] < l->n[t] && rng_below(g, 3)) {
                px_src_t src = {(px_src_topic_t)t, 0, (int64_t)pos[t]};
                assert_int_equal(px_fold_apply(&e, c, &l->ev[t][pos[t]], &src, NULL, NULL), 0);
                pos[t]++;
            }
    }
    px_entity_term(&e);
}

/* One event as text for comparing change events. */
static void change_sig(px_buf_t *b, const px_event_t *ch) {
    px_buf_printf(b, "%s|%s|%s|%s|%s|%lld|%s|%s|%s|%lld|%s|%lld|%d|%lld;", px_event_type_name(PX_KIND_CHANGE, ch->type),
                  ch->tab_id, ch->user_id, ch->user_name, ch->field, (long long)ch->token, ch->holder_user_id,
                  ch->holder_name, ch->busy_by, (long long)ch->version, ch->request_id, (long long)ch->ts_ms,
                  (int)ch->src_partition, (long long)ch->src_offset);
}

typedef struct {
    px_buf_t *per_record; /* indexed by topic * LOG_MAX + offset */
    size_t cur;
} sigs_t;

static void sig_emit(void *arg, const px_event_t *ch) {
    sigs_t *s = arg;
    change_sig(&s->per_record[s->cur], ch);
}

/* Apply the logs in one random interleaving that keeps each topic's order. */
static void fold_interleaved(rng_t *g, const px_fold_conf_t *c, const logs_t *l, px_entity_t *e, sigs_t *s) {
    size_t pos[PX_SRC__COUNT] = {0}, left = 0;
    for (int t = 0; t < PX_SRC__COUNT; t++) left += l->n[t];
    for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) px_buf_reset(&s->per_record[i]);
    /* bias: each run prefers some topics, so runs differ a lot */
    uint32_t w[PX_SRC__COUNT];
    for (int t = 0; t < PX_SRC__COUNT; t++) w[t] = 1 + rng_below(g, 10);
    while (left) {
        uint32_t tot = 0;
        for (int t = 0; t < PX_SRC__COUNT; t++)
            if (pos[t] < l->n[t]) tot += w[t];
        uint32_t pick = rng_below(g, tot);
        int t = 0;
        for (;; t++) {
            if (pos[t] >= l->n[t]) continue;
            if (pick < w[t]) break;
            pick -= w[t];
        }
        px_src_t src = {(px_src_topic_t)t, 0, (int64_t)pos[t]};
        s->cur = (size_t)t * LOG_MAX + pos[t];
        int rc = px_fold_apply(e, c, &l->ev[t][pos[t]], &src, sig_emit, s);
        if (rc) fail_msg("apply topic %d offset %zu: %d", t, pos[t], rc);
        pos[t]++;
        left--;
    }
}

static void test_prop_interleaving(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    c.presence_ttl_ms = 40000;
    c.lock_ttl_ms = 70000;
    c.stale_ttl_ms = 90000;
    rng_t g = {20240611};
    logs_t l;
    for (int t = 0; t < PX_SRC__COUNT; t++) l.ev[t] = calloc(LOG_MAX, sizeof(px_event_t));
    sigs_t ref = {calloc(PX_SRC__COUNT * LOG_MAX, sizeof(px_buf_t)), 0},
           run = {calloc(PX_SRC__COUNT * LOG_MAX, sizeof(px_buf_t)), 0};
    for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) {
        px_buf_init(&ref.per_record[i], 1 << 16);
        px_buf_init(&run.per_record[i], 1 << 16);
    }
    px_buf_t da, db;
    px_buf_init(&da, 1 << 20);
    px_buf_init(&db, 1 << 20);
    size_t records = 0, changes_total = 0, expires = 0;
    for (int ent = 0; ent < 8; ent++) {
        char id[8];
        snprintf(id, sizeof id, "e%d", ent);
        key_init(&K, id);
        memset(l.n, 0, sizeof l.n);
        gen_logs(&g, &c, &l, 300);
        for (int t = 0; t < PX_SRC__COUNT; t++) {
            records += l.n[t];
            for (size_t i = 0; i < l.n[t]; i++)
                if (l.ev[t][i].type == (l.ev[t][i].kind == PX_KIND_PRESENCE ? PX_PRES_EXPIRE
                                        : l.ev[t][i].kind == PX_KIND_LOCK   ? PX_LOCK_EXPIRE
                                                                            : PX_LC_EXPIRE))
                    expires++;
        }
        px_entity_t first, other;
        px_entity_init(&first, &K);
        fold_interleaved(&g, &c, &l, &first, &ref);
        px_buf_reset(&da);
        assert_int_equal(px_entity_dump(&first, &da), 0);
        for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) changes_total += ref.per_record[i].len ? 1 : 0;
        for (int run_i = 0; run_i < 60; run_i++) {
            px_entity_init(&other, &K);
            fold_interleaved(&g, &c, &l, &other, &run);
            if (!px_entity_equal(&first, &other)) {
                px_buf_reset(&db);
                px_entity_dump(&other, &db);
                fail_msg("entity %d run %d: states differ\n%s\n%s", ent, run_i, da.data, db.data);
            }
            for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) {
                const char *x = ref.per_record[i].data ? ref.per_record[i].data : "";
                const char *y = run.per_record[i].data ? run.per_record[i].data : "";
                if (strcmp(x, y) != 0)
                    fail_msg("entity %d run %d: topic %zu offset %zu changes differ:\n%s\n%s", ent, run_i,
                             i / LOG_MAX, i % LOG_MAX, x, y);
            }
            px_entity_term(&other);
        }
        px_entity_term(&first);
    }
    print_message("interleaving: %zu records (%zu EXPIREs), %zu with changes, 8 entities x 61 interleavings\n",
                  records, expires, changes_total);
    assert_true(expires > 20);
    for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) {
        px_buf_term(&ref.per_record[i]);
        px_buf_term(&run.per_record[i]);
    }
    free(ref.per_record);
    free(run.per_record);
    px_buf_term(&da);
    px_buf_term(&db);
    for (int t = 0; t < PX_SRC__COUNT; t++) free(l.ev[t]);
    key_init(&K, "1");
}

/* ---- property 2: a brute-force model of presence and locks ------------------------ */

typedef struct {
    bool used;
    char tab[8], user[8];
    int mode, status, dirty;
    char field[8];
    int64_t since, seen;
} mtab_t;

typedef struct {
    bool used;
    char field[8], tab[8], user[8];
    int64_t token, refreshed;
} mlock_t;

typedef struct {
    mtab_t tabs[16];
    mlock_t locks[16];
    int64_t pres_ts;
} model_t;

/* The model's answer: the change type the record should yield, or -1. */
static int model_apply(model_t *m, const px_fold_conf_t *c, const px_event_t *ev, int64_t off) {
    if (ev->kind == PX_KIND_PRESENCE) {
        if (ev->ts_ms > m->pres_ts) m->pres_ts = ev->ts_ms;
        mtab_t *t = NULL;
        for (int i = 0; i < 16; i++)
            if (m->tabs[i].used && !strcmp(m->tabs[i].tab, ev->tab_id)) t = &m->tabs[i];
        if (t && strcmp(t->user, ev->user_id)) return -1;
        if (ev->type == PX_PRES_UNSUB) {
            if (!t) return -1;
            t->used = false;
            return PX_CH_LEFT;
        }
        if (ev->type == PX_PRES_EXPIRE) {
            if (!t || t->seen + c->presence_ttl_ms > ev->expires_at_ms) return -1;
            t->used = false;
            return PX_CH_TIMED_OUT;
        }
        if (!t) {
            for (int i = 0; i < 16 && !t; i++)
                if (!m->tabs[i].used) t = &m->tabs[i];
            if (!t) { /* the model holds 16 tabs; the generator stays below */
                fail();
                return -1;
            }
            memset(t, 0, sizeof *t);
            t->used = true;
            strcpy(t->tab, ev->tab_id);
            strcpy(t->user, ev->user_id);
            t->mode = ev->mode, t->status = ev->status, t->dirty = ev->dirty;
            strcpy(t->field, ev->field);
            t->since = t->seen = ev->ts_ms;
            return PX_CH_JOINED;
        }
        if (ev->ts_ms > t->seen) t->seen = ev->ts_ms;
        if (t->mode == (int)ev->mode && t->status == (int)ev->status && t->dirty == (int)ev->dirty &&
            !strcmp(t->field, ev->field))
            return -1;
        t->mode = ev->mode, t->status = ev->status, t->dirty = ev->dirty;
        strcpy(t->field, ev->field);
        return PX_CH_UPDATED;
    }
    mlock_t *l = NULL;
    for (int i = 0; i < 16; i++)
        if (m->locks[i].used && !strcmp(m->locks[i].field, ev->field)) l = &m->locks[i];
    bool mine = l && !strcmp(l->tab, ev->tab_id) && !strcmp(l->user, ev->user_id);
    switch (ev->type) {
    case PX_LOCK_LOCK:
        if (!l) {
            for (int i = 0; i < 16 && !l; i++)
                if (!m->locks[i].used) l = &m->locks[i];
            l->used = true;
            strcpy(l->field, ev->field);
            strcpy(l->tab, ev->tab_id);
            strcpy(l->user, ev->user_id);
            l->token = off;
            l->refreshed = ev->ts_ms;
            return PX_CH_LOCK_GRANTED;
        }
        if (!mine) return PX_CH_LOCK_DENIED;
        if (ev->ts_ms > l->refreshed) l->refreshed = ev->ts_ms;
        return PX_CH_LOCK_GRANTED;
    case PX_LOCK_UNLOCK:
        if (!l) return -1;
        if (!mine) return PX_CH_LOCK_DENIED;
        l->used = false;
        return PX_CH_LOCK_RELEASED;
    default:
        if (!mine || l->refreshed + c->lock_ttl_ms > ev->expires_at_ms) return -1;
        l->used = false;
        return PX_CH_LOCK_EXPIRED;
    }
}

static void model_compare(const model_t *m, const px_entity_t *e, const px_fold_conf_t *c, size_t step) {
    size_t nt = 0, nl = 0;
    for (int i = 0; i < 16; i++) {
        const mtab_t *t = &m->tabs[i];
        if (!t->used) continue;
        nt++;
        const px_fold_tab_t *f = tab_get(e, t->tab);
        if (!f) fail_msg("step %zu: tab %s missing", step, t->tab);
        if (strcmp(px_fold_tab_user_id(f), t->user) || f->mode != t->mode || f->status != t->status ||
            f->dirty != t->dirty || strcmp(px_fold_tab_field(f), t->field) || f->since_ms != t->since ||
            f->last_seen_ms != t->seen)
            fail_msg("step %zu: tab %s differs", step, t->tab);
    }
    for (int i = 0; i < 16; i++) {
        const mlock_t *l = &m->locks[i];
        if (!l->used) continue;
        nl++;
        const px_fold_lock_t *f = lock_get(e, l->field);
        if (!f) fail_msg("step %zu: lock %s missing", step, l->field);
        if (strcmp(px_fold_lock_tab_id(f), l->tab) || strcmp(px_fold_lock_user_id(f), l->user) ||
            f->token != l->token ||
            f->refreshed_ms != l->refreshed)
            fail_msg("step %zu: lock %s differs", step, l->field);
        /* the derived deadline, computed the long way */
        int64_t base = l->refreshed;
        for (int j = 0; j < 16; j++)
            if (m->tabs[j].used && !strcmp(m->tabs[j].tab, l->tab) && !strcmp(m->tabs[j].user, l->user) &&
                m->tabs[j].seen > base)
                base = m->tabs[j].seen;
        assert_int_equal(px_fold_lock_deadline(e, c, f), base + c->lock_ttl_ms);
    }
    if (nt != e->n_tabs || nl != e->n_locks) fail_msg("step %zu: counts differ", step);
    assert_int_equal(m->pres_ts, e->pres_ts_ms);
    for (size_t i = 1; i < e->n_tabs; i++)
        assert_true(strcmp(px_fold_tab_id(&e->tabs[i - 1]), px_fold_tab_id(&e->tabs[i])) < 0);
    for (size_t i = 1; i < e->n_locks; i++)
        assert_true(strcmp(px_fold_lock_field(&e->locks[i - 1]), px_fold_lock_field(&e->locks[i])) < 0);
}

static void test_prop_model(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    rng_t g = {777};
    px_entity_t e;
    model_t *m = calloc(1, sizeof *m);
    px_entity_init(&e, &K);
    int64_t now = 1700000000000LL;
    size_t steps = 20000, counted[PX_CH__COUNT] = {0};
    rec_t r;
    for (size_t s = 0; s < steps; s++) {
        now += rng_below(&g, 8000);
        px_event_t ev = random_record(&g, now);
        if (ev.kind == PX_KIND_LIFECYCLE || rng_below(&g, 6) == 0) { /* an EXPIRE with a deadline near the item's */
            static const char *const tabs[] = {"t1", "t2", "t3", "t4", "t5"};
            static const char *const users[] = {"u1", "u1", "u2", "u3", "u3"};
            uint32_t ti = rng_below(&g, 5);
            int64_t deadline = now - (int64_t)rng_below(&g, 200000);
            if (rng_below(&g, 2)) {
                ev = pres(PX_PRES_EXPIRE, tabs[ti], users[ti], now);
            } else {
                ev = lockev(PX_LOCK_EXPIRE, (const char *[]){"a", "b", "c", "d"}[rng_below(&g, 4)], tabs[ti],
                            users[ti], now);
            }
            ev.expires_at_ms = deadline;
        }
        int want = model_apply(m, &c, &ev, (int64_t)s);
        app_ok(&e, &c, ev, (int64_t)s, &r);
        if (want < 0) {
            if (r.n) fail_msg("step %zu: model: no change, fold: %s", s, px_event_type_name(PX_KIND_CHANGE, r.ev[0].type));
        } else {
            if (r.n != 1 || r.ev[0].type != want)
                fail_msg("step %zu: model %s, fold %zu changes", s, px_event_type_name(PX_KIND_CHANGE, want), r.n);
            counted[want]++;
        }
        check_changes(&r);
        model_compare(m, &e, &c, s);
    }
    for (int t = PX_CH_JOINED; t <= PX_CH_LOCK_EXPIRED; t++)
        if (counted[t] < 20) fail_msg("model test saw only %zu %s", counted[t], px_event_type_name(PX_KIND_CHANGE, t));
    print_message("model: %zu steps, %zu joined %zu timed out %zu granted %zu expired\n", steps, counted[PX_CH_JOINED],
                  counted[PX_CH_TIMED_OUT], counted[PX_CH_LOCK_GRANTED], counted[PX_CH_LOCK_EXPIRED]);
    free(m);
    px_entity_term(&e);
}

/* ---- property 3: caps hold, refusals change nothing, nothing crashes ------------------- */

static void random_string(rng_t *g, char *dst, size_t max) {
    static const char alpha[] = "ab\"\\\n\x01xy";
    size_t n = rng_below(g, 4) == 0 ? max : rng_below(g, 4);
    for (size_t i = 0; i < n; i++) dst[i] = alpha[rng_below(g, sizeof alpha - 1)];
    if (n == 0 && max) dst[n++] = 'z';
    dst[n] = '\0';
}

static int64_t random_time(rng_t *g) {
    switch (rng_below(g, 6)) {
    case 0: return 1;
    case 1: return INT64_MAX - (int64_t)rng_below(g, 3);
    default: return 1000 + (int64_t)rng_below(g, 400000);
    }
}

static void test_prop_caps_and_hostile(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    c.max_tabs = 4;
    c.max_locks = 3;
    c.max_open_writes = 3;
    rng_t g = {99};
    px_entity_t e, before;
    px_entity_init(&e, &K);
    px_entity_init(&before, &K);
    px_buf_t out;
    px_buf_init(&out, 1 << 20);
    size_t refused = 0, steps = 30000;
    rec_t r;
    due_t d;
    px_viewer_t vw[8];
    px_lock_view_t lv[8];
    px_presence_view_t v;
    for (size_t s = 0; s < steps; s++) {
        px_event_t ev;
        px_kind_t kind = (px_kind_t)rng_below(&g, 3);
        px_event_init(&ev, kind);
        ev.type = (int)rng_below(&g, (uint32_t)px_event_type_count(kind));
        ev.key = K;
        ev.ts_ms = random_time(&g);
        char pool[8][4] = {"a", "b", "c", "d", "e", "f", "g", ""};
        strcpy(ev.tab_id, pool[rng_below(&g, 7)]);
        strcpy(ev.user_id, pool[rng_below(&g, 3)]);
        strcpy(ev.field, pool[rng_below(&g, 6)]);
        strcpy(ev.write_id, pool[rng_below(&g, 8)]);
        random_string(&g, ev.user_name, rng_below(&g, 2) ? PX_NAME_MAX : 3);
        random_string(&g, ev.busy_by, PX_NAME_MAX);
        random_string(&g, ev.cursor, PX_NAME_MAX);
        ev.mode = (px_mode_t)rng_below(&g, 2);
        ev.status = (px_status_t)rng_below(&g, 2);
        ev.dirty = rng_below(&g, 2);
        if (rng_below(&g, 2)) ev.expires_at_ms = random_time(&g);
        if (rng_below(&g, 2)) ev.version = rng_below(&g, 2) ? INT64_MAX : (int64_t)rng_below(&g, 9);
        char err[256];
        if (px_event_validate(&ev, err, sizeof err)) continue; /* the fold only sees valid records */
        px_src_t src = {(px_src_topic_t)rng_below(&g, PX_SRC__COUNT), (int32_t)rng_below(&g, 4),
                        rng_below(&g, 10) == 0 ? -1 : (int64_t)s};
        if (rng_below(&g, 4)) src.topic = topic_of(&ev); /* mostly the right topic */
        assert_int_equal(px_entity_copy(&before, &e), 0);
        r.n = 0;
        int rc = px_fold_apply(&e, &c, &ev, &src, rec_emit, &r);
        if (rc) {
            assert_int_equal(rc, PX_EINVAL);
            assert_int_equal(r.n, 0);
            assert_true(px_entity_equal(&before, &e));
            refused++;
        } else {
            check_changes(&r);
        }
        assert_true(e.n_tabs <= c.max_tabs && e.n_locks <= c.max_locks && e.n_writes <= c.max_open_writes);
        assert_true(e.n_gone <= PX_FOLD_GONE_MAX && e.n_done <= PX_FOLD_DONE_MAX);
        assert_true(e.cap_tabs <= c.max_tabs && e.cap_locks <= c.max_locks && e.cap_writes <= c.max_open_writes);
        if (s % 7 == 0) {
            int64_t now = random_time(&g);
            due(&e, &c, now, &d);
            (void)px_fold_next_deadline(&e, &c);
            assert_int_equal(px_fold_view(&e, &c, now, vw, 8, lv, 8, &v), 0);
            px_buf_reset(&out);
            assert_int_equal(px_entity_dump(&e, &out), 0);
            /* the dump is JSON the protocol side can carry */
            assert_true(out.len > 2 && out.data[0] == '{' && out.data[out.len - 1] == '}');
        }
    }
    print_message("hostile: %zu steps, %zu refused\n", steps, refused);
    assert_true(refused > 100);
    px_buf_term(&out);
    px_entity_term(&before);
    px_entity_term(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prop_interleaving),
        cmocka_unit_test(test_prop_model),
        cmocka_unit_test(test_prop_caps_and_hostile),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
