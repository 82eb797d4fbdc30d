/*
 * px_proto.c - the browser <-> gateway JSON protocol: a strict parser for
 * client messages and hand-written writers for server messages.
 *
 * Parser: jansson does the JSON (UTF-8 validation, duplicate keys, depth
 * limit JSON_PARSER_MAX_DEPTH, no trailing bytes, no \u0000); this file
 * checks the shape: one object, a known `type`, every known key with the
 * right JSON type, charset and length. It does no I/O. Limits: jansson
 * allocates a small tree per message (bounded by PX_PROTO_MAX_MSG, freed
 * before return); a hand-rolled scanner could avoid that if the gateway's
 * profile ever says so.
 *
 * Writers: append JSON straight into a capped px_buf_t with no jansson and
 * no allocation beyond the buffer's own growth. Every string goes through
 * one escaper (RFC 8259: quotes, backslash, C0 controls; also U+2028/2029
 * so the output is safe inside a <script>); invalid UTF-8 is replaced by
 * U+FFFD, never passed through. A writer that fails leaves the buffer
 * byte-for-byte as it found it.
 *
 * Wire format and error codes: docs/protocol.md. Related: px_proto.h,
 * px_key.c (identifier charset), gateway/ (the only caller).
 */
#include "px_proto.h"
#include "px_utf8.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "px_err.h"

static const char *const px_msg_type_names[PX_MSG__COUNT] = {
    [PX_MSG_SUB] = "SUB", [PX_MSG_UNSUB] = "UNSUB", [PX_MSG_HB] = "HB",
    [PX_MSG_LOCK] = "LOCK", [PX_MSG_UNLOCK] = "UNLOCK",
};

/* Contract: see px_proto.h. "?" for out-of-range values, never NULL. */
const char *px_msg_type_name(px_msg_type_t t) {
    if ((int)t < 0 || t >= PX_MSG__COUNT) return "?";
    return px_msg_type_names[t];
}

/* ------------------------------------------------------------------ */
/* Parser                                                              */
/* ------------------------------------------------------------------ */

/* What a string field may contain. */
typedef enum {
    PX_CS_KEYPART,   /* [A-Za-z0-9._-], as px_key_part_valid */
    PX_CS_PRINTABLE, /* printable ASCII 0x20..0x7e */
    PX_CS_UTF8,      /* anything jansson accepted: valid UTF-8, no NUL */
} px_proto_charset_t;

/* One optional string field of px_msg_t, described once so every field gets
 * the same type, length and charset checks (the table replaces six copies
 * of the same twenty lines). */
typedef struct px_proto_strfield {
    const char *name;
    size_t off;   /* offsetof the char array in px_msg_t */
    size_t min;   /* shortest accepted length, bytes */
    size_t max;   /* longest accepted length, bytes (array size - 1) */
    px_proto_charset_t cs;
} px_proto_strfield_t;

#define PX_SF(name, member, min, cs) \
    {name, offsetof(px_msg_t, member), min, sizeof(((px_msg_t *)0)->member) - 1, cs}

/* request_id comes first so that it is known, and can be echoed in the
 * ERROR, when a later field is refused. */
static const px_proto_strfield_t px_proto_strfields[] = {
    PX_SF("request_id", request_id, 1, PX_CS_PRINTABLE),
    PX_SF("entity", entity, 1, PX_CS_KEYPART),
    PX_SF("id", id, 1, PX_CS_KEYPART),
    PX_SF("tenant", tenant, 1, PX_CS_KEYPART),
    PX_SF("tab_id", tab_id, 1, PX_CS_KEYPART),
    PX_SF("field", field, 1, PX_CS_KEYPART),
    PX_SF("cursor", cursor, 0, PX_CS_UTF8),
};

/* Set the error outputs and return rc. Keeps every failure path one line. */
static int px_proto_fail(int rc, const char **code, const char *word, char *errstr,
                         size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int px_proto_fail(int rc, const char **code, const char *word, char *errstr,
                         size_t errstr_size, const char *fmt, ...) {
    if (code) *code = word;
    va_list ap;
    va_start(ap, fmt);
    px_verrf(rc, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *px_json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static bool px_proto_printable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return false;
    return true;
}

/* Read one optional string field into its array in `out`. Absent: 0 and
 * the array stays empty. Present: must be a JSON string of min..max bytes
 * in the field's charset, else PX_EINVAL/BAD_FIELD. Never echoes the value
 * into errstr (it is hostile input and ends up in logs and in the ERROR). */
static int px_proto_get_string(const json_t *root, const px_proto_strfield_t *f, px_msg_t *out,
                               const char **code, char *errstr, size_t errstr_size) {
    const json_t *v = json_object_get(root, f->name);
    if (!v) return 0;
    if (!json_is_string(v))
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                             "'%s' must be a string, got %s", f->name, px_json_type_name(v));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n < f->min || n > f->max)
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                             "'%s' is %zu bytes, must be %zu..%zu", f->name, n, f->min, f->max);
    bool ok = true;
    switch (f->cs) {
    case PX_CS_KEYPART: ok = px_key_part_valid(s, n); break;
    case PX_CS_PRINTABLE: ok = px_proto_printable(s, n); break;
    case PX_CS_UTF8: ok = memchr(s, '\0', n) == NULL; break; /* jansson refuses \u0000 already */
    }
    if (!ok)
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                             "'%s' has characters outside %s", f->name,
                             f->cs == PX_CS_KEYPART     ? "A-Z a-z 0-9 . _ -"
                             : f->cs == PX_CS_PRINTABLE ? "printable ASCII"
                                                        : "UTF-8 without NUL");
    char *dst = (char *)out + f->off;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* Read an optional string enum: absent -> *has = false; present -> one of
 * names[0..n) (case-sensitive) stored as its index, else BAD_FIELD. */
static int px_proto_get_enum(const json_t *root, const char *name, const char *const *names,
                             int n, bool *has, int *val, const char **code, char *errstr,
                             size_t errstr_size) {
    const json_t *v = json_object_get(root, name);
    *has = false;
    if (!v) return 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        for (int i = 0; i < n; i++) {
            if (len == strlen(names[i]) && memcmp(s, names[i], len) == 0) {
                *has = true;
                *val = i;
                return 0;
            }
        }
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                             "'%s' must be \"%s\" or \"%s\"", name, names[0], names[1]);
    }
    return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                         "'%s' must be a string, got %s", name, px_json_type_name(v));
}

static const char *const px_mode_names[] = {[PX_MODE_VIEW] = "view", [PX_MODE_EDIT] = "edit"};
static const char *const px_status_names[] = {[PX_STATUS_ONLINE] = "online",
                                              [PX_STATUS_AWAY] = "away"};

/* The shape checks once jansson has produced an object. Split from
 * px_proto_parse so that one place owns the jansson tree and frees it. */
static int px_proto_parse_object(const json_t *root, px_msg_t *out, const char **code,
                                 char *errstr, size_t errstr_size) {
    int rc;
    /* request_id first: see px_proto_strfields. */
    rc = px_proto_get_string(root, &px_proto_strfields[0], out, code, errstr, errstr_size);
    if (rc) return rc;

    const json_t *t = json_object_get(root, "type");
    if (!t)
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_TYPE, errstr, errstr_size,
                             "'type' is missing");
    if (!json_is_string(t))
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_TYPE, errstr, errstr_size,
                             "'type' must be a string, got %s", px_json_type_name(t));
    const char *ts = json_string_value(t);
    size_t tlen = json_string_length(t);
    int type = -1;
    for (int i = 0; i < PX_MSG__COUNT; i++) {
        if (tlen == strlen(px_msg_type_names[i]) && memcmp(ts, px_msg_type_names[i], tlen) == 0) {
            type = i;
            break;
        }
    }
    if (type < 0)
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_TYPE, errstr, errstr_size,
                             "unknown 'type' (expected SUB, UNSUB, HB, LOCK or UNLOCK)");
    out->type = (px_msg_type_t)type;

    for (size_t i = 1; i < sizeof px_proto_strfields / sizeof px_proto_strfields[0]; i++) {
        rc = px_proto_get_string(root, &px_proto_strfields[i], out, code, errstr, errstr_size);
        if (rc) return rc;
    }

    int e = 0;
    rc = px_proto_get_enum(root, "mode", px_mode_names, 2, &out->has_mode, &e, code, errstr,
                           errstr_size);
    if (rc) return rc;
    if (out->has_mode) out->mode = (px_mode_t)e;
    rc = px_proto_get_enum(root, "status", px_status_names, 2, &out->has_status, &e, code, errstr,
                           errstr_size);
    if (rc) return rc;
    if (out->has_status) out->status = (px_status_t)e;

    const json_t *d = json_object_get(root, "dirty");
    if (d) {
        if (!json_is_boolean(d))
            return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                                 "'dirty' must be true or false, got %s", px_json_type_name(d));
        out->has_dirty = true;
        out->dirty = json_is_true(d);
    }

    /* Cross-field rules. */
    bool has_entity = out->entity[0] != '\0', has_id = out->id[0] != '\0';
    if (has_entity != has_id)
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                             "'entity' and 'id' must be given together");
    out->has_target = has_entity && has_id;
    if (out->type == PX_MSG_SUB && !out->has_target)
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                             "SUB needs 'entity' and 'id'");
    if ((out->type == PX_MSG_LOCK || out->type == PX_MSG_UNLOCK) && out->field[0] == '\0')
        return px_proto_fail(PX_EINVAL, code, PX_PROTO_E_BAD_FIELD, errstr, errstr_size,
                             "%s needs 'field'", px_msg_type_names[out->type]);
    return 0;
}

/* Contract: see px_proto.h. In addition: *code is NULL on success; on a
 * failure after `request_id` was read, out->request_id holds it so the
 * gateway's ERROR can echo it (empty otherwise). The length check comes
 * before jansson sees a byte, so oversized input costs nothing. */
int px_proto_parse(const char *buf, size_t len, px_msg_t *out, const char **code, char *errstr,
                   size_t errstr_size) {
    memset(out, 0, sizeof *out);
    if (code) *code = NULL;
    if (errstr && errstr_size > 0) errstr[0] = '\0';

    if (len > PX_PROTO_MAX_MSG)
        return px_proto_fail(PX_EPROTO, code, PX_PROTO_E_TOO_LARGE, errstr, errstr_size,
                             "message is %zu bytes (max %d)", len, PX_PROTO_MAX_MSG);
    if (!buf || len == 0)
        return px_proto_fail(PX_EPROTO, code, PX_PROTO_E_BAD_JSON, errstr, errstr_size,
                             "empty message");

    json_error_t jerr;
    /* No JSON_DECODE_ANY: the top level must be an object or array. No
     * JSON_DISABLE_EOF_CHECK: only whitespace may follow the value. No
     * JSON_ALLOW_NUL: \u0000 is refused, so every string is a C string. */
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return px_proto_fail(PX_EPROTO, code, PX_PROTO_E_BAD_JSON, errstr, errstr_size,
                             "invalid JSON at byte %d: %s", jerr.position, jerr.text);
    int rc;
    if (!json_is_object(root))
        rc = px_proto_fail(PX_EPROTO, code, PX_PROTO_E_BAD_JSON, errstr, errstr_size,
                           "message must be a JSON object, got %s", px_json_type_name(root));
    else
        rc = px_proto_parse_object(root, out, code, errstr, errstr_size);
    json_decref(root);
    if (rc) {
        /* Keep only what the contract promises on error. */
        char rid[sizeof out->request_id];
        memcpy(rid, out->request_id, sizeof rid);
        memset(out, 0, sizeof *out);
        memcpy(out->request_id, rid, sizeof rid);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Writers                                                             */
/* ------------------------------------------------------------------ */

/* A writer with a sticky error: every step is a no-op once one failed,
 * and px_jw_end rolls the buffer back to where the message started. This
 * keeps each message writer a straight list of steps with one exit. */
typedef struct px_jw {
    px_buf_t *b;
    size_t mark; /* b->len when the message started */
    int rc;
} px_jw_t;

static void px_jw_begin(px_jw_t *w, px_buf_t *b) {
    w->b = b;
    w->mark = b->len;
    w->rc = 0;
}

static int px_jw_end(px_jw_t *w) {
    if (w->rc) {
        w->b->len = w->mark;
        if (w->b->data) w->b->data[w->mark] = '\0';
    }
    return w->rc;
}

static void px_jw_raw(px_jw_t *w, const char *s, size_t n) {
    if (w->rc) return;
    w->rc = px_buf_append(w->b, s, n);
}

#define px_jw_lit(w, s) px_jw_raw((w), "" s, sizeof(s) - 1)

static void px_jw_i64(px_jw_t *w, int64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    px_jw_raw(w, tmp, (size_t)n);
}

static void px_jw_bool(px_jw_t *w, bool v) {
    if (v)
        px_jw_lit(w, "true");
    else
        px_jw_lit(w, "false");
}

/* Append s[0..n) as a JSON string literal. Runs of bytes that need no
 * escaping are copied with one append; everything else is escaped:
 * '"' '\\' and the short forms \b \f \n \r \t, other C0 controls and DEL
 * as \u00XX, U+2028/U+2029 as \u2028/\u2029, invalid UTF-8 as \ufffd. */
static void px_jw_escaped(px_jw_t *w, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0, i = 0;
    px_jw_lit(w, "\"");
    while (i < n && !w->rc) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++;
            continue;
        }
        int k = 1;
        if (c >= 0x80) {
            k = px_utf8_seq(s + i, n - i);
            bool ls_ps = k == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9);
            if (k > 0 && !ls_ps) {
                i += (size_t)k;
                continue;
            }
        }
        px_jw_raw(w, (const char *)s + run, i - run);
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};
        switch (c) {
        case '"': px_jw_lit(w, "\\\""); break;
        case '\\': px_jw_lit(w, "\\\\"); break;
        case '\b': px_jw_lit(w, "\\b"); break;
        case '\f': px_jw_lit(w, "\\f"); break;
        case '\n': px_jw_lit(w, "\\n"); break;
        case '\r': px_jw_lit(w, "\\r"); break;
        case '\t': px_jw_lit(w, "\\t"); break;
        default:
            if (c < 0x80) {
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                px_jw_raw(w, esc, sizeof esc);
            } else if (k > 0) {
                px_jw_raw(w, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            } else {
                px_jw_lit(w, "\\ufffd");
                k = -k;
            }
        }
        i += (size_t)k;
        run = i;
    }
    px_jw_raw(w, (const char *)s + run, n - run);
    px_jw_lit(w, "\"");
}

/* A string, or null for NULL. */
static void px_jw_str(px_jw_t *w, const char *s) {
    if (!s)
        px_jw_lit(w, "null");
    else
        px_jw_escaped(w, s, strlen(s));
}

/* An optional string: NULL and "" are both "absent" in the event model
 * (px_event.h), so both are written as null. */
static void px_jw_opt_str(px_jw_t *w, const char *s) {
    px_jw_str(w, s && s[0] ? s : NULL);
}

/* Contract: see px_proto.h. NULL is written as null. */
int px_proto_write_string(px_buf_t *out, const char *s) {
    px_jw_t w;
    px_jw_begin(&w, out);
    px_jw_str(&w, s);
    return px_jw_end(&w);
}

/* Contract: see px_proto.h. v->key must be non-NULL; viewers/locks may be
 * NULL only when their count is 0. `users` repeats the viewers' ids in
 * the given order (the seed client reads only `users`). Optional strings
 * (user_name, tab_id) that are NULL or "" become null; busyBy is written
 * only while stale (null otherwise), so a client never shows a writer for
 * a record that is not being written. */
int px_proto_write_presence(px_buf_t *out, const px_presence_view_t *v) {
    px_jw_t w;
    assert(v && v->key);
    px_jw_begin(&w, out);
    px_jw_lit(&w, "{\"type\":\"PRESENCE\",\"entity\":");
    px_jw_str(&w, v->key->entity);
    px_jw_lit(&w, ",\"id\":");
    px_jw_str(&w, v->key->id);
    px_jw_lit(&w, ",\"users\":[");
    for (size_t i = 0; i < v->n_viewers; i++) {
        if (i) px_jw_lit(&w, ",");
        px_jw_str(&w, v->viewers[i].user_id);
    }
    px_jw_lit(&w, "],\"viewers\":[");
    for (size_t i = 0; i < v->n_viewers; i++) {
        const px_viewer_t *u = &v->viewers[i];
        if (i) px_jw_lit(&w, ",");
        px_jw_lit(&w, "{\"id\":");
        px_jw_str(&w, u->user_id);
        px_jw_lit(&w, ",\"user_name\":");
        px_jw_opt_str(&w, u->name);
        px_jw_lit(&w, ",\"tabs\":");
        px_jw_i64(&w, u->tabs);
        px_jw_lit(&w, ",\"has_dirty_tab\":");
        px_jw_bool(&w, u->has_dirty_tab);
        px_jw_lit(&w, ",\"mode\":");
        if (u->mode == PX_MODE_EDIT)
            px_jw_lit(&w, "\"edit\"");
        else
            px_jw_lit(&w, "\"view\"");
        px_jw_lit(&w, ",\"status\":");
        if (u->status == PX_STATUS_AWAY)
            px_jw_lit(&w, "\"away\"");
        else
            px_jw_lit(&w, "\"online\"");
        px_jw_lit(&w, "}");
    }
    px_jw_lit(&w, "],\"locks\":[");
    for (size_t i = 0; i < v->n_locks; i++) {
        const px_lock_view_t *l = &v->locks[i];
        if (i) px_jw_lit(&w, ",");
        px_jw_lit(&w, "{\"field\":");
        px_jw_str(&w, l->field);
        px_jw_lit(&w, ",\"user\":");
        px_jw_str(&w, l->user_id);
        px_jw_lit(&w, ",\"user_name\":");
        px_jw_opt_str(&w, l->name);
        px_jw_lit(&w, ",\"tab_id\":");
        px_jw_opt_str(&w, l->tab_id);
        px_jw_lit(&w, ",\"token\":");
        px_jw_i64(&w, l->token);
        px_jw_lit(&w, ",\"expires_at\":");
        px_jw_i64(&w, l->expires_at_ms);
        px_jw_lit(&w, "}");
    }
    px_jw_lit(&w, "],\"stale\":");
    px_jw_bool(&w, v->stale);
    px_jw_lit(&w, ",\"busyBy\":");
    px_jw_opt_str(&w, v->stale ? v->busy_by : NULL);
    px_jw_lit(&w, ",\"version\":");
    px_jw_i64(&w, v->version);
    px_jw_lit(&w, "}");
    return px_jw_end(&w);
}

/* Contract: see px_proto.h. key may be NULL (entity and id are then null,
 * for an ack the gateway cannot attribute). holder is null when
 * holder_user_id is NULL or ""; token is null when negative (PX_NONE);
 * request_id is null when NULL or "". */
int px_proto_write_lock_ack(px_buf_t *out, const px_key_t *key, const char *field, bool success,
                            const char *holder_user_id, const char *holder_name, int64_t token,
                            const char *request_id) {
    px_jw_t w;
    px_jw_begin(&w, out);
    px_jw_lit(&w, "{\"type\":\"LOCK_ACK\",\"entity\":");
    px_jw_str(&w, key ? key->entity : NULL);
    px_jw_lit(&w, ",\"id\":");
    px_jw_str(&w, key ? key->id : NULL);
    px_jw_lit(&w, ",\"field\":");
    px_jw_str(&w, field);
    px_jw_lit(&w, ",\"success\":");
    px_jw_bool(&w, success);
    px_jw_lit(&w, ",\"holder\":");
    if (holder_user_id && holder_user_id[0]) {
        px_jw_lit(&w, "{\"id\":");
        px_jw_str(&w, holder_user_id);
        px_jw_lit(&w, ",\"user_name\":");
        px_jw_opt_str(&w, holder_name);
        px_jw_lit(&w, "}");
    } else {
        px_jw_lit(&w, "null");
    }
    px_jw_lit(&w, ",\"token\":");
    if (token >= 0)
        px_jw_i64(&w, token);
    else
        px_jw_lit(&w, "null");
    px_jw_lit(&w, ",\"request_id\":");
    px_jw_opt_str(&w, request_id);
    px_jw_lit(&w, "}");
    return px_jw_end(&w);
}

/* Contract: see px_proto.h. code and message are written as given (NULL
 * as null); request_id is null when NULL or "". The message may carry a
 * parser errstr, which can quote hostile bytes: the escaper makes it safe. */
int px_proto_write_error(px_buf_t *out, const char *code, const char *message,
                         const char *request_id) {
    px_jw_t w;
    px_jw_begin(&w, out);
    px_jw_lit(&w, "{\"type\":\"ERROR\",\"code\":");
    px_jw_str(&w, code);
    px_jw_lit(&w, ",\"message\":");
    px_jw_str(&w, message);
    px_jw_lit(&w, ",\"request_id\":");
    px_jw_opt_str(&w, request_id);
    px_jw_lit(&w, "}");
    return px_jw_end(&w);
}
