/*
 * px_avro_schema.c - the Avro codec's description of the four event
 * schemas, shared by its files (px_avro_int.h): one table per kind listing
 * the record's fields in wire order with their Avro shape and the
 * px_event_t member they map to; the access to those members by field;
 * the enum symbols as px_event.h spells them; the codec's parsed schemas,
 * Parsing Canonical Forms and fingerprints by kind.
 * Related: px_avro.c (checks the tables against the schemas at
 * px_avro_new()), px_avro_resolve.c, schemas/.
 */
#include "px_avro.h"

#include <avro.h>
#include <stdbool.h>

#include "px_avro_int.h"

/* Generated from the schemas/ directory (.avsc files) by cmake/embed_schemas.cmake. */
extern const char px_schema_PresenceEvent[];
extern const char px_schema_LockEvent[];
extern const char px_schema_LifecycleEvent[];
extern const char px_schema_ChangeEvent[];

/* The common head of every record: type, key parts, ts. */
#define PX_AVRO_HEAD                                                                                     \
    {"type", PX_F_TYPE, PX_W_ENUM}, {"tenant", PX_F_TENANT, PX_W_STRING},                                \
        {"entity", PX_F_ENTITY, PX_W_STRING}, {"id", PX_F_ID, PX_W_STRING}, {"ts", PX_F_TS, PX_W_LONG}

static const px_avro_field_t px_avro_presence_fields[] = {
    PX_AVRO_HEAD,
    {"tab_id", PX_F_TAB_ID, PX_W_STRING},
    {"user_id", PX_F_USER_ID, PX_W_STRING},
    {"user_name", PX_F_USER_NAME, PX_W_OPT_STRING},
    {"mode", PX_F_MODE, PX_W_ENUM},
    {"dirty", PX_F_DIRTY, PX_W_BOOL},
    {"status", PX_F_STATUS, PX_W_ENUM},
    {"cursor", PX_F_CURSOR, PX_W_OPT_STRING},
    {"field", PX_F_FIELD, PX_W_OPT_STRING},
    {"expires_at_ms", PX_F_EXPIRES_AT, PX_W_OPT_LONG},
};

static const px_avro_field_t px_avro_lock_fields[] = {
    PX_AVRO_HEAD,
    {"tab_id", PX_F_TAB_ID, PX_W_STRING},
    {"user_id", PX_F_USER_ID, PX_W_STRING},
    {"user_name", PX_F_USER_NAME, PX_W_OPT_STRING},
    {"field", PX_F_FIELD, PX_W_STRING},
    {"request_id", PX_F_REQUEST_ID, PX_W_OPT_STRING},
    {"expires_at_ms", PX_F_EXPIRES_AT, PX_W_OPT_LONG},
};

static const px_avro_field_t px_avro_lifecycle_fields[] = {
    PX_AVRO_HEAD,
    {"busy_by", PX_F_BUSY_BY, PX_W_OPT_STRING},
    {"write_id", PX_F_WRITE_ID, PX_W_OPT_STRING},
    {"version", PX_F_VERSION, PX_W_OPT_LONG},
    {"expires_at_ms", PX_F_EXPIRES_AT, PX_W_OPT_LONG},
};

static const px_avro_field_t px_avro_change_fields[] = {
    PX_AVRO_HEAD,
    {"tab_id", PX_F_TAB_ID, PX_W_OPT_STRING},
    {"user_id", PX_F_USER_ID, PX_W_OPT_STRING},
    {"user_name", PX_F_USER_NAME, PX_W_OPT_STRING},
    {"field", PX_F_FIELD, PX_W_OPT_STRING},
    {"token", PX_F_TOKEN, PX_W_OPT_LONG},
    {"holder_user_id", PX_F_HOLDER_USER_ID, PX_W_OPT_STRING},
    {"holder_name", PX_F_HOLDER_NAME, PX_W_OPT_STRING},
    {"busy_by", PX_F_BUSY_BY, PX_W_OPT_STRING},
    {"version", PX_F_VERSION, PX_W_OPT_LONG},
    {"request_id", PX_F_REQUEST_ID, PX_W_OPT_STRING},
    {"src_topic", PX_F_SRC_TOPIC, PX_W_OPT_STRING},
    {"src_partition", PX_F_SRC_PARTITION, PX_W_OPT_INT},
    {"src_offset", PX_F_SRC_OFFSET, PX_W_OPT_LONG},
};

const px_avro_kind_desc_t px_avro_kinds[PX_KIND__COUNT] = {
    [PX_KIND_PRESENCE] = {px_schema_PresenceEvent, px_avro_presence_fields,
                          sizeof px_avro_presence_fields / sizeof px_avro_presence_fields[0]},
    [PX_KIND_LOCK] = {px_schema_LockEvent, px_avro_lock_fields,
                      sizeof px_avro_lock_fields / sizeof px_avro_lock_fields[0]},
    [PX_KIND_LIFECYCLE] = {px_schema_LifecycleEvent, px_avro_lifecycle_fields,
                           sizeof px_avro_lifecycle_fields / sizeof px_avro_lifecycle_fields[0]},
    [PX_KIND_CHANGE] = {px_schema_ChangeEvent, px_avro_change_fields,
                        sizeof px_avro_change_fields / sizeof px_avro_change_fields[0]},
};

/* ---- field access ------------------------------------------------------ */

/* The string member for a field and its bound; NULL for non-strings. */
char *px_avro_str(px_event_t *ev, px_fid_t f, size_t *max) {
    switch (f) {
    case PX_F_TENANT: *max = PX_KEY_PART_MAX; return ev->key.tenant;
    case PX_F_ENTITY: *max = PX_KEY_PART_MAX; return ev->key.entity;
    case PX_F_ID: *max = PX_KEY_PART_MAX; return ev->key.id;
    case PX_F_TAB_ID: *max = PX_ID_MAX; return ev->tab_id;
    case PX_F_USER_ID: *max = PX_ID_MAX; return ev->user_id;
    case PX_F_USER_NAME: *max = PX_NAME_MAX; return ev->user_name;
    case PX_F_CURSOR: *max = PX_NAME_MAX; return ev->cursor;
    case PX_F_FIELD: *max = PX_ID_MAX; return ev->field;
    case PX_F_REQUEST_ID: *max = PX_ID_MAX; return ev->request_id;
    case PX_F_BUSY_BY: *max = PX_NAME_MAX; return ev->busy_by;
    case PX_F_WRITE_ID: *max = PX_ID_MAX; return ev->write_id;
    case PX_F_HOLDER_USER_ID: *max = PX_ID_MAX; return ev->holder_user_id;
    case PX_F_HOLDER_NAME: *max = PX_NAME_MAX; return ev->holder_name;
    case PX_F_SRC_TOPIC: *max = PX_TOPIC_MAX; return ev->src_topic;
    default: *max = 0; return NULL;
    }
}

/* Store v; callers have range-checked it for the member's type. */
void px_avro_set_int(px_event_t *ev, px_fid_t f, int64_t v) {
    switch (f) {
    case PX_F_TYPE: ev->type = (int)v; break;
    case PX_F_TS: ev->ts_ms = v; break;
    case PX_F_MODE: ev->mode = (px_mode_t)v; break;
    case PX_F_DIRTY: ev->dirty = v != 0; break;
    case PX_F_STATUS: ev->status = (px_status_t)v; break;
    case PX_F_EXPIRES_AT: ev->expires_at_ms = v; break;
    case PX_F_VERSION: ev->version = v; break;
    case PX_F_TOKEN: ev->token = v; break;
    case PX_F_SRC_PARTITION: ev->src_partition = (int32_t)v; break;
    case PX_F_SRC_OFFSET: ev->src_offset = v; break;
    default: break;
    }
}

/* Symbol name of an enum field's value, as px_event.h spells it. */
const char *px_avro_enum_name(px_kind_t kind, px_fid_t f, int i) {
    static const char *const modes[] = {"VIEW", "EDIT"}, *const statuses[] = {"ONLINE", "AWAY"};
    if (f == PX_F_TYPE) return px_event_type_name(kind, i);
    if (i < 0 || i > 1) return "?";
    return f == PX_F_MODE ? modes[i] : statuses[i];
}

/* ---- wire shapes and the codec's schemas -------------------------------- */

/* The avro-c type a wire shape needs (the non-null branch for OPT_*). */
avro_type_t px_avro_wire_type(px_avro_shape_t w) {
    switch (w) {
    case PX_W_ENUM: return AVRO_ENUM;
    case PX_W_STRING:
    case PX_W_OPT_STRING: return AVRO_STRING;
    case PX_W_LONG:
    case PX_W_OPT_LONG: return AVRO_INT64;
    case PX_W_BOOL: return AVRO_BOOLEAN;
    case PX_W_OPT_INT: return AVRO_INT32;
    }
    return AVRO_NULL;
}

bool px_avro_wire_optional(px_avro_shape_t w) {
    return w == PX_W_OPT_STRING || w == PX_W_OPT_LONG || w == PX_W_OPT_INT;
}

avro_schema_t px_avro_parsed_schema(const px_avro_t *c, px_kind_t kind) { return c->k[kind].schema; }

const char *px_avro_schema_json(px_kind_t kind) {
    return ((unsigned)kind < PX_KIND__COUNT) ? px_avro_kinds[kind].schema_json : NULL;
}

const char *px_avro_canonical_form(px_avro_t *c, px_kind_t kind) {
    return ((unsigned)kind < PX_KIND__COUNT) ? c->k[kind].pcf.data : NULL;
}

uint64_t px_avro_fingerprint(px_avro_t *c, px_kind_t kind) {
    return ((unsigned)kind < PX_KIND__COUNT) ? c->k[kind].fingerprint : 0;
}
