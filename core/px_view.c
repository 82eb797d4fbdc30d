/* px_view.c - Redis view value formats and aggregation. See px_view.h. */
#include "px_view.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "px_err.h"

int px_view_key(const px_key_t *key, const char *suffix, char *out, size_t out_size) {
    int n = snprintf(out, out_size, "presence:{%s:%s:%s}:%s", key->tenant, key->entity, key->id,
                     suffix);
    return (n < 0 || (size_t)n >= out_size) ? -1 : n;
}

int px_view_channel(const px_key_t *key, char *out, size_t out_size) {
    int n = snprintf(out, out_size, "presence:updates:{%s:%s:%s}", key->tenant, key->entity,
                     key->id);
    return (n < 0 || (size_t)n >= out_size) ? -1 : n;
}

int px_view_channel_parse(const char *channel, size_t len, px_key_t *out) {
    static const char pre[] = "presence:updates:{";
    size_t pl = sizeof pre - 1;
    if (len < pl + 2 || memcmp(channel, pre, pl) != 0 || channel[len - 1] != '}')
        return PX_EINVAL;
    return px_key_parse(channel + pl, len - pl - 1, out, NULL, 0) ? PX_EINVAL : 0;
}

int px_view_tab_encode(const px_view_tab_t *t, px_buf_t *out) {
    size_t mark = out->len;
    int rc = px_buf_puts(out, "{\"tab\":");
    if (!rc) rc = px_proto_write_string(out, t->tab_id);
    if (!rc) rc = px_buf_puts(out, ",\"deadline\":");
    if (!rc) rc = px_buf_put_i64(out, t->deadline_ms);
    if (!rc) rc = px_buf_puts(out, ",\"user\":");
    if (!rc) rc = px_proto_write_string(out, t->user_id);
    if (!rc) rc = px_buf_puts(out, ",\"name\":");
    if (!rc) rc = px_proto_write_string(out, t->user_name);
    if (!rc) rc = px_buf_puts(out, t->mode == PX_MODE_EDIT ? ",\"mode\":\"edit\",\"dirty\":" : ",\"mode\":\"view\",\"dirty\":");
    if (!rc) rc = px_buf_puts(out, t->dirty ? "true" : "false");
    if (!rc) rc = px_buf_puts(out, t->status == PX_STATUS_AWAY ? ",\"status\":\"away\",\"field\":"
                                                                : ",\"status\":\"online\",\"field\":");
    if (!rc) rc = px_proto_write_string(out, t->field);
    if (!rc) rc = px_buf_puts(out, ",\"cursor\":");
    if (!rc) rc = px_proto_write_string(out, t->cursor);
    if (!rc) rc = px_buf_puts(out, ",\"since\":");
    if (!rc) rc = px_buf_put_i64(out, t->since_ms);
    if (!rc) rc = px_buf_puts(out, "}");
    if (rc) {
        out->len = mark;
        if (out->data) out->data[mark] = '\0';
    }
    return rc;
}

/* Copy a JSON string member into dst (size n); absent is empty, anything
 * else that is not a string that fits is an error. */
static int get_str(json_t *o, const char *k, char *dst, size_t n, int required) {
    json_t *v = json_object_get(o, k);
    if (!v) {
        if (required) return PX_EINVAL;
        dst[0] = '\0';
        return 0;
    }
    if (!json_is_string(v)) return PX_EINVAL;
    size_t l = json_string_length(v);
    const char *s = json_string_value(v);
    if (l >= n || memchr(s, '\0', l)) return PX_EINVAL;
    memcpy(dst, s, l);
    dst[l] = '\0';
    return 0;
}

/* A required integer member >= 0. */
static int get_nonneg(json_t *o, const char *k, int64_t *dst) {
    json_t *v = json_object_get(o, k);
    if (!v || !json_is_integer(v) || json_integer_value(v) < 0) return PX_EINVAL;
    *dst = (int64_t)json_integer_value(v);
    return 0;
}

/* One of two words, absent = the first. */
static int get_word(json_t *o, const char *k, const char *a, const char *b, int *out) {
    char w[8];
    if (get_str(o, k, w, sizeof w, 0)) return PX_EINVAL;
    if (!w[0] || strcmp(w, a) == 0) *out = 0;
    else if (strcmp(w, b) == 0) *out = 1;
    else return PX_EINVAL;
    return 0;
}

static int tab_from_json(json_t *o, px_view_tab_t *out) {
    int mode, status;
    if (!json_is_object(o)) return PX_EINVAL;
    if (get_str(o, "tab", out->tab_id, sizeof out->tab_id, 1) || !out->tab_id[0]) return PX_EINVAL;
    if (get_nonneg(o, "deadline", &out->deadline_ms)) return PX_EINVAL;
    if (get_str(o, "user", out->user_id, sizeof out->user_id, 1) || !out->user_id[0]) return PX_EINVAL;
    if (get_str(o, "name", out->user_name, sizeof out->user_name, 0)) return PX_EINVAL;
    if (get_word(o, "mode", "view", "edit", &mode)) return PX_EINVAL;
    if (get_word(o, "status", "online", "away", &status)) return PX_EINVAL;
    if (get_str(o, "field", out->field, sizeof out->field, 0)) return PX_EINVAL;
    if (get_str(o, "cursor", out->cursor, sizeof out->cursor, 0)) return PX_EINVAL;
    out->mode = mode ? PX_MODE_EDIT : PX_MODE_VIEW;
    out->status = status ? PX_STATUS_AWAY : PX_STATUS_ONLINE;
    json_t *d = json_object_get(o, "dirty");
    if (d && !json_is_boolean(d)) return PX_EINVAL;
    out->dirty = d && json_is_true(d);
    json_t *s = json_object_get(o, "since");
    if (s && (!json_is_integer(s) || json_integer_value(s) < 0)) return PX_EINVAL;
    out->since_ms = s ? (int64_t)json_integer_value(s) : 0;
    return 0;
}

int px_view_lock_encode(const px_view_lock_t *l, px_buf_t *out) {
    size_t mark = out->len;
    int rc = px_buf_puts(out, "{\"field\":");
    if (!rc) rc = px_proto_write_string(out, l->field);
    if (!rc) rc = px_buf_puts(out, ",\"user\":");
    if (!rc) rc = px_proto_write_string(out, l->user_id);
    if (!rc) rc = px_buf_puts(out, ",\"name\":");
    if (!rc) rc = px_proto_write_string(out, l->user_name);
    if (!rc) rc = px_buf_puts(out, ",\"tab\":");
    if (!rc) rc = px_proto_write_string(out, l->tab_id);
    if (!rc) rc = px_buf_puts(out, ",\"token\":");
    if (!rc) rc = px_buf_put_i64(out, l->token);
    if (!rc) rc = px_buf_puts(out, ",\"deadline\":");
    if (!rc) rc = px_buf_put_i64(out, l->deadline_ms);
    if (!rc) rc = px_buf_puts(out, "}");
    if (rc) {
        out->len = mark;
        if (out->data) out->data[mark] = '\0';
    }
    return rc;
}

static int lock_from_json(json_t *o, px_view_lock_t *out) {
    if (!json_is_object(o)) return PX_EINVAL;
    if (get_str(o, "field", out->field, sizeof out->field, 1) || !out->field[0]) return PX_EINVAL;
    if (get_str(o, "user", out->user_id, sizeof out->user_id, 1) || !out->user_id[0]) return PX_EINVAL;
    if (get_str(o, "name", out->user_name, sizeof out->user_name, 1)) return PX_EINVAL;
    if (get_str(o, "tab", out->tab_id, sizeof out->tab_id, 1)) return PX_EINVAL;
    if (get_nonneg(o, "token", &out->token) || get_nonneg(o, "deadline", &out->deadline_ms)) return PX_EINVAL;
    return 0;
}

int px_view_decode(const char *json, size_t len, int64_t now_ms, px_view_t *v) {
    v->n_tabs = v->n_locks = 0;
    v->n_dropped = 0;
    v->stale = false;
    v->busy_by[0] = '\0';
    v->stale_until_ms = v->version = 0;
    if (len > PX_VIEW_MAX_BYTES) return PX_EINVAL;
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *x;
    int rc = PX_EINVAL;
    size_t i;
    if (!o || !json_is_object(o)) goto done;
    json_t *tabs = json_object_get(o, "tabs"), *locks = json_object_get(o, "locks");
    if (!json_is_array(tabs) || !json_is_array(locks)) goto done;
    json_array_foreach(tabs, i, x) {
        px_view_tab_t *t = v->n_tabs < v->max_tabs ? &v->tabs[v->n_tabs] : &v->scratch_tab;
        if (tab_from_json(x, t)) goto done;
        if (t->deadline_ms <= now_ms) continue; /* expired, not yet removed */
        if (t == &v->scratch_tab) v->n_dropped++;
        else v->n_tabs++;
    }
    json_array_foreach(locks, i, x) {
        px_view_lock_t *l = v->n_locks < v->max_locks ? &v->locks[v->n_locks] : &v->scratch_lock;
        if (lock_from_json(x, l)) goto done;
        if (l->deadline_ms <= now_ms) continue;
        if (l == &v->scratch_lock) v->n_dropped++;
        else v->n_locks++;
    }
    json_t *st = json_object_get(o, "stale");
    if (!json_is_boolean(st) || get_str(o, "busyBy", v->busy_by, sizeof v->busy_by, 1) ||
        get_nonneg(o, "stale_until", &v->stale_until_ms) || get_nonneg(o, "version", &v->version))
        goto done;
    /* stale only while stale_until is ahead: a stopped processor's flag ends by itself */
    v->stale = json_is_true(st) && v->stale_until_ms > now_ms;
    if (!v->stale) v->busy_by[0] = '\0';
    rc = 0;
done:
    if (rc) v->n_tabs = v->n_locks = v->n_dropped = 0;
    json_decref(o);
    return rc;
}

size_t px_view_aggregate(const px_view_tab_t *tabs, size_t n, px_viewer_t *viewers) {
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        const px_view_tab_t *t = &tabs[i];
        size_t j = 0;
        while (j < nv && strcmp(viewers[j].user_id, t->user_id) != 0) j++;
        if (j == nv) {
            viewers[nv++] = (px_viewer_t){.user_id = t->user_id,
                                          .name = t->user_name,
                                          .tabs = 0,
                                          .has_dirty_tab = false,
                                          .mode = PX_MODE_VIEW,
                                          .status = PX_STATUS_AWAY};
        }
        px_viewer_t *v = &viewers[j];
        v->tabs++;
        if (t->dirty) v->has_dirty_tab = true;
        if (t->mode == PX_MODE_EDIT) v->mode = PX_MODE_EDIT;
        if (t->status == PX_STATUS_ONLINE) v->status = PX_STATUS_ONLINE;
        if (!v->name[0] && t->user_name[0]) v->name = t->user_name;
    }
    return nv;
}
