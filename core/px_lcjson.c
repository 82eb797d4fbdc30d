/* px_lcjson.c - LifecycleEvent from JSON. See px_lcjson.h. */
#include "px_lcjson.h"

#include <string.h>

#include <jansson.h>

#include "px_err.h"

/* Copy string member k (or alt) into dst[n]; absent is empty. */
static int str_member(json_t *o, const char *k, const char *alt, char *dst, size_t n, char *errstr,
                      size_t es) {
    json_t *v = json_object_get(o, k);
    if (!v && alt) v = json_object_get(o, alt);
    if (!v) {
        dst[0] = '\0';
        return 0;
    }
    if (!json_is_string(v)) return px_errf(PX_EINVAL, errstr, es, "'%s' must be a string", k);
    size_t l = json_string_length(v);
    if (l >= n) return px_errf(PX_EINVAL, errstr, es, "'%s' is longer than %zu bytes", k, n - 1);
    memcpy(dst, json_string_value(v), l + 1);
    return 0;
}

static int int_member(json_t *o, const char *k, int64_t *out, char *errstr, size_t es) {
    json_t *v = json_object_get(o, k);
    if (!v) return 1; /* absent */
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return px_errf(PX_EINVAL, errstr, es, "'%s' must be a non-negative integer", k);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int px_lcjson_decode(const char *buf, size_t len, int64_t fallback_ts_ms, px_event_t *ev, char *errstr,
                     size_t es) {
    if (len > PX_LCJSON_MAX_BYTES)
        return px_errf(PX_EPROTO, errstr, es, "JSON lifecycle record over %d bytes", PX_LCJSON_MAX_BYTES);
    json_error_t jerr;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) return px_errf(PX_EPROTO, errstr, es, "not JSON: %s", jerr.text);
    int rc = PX_EINVAL;
    char type[16], tenant[PX_KEY_PART_MAX + 1], entity[PX_KEY_PART_MAX + 1], id[PX_KEY_PART_MAX + 1];
    if (!json_is_object(o)) {
        rc = px_errf(PX_EPROTO, errstr, es, "not a JSON object");
        goto out;
    }
    px_event_init(ev, PX_KIND_LIFECYCLE);
    if (str_member(o, "type", NULL, type, sizeof type, errstr, es) ||
        str_member(o, "tenant", NULL, tenant, sizeof tenant, errstr, es) ||
        str_member(o, "entity", NULL, entity, sizeof entity, errstr, es) ||
        str_member(o, "id", NULL, id, sizeof id, errstr, es) ||
        str_member(o, "busy_by", "busyBy", ev->busy_by, sizeof ev->busy_by, errstr, es) ||
        str_member(o, "write_id", "writeId", ev->write_id, sizeof ev->write_id, errstr, es))
        goto out;
    if (strcmp(type, "MUTATING") == 0) ev->type = PX_LC_MUTATING;
    else if (strcmp(type, "MUTATED") == 0) ev->type = PX_LC_MUTATED;
    else {
        px_errf(PX_EINVAL, errstr, es, "'type' must be MUTATING or MUTATED");
        goto out;
    }
    if (px_key_set(&ev->key, tenant, entity, id, errstr, es)) goto out;
    int r = int_member(o, "ts", &ev->ts_ms, errstr, es);
    if (r < 0) goto out;
    if (r == 1) ev->ts_ms = fallback_ts_ms;
    r = int_member(o, "version", &ev->version, errstr, es);
    if (r < 0) goto out;
    if (ev->type == PX_LC_MUTATING && r == 0) {
        px_errf(PX_EINVAL, errstr, es, "'version' belongs on MUTATED");
        goto out;
    }
    rc = px_event_validate(ev, errstr, es);
out:
    json_decref(o);
    return rc;
}
