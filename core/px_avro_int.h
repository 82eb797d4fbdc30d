/*
 * px_avro_int.h - internals of the Avro codec shared by its files
 * (px_avro.c: set-up, encode, decode; px_avro_resolve.c: records written
 * with another version of a schema) and with its tests and tools (not part
 * of the public API in px_avro.h).
 *
 * The hot decode path (px_avro_decode) reads the body with a hand-written,
 * bounded, allocation-free decoder. px_avro_decode_avroc() reads the same
 * body with avro-c's generic value API instead, after the bounded decoder
 * accepted it (avro-c is not safe on hostile input), so tests can check the
 * two agree on every record. Related: px_avro.c, tests/unit/test_avro.c.
 */
#ifndef PX_AVRO_INT_H
#define PX_AVRO_INT_H

#include <avro.h>
#include <stdbool.h>

#include "px_avro.h"

/* Single-object header: C3 01 then the 8-byte little-endian fingerprint. */
#define PX_AVRO_HEADER_LEN 10

/* The Avro shape of a field. OPT_* are ["null", T] with null first. */
typedef enum {
    PX_W_ENUM,
    PX_W_STRING,
    PX_W_OPT_STRING,
    PX_W_LONG,
    PX_W_OPT_LONG,
    PX_W_BOOL,
    PX_W_OPT_INT,
} px_avro_shape_t;

/* The px_event_t member a field maps to. */
typedef enum {
    PX_F_TYPE,
    PX_F_TENANT,
    PX_F_ENTITY,
    PX_F_ID,
    PX_F_TS,
    PX_F_TAB_ID,
    PX_F_USER_ID,
    PX_F_USER_NAME,
    PX_F_MODE,
    PX_F_DIRTY,
    PX_F_STATUS,
    PX_F_CURSOR,
    PX_F_FIELD,
    PX_F_REQUEST_ID,
    PX_F_EXPIRES_AT,
    PX_F_BUSY_BY,
    PX_F_WRITE_ID,
    PX_F_VERSION,
    PX_F_TOKEN,
    PX_F_HOLDER_USER_ID,
    PX_F_HOLDER_NAME,
    PX_F_SRC_TOPIC,
    PX_F_SRC_PARTITION,
    PX_F_SRC_OFFSET,
} px_fid_t;

typedef struct px_avro_field {
    const char *name; /* the Avro field name */
    px_fid_t fid;
    px_avro_shape_t wire;
} px_avro_field_t;

typedef struct px_avro_kind_desc {
    const char *schema_json;
    const px_avro_field_t *fields;
    size_t nfields;
} px_avro_kind_desc_t;

typedef struct px_avro_rd {
    const unsigned char *p, *start, *end;
    char *errstr;
    size_t errstr_size;
} px_avro_rd_t;

/* One table per kind: the record's fields in wire order. */
extern const px_avro_kind_desc_t px_avro_kinds[PX_KIND__COUNT];

/* The string member for a field and its bound (*max); NULL for non-strings. */
char *px_avro_str(px_event_t *ev, px_fid_t f, size_t *max);
/* Store v in a non-string member; callers have range-checked it. */
void px_avro_set_int(px_event_t *ev, px_fid_t f, int64_t v);
/* Symbol count and names of an enum field of a kind, as px_event.h spells them. */
static inline int px_avro_enum_count(px_kind_t kind, px_fid_t f) {
    return f == PX_F_TYPE ? px_event_type_count(kind) : 2; /* mode, status */
}
const char *px_avro_enum_name(px_kind_t kind, px_fid_t f, int i);
/* The avro-c type of a shape (the non-null branch for OPT_*), and whether
 * the shape is ["null", T]. */
avro_type_t px_avro_wire_type(px_avro_shape_t w);
bool px_avro_wire_optional(px_avro_shape_t w);

/* The bounded reader: each call checks every length against the bytes
 * left and fails with PX_EPROTO/PX_EINVAL and a reason in r->errstr. */
int px_avro_rd_varint(px_avro_rd_t *r, int maxbytes, const char *what, int64_t *out);
int px_avro_rd_index(px_avro_rd_t *r, int n, const char *kind, const char *field, int64_t *out);
int px_avro_rd_string(px_avro_rd_t *r, const char *field, char *dst, size_t max);

/* The codec's parsed built-in schema of kind (owned by the codec). */
avro_schema_t px_avro_parsed_schema(const px_avro_t *c, px_kind_t kind);

/* --- writer schemas by Confluent schema id (px_avro_resolve.c) ---------- */

#define PX_AVRO_WRITERS_MAX 256 /* most distinct schema ids one codec keeps */

typedef struct px_avro_writers px_avro_writers_t;

/* Per-kind avro-c state, reused for every record of that kind. */
typedef struct px_avro_schema {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    bool has_value;
    px_buf_t pcf;         /* Parsing Canonical Form */
    uint64_t fingerprint; /* CRC-64-AVRO of pcf */
    unsigned char fp_le[8];
    int32_t confluent_id; /* >= 0: encode in Confluent framing with this id */
} px_avro_schema_t;

struct px_avro {
    px_avro_schema_t k[PX_KIND__COUNT];
    avro_writer_t writer;
    avro_reader_t reader;
    char scratch[PX_AVRO_MAX_RECORD]; /* encoder output before the header is prepended */
    px_avro_writers_t *writers;       /* Confluent schema ids seen (px_avro_resolve.c) */
    px_avro_fetch_fn fetch;           /* the writer schema of an unknown id, or NULL */
    void *fetch_ud;
    px_buf_t fetched;                 /* its text */
};

/* Add id -> writer schema (JSON text) to *ws (created on first use). The
 * writer must be a record of one of the four schemas' full names, and
 * resolvable into it by Avro's rules: fields matched by name, fields the
 * reader lacks skipped, reader fields the writer lacks must be optional
 * (["null", T], read as null), int promoted to long, a plain T read into
 * ["null", T], enum symbols matched by name. A writer whose Parsing
 * Canonical Form equals the built-in schema's decodes on the fast path.
 * 0, PX_EINVAL (not resolvable: the reason in errstr), PX_EPROTO (not a
 * schema), PX_ENOMEM (table full). Re-adding a known id is a no-op. */
int px_avro_writers_add(px_avro_writers_t **ws, px_avro_t *c, int32_t id, const char *schema_json,
                        char *errstr, size_t errstr_size);
/* The kind that id decodes to and whether it is the built-in schema
 * (*native): 0, or -1 if id is unknown. */
int px_avro_writers_find(const px_avro_writers_t *ws, int32_t id, px_kind_t *kind, bool *native);
/* Decode a body written with id's schema into ev (px_event_init'ed to the
 * kind px_avro_writers_find gave). Same errors as px_avro_decode. */
int px_avro_writers_decode(const px_avro_writers_t *ws, int32_t id, const unsigned char *body, size_t len,
                           px_event_t *ev, char *errstr, size_t errstr_size);
void px_avro_writers_free(px_avro_writers_t *ws); /* NULL is a no-op */

/* As px_avro_decode(), but the event is extracted from an avro-c generic
 * value read by avro_value_read(). Same errors; out is caller-owned. */
int px_avro_decode_avroc(px_avro_t *c, const void *buf, size_t len, px_event_t *out, char *errstr,
                         size_t errstr_size);

#endif
