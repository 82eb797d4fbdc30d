/*
 * px_avro_resolve.c - records written with another version of one of the
 * four schemas, as a schema registry serves them (a Confluent schema id
 * names the writer's schema). See px_avro_int.h for the rules.
 *
 * Adding an id builds a plan once: for every field of the writer's record,
 * in the writer's order, either the reader field it fills (with how to read
 * its union branches and enum symbols) or "skip"; plus the reader fields
 * the writer lacks, which are read as null. Decoding follows the plan with
 * the same bounded reader as the built-in path (px_avro.c): every length
 * checked, nothing allocated, and skipped values of any Avro type bounded
 * in nesting depth and item count, so a hostile body cannot loop or
 * recurse without end. The writer schema itself comes from the registry,
 * which the operator configures: it is parsed by avro-c, bounded in size by
 * px_registry, and checked before any plan uses it.
 */
#include <stdlib.h>
#include <string.h>

#include "px_avro_int.h"
#include "px_err.h"

#define PX_RES_BRANCH_MAX 8 /* union branches of a field the plan reads */
#define PX_RES_ENUM_MAX 64  /* enum symbols of a writer's enum */
#define PX_RES_DEPTH_MAX 32 /* nesting of a skipped value */
#define PX_RES_ITEMS_MAX 65536 /* array/map items skipped in one record */

/* How a writer value (or union branch) reads into the reader field. */
enum { PX_RES_NO = 0, PX_RES_NULL = 1, PX_RES_VALUE = 2, PX_RES_INT_AS_LONG = 3 };

typedef struct px_res_step {
    int rfield;               /* reader field index; -1: skip the value */
    avro_schema_t wschema;    /* the writer field's schema (borrowed from the writer) */
    int nbranch;              /* 0: not a union; else how each branch reads */
    unsigned char branch[PX_RES_BRANCH_MAX];
    unsigned char direct;     /* not a union: how the value reads */
    int nsym;                 /* enum: writer symbol -> reader index (-1: unknown) */
    signed char enum_map[PX_RES_ENUM_MAX];
} px_res_step_t;

typedef struct px_res_writer {
    int32_t id;
    px_kind_t kind;
    bool native;          /* the built-in schema: px_avro.c's fast path */
    avro_schema_t schema; /* owned */
    px_res_step_t *steps; /* owned, one per writer field */
    size_t nsteps;
    uint32_t missing;     /* reader fields the writer lacks (bit per index) */
} px_res_writer_t;

struct px_avro_writers {
    px_res_writer_t w[PX_AVRO_WRITERS_MAX];
    size_t n;
};

static avro_schema_t deref(avro_schema_t s) {
    return (s && is_avro_link(s)) ? avro_schema_link_target(s) : s;
}

/* How a writer type reads into a reader shape's base type. */
static unsigned char accepts(px_avro_shape_t r, avro_schema_t w) {
    avro_type_t t = avro_typeof(w);
    switch (r) {
    case PX_W_ENUM: return t == AVRO_ENUM ? PX_RES_VALUE : PX_RES_NO;
    case PX_W_STRING:
    case PX_W_OPT_STRING: return t == AVRO_STRING ? PX_RES_VALUE : PX_RES_NO;
    case PX_W_LONG:
    case PX_W_OPT_LONG: return t == AVRO_INT64 ? PX_RES_VALUE : t == AVRO_INT32 ? PX_RES_INT_AS_LONG : PX_RES_NO;
    case PX_W_BOOL: return t == AVRO_BOOLEAN ? PX_RES_VALUE : PX_RES_NO;
    case PX_W_OPT_INT: return t == AVRO_INT32 ? PX_RES_VALUE : PX_RES_NO;
    }
    return PX_RES_NO;
}

/* Symbols of a writer enum mapped by name onto the reader field's. */
static int map_enum(px_res_step_t *st, px_kind_t kind, const px_avro_field_t *f, avro_schema_t w,
                    char *errstr, size_t errstr_size) {
    int n = avro_schema_enum_number_of_symbols(w);
    if (n <= 0 || n > PX_RES_ENUM_MAX)
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer enum '%s' has %d symbols (1..%d)", f->name,
                       n, PX_RES_ENUM_MAX);
    int rn = px_avro_enum_count(kind, f->fid), known = 0;
    st->nsym = n;
    for (int i = 0; i < n; i++) {
        const char *sym = avro_schema_enum_get(w, i);
        st->enum_map[i] = -1;
        for (int j = 0; sym && j < rn; j++)
            if (strcmp(sym, px_avro_enum_name(kind, f->fid, j)) == 0) st->enum_map[i] = (signed char)j, known++;
    }
    if (!known)
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer enum '%s' shares no symbol with the reader",
                       f->name);
    return 0;
}

/* Plan how writer field schema w fills reader field f. */
static int plan_field(px_res_step_t *st, px_kind_t kind, const px_avro_field_t *f, avro_schema_t w,
                      char *errstr, size_t errstr_size) {
    avro_schema_t value = NULL;
    if (is_avro_union(w)) {
        size_t n = avro_schema_union_size(w);
        if (n == 0 || n > PX_RES_BRANCH_MAX)
            return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer field '%s': union of %zu branches",
                           f->name, n);
        st->nbranch = (int)n;
        for (size_t b = 0; b < n; b++) {
            avro_schema_t bs = deref(avro_schema_union_branch(w, (int)b));
            st->branch[b] = is_avro_null(bs) ? PX_RES_NULL : accepts(f->wire, bs);
            if (st->branch[b] >= PX_RES_VALUE) {
                if (value && avro_typeof(value) == AVRO_ENUM && avro_typeof(bs) == AVRO_ENUM)
                    return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer field '%s': two enum branches",
                                   f->name);
                value = bs;
            }
        }
        bool any = false;
        for (int b = 0; b < st->nbranch; b++)
            any |= st->branch[b] >= PX_RES_VALUE || (st->branch[b] == PX_RES_NULL && px_avro_wire_optional(f->wire));
        if (!any)
            return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer field '%s': no branch reads as %s",
                           f->name, avro_schema_type_name(avro_schema_union_branch(w, 0)));
    } else if (is_avro_null(w) && px_avro_wire_optional(f->wire)) {
        st->direct = PX_RES_NULL;
    } else {
        st->direct = accepts(f->wire, w);
        if (st->direct == PX_RES_NO)
            return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer field '%s' is %s, not readable here",
                           f->name, avro_schema_type_name(w));
        value = w;
    }
    if (value && avro_typeof(value) == AVRO_ENUM) return map_enum(st, kind, f, value, errstr, errstr_size);
    return 0;
}

static void writer_term(px_res_writer_t *w) {
    free(w->steps);
    if (w->schema) avro_schema_decref(w->schema);
    memset(w, 0, sizeof *w);
}

/* The built-in kind whose record has w's full name, or PX_KIND__COUNT. */
static px_kind_t kind_of(const px_avro_t *c, avro_schema_t w) {
    const char *name = avro_schema_name(w), *ns = avro_schema_namespace(w);
    for (int k = 0; k < PX_KIND__COUNT; k++) {
        avro_schema_t own = px_avro_parsed_schema(c, (px_kind_t)k);
        const char *on = avro_schema_name(own), *ons = avro_schema_namespace(own);
        if (name && on && strcmp(name, on) == 0 && strcmp(ns ? ns : "", ons ? ons : "") == 0) return (px_kind_t)k;
    }
    return PX_KIND__COUNT;
}

static int plan_writer(px_res_writer_t *pw, px_avro_t *c, const char *json, char *errstr, size_t errstr_size) {
    if (avro_schema_from_json_length(json, strlen(json), &pw->schema)) {
        pw->schema = NULL;
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: writer schema %d: %s", (int)pw->id, avro_strerror());
    }
    avro_schema_t w = pw->schema;
    if (!is_avro_record(w))
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer schema %d is not a record", (int)pw->id);
    pw->kind = kind_of(c, w);
    if (pw->kind == PX_KIND__COUNT)
        return px_errf(PX_EINVAL, errstr, errstr_size, "avro: writer schema %d is record '%s', none of ours",
                       (int)pw->id, avro_schema_name(w) ? avro_schema_name(w) : "?");
    px_buf_t pcf;
    px_buf_init(&pcf, 64 * 1024);
    int rc = px_avro_pcf(json, &pcf, errstr, errstr_size);
    pw->native = rc == 0 && strcmp(pcf.data, px_avro_canonical_form(c, pw->kind)) == 0;
    px_buf_term(&pcf);
    if (rc) return rc;
    if (pw->native) return 0;

    const px_avro_kind_desc_t *d = &px_avro_kinds[pw->kind];
    size_t n = avro_schema_record_size(w);
    pw->steps = calloc(n ? n : 1, sizeof *pw->steps);
    if (!pw->steps) return px_errf(PX_ENOMEM, errstr, errstr_size, "avro: out of memory planning schema %d", (int)pw->id);
    pw->nsteps = n;
    uint32_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        px_res_step_t *st = &pw->steps[i];
        const char *fname = avro_schema_record_field_name(w, (int)i);
        st->wschema = deref(avro_schema_record_field_get_by_index(w, (int)i));
        st->rfield = -1;
        for (size_t j = 0; fname && j < d->nfields; j++)
            if (strcmp(fname, d->fields[j].name) == 0) st->rfield = (int)j;
        if (st->rfield < 0) continue;
        seen |= 1u << st->rfield;
        if ((rc = plan_field(st, pw->kind, &d->fields[st->rfield], st->wschema, errstr, errstr_size))) return rc;
    }
    for (size_t j = 0; j < d->nfields; j++) {
        if (seen & (1u << j)) continue;
        if (!px_avro_wire_optional(d->fields[j].wire))
            return px_errf(PX_EINVAL, errstr, errstr_size,
                           "avro: writer schema %d lacks field '%s', which this reader requires", (int)pw->id,
                           d->fields[j].name);
        pw->missing |= 1u << j;
    }
    return 0;
}

int px_avro_writers_add(px_avro_writers_t **ws, px_avro_t *c, int32_t id, const char *schema_json,
                        char *errstr, size_t errstr_size) {
    px_kind_t k;
    bool native;
    if (px_avro_writers_find(*ws, id, &k, &native) == 0) return 0;
    if (!*ws && !(*ws = calloc(1, sizeof **ws)))
        return px_errf(PX_ENOMEM, errstr, errstr_size, "avro: out of memory adding schema %d", (int)id);
    px_avro_writers_t *t = *ws;
    if (t->n == PX_AVRO_WRITERS_MAX)
        return px_errf(PX_ENOMEM, errstr, errstr_size, "avro: more than %d schema ids", PX_AVRO_WRITERS_MAX);
    px_res_writer_t *pw = &t->w[t->n];
    pw->id = id;
    int rc = plan_writer(pw, c, schema_json, errstr, errstr_size);
    if (rc) {
        writer_term(pw);
        return rc;
    }
    t->n++;
    return 0;
}

static const px_res_writer_t *find(const px_avro_writers_t *ws, int32_t id) {
    for (size_t i = 0; ws && i < ws->n; i++)
        if (ws->w[i].id == id) return &ws->w[i];
    return NULL;
}

int px_avro_writers_find(const px_avro_writers_t *ws, int32_t id, px_kind_t *kind, bool *native) {
    const px_res_writer_t *w = find(ws, id);
    if (!w) return -1;
    *kind = w->kind;
    *native = w->native;
    return 0;
}

void px_avro_writers_free(px_avro_writers_t *ws) {
    if (!ws) return;
    for (size_t i = 0; i < ws->n; i++) writer_term(&ws->w[i]);
    free(ws);
}

/* ---- decode ------------------------------------------------------------ */

/* Skip n bytes. */
static int skip_bytes(px_avro_rd_t *r, int64_t n, const char *what) {
    if (n < 0 || n > r->end - r->p)
        return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: skipped %s: %lld bytes, %zu left", what,
                       (long long)n, (size_t)(r->end - r->p));
    r->p += n;
    return 0;
}

/* Skip one value of schema s (any Avro type). */
static int skip(px_avro_rd_t *r, avro_schema_t s, int depth, int64_t *items) {
    int64_t v;
    int rc;
    s = deref(s);
    if (depth > PX_RES_DEPTH_MAX)
        return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: skipped value nested over %d", PX_RES_DEPTH_MAX);
    switch (avro_typeof(s)) {
    case AVRO_NULL: return 0;
    case AVRO_BOOLEAN: return skip_bytes(r, 1, "boolean");
    case AVRO_INT32: return px_avro_rd_varint(r, 5, "skipped int", &v);
    case AVRO_INT64: return px_avro_rd_varint(r, 10, "skipped long", &v);
    case AVRO_FLOAT: return skip_bytes(r, 4, "float");
    case AVRO_DOUBLE: return skip_bytes(r, 8, "double");
    case AVRO_STRING:
    case AVRO_BYTES:
        if ((rc = px_avro_rd_varint(r, 10, "skipped length", &v))) return rc;
        return skip_bytes(r, v, "string");
    case AVRO_FIXED: return skip_bytes(r, avro_schema_fixed_size(s), "fixed");
    case AVRO_ENUM: return px_avro_rd_index(r, avro_schema_enum_number_of_symbols(s), "enum", "skipped", &v);
    case AVRO_UNION:
        if ((rc = px_avro_rd_index(r, (int)avro_schema_union_size(s), "union", "skipped", &v))) return rc;
        return skip(r, avro_schema_union_branch(s, (int)v), depth + 1, items);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if ((rc = skip(r, avro_schema_record_field_get_by_index(s, (int)i), depth + 1, items))) return rc;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP:
        for (;;) { /* blocks: a count (negative: then its byte size), 0 ends */
            int64_t count;
            if ((rc = px_avro_rd_varint(r, 10, "skipped block", &count))) return rc;
            if (count == 0) return 0;
            if (count < 0) {
                if (count == INT64_MIN) return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: bad block count");
                count = -count;
                if ((rc = px_avro_rd_varint(r, 10, "skipped block size", &v))) return rc;
            }
            if ((*items += count) > PX_RES_ITEMS_MAX)
                return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: more than %d skipped items",
                               PX_RES_ITEMS_MAX);
            for (int64_t i = 0; i < count; i++) {
                if (is_avro_map(s) && (rc = skip(r, avro_schema_string(), depth + 1, items))) return rc;
                avro_schema_t item = is_avro_map(s) ? avro_schema_map_values(s) : avro_schema_array_items(s);
                if ((rc = skip(r, item, depth + 1, items))) return rc;
            }
        }
    default:
        return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: cannot skip a %s",
                       avro_schema_type_name(s));
    }
}

/* Read one planned value into reader field f of ev. */
static int read_step(px_avro_rd_t *r, const px_res_step_t *st, px_kind_t kind, const px_avro_field_t *f,
                     px_event_t *ev) {
    unsigned char how = st->direct;
    int64_t v;
    int rc;
    if (st->nbranch) {
        if ((rc = px_avro_rd_index(r, st->nbranch, "union", f->name, &v))) return rc;
        how = st->branch[v];
    }
    size_t max;
    char *dst = px_avro_str(ev, f->fid, &max);
    if (how == PX_RES_NULL) {
        if (!px_avro_wire_optional(f->wire))
            return px_errf(PX_EINVAL, r->errstr, r->errstr_size, "avro: %s: null for a required field", f->name);
        if (dst) dst[0] = '\0';
        else px_avro_set_int(ev, f->fid, PX_NONE);
        return 0;
    }
    if (how == PX_RES_NO)
        return px_errf(PX_EINVAL, r->errstr, r->errstr_size, "avro: %s: a union branch this reader cannot read",
                       f->name);
    switch (f->wire) {
    case PX_W_ENUM:
        if ((rc = px_avro_rd_index(r, st->nsym, "enum", f->name, &v))) return rc;
        if (st->enum_map[v] < 0)
            return px_errf(PX_EINVAL, r->errstr, r->errstr_size, "avro: %s: symbol %lld unknown to this reader",
                           f->name, (long long)v);
        px_avro_set_int(ev, f->fid, st->enum_map[v]);
        return 0;
    case PX_W_STRING:
    case PX_W_OPT_STRING: return px_avro_rd_string(r, f->name, dst, max);
    case PX_W_BOOL:
        if (r->p == r->end || *r->p > 1)
            return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: %s: bad boolean", f->name);
        px_avro_set_int(ev, f->fid, *r->p++);
        return 0;
    case PX_W_LONG:
    case PX_W_OPT_LONG:
    case PX_W_OPT_INT:
        if ((rc = px_avro_rd_varint(r, how == PX_RES_INT_AS_LONG || f->wire == PX_W_OPT_INT ? 5 : 10, f->name, &v)))
            return rc;
        if (px_avro_wire_optional(f->wire) && v < 0)
            return px_errf(PX_EINVAL, r->errstr, r->errstr_size, "avro: %s: %lld is negative", f->name,
                           (long long)v);
        px_avro_set_int(ev, f->fid, v);
        return 0;
    }
    return PX_EPROTO;
}

int px_avro_writers_decode(const px_avro_writers_t *ws, int32_t id, const unsigned char *body, size_t len,
                           px_event_t *ev, char *errstr, size_t errstr_size) {
    const px_res_writer_t *w = find(ws, id);
    if (!w || w->native) return px_errf(PX_EPROTO, errstr, errstr_size, "avro: no plan for schema id %d", (int)id);
    const px_avro_kind_desc_t *d = &px_avro_kinds[w->kind];
    px_avro_rd_t r = {body, body, body + len, errstr, errstr_size};
    int64_t items = 0;
    int rc;
    for (size_t i = 0; i < w->nsteps; i++) {
        const px_res_step_t *st = &w->steps[i];
        rc = st->rfield < 0 ? skip(&r, st->wschema, 0, &items)
                            : read_step(&r, st, w->kind, &d->fields[st->rfield], ev);
        if (rc) return rc;
    }
    for (size_t j = 0; j < d->nfields; j++) {
        if (!(w->missing & (1u << j))) continue;
        size_t max;
        char *dst = px_avro_str(ev, d->fields[j].fid, &max);
        if (dst) dst[0] = '\0';
        else px_avro_set_int(ev, d->fields[j].fid, PX_NONE);
    }
    if (r.p != r.end)
        return px_errf(PX_EPROTO, errstr, errstr_size, "avro: %zu trailing bytes after the %s record",
                       (size_t)(r.end - r.p), px_kind_name(w->kind));
    return 0;
}
