/*
 * px_store.c - one entity in Redis: the state blob codec (canonical JSON
 * out, strict hostile-input-safe decoder in), the watermark-guarded write
 * script and the EVALSHA builder the processor pipelines. See px_store.h
 * for the contract, docs/redis-keys.md for the keys and the argument
 * layout, docs/exactly-once.md for why the guard makes writes exactly-once.
 *
 * The blob is a persistence format, not the debug dump (px_entity_dump):
 * it carries "fmt" and changes only together with a decoder that reads the
 * old one. The decoder re-checks every invariant the fold relies on (sorted
 * unique tabs and locks, bounded arrays, strings within px_event.h bounds),
 * since Redis is outside the process. Limits: the arrays may not exceed
 * PX_FOLD_*_MAX whatever the configuration; one deadline of a view item must
 * fit a Redis score (a double; exact below 2^53 ms).
 * Related: px_fold.h (the state), px_view.h (the view value formats),
 * tests/unit/test_store.c, tests/integration/test_store_redis.c.
 */
#include "px_store.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "px_err.h"
#include "px_utf8.h"
#include "px_view.h"

#define PX_STORE_FMT 1
/* Most bytes one EVALSHA may take: the worst-case blob and view of an
 * entity at the caps are about 4 MiB (every string at its bound, every
 * byte escaped as \u00XX). */
#define PX_STORE_CMD_MAX (32u << 20)
/* Width of the decimal length prefix of a list item (see the script). */
#define PX_STORE_ITEM_W 5
#define PX_STORE_ITEM_MAX 99999

/* ---- watermarks ------------------------------------------------------------------ */

void px_store_wm_init(px_store_wm_t *wm) {
    for (int i = 0; i < PX_SRC__COUNT; i++) wm->off[i] = -1;
}

bool px_store_wm_dominates(const px_store_wm_t *a, const px_store_wm_t *b) {
    for (int i = 0; i < PX_SRC__COUNT; i++)
        if (a->off[i] < b->off[i]) return false;
    return true;
}

/* "o0,o1,o2,o3": the form the script compares (decimal, no leading zeros). */
static int px_store_wm_write(px_buf_t *out, const px_store_wm_t *wm) {
    int rc = 0;
    for (int i = 0; i < PX_SRC__COUNT && !rc; i++) {
        rc = i ? px_buf_puts(out, ",") : 0;
        if (!rc) rc = px_buf_put_i64(out, wm->off[i]);
    }
    return rc;
}

int px_store_state_key(const px_key_t *key, char *out, size_t out_size) {
    return px_view_key(key, "state", out, out_size);
}

/* ---- encode -------------------------------------------------------------------------- */

/* Contract: see px_store.h. The header (format, key, watermarks), then the
 * folded parts exactly as px_entity_dump writes them (fixed member order,
 * parts sorted, done oldest first): equal states give equal bytes. The
 * stored format is therefore the dump's; "fmt" changes with it. */
int px_store_encode(const px_entity_t *e, const px_store_wm_t *wm, px_buf_t *out) {
    size_t mark = out->len;
    char key[PX_KEY_MAX + 1];
    if (px_key_format(&e->key, key, sizeof key) < 0) key[0] = '\0';
    int rc = px_buf_printf(out, "{\"fmt\":%d,\"key\":", PX_STORE_FMT);
    if (!rc) rc = px_proto_write_string(out, key);
    if (!rc) rc = px_buf_puts(out, ",\"wm\":[");
    if (!rc) rc = px_store_wm_write(out, wm);
    if (!rc) rc = px_buf_puts(out, "],");
    if (!rc) rc = px_entity_dump_parts(e, out);
    if (!rc) rc = px_buf_puts(out, "}");
    if (rc) {
        out->len = mark;
        if (out->data) out->data[mark] = '\0';
    }
    return rc;
}

/* ---- decode ---------------------------------------------------------------------------- */

/* Where the decoder is, for the reason it gives ("tabs[3]"). */
typedef struct px_store_dec {
    char *errstr;
    size_t errstr_size;
    char path[32];
} px_store_dec_t;

static int px_store_fail(px_store_dec_t *d, const char *member, const char *why) {
    const char *path = d->path[0] ? d->path : member[0] ? "" : "state";
    return px_errf(PX_EINVAL, d->errstr, d->errstr_size, "%s%s%s: %s", path, d->path[0] && member[0] ? "." : "",
                   member, why);
}

/* o must be an object of exactly n members (with the names the caller then
 * reads: together with duplicate rejection, no unknown member gets in). */
static int px_store_obj(px_store_dec_t *d, json_t *o, size_t n) {
    if (!json_is_object(o)) return px_store_fail(d, "", "not an object");
    if (json_object_size(o) != n) {
        char why[64];
        snprintf(why, sizeof why, "%zu members, expected %zu", json_object_size(o), n);
        return px_store_fail(d, "", why);
    }
    return 0;
}

static int px_store_int(px_store_dec_t *d, json_t *o, const char *k, int64_t min, int64_t *out) {
    json_t *v = json_object_get(o, k);
    if (!v) return px_store_fail(d, k, "missing");
    if (!json_is_integer(v)) return px_store_fail(d, k, "not an integer");
    json_int_t x = json_integer_value(v);
    if (x < min) return px_store_fail(d, k, "out of range");
    *out = (int64_t)x;
    return 0;
}

/* A string member into dst[max + 1]: within max bytes, no NUL, strict UTF-8,
 * non-empty when required. */
static int px_store_str(px_store_dec_t *d, json_t *o, const char *k, char *dst, size_t max, bool required) {
    json_t *v = json_object_get(o, k);
    if (!v) return px_store_fail(d, k, "missing");
    if (!json_is_string(v)) return px_store_fail(d, k, "not a string");
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n > max) return px_store_fail(d, k, "too long");
    if (memchr(s, '\0', n)) return px_store_fail(d, k, "contains NUL");
    if (!px_utf8_valid(s, n)) return px_store_fail(d, k, "invalid UTF-8");
    if (required && n == 0) return px_store_fail(d, k, "empty");
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int px_store_bool(px_store_dec_t *d, json_t *o, const char *k, bool *out) {
    json_t *v = json_object_get(o, k);
    if (!v) return px_store_fail(d, k, "missing");
    if (!json_is_boolean(v)) return px_store_fail(d, k, "not a boolean");
    *out = json_is_true(v);
    return 0;
}

/* A string that is one of two words: *out 0 for a, 1 for b. */
static int px_store_word(px_store_dec_t *d, json_t *o, const char *k, const char *a, const char *b, uint8_t *out) {
    json_t *v = json_object_get(o, k);
    if (!v) return px_store_fail(d, k, "missing");
    const char *s = json_string_value(v); /* NULL when not a string */
    if (s && json_string_length(v) == strlen(a) && strcmp(s, a) == 0) *out = 0;
    else if (s && json_string_length(v) == strlen(b) && strcmp(s, b) == 0) *out = 1;
    else return px_store_fail(d, k, "not a known word");
    return 0;
}

/* A 64-bit hash as exactly 16 lowercase hex digits (the canonical form). */
static int px_store_hash(px_store_dec_t *d, json_t *v, const char *k, uint64_t *out) {
    if (!json_is_string(v) || json_string_length(v) != 16) return px_store_fail(d, k, "not a 16-digit hash");
    const char *s = json_string_value(v);
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned x;
        if (c >= '0' && c <= '9') x = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') x = (unsigned)(c - 'a' + 10);
        else return px_store_fail(d, k, "not a 16-digit hash");
        h = h << 4 | x;
    }
    *out = h;
    return 0;
}

/* An array member of at most max elements; *n gets its size. */
static int px_store_arr(px_store_dec_t *d, json_t *o, const char *k, size_t max, json_t **arr, size_t *n) {
    json_t *v = json_object_get(o, k);
    d->path[0] = '\0'; /* arrays are members of the root */
    if (!v) return px_store_fail(d, k, "missing");
    if (!json_is_array(v)) return px_store_fail(d, k, "not an array");
    if (json_array_size(v) > max) return px_store_fail(d, k, "too many elements");
    *arr = v;
    *n = json_array_size(v);
    return 0;
}

/* calloc of n elements, NULL for none (the fold's convention for an empty part). */
static int px_store_alloc(void **p, size_t n, size_t sz) {
    *p = NULL;
    if (!n) return 0;
    *p = calloc(n, sz);
    return *p ? 0 : PX_ENOMEM;
}

static void px_store_at(px_store_dec_t *d, const char *part, size_t i) {
    snprintf(d->path, sizeof d->path, "%s[%zu]", part, i);
}

static int px_store_dec_tabs(px_store_dec_t *d, json_t *root, px_entity_t *t) {
    json_t *arr = NULL;
    size_t n = 0;
    int rc;
    if ((rc = px_store_arr(d, root, "tabs", PX_FOLD_TABS_MAX, &arr, &n))) return rc;
    if (px_store_alloc((void **)&t->tabs, n, sizeof *t->tabs)) return PX_ENOMEM;
    t->cap_tabs = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        px_fold_tab_t *x = &t->tabs[i];
        json_t *o = json_array_get(arr, i);
        char tab_id[PX_ID_MAX + 1], user_id[PX_ID_MAX + 1], user_name[PX_NAME_MAX + 1], field[PX_ID_MAX + 1],
            cursor[PX_NAME_MAX + 1];
        px_store_at(d, "tabs", i);
        if ((rc = px_store_obj(d, o, 10)) || (rc = px_store_str(d, o, "tab", tab_id, PX_ID_MAX, true)) ||
            (rc = px_store_str(d, o, "user", user_id, PX_ID_MAX, true)) ||
            (rc = px_store_str(d, o, "name", user_name, PX_NAME_MAX, false)) ||
            (rc = px_store_word(d, o, "mode", "view", "edit", &x->mode)) ||
            (rc = px_store_bool(d, o, "dirty", &x->dirty)) ||
            (rc = px_store_word(d, o, "status", "online", "away", &x->status)) ||
            (rc = px_store_str(d, o, "field", field, PX_ID_MAX, false)) ||
            (rc = px_store_str(d, o, "cursor", cursor, PX_NAME_MAX, false)) ||
            (rc = px_store_int(d, o, "since", 1, &x->since_ms)) ||
            (rc = px_store_int(d, o, "last_seen", x->since_ms, &x->last_seen_ms)))
            return rc;
        if (px_fold_tab_set_strs(x, tab_id, user_id, user_name, field, cursor)) return PX_ENOMEM;
        t->n_tabs = (uint32_t)(i + 1); /* from here x's strings are freed with t */
        if (x->last_seen_ms > t->pres_ts_ms) return px_store_fail(d, "last_seen", "after pres_ts");
        if (i && strcmp(px_fold_tab_id(&t->tabs[i - 1]), px_fold_tab_id(x)) >= 0)
            return px_store_fail(d, "tab", "not sorted by tab id, or a duplicate");
    }
    return 0;
}

static int px_store_dec_locks(px_store_dec_t *d, json_t *root, px_entity_t *t) {
    json_t *arr = NULL;
    size_t n = 0;
    int rc;
    if ((rc = px_store_arr(d, root, "locks", PX_FOLD_LOCKS_MAX, &arr, &n))) return rc;
    if (px_store_alloc((void **)&t->locks, n, sizeof *t->locks)) return PX_ENOMEM;
    t->cap_locks = (uint16_t)n;
    for (size_t i = 0; i < n; i++) {
        px_fold_lock_t *x = &t->locks[i];
        json_t *o = json_array_get(arr, i);
        char field[PX_ID_MAX + 1], tab_id[PX_ID_MAX + 1], user_id[PX_ID_MAX + 1], user_name[PX_NAME_MAX + 1];
        px_store_at(d, "locks", i);
        if ((rc = px_store_obj(d, o, 6)) || (rc = px_store_str(d, o, "field", field, PX_ID_MAX, true)) ||
            (rc = px_store_str(d, o, "tab", tab_id, PX_ID_MAX, true)) ||
            (rc = px_store_str(d, o, "user", user_id, PX_ID_MAX, true)) ||
            (rc = px_store_str(d, o, "name", user_name, PX_NAME_MAX, false)) ||
            (rc = px_store_int(d, o, "token", 0, &x->token)) ||
            (rc = px_store_int(d, o, "refreshed", 1, &x->refreshed_ms)))
            return rc;
        if (px_fold_lock_set_strs(x, field, tab_id, user_id, user_name)) return PX_ENOMEM;
        t->n_locks = (uint16_t)(i + 1); /* from here x's strings are freed with t */
        if (i && strcmp(px_fold_lock_field(&t->locks[i - 1]), px_fold_lock_field(x)) >= 0)
            return px_store_fail(d, "field", "not sorted by field, or a duplicate");
    }
    return 0;
}

static int px_store_dec_writes(px_store_dec_t *d, json_t *root, px_entity_t *t) {
    json_t *arr = NULL;
    size_t n = 0;
    int rc;
    if ((rc = px_store_arr(d, root, "writes", PX_FOLD_WRITES_MAX, &arr, &n))) return rc;
    if (px_store_alloc((void **)&t->writes, n, sizeof *t->writes)) return PX_ENOMEM;
    t->cap_writes = (uint16_t)n;
    for (size_t i = 0; i < n; i++) {
        px_fold_write_t *x = &t->writes[i];
        json_t *o = json_array_get(arr, i);
        char write_id[PX_ID_MAX + 1], busy_by[PX_NAME_MAX + 1];
        px_store_at(d, "writes", i);
        if ((rc = px_store_obj(d, o, 3)) || (rc = px_store_str(d, o, "write_id", write_id, PX_ID_MAX, false)) ||
            (rc = px_store_str(d, o, "busy_by", busy_by, PX_NAME_MAX, false)) ||
            (rc = px_store_int(d, o, "ts", 1, &x->ts_ms)))
            return rc;
        if (px_fold_write_set_strs(x, write_id, busy_by)) return PX_ENOMEM;
        t->n_writes = (uint16_t)(i + 1); /* from here x's strings are freed with t */
        for (size_t j = 0; write_id[0] && j < i; j++) /* the mutating topic dedups by write id */
            if (strcmp(px_fold_write_id(&t->writes[j]), write_id) == 0)
                return px_store_fail(d, "write_id", "a duplicate");
    }
    return 0;
}

static int px_store_dec_gone(px_store_dec_t *d, json_t *root, px_entity_t *t) {
    json_t *arr = NULL;
    size_t n = 0;
    int rc;
    if ((rc = px_store_arr(d, root, "gone", PX_FOLD_GONE_MAX, &arr, &n))) return rc;
    if (px_store_alloc((void **)&t->gone, n, sizeof *t->gone)) return PX_ENOMEM;
    t->cap_gone = (uint16_t)n;
    for (size_t i = 0; i < n; i++) {
        px_fold_gone_t *x = &t->gone[i];
        json_t *o = json_array_get(arr, i);
        px_store_at(d, "gone", i);
        if ((rc = px_store_obj(d, o, 2)) || (rc = px_store_int(d, o, "ts", 1, &x->ts_ms))) return rc;
        json_t *id = json_object_get(o, "id");
        if (!id) return px_store_fail(d, "id", "missing");
        if ((rc = px_store_hash(d, id, "id", &x->id_hash))) return rc;
        t->n_gone = (uint16_t)(i + 1);
        const px_fold_gone_t *p = i ? &t->gone[i - 1] : NULL; /* sorted by (ts, hash); equal ones may repeat */
        if (p && (p->ts_ms > x->ts_ms || (p->ts_ms == x->ts_ms && p->id_hash > x->id_hash)))
            return px_store_fail(d, "", "not sorted by (ts, id)");
    }
    return 0;
}

static int px_store_dec_done(px_store_dec_t *d, json_t *root, px_entity_t *t) {
    json_t *arr = NULL;
    size_t n = 0;
    int rc;
    if ((rc = px_store_arr(d, root, "done", PX_FOLD_DONE_MAX, &arr, &n))) return rc;
    if (px_store_alloc((void **)&t->done, n, sizeof *t->done)) return PX_ENOMEM;
    t->cap_done = (uint16_t)n;
    t->done_head = 0; /* stored oldest first */
    for (size_t i = 0; i < n; i++) {
        px_store_at(d, "done", i);
        if ((rc = px_store_hash(d, json_array_get(arr, i), "", &t->done[i]))) return rc;
        t->n_done = (uint16_t)(i + 1);
        for (size_t j = 0; j < i; j++) /* a completed id is pushed once */
            if (t->done[j] == t->done[i]) return px_store_fail(d, "", "a duplicate");
    }
    return 0;
}

/* An open write the mutated part has closed would be closed twice. */
static int px_store_check_open(px_store_dec_t *d, const px_entity_t *t) {
    for (size_t i = 0; i < t->n_writes; i++) {
        const px_fold_write_t *w = &t->writes[i];
        bool closed = w->ts_ms <= t->closed_up_to_ms;
        const char *id = px_fold_write_id(w);
        uint64_t h = px_fold_id_hash(id);
        for (size_t j = 0; id[0] && j < t->n_done && !closed; j++) closed = t->done[j] == h;
        if (closed) {
            px_store_at(d, "writes", i);
            return px_store_fail(d, "", "open but closed by the mutated part");
        }
    }
    return 0;
}

/* Contract: see px_store.h. The key check applies when e comes initialised
 * with a key (tenant non-empty): a blob of another entity is refused. */
int px_store_decode(const char *buf, size_t len, px_entity_t *e, px_store_wm_t *wm, char *errstr,
                    size_t errstr_size) {
    px_key_t want = e->key;
    px_entity_t t;
    px_store_wm_t w;
    px_store_dec_t d = {errstr, errstr_size, ""};
    json_error_t jerr;
    json_t *root = NULL, *arr;
    size_t n = 0;
    int64_t fmt;
    int rc;
    char keybuf[PX_KEY_MAX + 1];

    px_entity_term(e);
    px_entity_init(&t, &want);
    if (len > PX_STORE_BLOB_MAX) {
        rc = px_errf(PX_EINVAL, errstr, errstr_size, "state: %zu bytes, more than %u", len, PX_STORE_BLOB_MAX);
        goto err;
    }
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rc = px_errf(PX_EINVAL, errstr, errstr_size, "state: not JSON: %s at %d", jerr.text, jerr.position);
        goto err;
    }
    if ((rc = px_store_obj(&d, root, 11))) goto err;
    if ((rc = px_store_int(&d, root, "fmt", 0, &fmt))) goto err;
    if (fmt != PX_STORE_FMT) {
        rc = px_store_fail(&d, "fmt", "unknown format");
        goto err;
    }
    if ((rc = px_store_str(&d, root, "key", keybuf, PX_KEY_MAX, true))) goto err;
    if (px_key_parse(keybuf, strlen(keybuf), &t.key, NULL, 0)) {
        rc = px_store_fail(&d, "key", "not an entity key");
        goto err;
    }
    if (want.tenant[0] && !px_key_equal(&want, &t.key)) {
        rc = px_store_fail(&d, "key", "another entity's state");
        goto err;
    }
    if ((rc = px_store_arr(&d, root, "wm", PX_SRC__COUNT, &arr, &n))) goto err;
    if (n != PX_SRC__COUNT) {
        rc = px_store_fail(&d, "wm", "wrong number of components");
        goto err;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < -1) {
            rc = px_store_fail(&d, "wm", "a component is not an offset >= -1");
            goto err;
        }
        w.off[i] = (int64_t)json_integer_value(v);
    }
    if ((rc = px_store_int(&d, root, "pres_ts", 0, &t.pres_ts_ms)) ||
        (rc = px_store_int(&d, root, "closed_up_to", 0, &t.closed_up_to_ms)) ||
        (rc = px_store_int(&d, root, "version", 0, &t.version)))
        goto err;
    if ((rc = px_store_dec_tabs(&d, root, &t)) || (rc = px_store_dec_locks(&d, root, &t)) ||
        (rc = px_store_dec_writes(&d, root, &t)) || (rc = px_store_dec_gone(&d, root, &t)) ||
        (rc = px_store_dec_done(&d, root, &t)) || (rc = px_store_check_open(&d, &t)))
        goto err;
    json_decref(root);
    *e = t;
    *wm = w;
    return 0;
err:
    if (rc == PX_ENOMEM) px_errf(rc, errstr, errstr_size, "state: out of memory");
    json_decref(root);
    px_entity_term(&t);
    px_entity_init(e, &want);
    return rc;
}

/* ---- the write script ------------------------------------------------------------------ */

/* KEYS and ARGV: see the table in docs/redis-keys.md. Lists are items of a
 * 5-digit decimal byte length then the bytes. Nothing after the first write
 * can fail (every argument comes from px_store_write_cmd), because Redis
 * does not roll a script back. Offsets are compared as decimal strings, so
 * offsets above 2^53 compare exactly (Lua numbers are doubles). */
const char PX_STORE_WRITE_SCRIPT[] =
    /* the guard: one string.match per vector, then the four components
     * compared as decimal strings (length, then bytes: exact beyond 2^53;
     * -1 = none is below everything). Splitting into tables cost a third
     * of the script, walking the vectors with find/sub another third. */
    "local old, new = redis.call('HGET', KEYS[1], 'wm'), ARGV[1]\n"
    "if old and old ~= new then\n"
    "  local p = '^(-?%d+),(-?%d+),(-?%d+),(-?%d+)$'\n"
    "  local o1, o2, o3, o4 = string.match(old, p)\n"
    "  local n1, n2, n3, n4 = string.match(new, p)\n"
    "  if not o1 or not n1 then\n"
    "    return redis.error_reply('PXWM stored watermark ' .. old .. ' does not match ' .. new)\n"
    "  end\n"
    "  if (n1 ~= o1 and (n1 == '-1' or (o1 ~= '-1' and (#n1 < #o1 or (#n1 == #o1 and n1 < o1))))) or\n"
    "     (n2 ~= o2 and (n2 == '-1' or (o2 ~= '-1' and (#n2 < #o2 or (#n2 == #o2 and n2 < o2))))) or\n"
    "     (n3 ~= o3 and (n3 == '-1' or (o3 ~= '-1' and (#n3 < #o3 or (#n3 == #o3 and n3 < o3))))) or\n"
    "     (n4 ~= o4 and (n4 == '-1' or (o4 ~= '-1' and (#n4 < #o4 or (#n4 == #o4 and n4 < o4))))) then\n"
    "    return 0\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'wm', ARGV[1], 'blob', ARGV[2])\n"
    "if ARGV[3] == '' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end\n"
    "if ARGV[5] == '' then redis.call('DEL', KEYS[2])\n"
    "elseif ARGV[4] == '' then redis.call('SET', KEYS[2], ARGV[5])\n"
    "else redis.call('SET', KEYS[2], ARGV[5], 'PXAT', ARGV[4]) end\n"
    "if ARGV[6] ~= '' then redis.call(ARGV[8] == 'S' and 'SPUBLISH' or 'PUBLISH', ARGV[6], ARGV[7]) end\n"
    "return 1\n";

/* ---- the command builder ----------------------------------------------------------------- */

void px_store_cmd_init(px_store_cmd_t *cmd) {
    memset(cmd, 0, sizeof *cmd);
    px_buf_init(&cmd->buf, PX_STORE_CMD_MAX);
}

void px_store_cmd_term(px_store_cmd_t *cmd) {
    px_buf_term(&cmd->buf);
    cmd->argc = 0;
}

/* Arguments are appended to cmd->buf one after the other; their offsets
 * are turned into pointers once the buffer stops moving. */
typedef struct px_store_args {
    px_store_cmd_t *cmd;
    size_t start[PX_STORE_MAX_ARGS];
    int n;
} px_store_args_t;

static void px_store_arg_begin(px_store_args_t *a) {
    a->start[a->n] = a->cmd->buf.len;
}

static void px_store_arg_end(px_store_args_t *a) {
    a->cmd->argvlen[a->n] = a->cmd->buf.len - a->start[a->n];
    a->n++;
}

static int px_store_arg_str(px_store_args_t *a, const char *s) {
    px_store_arg_begin(a);
    int rc = px_buf_puts(&a->cmd->buf, s);
    px_store_arg_end(a);
    return rc;
}

/* A deadline argument, or "" when there is none (0). */
static int px_store_arg_at(px_store_args_t *a, int64_t at) {
    px_store_arg_begin(a);
    int rc = at > 0 ? px_buf_put_i64(&a->cmd->buf, at) : 0;
    px_store_arg_end(a);
    return rc;
}

static int64_t px_store_max(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* A fold string into a view field of its limit (the fold's strings are
 * within the px_event.h limits, so it always fits). */
static void px_store_cpy(char *dst, size_t dst_size, const char *s) {
    size_t n = strlen(s);
    assert(n < dst_size);
    memcpy(dst, s, n + 1);
}

/* The view JSON (px_view.h) of what is live at now_ms; *until gets the
 * latest deadline in it (0 when nothing is live). */
static int px_store_view(px_buf_t *b, const px_entity_t *e, const px_fold_conf_t *c, int64_t now_ms,
                         int64_t *until) {
    px_view_tab_t vt;
    px_view_lock_t vl;
    const char *busy_by = "";
    int64_t stale_until = 0, at = 0;
    bool stale = px_fold_stale(e, c, now_ms, &busy_by);
    int rc = px_buf_puts(b, "{\"tabs\":[");
    bool first = true;
    for (size_t i = 0; i < e->n_tabs && !rc; i++) {
        const px_fold_tab_t *t = &e->tabs[i];
        int64_t d = px_fold_tab_deadline(c, t);
        if (d <= now_ms) continue;
        at = px_store_max(at, d);
        memset(&vt, 0, sizeof vt);
        px_store_cpy(vt.tab_id, sizeof vt.tab_id, px_fold_tab_id(t));
        px_store_cpy(vt.user_id, sizeof vt.user_id, px_fold_tab_user_id(t));
        px_store_cpy(vt.user_name, sizeof vt.user_name, px_fold_tab_user_name(t));
        px_store_cpy(vt.field, sizeof vt.field, px_fold_tab_field(t));
        px_store_cpy(vt.cursor, sizeof vt.cursor, px_fold_tab_cursor(t));
        vt.mode = (px_mode_t)t->mode;
        vt.status = (px_status_t)t->status;
        vt.dirty = t->dirty;
        vt.since_ms = t->since_ms;
        vt.deadline_ms = d;
        if (!first) rc = px_buf_puts(b, ",");
        if (!rc) rc = px_view_tab_encode(&vt, b);
        first = false;
    }
    if (!rc) rc = px_buf_puts(b, "],\"locks\":[");
    first = true;
    for (size_t i = 0; i < e->n_locks && !rc; i++) {
        const px_fold_lock_t *l = &e->locks[i];
        int64_t d = px_fold_lock_deadline(e, c, l);
        if (d <= now_ms) continue;
        at = px_store_max(at, d);
        memset(&vl, 0, sizeof vl);
        px_store_cpy(vl.field, sizeof vl.field, px_fold_lock_field(l));
        px_store_cpy(vl.user_id, sizeof vl.user_id, px_fold_lock_user_id(l));
        px_store_cpy(vl.user_name, sizeof vl.user_name, px_fold_lock_user_name(l));
        px_store_cpy(vl.tab_id, sizeof vl.tab_id, px_fold_lock_tab_id(l));
        vl.token = l->token;
        vl.deadline_ms = d;
        if (!first) rc = px_buf_puts(b, ",");
        if (!rc) rc = px_view_lock_encode(&vl, b);
        first = false;
    }
    for (size_t i = 0; i < e->n_writes; i++) {
        int64_t d = px_fold_write_deadline(c, &e->writes[i]);
        if (d > now_ms) stale_until = px_store_max(stale_until, d);
    }
    at = px_store_max(at, stale_until);
    if (!rc) rc = px_buf_puts(b, stale ? "],\"stale\":true,\"busyBy\":" : "],\"stale\":false,\"busyBy\":");
    if (!rc) rc = px_proto_write_string(b, stale ? busy_by : "");
    if (!rc) rc = px_buf_puts(b, ",\"stale_until\":");
    if (!rc) rc = px_buf_put_i64(b, stale_until);
    if (!rc) rc = px_buf_puts(b, ",\"version\":");
    if (!rc) rc = px_buf_put_i64(b, e->version);
    if (!rc) rc = px_buf_puts(b, "}");
    *until = at;
    return rc;
}

/* Contract: see px_store.h. The argument layout is the table in
 * docs/redis-keys.md. The view expires at the latest deadline in it
 * (readers filter by deadline anyway) and does not exist when nothing is
 * live and there is no version; with a version it persists (the version
 * must outlive presence). The state key never expires by the clock while
 * the folded state holds anything (tabs, locks, open writes) or a
 * version: the fold removes items only through EXPIRE records in the log,
 * and a processor that was down longer than a ttl must still find what the
 * log says is there. Only a state with nothing left but its memory of
 * closed writes expires, after PX_STORE_IDLE_RETENTION_MS. */
int px_store_write_cmd(px_store_cmd_t *cmd, const char *script_sha, const px_entity_t *e,
                       const px_fold_conf_t *c, const px_store_wm_t *wm, int64_t now_ms,
                       const char *notify) {
    px_store_args_t a = {.cmd = cmd};
    px_buf_t *b = &cmd->buf;
    char key[PX_KEY_MAX + 64];
    int rc = 0;

    px_buf_reset(b);
    cmd->argc = 0;
#define PX_TRY(x)                                                                                  \
    do {                                                                                           \
        if ((rc = (x)) != 0) goto err;                                                             \
    } while (0)
    PX_TRY(px_store_arg_str(&a, "EVALSHA"));
    PX_TRY(px_store_arg_str(&a, script_sha));
    PX_TRY(px_store_arg_str(&a, "2"));
    if (px_view_key(&e->key, "state", key, sizeof key) < 0) PX_TRY(PX_ENOMEM);
    PX_TRY(px_store_arg_str(&a, key));
    if (px_view_key(&e->key, "view", key, sizeof key) < 0) PX_TRY(PX_ENOMEM);
    PX_TRY(px_store_arg_str(&a, key));
    /* ARGV[1] wm, ARGV[2] blob */
    px_store_arg_begin(&a);
    PX_TRY(px_store_wm_write(b, wm));
    px_store_arg_end(&a);
    px_store_arg_begin(&a);
    PX_TRY(px_store_encode(e, wm, b));
    px_store_arg_end(&a);
    /* ARGV[3] state expiry ("" = persist) */
    int64_t state_at = 0;
    if (e->version == 0 && e->n_tabs == 0 && e->n_locks == 0 && e->n_writes == 0)
        state_at = now_ms > INT64_MAX - PX_STORE_IDLE_RETENTION_MS ? INT64_MAX : now_ms + PX_STORE_IDLE_RETENTION_MS;
    PX_TRY(px_store_arg_at(&a, state_at));
    /* ARGV[5] the view ("" = none), then ARGV[4] its expiry ("" = none),
     * appended after it and swapped into place (the expiry is known once
     * the view is written) */
    int64_t until = 0;
    px_store_arg_begin(&a);
    PX_TRY(px_store_view(b, e, c, now_ms, &until));
    px_store_arg_end(&a);
    if (until == 0 && e->version == 0) cmd->argvlen[a.n - 1] = 0; /* nothing live, no version: no view */
    PX_TRY(px_store_arg_at(&a, e->version > 0 ? 0 : until));
    size_t t_start = a.start[a.n - 1], t_len = cmd->argvlen[a.n - 1];
    a.start[a.n - 1] = a.start[a.n - 2];
    cmd->argvlen[a.n - 1] = cmd->argvlen[a.n - 2];
    a.start[a.n - 2] = t_start;
    cmd->argvlen[a.n - 2] = t_len;
    /* ARGV[6] channel ("" = publish nothing), ARGV[7] payload */
    if (notify) {
        if (px_view_channel(&e->key, key, sizeof key) < 0) PX_TRY(PX_ENOMEM);
        PX_TRY(px_store_arg_str(&a, key));
        PX_TRY(px_store_arg_str(&a, notify));
    } else {
        PX_TRY(px_store_arg_str(&a, ""));
        PX_TRY(px_store_arg_str(&a, ""));
    }
#undef PX_TRY
    for (int i = 0; i < a.n; i++) cmd->argv[i] = b->data + a.start[i];
    cmd->argc = a.n;
    return 0;
err:
    px_buf_reset(b);
    cmd->argc = 0;
    return rc;
}
