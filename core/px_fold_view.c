/*
 * px_fold_view.c - reading a folded entity: the presence view at a given
 * time (px_fold_view, px_fold_stale), state equality (px_entity_equal) and
 * the canonical JSON dump (px_entity_dump) used by test diffs and
 * `presencectl verify`. Nothing here changes an entity. See px_fold.h.
 */
#include "px_fold.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"

/* ---- view ------------------------------------------------------------------ */

static int px_fold_viewer_cmp(const void *a, const void *b) {
    return strcmp(((const px_viewer_t *)a)->user_id, ((const px_viewer_t *)b)->user_id);
}

bool px_fold_stale(const px_entity_t *e, const px_fold_conf_t *c, int64_t now_ms, const char **busy_by) {
    const px_fold_write_t *latest = NULL;
    for (size_t i = 0; i < e->n_writes; i++) {
        const px_fold_write_t *w = &e->writes[i];
        int64_t d = px_fold_write_deadline(c, w);
        if (d <= now_ms) continue;
        if (!latest || w->ts_ms >= latest->ts_ms) latest = w; /* ties: the later MUTATING */
    }
    if (busy_by) *busy_by = latest ? px_fold_write_busy_by(latest) : "";
    return latest != NULL;
}

int px_fold_view(const px_entity_t *e, const px_fold_conf_t *c, int64_t now_ms, px_viewer_t *viewers,
                 size_t viewers_cap, px_lock_view_t *locks, size_t locks_cap, px_presence_view_t *out) {
    size_t nv = 0, nl = 0;
    for (size_t i = 0; i < e->n_tabs; i++) {
        const px_fold_tab_t *t = &e->tabs[i];
        int64_t d = px_fold_tab_deadline(c, t);
        if (d <= now_ms) continue;
        px_viewer_t *v = NULL;
        for (size_t j = 0; j < nv; j++)
            if (strcmp(viewers[j].user_id, px_fold_tab_user_id(t)) == 0) v = &viewers[j];
        if (!v) {
            if (nv == viewers_cap) return PX_ENOMEM;
            v = &viewers[nv++];
            v->user_id = px_fold_tab_user_id(t);
            v->name = px_fold_tab_user_name(t); /* from the user's first tab by tab id */
            v->tabs = 0;
            v->has_dirty_tab = false;
            v->mode = PX_MODE_VIEW;
            v->status = PX_STATUS_AWAY;
        }
        v->tabs++;
        if (t->dirty) v->has_dirty_tab = true;
        if (t->mode == PX_MODE_EDIT) v->mode = PX_MODE_EDIT;
        if (t->status == PX_STATUS_ONLINE) v->status = PX_STATUS_ONLINE;
    }
    if (nv > 1) qsort(viewers, nv, sizeof *viewers, px_fold_viewer_cmp);
    for (size_t i = 0; i < e->n_locks; i++) {
        const px_fold_lock_t *l = &e->locks[i];
        int64_t d = px_fold_lock_deadline(e, c, l);
        if (d <= now_ms) continue;
        if (nl == locks_cap) return PX_ENOMEM;
        px_lock_view_t *lv = &locks[nl++];
        lv->field = px_fold_lock_field(l);
        lv->user_id = px_fold_lock_user_id(l);
        lv->name = px_fold_lock_user_name(l);
        lv->tab_id = px_fold_lock_tab_id(l);
        lv->token = l->token;
        lv->expires_at_ms = d;
    }
    memset(out, 0, sizeof *out);
    out->key = &e->key;
    out->viewers = viewers;
    out->n_viewers = nv;
    out->locks = locks;
    out->n_locks = nl;
    out->stale = px_fold_stale(e, c, now_ms, &out->busy_by);
    out->version = e->version;
    return 0;
}

/* ---- equality ---------------------------------------------------------------- */

static bool px_fold_tab_equal(const px_fold_tab_t *a, const px_fold_tab_t *b) {
    return strcmp(px_fold_tab_id(a), px_fold_tab_id(b)) == 0 &&
           strcmp(px_fold_tab_user_id(a), px_fold_tab_user_id(b)) == 0 &&
           strcmp(px_fold_tab_user_name(a), px_fold_tab_user_name(b)) == 0 &&
           strcmp(px_fold_tab_field(a), px_fold_tab_field(b)) == 0 &&
           strcmp(px_fold_tab_cursor(a), px_fold_tab_cursor(b)) == 0 && a->since_ms == b->since_ms &&
           a->last_seen_ms == b->last_seen_ms &&
           a->mode == b->mode && a->status == b->status && a->dirty == b->dirty;
}

static bool px_fold_lock_equal(const px_fold_lock_t *a, const px_fold_lock_t *b) {
    return strcmp(px_fold_lock_field(a), px_fold_lock_field(b)) == 0 &&
           strcmp(px_fold_lock_tab_id(a), px_fold_lock_tab_id(b)) == 0 &&
           strcmp(px_fold_lock_user_id(a), px_fold_lock_user_id(b)) == 0 &&
           strcmp(px_fold_lock_user_name(a), px_fold_lock_user_name(b)) == 0 &&
           a->token == b->token && a->refreshed_ms == b->refreshed_ms;
}

static bool px_fold_write_equal(const px_fold_write_t *a, const px_fold_write_t *b) {
    return strcmp(px_fold_write_id(a), px_fold_write_id(b)) == 0 &&
           strcmp(px_fold_write_busy_by(a), px_fold_write_busy_by(b)) == 0 && a->ts_ms == b->ts_ms;
}

/* The i-th oldest completed id of the ring. */
static uint64_t px_fold_done_at(const px_entity_t *e, size_t i) {
    return e->done[(e->done_head + i) % (e->n_done ? e->n_done : 1)];
}

bool px_entity_equal(const px_entity_t *a, const px_entity_t *b) {
    if (!px_key_equal(&a->key, &b->key) || a->n_tabs != b->n_tabs || a->n_locks != b->n_locks ||
        a->n_writes != b->n_writes || a->n_gone != b->n_gone || a->n_done != b->n_done ||
        a->pres_ts_ms != b->pres_ts_ms || a->closed_up_to_ms != b->closed_up_to_ms || a->version != b->version)
        return false;
    for (size_t i = 0; i < a->n_tabs; i++)
        if (!px_fold_tab_equal(&a->tabs[i], &b->tabs[i])) return false;
    for (size_t i = 0; i < a->n_locks; i++)
        if (!px_fold_lock_equal(&a->locks[i], &b->locks[i])) return false;
    for (size_t i = 0; i < a->n_writes; i++)
        if (!px_fold_write_equal(&a->writes[i], &b->writes[i])) return false;
    for (size_t i = 0; i < a->n_gone; i++)
        if (a->gone[i].ts_ms != b->gone[i].ts_ms || a->gone[i].id_hash != b->gone[i].id_hash) return false;
    for (size_t i = 0; i < a->n_done; i++)
        if (px_fold_done_at(a, i) != px_fold_done_at(b, i)) return false;
    return true;
}

/* ---- dump ----------------------------------------------------------------------- */

int px_entity_dump_parts(const px_entity_t *e, px_buf_t *out) {
    int rc = 0;
#define PX_TRY(x)                                                                                  \
    do {                                                                                           \
        if ((rc = (x)) != 0) return rc;                                                            \
    } while (0)
    PX_TRY(px_buf_puts(out, "\"pres_ts\":"));
    PX_TRY(px_buf_put_i64(out, e->pres_ts_ms));
    PX_TRY(px_buf_puts(out, ",\"tabs\":["));
    for (size_t i = 0; i < e->n_tabs; i++) {
        const px_fold_tab_t *t = &e->tabs[i];
        PX_TRY(px_buf_puts(out, i ? ",{\"tab\":" : "{\"tab\":"));
        PX_TRY(px_proto_write_string(out, px_fold_tab_id(t)));
        PX_TRY(px_buf_puts(out, ",\"user\":"));
        PX_TRY(px_proto_write_string(out, px_fold_tab_user_id(t)));
        PX_TRY(px_buf_puts(out, ",\"name\":"));
        PX_TRY(px_proto_write_string(out, px_fold_tab_user_name(t)));
        PX_TRY(px_buf_puts(out, t->mode == PX_MODE_EDIT ? ",\"mode\":\"edit\",\"dirty\":" : ",\"mode\":\"view\",\"dirty\":"));
        PX_TRY(px_buf_puts(out, t->dirty ? "true" : "false"));
        PX_TRY(px_buf_puts(out, t->status == PX_STATUS_AWAY ? ",\"status\":\"away\",\"field\":"
                                                             : ",\"status\":\"online\",\"field\":"));
        PX_TRY(px_proto_write_string(out, px_fold_tab_field(t)));
        PX_TRY(px_buf_puts(out, ",\"cursor\":"));
        PX_TRY(px_proto_write_string(out, px_fold_tab_cursor(t)));
        PX_TRY(px_buf_puts(out, ",\"since\":"));
        PX_TRY(px_buf_put_i64(out, t->since_ms));
        PX_TRY(px_buf_puts(out, ",\"last_seen\":"));
        PX_TRY(px_buf_put_i64(out, t->last_seen_ms));
        PX_TRY(px_buf_puts(out, "}"));
    }
    PX_TRY(px_buf_puts(out, "],\"locks\":["));
    for (size_t i = 0; i < e->n_locks; i++) {
        const px_fold_lock_t *l = &e->locks[i];
        PX_TRY(px_buf_puts(out, i ? ",{\"field\":" : "{\"field\":"));
        PX_TRY(px_proto_write_string(out, px_fold_lock_field(l)));
        PX_TRY(px_buf_puts(out, ",\"tab\":"));
        PX_TRY(px_proto_write_string(out, px_fold_lock_tab_id(l)));
        PX_TRY(px_buf_puts(out, ",\"user\":"));
        PX_TRY(px_proto_write_string(out, px_fold_lock_user_id(l)));
        PX_TRY(px_buf_puts(out, ",\"name\":"));
        PX_TRY(px_proto_write_string(out, px_fold_lock_user_name(l)));
        PX_TRY(px_buf_puts(out, ",\"token\":"));
        PX_TRY(px_buf_put_i64(out, l->token));
        PX_TRY(px_buf_puts(out, ",\"refreshed\":"));
        PX_TRY(px_buf_put_i64(out, l->refreshed_ms));
        PX_TRY(px_buf_puts(out, "}"));
    }
    PX_TRY(px_buf_puts(out, "],\"writes\":["));
    for (size_t i = 0; i < e->n_writes; i++) {
        const px_fold_write_t *w = &e->writes[i];
        PX_TRY(px_buf_puts(out, i ? ",{\"write_id\":" : "{\"write_id\":"));
        PX_TRY(px_proto_write_string(out, px_fold_write_id(w)));
        PX_TRY(px_buf_puts(out, ",\"busy_by\":"));
        PX_TRY(px_proto_write_string(out, px_fold_write_busy_by(w)));
        PX_TRY(px_buf_puts(out, ",\"ts\":"));
        PX_TRY(px_buf_put_i64(out, w->ts_ms));
        PX_TRY(px_buf_puts(out, "}"));
    }
    PX_TRY(px_buf_puts(out, "],\"gone\":["));
    for (size_t i = 0; i < e->n_gone; i++) {
        PX_TRY(px_buf_puts(out, i ? ",{\"ts\":" : "{\"ts\":"));
        PX_TRY(px_buf_put_i64(out, e->gone[i].ts_ms));
        PX_TRY(px_buf_puts(out, ",\"id\":\""));
        PX_TRY(px_buf_put_hex64(out, e->gone[i].id_hash));
        PX_TRY(px_buf_puts(out, "\"}"));
    }
    PX_TRY(px_buf_puts(out, "],\"done\":["));
    for (size_t i = 0; i < e->n_done; i++) {
        PX_TRY(px_buf_puts(out, i ? ",\"" : "\""));
        PX_TRY(px_buf_put_hex64(out, px_fold_done_at(e, i)));
        PX_TRY(px_buf_puts(out, "\""));
    }
    PX_TRY(px_buf_puts(out, "],\"closed_up_to\":"));
    PX_TRY(px_buf_put_i64(out, e->closed_up_to_ms));
    PX_TRY(px_buf_puts(out, ",\"version\":"));
    PX_TRY(px_buf_put_i64(out, e->version));
#undef PX_TRY
    return 0;
}

int px_entity_dump(const px_entity_t *e, px_buf_t *out) {
    size_t mark = out->len;
    char key[PX_KEY_MAX + 1];
    if (px_key_format(&e->key, key, sizeof key) < 0) key[0] = '\0';
    int rc = px_buf_puts(out, "{\"key\":");
    if (!rc) rc = px_proto_write_string(out, key);
    if (!rc) rc = px_buf_puts(out, ",");
    if (!rc) rc = px_entity_dump_parts(e, out);
    if (!rc) rc = px_buf_puts(out, "}");
    if (rc) { /* leave out as it was */
        out->len = mark;
        if (out->data) out->data[mark] = '\0';
    }
    return rc;
}
