/*
 * px_notify.c - the processor's notification: encode (processor) and
 * decode (gateway). Format and contracts: px_notify.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <string.h>

#include <jansson.h>

#include "px_err.h"
#include "px_notify.h"
#include "px_proto.h"

static const char DECIDED_OPEN[] = "{\"decided\":[";

void px_notify_init(px_notify_t *n, size_t max) {
    px_buf_init(&n->body, max);
    n->n = 0;
    n->pending = false;
}

void px_notify_term(px_notify_t *n) {
    px_buf_term(&n->body);
    n->n = 0;
    n->pending = false;
}

void px_notify_reset(px_notify_t *n) {
    px_buf_reset(&n->body);
    n->n = 0;
    n->pending = false;
}

int px_notify_add(px_notify_t *n, const px_event_t *c) {
    px_buf_t *b = &n->body;
    size_t mark = b->len;
    int rc = n->n ? px_buf_puts(b, ",") : 0;
    if (!rc) rc = px_buf_puts(b, "{\"type\":\"");
    if (!rc) rc = px_buf_puts(b, px_event_type_name(PX_KIND_CHANGE, c->type));
    if (!rc) rc = px_buf_puts(b, "\"");
    const struct {
        const char *k, *v;
    } s[] = {{",\"user\":", c->user_id},        {",\"tab_id\":", c->tab_id},
             {",\"field\":", c->field},         {",\"request_id\":", c->request_id},
             {",\"holder\":", c->holder_user_id}, {",\"holder_name\":", c->holder_name}};
    for (size_t i = 0; !rc && i < sizeof s / sizeof s[0]; i++)
        if (s[i].v[0]) {
            rc = px_buf_puts(b, s[i].k);
            if (!rc) rc = px_proto_write_string(b, s[i].v);
        }
    if (!rc && c->token >= 0) {
        rc = px_buf_puts(b, ",\"token\":");
        if (!rc) rc = px_buf_put_i64(b, c->token);
    }
    if (!rc) rc = px_buf_puts(b, "}");
    if (rc) {
        b->len = mark;
        if (b->data) b->data[mark] = '\0';
        return PX_ENOMEM;
    }
    n->n++;
    return 0;
}

int px_notify_encode(const px_notify_t *n, px_notify_kind_t kind, px_buf_t *out) {
    px_buf_reset(out);
    int rc = px_buf_puts(out, kind == PX_NOTIFY_DECIDED ? DECIDED_OPEN : "[");
    if (!rc && n->body.len) rc = px_buf_append(out, n->body.data, n->body.len);
    if (!rc) rc = px_buf_puts(out, kind == PX_NOTIFY_DECIDED ? "]}" : "]");
    if (rc && kind == PX_NOTIFY_WRITTEN) {
        px_buf_reset(out);
        rc = px_buf_puts(out, "[]");
    }
    return rc ? PX_ENOMEM : 0;
}

/* ---- decode ------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static void decode_change(const json_t *ch, px_notify_filter_t filter, px_notify_cb cb, void *arg) {
    if (!json_is_object(ch)) return;
    px_notify_change_t c;
    c.type_name = jstr(ch, "type");
    if (filter == PX_NOTIFY_LOCKS && strncmp(c.type_name, "LOCK_", 5) != 0) return;
    c.type = px_event_type_parse(PX_KIND_CHANGE, c.type_name);
    if (c.type < 0) c.type = -1;
    c.user = jstr(ch, "user");
    c.tab_id = jstr(ch, "tab_id");
    c.field = jstr(ch, "field");
    c.request_id = jstr(ch, "request_id");
    c.holder = jstr(ch, "holder");
    c.holder_name = jstr(ch, "holder_name");
    const json_t *tok = json_object_get(ch, "token");
    c.token = json_is_integer(tok) && json_integer_value(tok) >= 0 ? (int64_t)json_integer_value(tok) : -1;
    cb(arg, &c);
}

/* The text with a `written` array's missing closing bracket added (the
 * form of older processors), or NULL: not that form, or out of memory. */
static json_t *load_open_array(const char *json, size_t len) {
    if (len < 2 || json[0] != '[' || json[len - 1] == ']') return NULL;
    px_buf_t b;
    json_error_t jerr;
    px_buf_init(&b, len + 1);
    json_t *root = px_buf_append(&b, json, len) || px_buf_puts(&b, "]") ? NULL : json_loadb(b.data, b.len, 0, &jerr);
    px_buf_term(&b);
    return root;
}

int px_notify_decode(const char *json, size_t len, px_notify_filter_t filter, px_notify_kind_t *kind,
                     px_notify_cb cb, void *arg, char *errstr, size_t errstr_size) {
    size_t dl = sizeof DECIDED_OPEN - 2; /* {"decided": */
    bool decided = json && len > dl && memcmp(json, DECIDED_OPEN, dl) == 0;
    *kind = decided ? PX_NOTIFY_DECIDED : PX_NOTIFY_WRITTEN;
    if (!json || !len) return px_errf(PX_EPROTO, errstr, errstr_size, "empty notification");
    if (filter == PX_NOTIFY_LOCKS && !memmem(json, len, "\"LOCK_", 6)) return 0; /* nothing wanted */
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root && !decided) root = load_open_array(json, len);
    if (!root) return px_errf(PX_EPROTO, errstr, errstr_size, "not JSON: %s", jerr.text);
    json_t *arr = decided ? json_object_get(root, "decided") : root;
    if (!json_is_array(arr)) {
        json_decref(root);
        return px_errf(PX_EPROTO, errstr, errstr_size, "%s", decided ? "\"decided\" is not an array"
                                                                     : "neither an array nor {\"decided\":[...]}");
    }
    size_t i;
    json_t *ch;
    json_array_foreach(arr, i, ch) decode_change(ch, filter, cb, arg);
    json_decref(root);
    return 0;
}
