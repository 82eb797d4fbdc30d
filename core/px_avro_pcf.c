/*
 * px_avro_pcf.c - Avro Parsing Canonical Form of a schema, from its JSON.
 *
 * avro-c has no canonical form, so this applies the spec's rules
 * ("Transforming into Parsing Canonical Form") to the JSON with jansson:
 * PRIMITIVES ({"type":"long",...} -> "long", so logicalType and other
 * attributes of a primitive vanish), FULLNAMES (names and references made
 * full with the enclosing namespace), STRIP (only type, name, fields,
 * symbols, items, values, size survive), ORDER (name, type, fields,
 * symbols, items, values, size), STRINGS (names are validated to
 * [A-Za-z_][A-Za-z0-9_]* so no escapes can occur), INTEGERS (size printed
 * plainly) and WHITESPACE (none).
 *
 * Limits: nesting depth is capped at PX_PCF_MAX_DEPTH; a reference to a
 * named type is resolved to its full name but not checked to be defined
 * (the form does not depend on it). "error" is written as "record", as
 * Java's SchemaNormalization does. Not on a hot path: px_avro_new() calls it
 * once per schema. Related: px_crc64.c, px_avro.c, tests/unit/test_avro.c.
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "px_avro.h"
#include "px_err.h"

#define PX_PCF_MAX_DEPTH 64
#define PX_PCF_NAME_MAX 512

typedef struct px_pcf {
    px_buf_t *out;
    char *errstr;
    size_t errstr_size;
    int rc; /* first error; appends after it are skipped */
} px_pcf_t;

static bool px_pcf_is_primitive(const char *s) {
    static const char *const prims[] = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        if (strcmp(s, prims[i]) == 0) return true;
    return false;
}

/* One Avro name: [A-Za-z_][A-Za-z0-9_]*. With dotted, a full name: names
 * joined by single dots. */
static bool px_pcf_name_ok(const char *s, bool dotted) {
    bool start = true;
    if (!*s) return false;
    for (; *s; s++) {
        char c = *s;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (start) {
            if (!alpha) return false;
            start = false;
        } else if (c == '.' && dotted) {
            start = true;
        } else if (!alpha && !(c >= '0' && c <= '9')) {
            return false;
        }
    }
    return !start;
}

static int px_pcf_fail(px_pcf_t *p, int err, const char *what, const char *detail) {
    if (p->rc == 0) p->rc = px_errf(err, p->errstr, p->errstr_size, "schema: %s%s%s", what,
                                    detail ? " " : "", detail ? detail : "");
    return p->rc;
}

static int px_pcf_put(px_pcf_t *p, const char *s) {
    if (p->rc) return p->rc;
    if (px_buf_puts(p->out, s)) return px_pcf_fail(p, PX_ENOMEM, "canonical form too large", NULL);
    return 0;
}

/* Append "s" quoted. Callers only pass validated names, symbols and type
 * words, which need no escaping. */
static int px_pcf_quoted(px_pcf_t *p, const char *s) {
    px_pcf_put(p, "\"");
    px_pcf_put(p, s);
    return px_pcf_put(p, "\"");
}

/* Full name of `name` seen in namespace `ns` (with an explicit namespace
 * attribute `explicit_ns`, which wins over ns; "" means none). */
static int px_pcf_fullname(px_pcf_t *p, const char *name, const char *explicit_ns, const char *ns, char *full,
                           size_t full_size) {
    if (!px_pcf_name_ok(name, true)) return px_pcf_fail(p, PX_EINVAL, "bad name", name);
    const char *space = strchr(name, '.') ? "" : (explicit_ns ? explicit_ns : ns);
    if (*space && !px_pcf_name_ok(space, true)) return px_pcf_fail(p, PX_EINVAL, "bad namespace", space);
    int n = *space ? snprintf(full, full_size, "%s.%s", space, name) : snprintf(full, full_size, "%s", name);
    if (n < 0 || (size_t)n >= full_size) return px_pcf_fail(p, PX_EINVAL, "name too long", NULL);
    return 0;
}

static int px_pcf_emit(px_pcf_t *p, json_t *s, const char *ns, int depth);

/* A named type (record, error, enum, fixed) given as an object. */
static int px_pcf_named(px_pcf_t *p, json_t *s, const char *type, const char *ns, int depth) {
    json_t *jname = json_object_get(s, "name"), *jns = json_object_get(s, "namespace");
    if (!json_is_string(jname)) return px_pcf_fail(p, PX_EINVAL, "named type without a name:", type);
    if (jns && !json_is_string(jns) && !json_is_null(jns))
        return px_pcf_fail(p, PX_EINVAL, "namespace is not a string in", json_string_value(jname));
    char full[PX_PCF_NAME_MAX];
    if (px_pcf_fullname(p, json_string_value(jname), json_is_string(jns) ? json_string_value(jns) : NULL, ns,
                        full, sizeof full))
        return p->rc;
    px_pcf_put(p, "{\"name\":");
    px_pcf_quoted(p, full);
    px_pcf_put(p, ",\"type\":");
    if (strcmp(type, "enum") == 0) {
        px_pcf_put(p, "\"enum\",\"symbols\":[");
        json_t *syms = json_object_get(s, "symbols");
        if (!json_is_array(syms)) return px_pcf_fail(p, PX_EINVAL, "enum without symbols:", full);
        for (size_t i = 0; i < json_array_size(syms); i++) {
            const char *sym = json_string_value(json_array_get(syms, i));
            if (!sym || !px_pcf_name_ok(sym, false)) return px_pcf_fail(p, PX_EINVAL, "bad enum symbol in", full);
            if (i) px_pcf_put(p, ",");
            px_pcf_quoted(p, sym);
        }
        return px_pcf_put(p, "]}");
    }
    if (strcmp(type, "fixed") == 0) {
        json_t *size = json_object_get(s, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0)
            return px_pcf_fail(p, PX_EINVAL, "fixed without a valid size:", full);
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(size));
        px_pcf_put(p, "\"fixed\",\"size\":");
        px_pcf_put(p, num);
        return px_pcf_put(p, "}");
    }
    /* record or error: nested names default to this record's namespace */
    char inner_ns[PX_PCF_NAME_MAX];
    const char *dot = strrchr(full, '.');
    size_t ns_len = dot ? (size_t)(dot - full) : 0;
    memcpy(inner_ns, full, ns_len);
    inner_ns[ns_len] = '\0';
    json_t *fields = json_object_get(s, "fields");
    if (!json_is_array(fields)) return px_pcf_fail(p, PX_EINVAL, "record without fields:", full);
    px_pcf_put(p, "\"record\",\"fields\":[");
    for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        const char *fname = json_string_value(json_object_get(f, "name"));
        json_t *ftype = json_object_get(f, "type");
        if (!json_is_object(f) || !fname || !px_pcf_name_ok(fname, false) || !ftype)
            return px_pcf_fail(p, PX_EINVAL, "bad field in", full);
        if (i) px_pcf_put(p, ",");
        px_pcf_put(p, "{\"name\":");
        px_pcf_quoted(p, fname);
        px_pcf_put(p, ",\"type\":");
        if (px_pcf_emit(p, ftype, inner_ns, depth + 1)) return p->rc;
        px_pcf_put(p, "}");
    }
    return px_pcf_put(p, "]}");
}

/* Append the canonical form of schema s, seen inside namespace ns. */
static int px_pcf_emit(px_pcf_t *p, json_t *s, const char *ns, int depth) {
    if (p->rc) return p->rc;
    if (depth > PX_PCF_MAX_DEPTH) return px_pcf_fail(p, PX_EINVAL, "nested too deeply", NULL);
    if (json_is_string(s)) {
        const char *name = json_string_value(s);
        if (px_pcf_is_primitive(name)) return px_pcf_quoted(p, name);
        char full[PX_PCF_NAME_MAX];
        if (px_pcf_fullname(p, name, NULL, ns, full, sizeof full)) return p->rc;
        return px_pcf_quoted(p, full); /* reference to a named type */
    }
    if (json_is_array(s)) { /* union */
        px_pcf_put(p, "[");
        for (size_t i = 0; i < json_array_size(s); i++) {
            if (i) px_pcf_put(p, ",");
            if (px_pcf_emit(p, json_array_get(s, i), ns, depth + 1)) return p->rc;
        }
        return px_pcf_put(p, "]");
    }
    if (!json_is_object(s)) return px_pcf_fail(p, PX_EINVAL, "a schema must be a string, array or object", NULL);
    json_t *t = json_object_get(s, "type");
    if (!t) return px_pcf_fail(p, PX_EINVAL, "object without a type", NULL);
    if (!json_is_string(t)) return px_pcf_emit(p, t, ns, depth + 1); /* {"type": {...}} or {"type": [...]} */
    const char *type = json_string_value(t);
    if (px_pcf_is_primitive(type)) return px_pcf_quoted(p, type); /* PRIMITIVES: drops logicalType etc. */
    if (!strcmp(type, "record") || !strcmp(type, "error") || !strcmp(type, "enum") || !strcmp(type, "fixed"))
        return px_pcf_named(p, s, type, ns, depth);
    if (!strcmp(type, "array") || !strcmp(type, "map")) {
        bool arr = type[0] == 'a';
        json_t *inner = json_object_get(s, arr ? "items" : "values");
        if (!inner) return px_pcf_fail(p, PX_EINVAL, arr ? "array without items" : "map without values", NULL);
        px_pcf_put(p, arr ? "{\"type\":\"array\",\"items\":" : "{\"type\":\"map\",\"values\":");
        if (px_pcf_emit(p, inner, ns, depth + 1)) return p->rc;
        return px_pcf_put(p, "}");
    }
    return px_pcf_emit(p, t, ns, depth + 1); /* {"type":"SomeName"}: a reference */
}

int px_avro_pcf(const char *schema_json, px_buf_t *out, char *errstr, size_t errstr_size) {
    json_error_t jerr;
    json_t *root = json_loads(schema_json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return px_errf(PX_EINVAL, errstr, errstr_size, "schema: bad JSON at line %d: %s", jerr.line, jerr.text);
    size_t start = out->len;
    px_pcf_t p = {out, errstr, errstr_size, 0};
    int rc = px_pcf_emit(&p, root, "", 0);
    json_decref(root);
    if (rc) { /* leave out as it was */
        out->len = start;
        if (out->data) out->data[start] = '\0';
    }
    return rc;
}
