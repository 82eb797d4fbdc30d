/*
 * px_event.c - names, initialisation and validation of px_event_t.
 * See px_event.h.
 *
 * px_event_validate() is the one gate every decoder (Avro, JSON) passes an
 * event through, so it checks everything the fold relies on: enums in
 * range, ts > 0, a valid key, every string NUL-terminated inside its array
 * and valid UTF-8, optional integers either PX_NONE or >= 0, and the
 * fields each kind and type must carry. Fields a kind does not use are not
 * checked beyond being well-formed strings; the codecs ignore them.
 */
#include "px_event.h"

#include <string.h>

#include "px_err.h"
#include "px_utf8.h"

static const char *const px_kind_names[PX_KIND__COUNT] = {"presence", "lock", "lifecycle", "change"};

static const char *const px_pres_names[PX_PRES__COUNT] = {"SUB", "HB", "UNSUB", "EXPIRE"};
static const char *const px_lock_names[PX_LOCK__COUNT] = {"LOCK", "UNLOCK", "EXPIRE"};
static const char *const px_lc_names[PX_LC__COUNT] = {"MUTATING", "MUTATED", "EXPIRE"};
static const char *const px_change_names[PX_CH__COUNT] = {
    "JOINED",        "LEFT",          "TIMED_OUT",   "UPDATED",     "LOCK_GRANTED",  "LOCK_DENIED",
    "LOCK_RELEASED", "LOCK_EXPIRED",  "STALE_SET",   "STALE_CLEARED", "VERSION_BUMPED"};

/* The type-name table of a kind and its length; NULL for a bad kind. */
static const char *const *px_event_type_table(px_kind_t kind, int *count) {
    switch (kind) {
    case PX_KIND_PRESENCE: *count = PX_PRES__COUNT; return px_pres_names;
    case PX_KIND_LOCK: *count = PX_LOCK__COUNT; return px_lock_names;
    case PX_KIND_LIFECYCLE: *count = PX_LC__COUNT; return px_lc_names;
    case PX_KIND_CHANGE: *count = PX_CH__COUNT; return px_change_names;
    default: *count = 0; return NULL;
    }
}

void px_event_init(px_event_t *ev, px_kind_t kind) {
    memset(ev, 0, sizeof *ev); /* every string empty, dirty false */
    ev->kind = kind;
    ev->type = 0;
    ev->mode = PX_MODE_VIEW;
    ev->status = PX_STATUS_ONLINE;
    ev->expires_at_ms = PX_NONE;
    ev->version = PX_NONE;
    ev->token = PX_NONE;
    ev->src_partition = PX_NONE;
    ev->src_offset = PX_NONE;
}

const char *px_kind_name(px_kind_t kind) {
    return ((unsigned)kind < PX_KIND__COUNT) ? px_kind_names[kind] : "?";
}

const char *px_event_type_name(px_kind_t kind, int type) {
    int n;
    const char *const *t = px_event_type_table(kind, &n);
    return (t && type >= 0 && type < n) ? t[type] : "?";
}

int px_event_type_parse(px_kind_t kind, const char *name) {
    int n;
    const char *const *t = px_event_type_table(kind, &n);
    if (!t || !name) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(t[i], name) == 0) return i;
    return -1;
}

int px_event_type_count(px_kind_t kind) {
    int n;
    px_event_type_table(kind, &n);
    return n;
}

/* A string field: NUL-terminated within its array of max+1 bytes and valid
 * UTF-8. Writes the length to *len. */
static int px_event_check_str(const char *s, size_t max, const char *name, size_t *len, char *errstr,
                              size_t errstr_size) {
    const char *nul = memchr(s, '\0', max + 1);
    if (!nul) return px_errf(PX_EINVAL, errstr, errstr_size, "%s: longer than %zu bytes", name, max);
    *len = (size_t)(nul - s);
    if (!px_utf8_valid(s, *len)) return px_errf(PX_EINVAL, errstr, errstr_size, "%s: invalid UTF-8", name);
    return 0;
}

/* Optional integers are PX_NONE (absent) or >= 0. */
static int px_event_check_opt(int64_t v, const char *name, char *errstr, size_t errstr_size) {
    if (v < PX_NONE)
        return px_errf(PX_EINVAL, errstr, errstr_size, "%s: %lld is negative", name, (long long)v);
    return 0;
}

/* The fields ev's kind and type require (px_event_validate has checked
 * the ranges and strings). */
static int px_event_check_required(const px_event_t *ev, char *errstr, size_t errstr_size) {
    const char *tname = px_event_type_name(ev->kind, ev->type);
#define PX_REQUIRE(cond, what)                                                                      \
    do {                                                                                            \
        if (!(cond))                                                                                \
            return px_errf(PX_EINVAL, errstr, errstr_size, "%s %s: %s", px_kind_name(ev->kind), tname, \
                           what);                                                                   \
    } while (0)

    switch (ev->kind) {
    case PX_KIND_PRESENCE:
        PX_REQUIRE(ev->tab_id[0], "tab_id is required");
        PX_REQUIRE(ev->user_id[0], "user_id is required");
        if (ev->type == PX_PRES_EXPIRE) PX_REQUIRE(ev->expires_at_ms >= 0, "expires_at_ms is required");
        break;
    case PX_KIND_LOCK:
        PX_REQUIRE(ev->field[0], "field is required");
        PX_REQUIRE(ev->tab_id[0], "tab_id is required");
        PX_REQUIRE(ev->user_id[0], "user_id is required");
        if (ev->type == PX_LOCK_EXPIRE) PX_REQUIRE(ev->expires_at_ms >= 0, "expires_at_ms is required");
        break;
    case PX_KIND_LIFECYCLE: /* key and ts; busy_by, write_id and version are optional */
        if (ev->type == PX_LC_EXPIRE) PX_REQUIRE(ev->expires_at_ms >= 0, "expires_at_ms is required");
        break;
    case PX_KIND_CHANGE: {
        bool st = ev->src_topic[0] != '\0', sp = ev->src_partition >= 0, so = ev->src_offset >= 0;
        PX_REQUIRE(st == sp && sp == so, "src_topic, src_partition and src_offset go together");
        switch ((px_change_type_t)ev->type) {
        case PX_CH_JOINED:
        case PX_CH_LEFT:
        case PX_CH_TIMED_OUT:
        case PX_CH_UPDATED:
            PX_REQUIRE(ev->tab_id[0], "tab_id is required");
            PX_REQUIRE(ev->user_id[0], "user_id is required");
            break;
        case PX_CH_LOCK_GRANTED:
            PX_REQUIRE(ev->field[0], "field is required");
            PX_REQUIRE(ev->tab_id[0], "tab_id is required");
            PX_REQUIRE(ev->user_id[0], "user_id is required");
            PX_REQUIRE(ev->token >= 0, "token is required");
            break;
        case PX_CH_LOCK_DENIED:
            PX_REQUIRE(ev->field[0], "field is required");
            PX_REQUIRE(ev->tab_id[0], "tab_id is required");
            PX_REQUIRE(ev->user_id[0], "user_id is required");
            PX_REQUIRE(ev->holder_user_id[0], "holder_user_id is required");
            break;
        case PX_CH_LOCK_RELEASED:
        case PX_CH_LOCK_EXPIRED:
            PX_REQUIRE(ev->field[0], "field is required");
            PX_REQUIRE(ev->tab_id[0], "tab_id is required");
            PX_REQUIRE(ev->user_id[0], "user_id is required");
            break;
        case PX_CH_VERSION_BUMPED:
            PX_REQUIRE(ev->version >= 0, "version is required");
            break;
        case PX_CH_STALE_SET:
        case PX_CH_STALE_CLEARED:
        default:
            break;
        }
        break;
    }
    default:
        break;
    }
#undef PX_REQUIRE
    return 0;
}

int px_event_validate(const px_event_t *ev, char *errstr, size_t errstr_size) {
    int rc;
    size_t n = 0;
    if ((unsigned)ev->kind >= PX_KIND__COUNT)
        return px_errf(PX_EINVAL, errstr, errstr_size, "kind: %d out of range", (int)ev->kind);
    if (ev->type < 0 || ev->type >= px_event_type_count(ev->kind))
        return px_errf(PX_EINVAL, errstr, errstr_size, "type: %d out of range for %s", ev->type,
                       px_kind_name(ev->kind));
    if (ev->ts_ms <= 0)
        return px_errf(PX_EINVAL, errstr, errstr_size, "ts: %lld is not a positive time",
                       (long long)ev->ts_ms);

    const struct {
        const char *s;
        size_t max;
        const char *name;
    } key[3] = {{ev->key.tenant, PX_KEY_PART_MAX, "tenant"},
                {ev->key.entity, PX_KEY_PART_MAX, "entity"},
                {ev->key.id, PX_KEY_PART_MAX, "id"}};
    for (int i = 0; i < 3; i++) {
        if ((rc = px_event_check_str(key[i].s, key[i].max, key[i].name, &n, errstr, errstr_size))) return rc;
        if (!px_key_part_valid(key[i].s, n))
            return px_errf(PX_EINVAL, errstr, errstr_size, "%s: must be 1-%d bytes of [A-Za-z0-9._-]",
                           key[i].name, PX_KEY_PART_MAX);
    }

    /* Every string, used by this kind or not, must be well-formed. */
    const struct {
        const char *s;
        size_t max;
        const char *name;
    } strs[] = {
        {ev->tab_id, PX_ID_MAX, "tab_id"},
        {ev->user_id, PX_ID_MAX, "user_id"},
        {ev->user_name, PX_NAME_MAX, "user_name"},
        {ev->cursor, PX_NAME_MAX, "cursor"},
        {ev->field, PX_ID_MAX, "field"},
        {ev->request_id, PX_ID_MAX, "request_id"},
        {ev->busy_by, PX_NAME_MAX, "busy_by"},
        {ev->write_id, PX_ID_MAX, "write_id"},
        {ev->holder_user_id, PX_ID_MAX, "holder_user_id"},
        {ev->holder_name, PX_NAME_MAX, "holder_name"},
        {ev->src_topic, PX_TOPIC_MAX, "src_topic"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if ((rc = px_event_check_str(strs[i].s, strs[i].max, strs[i].name, &n, errstr, errstr_size)))
            return rc;

    if ((unsigned)ev->mode > PX_MODE_EDIT)
        return px_errf(PX_EINVAL, errstr, errstr_size, "mode: %d out of range", (int)ev->mode);
    if ((unsigned)ev->status > PX_STATUS_AWAY)
        return px_errf(PX_EINVAL, errstr, errstr_size, "status: %d out of range", (int)ev->status);
    if ((rc = px_event_check_opt(ev->expires_at_ms, "expires_at_ms", errstr, errstr_size))) return rc;
    if ((rc = px_event_check_opt(ev->version, "version", errstr, errstr_size))) return rc;
    if ((rc = px_event_check_opt(ev->token, "token", errstr, errstr_size))) return rc;
    if ((rc = px_event_check_opt(ev->src_partition, "src_partition", errstr, errstr_size))) return rc;
    if ((rc = px_event_check_opt(ev->src_offset, "src_offset", errstr, errstr_size))) return rc;

    return px_event_check_required(ev, errstr, errstr_size);
}
