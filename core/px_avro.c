/*
 * px_avro.c - Avro single-object codec for the four event schemas.
 * See px_avro.h for the contract.
 *
 * One table per kind (px_avro_schema.c) lists the record's fields in wire
 * order with their Avro shape and the px_event_t member they map to.
 * px_avro_new() checks
 * each table against the compiled-in schema as parsed by avro-c (field
 * names, shapes, enum symbols equal to px_event.h's names), so a schema
 * edit that the table does not follow stops start-up instead of
 * corrupting records.
 *
 * Encoding goes through avro-c's generic value API: one value, one memory
 * writer and one scratch buffer per codec, reset for every record. Strings
 * are lent to avro-c as wrapped buffers (no copy, no free function), so a
 * union switching between null and string allocates nothing either: in
 * steady state encode and decode do no allocation at all (checked with
 * valgrind's heap count, flat from 1,000 to 2,000 mixed records).
 *
 * Decoding does not trust avro-c with hostile bytes: avro-c allocates
 * whatever a string length says and has no trailing-byte or UTF-8 checks.
 * The body is read by a bounded decoder driven by the same table, straight
 * into the caller's px_event_t, with no allocation. Every varint is at
 * most 10 bytes (5 for int), every length is checked against the bytes
 * left and the px_event.h bound, unions and enums are range-checked,
 * booleans must be 0 or 1, strings must be UTF-8 without NUL, and nothing
 * may follow the record. px_avro_decode_avroc() (px_avro_int.h) decodes
 * with avro-c after that pass, for cross-checking in tests.
 *
 * Errors: PX_EPROTO for bytes that are not a valid record of a known
 * schema, PX_EINVAL for valid Avro whose content px_event.h refuses
 * (over a bound, embedded NUL, negative optional, px_event_validate).
 * The bounded reader is px_avro_rd.c.
 * Related: px_avro_pcf.c, px_crc64.c, schemas/, tests/unit/test_avro.c.
 */
#include "px_avro.h"

#include <avro.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "px_avro_int.h"
#include "px_err.h"
#include "px_wire.h"

/* ---- field access ------------------------------------------------------ */

static const char *px_avro_cstr(const px_event_t *ev, px_fid_t f, size_t *max) {
    return px_avro_str((px_event_t *)ev, f, max); /* read only */
}

/* The integer value of a non-string field (enums as their index, bool as 0/1). */
static int64_t px_avro_get_int(const px_event_t *ev, px_fid_t f) {
    switch (f) {
    case PX_F_TYPE: return ev->type;
    case PX_F_TS: return ev->ts_ms;
    case PX_F_MODE: return (int64_t)ev->mode;
    case PX_F_DIRTY: return ev->dirty ? 1 : 0;
    case PX_F_STATUS: return (int64_t)ev->status;
    case PX_F_EXPIRES_AT: return ev->expires_at_ms;
    case PX_F_VERSION: return ev->version;
    case PX_F_TOKEN: return ev->token;
    case PX_F_SRC_PARTITION: return ev->src_partition;
    case PX_F_SRC_OFFSET: return ev->src_offset;
    default: return 0;
    }
}

/* ---- set-up: parse, check tables against schemas, fingerprint ----------- */

/* Check that the parsed schema of a kind is exactly what its table says. */
static int px_avro_check_schema(px_kind_t kind, avro_schema_t s, char *errstr, size_t errstr_size) {
    const px_avro_kind_desc_t *d = &px_avro_kinds[kind];
    if (!is_avro_record(s) || avro_schema_record_size(s) != d->nfields)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "avro: %s schema: expected a record of %zu fields",
                       px_kind_name(kind), d->nfields);
    for (size_t i = 0; i < d->nfields; i++) {
        const px_avro_field_t *f = &d->fields[i];
        const char *name = avro_schema_record_field_name(s, (int)i);
        avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
        if (!name || strcmp(name, f->name) != 0)
            return px_errf(PX_ECONFIG, errstr, errstr_size, "avro: %s schema: field %zu is '%s', expected '%s'",
                           px_kind_name(kind), i, name ? name : "?", f->name);
        if (px_avro_wire_optional(f->wire)) {
            if (!is_avro_union(fs) || avro_schema_union_size(fs) != 2 ||
                !is_avro_null(avro_schema_union_branch(fs, 0)))
                return px_errf(PX_ECONFIG, errstr, errstr_size,
                               "avro: %s schema: field '%s' must be [\"null\", T]", px_kind_name(kind), f->name);
            fs = avro_schema_union_branch(fs, 1);
        }
        if (avro_typeof(fs) != px_avro_wire_type(f->wire))
            return px_errf(PX_ECONFIG, errstr, errstr_size, "avro: %s schema: field '%s' has the wrong type",
                           px_kind_name(kind), f->name);
        if (f->wire == PX_W_ENUM) {
            int n = px_avro_enum_count(kind, f->fid);
            if (avro_schema_enum_number_of_symbols(fs) != n)
                return px_errf(PX_ECONFIG, errstr, errstr_size, "avro: %s schema: enum '%s' needs %d symbols",
                               px_kind_name(kind), f->name, n);
            for (int k = 0; k < n; k++) {
                const char *sym = avro_schema_enum_get(fs, k);
                if (!sym || strcmp(sym, px_avro_enum_name(kind, f->fid, k)) != 0)
                    return px_errf(PX_ECONFIG, errstr, errstr_size,
                                   "avro: %s schema: enum '%s' symbol %d is '%s', expected '%s'",
                                   px_kind_name(kind), f->name, k, sym ? sym : "?",
                                   px_avro_enum_name(kind, f->fid, k));
            }
        }
    }
    return 0;
}

void px_avro_free(px_avro_t *c) {
    if (!c) return;
    for (int k = 0; k < PX_KIND__COUNT; k++) {
        px_avro_schema_t *s = &c->k[k];
        if (s->has_value) avro_value_decref(&s->value);
        if (s->iface) avro_value_iface_decref(s->iface);
        if (s->schema) avro_schema_decref(s->schema);
        px_buf_term(&s->pcf);
    }
    if (c->writer) avro_writer_free(c->writer);
    if (c->reader) avro_reader_free(c->reader);
    px_avro_writers_free(c->writers);
    px_buf_term(&c->fetched);
    free(c);
}

px_avro_t *px_avro_new(char *errstr, size_t errstr_size) {
    px_avro_t *c = calloc(1, sizeof *c);
    if (!c) {
        px_errf(PX_ENOMEM, errstr, errstr_size, "avro: out of memory");
        return NULL;
    }
    for (int k = 0; k < PX_KIND__COUNT; k++) px_buf_init(&c->k[k].pcf, 64 * 1024);
    px_buf_init(&c->fetched, 64 * 1024);
    c->writer = avro_writer_memory(c->scratch, sizeof c->scratch);
    c->reader = avro_reader_memory(c->scratch, 0);
    if (!c->writer || !c->reader) {
        px_errf(PX_ENOMEM, errstr, errstr_size, "avro: cannot create memory reader/writer");
        goto err;
    }
    for (int k = 0; k < PX_KIND__COUNT; k++) {
        px_avro_schema_t *s = &c->k[k];
        const char *json = px_avro_kinds[k].schema_json;
        s->confluent_id = -1;
        if (avro_schema_from_json_length(json, strlen(json), &s->schema)) {
            px_errf(PX_ECONFIG, errstr, errstr_size, "avro: %s schema: %s", px_kind_name((px_kind_t)k),
                    avro_strerror());
            s->schema = NULL;
            goto err;
        }
        if (px_avro_check_schema((px_kind_t)k, s->schema, errstr, errstr_size)) goto err;
        s->iface = avro_generic_class_from_schema(s->schema);
        if (!s->iface || avro_generic_value_new(s->iface, &s->value)) {
            px_errf(PX_ENOMEM, errstr, errstr_size, "avro: %s value: %s", px_kind_name((px_kind_t)k),
                    avro_strerror());
            goto err;
        }
        s->has_value = true;
        if (px_avro_pcf(json, &s->pcf, errstr, errstr_size)) goto err;
        s->fingerprint = px_crc64_avro(s->pcf.data, s->pcf.len);
        for (int b = 0; b < 8; b++) s->fp_le[b] = (unsigned char)(s->fingerprint >> (8 * b));
    }
    return c;
err:
    px_avro_free(c);
    return NULL;
}

/* ---- encode ------------------------------------------------------------ */

/* Lend s to an avro-c string value without copying: a wrapped buffer
 * with no free function, so avro-c never allocates or frees for it. The
 * value points into the caller's event only until the next reset; nothing
 * reads it after px_avro_encode returns. avro-c's length counts the NUL. */
static int px_avro_lend_string(avro_value_t *v, const char *s) {
    avro_wrapped_buffer_t wb;
    avro_wrapped_buffer_new(&wb, s, strlen(s) + 1);
    return avro_value_give_string_len(v, &wb);
}

/* Set one field of the generic record from ev. */
static int px_avro_set_field(const px_event_t *ev, const px_avro_field_t *f, avro_value_t *fv) {
    avro_value_t bv;
    size_t max;
    const char *s;
    int64_t v;
    switch (f->wire) {
    case PX_W_ENUM: return avro_value_set_enum(fv, (int)px_avro_get_int(ev, f->fid));
    case PX_W_STRING:
        s = px_avro_cstr(ev, f->fid, &max);
        return px_avro_lend_string(fv, s);
    case PX_W_OPT_STRING:
        s = px_avro_cstr(ev, f->fid, &max);
        if (!*s) return avro_value_set_branch(fv, 0, &bv) || avro_value_set_null(&bv);
        return avro_value_set_branch(fv, 1, &bv) || px_avro_lend_string(&bv, s);
    case PX_W_LONG: return avro_value_set_long(fv, px_avro_get_int(ev, f->fid));
    case PX_W_BOOL: return avro_value_set_boolean(fv, (int)px_avro_get_int(ev, f->fid));
    case PX_W_OPT_LONG:
    case PX_W_OPT_INT:
        v = px_avro_get_int(ev, f->fid);
        if (v == PX_NONE) return avro_value_set_branch(fv, 0, &bv) || avro_value_set_null(&bv);
        if (avro_value_set_branch(fv, 1, &bv)) return EINVAL;
        return f->wire == PX_W_OPT_LONG ? avro_value_set_long(&bv, v) : avro_value_set_int(&bv, (int32_t)v);
    }
    return EINVAL;
}

int px_avro_encode(px_avro_t *c, const px_event_t *ev, px_buf_t *out, char *errstr, size_t errstr_size) {
    int rc = px_event_validate(ev, errstr, errstr_size);
    if (rc) return rc;
    px_avro_schema_t *s = &c->k[ev->kind];
    const px_avro_kind_desc_t *d = &px_avro_kinds[ev->kind];
    avro_value_reset(&s->value);
    for (size_t i = 0; i < d->nfields; i++) {
        avro_value_t fv;
        if (avro_value_get_by_index(&s->value, i, &fv, NULL) || px_avro_set_field(ev, &d->fields[i], &fv))
            return px_errf(PX_EINVAL, errstr, errstr_size, "avro: encode %s.%s: %s", px_kind_name(ev->kind),
                           d->fields[i].name, avro_strerror());
    }
    avro_writer_memory_set_dest(c->writer, c->scratch, sizeof c->scratch);
    if (avro_value_write(c->writer, &s->value))
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro: encode %s: %s", px_kind_name(ev->kind),
                       avro_strerror());
    size_t n = (size_t)avro_writer_tell(c->writer);
    size_t hlen = s->confluent_id >= 0 ? PX_WIRE_CF_HEADER : PX_WIRE_SO_HEADER;
    if (n + hlen > PX_AVRO_MAX_RECORD)
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro: encoded %s is %zu bytes, over %d",
                       px_kind_name(ev->kind), n + hlen, PX_AVRO_MAX_RECORD);
    if (px_buf_reserve(out, hlen + n))
        return px_errf(PX_ENOMEM, errstr, errstr_size, "avro: output buffer full");
    /* neither append can fail after the reserve */
    if (s->confluent_id >= 0) {
        px_wire_put_confluent(out, (uint32_t)s->confluent_id);
    } else {
        px_buf_append(out, "\xC3\x01", 2);
        px_buf_append(out, s->fp_le, 8);
    }
    px_buf_append(out, c->scratch, n);
    return 0;
}

/* ---- decode ------------------------------------------------------------ */

/* Decode the body of a record of `kind` into ev (already px_event_init'ed). */
static int px_avro_decode_body(px_kind_t kind, const unsigned char *body, size_t len, px_event_t *ev,
                               char *errstr, size_t errstr_size) {
    const px_avro_kind_desc_t *d = &px_avro_kinds[kind];
    px_avro_rd_t r = {body, body, body + len, errstr, errstr_size};
    int rc;
    for (size_t i = 0; i < d->nfields; i++) {
        const px_avro_field_t *f = &d->fields[i];
        int64_t v = 0, branch = 0;
        size_t max;
        char *dst;
        switch (f->wire) {
        case PX_W_ENUM:
            if ((rc = px_avro_rd_index(&r, px_avro_enum_count(kind, f->fid), "enum", f->name, &v))) return rc;
            px_avro_set_int(ev, f->fid, v);
            break;
        case PX_W_STRING:
        case PX_W_OPT_STRING:
            dst = px_avro_str(ev, f->fid, &max);
            if (f->wire == PX_W_OPT_STRING) {
                if ((rc = px_avro_rd_index(&r, 2, "union", f->name, &branch))) return rc;
                if (branch == 0) { /* null: already empty */
                    dst[0] = '\0';
                    break;
                }
            }
            if ((rc = px_avro_rd_string(&r, f->name, dst, max))) return rc;
            break;
        case PX_W_BOOL:
            if (r.p == r.end)
                return px_errf(PX_EPROTO, errstr, errstr_size, "avro: %s: truncated at %zu", f->name, len);
            if (*r.p > 1)
                return px_errf(PX_EPROTO, errstr, errstr_size, "avro: %s: boolean byte %u at %zu", f->name,
                               (unsigned)*r.p, (size_t)(r.p - body));
            px_avro_set_int(ev, f->fid, *r.p++);
            break;
        case PX_W_LONG:
            if ((rc = px_avro_rd_varint(&r, 10, f->name, &v))) return rc;
            px_avro_set_int(ev, f->fid, v);
            break;
        case PX_W_OPT_LONG:
        case PX_W_OPT_INT:
            if ((rc = px_avro_rd_index(&r, 2, "union", f->name, &branch))) return rc;
            if (branch == 0) {
                px_avro_set_int(ev, f->fid, PX_NONE);
                break;
            }
            if ((rc = px_avro_rd_varint(&r, f->wire == PX_W_OPT_INT ? 5 : 10, f->name, &v))) return rc;
            if (v < 0)
                return px_errf(PX_EINVAL, errstr, errstr_size, "avro: %s: %lld is negative", f->name,
                               (long long)v);
            px_avro_set_int(ev, f->fid, v);
            break;
        }
    }
    if (r.p != r.end)
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: %zu trailing bytes after the %s record",
                       (size_t)(r.end - r.p), px_kind_name(kind));
    return 0;
}

/* Check the single-object header and length; find the kind. */
static int px_avro_header(px_avro_t *c, const unsigned char *b, size_t len, px_kind_t *kind, char *errstr,
                          size_t errstr_size) {
    if (len > PX_AVRO_MAX_RECORD)
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: record of %zu bytes, more than %d", len,
                       PX_AVRO_MAX_RECORD);
    if (len < 2 || b[0] != 0xC3 || b[1] != 0x01) {
        if (len >= 1 && b[0] != 0xC3) /* wrong magic even if short */
            return px_errf(PX_EPROTO, errstr, errstr_size, "avro: not single-object encoded (no C3 01 magic)");
        if (len >= 2)
            return px_errf(PX_EPROTO, errstr, errstr_size, "avro: not single-object encoded (no C3 01 magic)");
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: truncated header (%zu of %d bytes)", len,
                       PX_AVRO_HEADER_LEN);
    }
    if (len < PX_AVRO_HEADER_LEN)
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: truncated header (%zu of %d bytes)", len,
                       PX_AVRO_HEADER_LEN);
    for (int k = 0; k < PX_KIND__COUNT; k++)
        if (memcmp(b + 2, c->k[k].fp_le, 8) == 0) {
            *kind = (px_kind_t)k;
            return 0;
        }
    uint64_t fp = 0;
    for (int i = 7; i >= 0; i--) fp = (fp << 8) | b[2 + i];
    return px_errf(PX_EPROTO, errstr, errstr_size, "avro: unknown schema fingerprint %016llx",
                   (unsigned long long)fp);
}

/* Fetch the writer schema of an unknown id and plan it. */
static int px_avro_learn(px_avro_t *c, int32_t id, char *errstr, size_t errstr_size) {
    if (!c->fetch)
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: unknown schema id %d (no schema registry set)", (int)id);
    char why[256] = "";
    px_buf_reset(&c->fetched);
    int rc = c->fetch(c->fetch_ud, id, &c->fetched, why, sizeof why);
    if (rc == PX_EBACKEND)
        return px_errf(PX_EBACKEND, errstr, errstr_size, "avro: schema id %d not fetched: %s", (int)id, why);
    if (rc) return px_errf(PX_EPROTO, errstr, errstr_size, "avro: unknown schema id %d: %s", (int)id, why);
    rc = px_avro_writers_add(&c->writers, c, id, c->fetched.data, why, sizeof why);
    if (rc) return px_errf(rc == PX_ENOMEM ? PX_ENOMEM : PX_EINVAL, errstr, errstr_size, "%s", why);
    return 0;
}

void px_avro_set_fetch(px_avro_t *c, px_avro_fetch_fn fn, void *ud) {
    c->fetch = fn;
    c->fetch_ud = ud;
}

/* A Confluent-framed record: 00, the schema id, the body written with
 * that id's schema. */
static int px_avro_decode_confluent(px_avro_t *c, const unsigned char *b, size_t len, px_event_t *out,
                                    char *errstr, size_t errstr_size) {
    px_wire_hdr_t h;
    char why[128];
    if (px_wire_parse(b, len, &h, why, sizeof why))
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: %s", why);
    int32_t id = (int32_t)h.schema_id;
    px_kind_t kind;
    bool native;
    if (px_avro_writers_find(c->writers, (int32_t)id, &kind, &native)) {
        int rc = px_avro_learn(c, id, errstr, errstr_size);
        if (rc) return rc;
        px_avro_writers_find(c->writers, id, &kind, &native);
    }
    px_event_init(out, kind);
    const unsigned char *body = b + h.body_off;
    size_t n = len - h.body_off;
    int rc = native ? px_avro_decode_body(kind, body, n, out, errstr, errstr_size)
                    : px_avro_writers_decode(c->writers, id, body, n, out, errstr, errstr_size);
    if (rc) return rc;
    return px_event_validate(out, errstr, errstr_size);
}

int px_avro_set_confluent_id(px_avro_t *c, px_kind_t kind, int32_t id, char *errstr, size_t errstr_size) {
    if ((unsigned)kind >= PX_KIND__COUNT)
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro: no such kind %d", (int)kind);
    if (id >= 0) {
        int rc = px_avro_writers_add(&c->writers, c, id, px_avro_kinds[kind].schema_json, errstr, errstr_size);
        if (rc) return rc;
    }
    c->k[kind].confluent_id = id < 0 ? -1 : id;
    return 0;
}

int px_avro_add_schema(px_avro_t *c, int32_t id, const char *schema_json, char *errstr, size_t errstr_size) {
    if (id < 0) return px_errf(PX_EINVAL, errstr, errstr_size, "avro: schema id %d is negative", (int)id);
    return px_avro_writers_add(&c->writers, c, id, schema_json, errstr, errstr_size);
}

bool px_avro_knows_id(const px_avro_t *c, int32_t id) {
    px_kind_t kind;
    bool native;
    return px_avro_writers_find(c->writers, id, &kind, &native) == 0;
}

int px_avro_decode(px_avro_t *c, const void *buf, size_t len, px_event_t *out, char *errstr,
                   size_t errstr_size) {
    const unsigned char *b = buf;
    if (len > 0 && len <= PX_AVRO_MAX_RECORD && b[0] == 0x00)
        return px_avro_decode_confluent(c, b, len, out, errstr, errstr_size);
    px_kind_t kind = PX_KIND__COUNT; /* set by px_avro_header on success */
    int rc = px_avro_header(c, b, len, &kind, errstr, errstr_size);
    if (rc) return rc;
    px_event_init(out, kind);
    rc = px_avro_decode_body(kind, b + PX_AVRO_HEADER_LEN, len - PX_AVRO_HEADER_LEN, out, errstr, errstr_size);
    if (rc) return rc;
    return px_event_validate(out, errstr, errstr_size);
}

/* ---- decode through avro-c (tests) -------------------------------------- */

/* Copy a string out of an avro-c string value, with the same checks. */
static int px_avro_get_string(avro_value_t *v, const char *field, char *dst, size_t max, char *errstr,
                              size_t errstr_size) {
    const char *s;
    size_t size; /* counts the NUL */
    if (avro_value_get_string(v, &s, &size) || size == 0)
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro-c: %s: %s", field, avro_strerror());
    if (size - 1 > max)
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro-c: %s: more than %zu bytes", field, max);
    memcpy(dst, s, size - 1);
    dst[size - 1] = '\0';
    return 0;
}

int px_avro_decode_avroc(px_avro_t *c, const void *buf, size_t len, px_event_t *out, char *errstr,
                         size_t errstr_size) {
    int rc = px_avro_decode(c, buf, len, out, errstr, errstr_size); /* the bounded pass first */
    if (rc) return rc;
    px_kind_t kind = out->kind;
    px_avro_schema_t *s = &c->k[kind];
    const px_avro_kind_desc_t *d = &px_avro_kinds[kind];
    px_event_init(out, kind);
    avro_value_reset(&s->value);
    size_t hlen = ((const unsigned char *)buf)[0] == 0x00 ? PX_WIRE_CF_HEADER : PX_AVRO_HEADER_LEN;
    avro_reader_memory_set_source(c->reader, (const char *)buf + hlen, (int64_t)(len - hlen));
    if (avro_value_read(c->reader, &s->value))
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro-c: read %s: %s", px_kind_name(kind), avro_strerror());
    for (size_t i = 0; i < d->nfields; i++) {
        const px_avro_field_t *f = &d->fields[i];
        avro_value_t fv, bv;
        int disc = 1, e;
        int32_t i32;
        int64_t i64;
        size_t max;
        if (avro_value_get_by_index(&s->value, i, &fv, NULL))
            return px_errf(PX_EPROTO, errstr, errstr_size, "avro-c: %s: %s", f->name, avro_strerror());
        if (px_avro_wire_optional(f->wire)) {
            if (avro_value_get_discriminant(&fv, &disc) || avro_value_get_current_branch(&fv, &bv))
                return px_errf(PX_EPROTO, errstr, errstr_size, "avro-c: %s: %s", f->name, avro_strerror());
            fv = bv;
        }
        switch (f->wire) {
        case PX_W_ENUM:
            if (avro_value_get_enum(&fv, &e)) return PX_EPROTO;
            px_avro_set_int(out, f->fid, e);
            break;
        case PX_W_STRING:
        case PX_W_OPT_STRING: {
            char *dst = px_avro_str(out, f->fid, &max); /* sets max: not inside the call below */
            if (disc == 1 && (rc = px_avro_get_string(&fv, f->name, dst, max, errstr, errstr_size))) return rc;
            break;
        }
        case PX_W_BOOL:
            if (avro_value_get_boolean(&fv, &e)) return PX_EPROTO;
            px_avro_set_int(out, f->fid, e);
            break;
        case PX_W_LONG:
        case PX_W_OPT_LONG:
            if (disc == 1) {
                if (avro_value_get_long(&fv, &i64)) return PX_EPROTO;
                px_avro_set_int(out, f->fid, i64);
            }
            break;
        case PX_W_OPT_INT:
            if (disc == 1) {
                if (avro_value_get_int(&fv, &i32)) return PX_EPROTO;
                px_avro_set_int(out, f->fid, i32);
            }
            break;
        }
    }
    return px_event_validate(out, errstr, errstr_size);
}
