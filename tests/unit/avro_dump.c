/*
 * avro_dump.c - command-line window onto the Avro codec, for the
 * python3-avro interop test (avro_interop.py) and for docs/schemas.md.
 *
 *   avro_dump schemas          one line per kind: kind, fingerprint (hex,
 *                              as a little-endian-decoded u64), canonical form
 *   avro_dump encode DIR       write every kind x type x {min,full} sample as
 *                              DIR/<kind>_<TYPE>_<min|full>.bin (single-object
 *                              encoded) plus a .json of the expected values
 *   avro_dump decode FILE...   decode each file with px_avro_decode and print
 *                              one JSON object per line, or
 *                              {"file":..,"error":"<CODE>","detail":..}
 *   avro_dump hex KIND TYPE    print the full sample of one type as hex
 *
 * Event JSON uses the Avro field names (ts, tenant, entity, id, ...) and
 * carries every px_event_t member; empty strings and PX_NONE are null.
 * Exit status 0 unless a command itself failed (decode errors are output,
 * not failures). Related: avro_interop.py, avro_samples.h.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_samples.h"
#include "px_avro.h"
#include "px_err.h"

/* String member as JSON: null when empty (absent). */
static json_t *str_or_null(const char *s) { return *s ? json_string(s) : json_null(); }
static json_t *int_or_null(int64_t v) { return v == PX_NONE ? json_null() : json_integer(v); }

/* The event as a JSON object keyed by Avro field names. Caller owns it. */
static json_t *event_json(const px_event_t *ev) {
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(px_kind_name(ev->kind)));
    json_object_set_new(o, "type", json_string(px_event_type_name(ev->kind, ev->type)));
    json_object_set_new(o, "tenant", json_string(ev->key.tenant));
    json_object_set_new(o, "entity", json_string(ev->key.entity));
    json_object_set_new(o, "id", json_string(ev->key.id));
    json_object_set_new(o, "ts", json_integer(ev->ts_ms));
    json_object_set_new(o, "tab_id", str_or_null(ev->tab_id));
    json_object_set_new(o, "user_id", str_or_null(ev->user_id));
    json_object_set_new(o, "user_name", str_or_null(ev->user_name));
    json_object_set_new(o, "mode", json_string(ev->mode == PX_MODE_EDIT ? "EDIT" : "VIEW"));
    json_object_set_new(o, "dirty", json_boolean(ev->dirty));
    json_object_set_new(o, "status", json_string(ev->status == PX_STATUS_AWAY ? "AWAY" : "ONLINE"));
    json_object_set_new(o, "cursor", str_or_null(ev->cursor));
    json_object_set_new(o, "field", str_or_null(ev->field));
    json_object_set_new(o, "request_id", str_or_null(ev->request_id));
    json_object_set_new(o, "expires_at_ms", int_or_null(ev->expires_at_ms));
    json_object_set_new(o, "busy_by", str_or_null(ev->busy_by));
    json_object_set_new(o, "write_id", str_or_null(ev->write_id));
    json_object_set_new(o, "version", int_or_null(ev->version));
    json_object_set_new(o, "token", int_or_null(ev->token));
    json_object_set_new(o, "holder_user_id", str_or_null(ev->holder_user_id));
    json_object_set_new(o, "holder_name", str_or_null(ev->holder_name));
    json_object_set_new(o, "src_topic", str_or_null(ev->src_topic));
    json_object_set_new(o, "src_partition", int_or_null(ev->src_partition));
    json_object_set_new(o, "src_offset", int_or_null(ev->src_offset));
    return o;
}

static int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "avro_dump: %s: %s\n", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    return fclose(f);
}

static int cmd_schemas(px_avro_t *c) {
    for (int k = 0; k < PX_KIND__COUNT; k++)
        printf("%s\t%016llx\t%s\n", px_kind_name((px_kind_t)k),
               (unsigned long long)px_avro_fingerprint(c, (px_kind_t)k), px_avro_canonical_form(c, (px_kind_t)k));
    return 0;
}

static int cmd_encode(px_avro_t *c, const char *dir) {
    px_buf_t out;
    char err[256], path[4096];
    int rc = 0;
    px_buf_init(&out, PX_AVRO_MAX_RECORD);
    for (int k = 0; k < PX_KIND__COUNT && !rc; k++)
        for (int t = 0; t < px_event_type_count((px_kind_t)k) && !rc; t++)
            for (int full = 0; full <= 1 && !rc; full++) {
                px_event_t ev;
                px_sample_event(&ev, (px_kind_t)k, t, full);
                px_buf_reset(&out);
                if (px_avro_encode(c, &ev, &out, err, sizeof err)) {
                    fprintf(stderr, "avro_dump: encode %s %s: %s\n", px_kind_name((px_kind_t)k),
                            px_event_type_name((px_kind_t)k, t), err);
                    rc = -1;
                    break;
                }
                snprintf(path, sizeof path, "%s/%s_%s_%s.bin", dir, px_kind_name((px_kind_t)k),
                         px_event_type_name((px_kind_t)k, t), full ? "full" : "min");
                rc = write_file(path, out.data, out.len);
                json_t *j = event_json(&ev);
                char *text = json_dumps(j, JSON_SORT_KEYS);
                json_decref(j);
                path[strlen(path) - 4] = '\0';
                strcat(path, ".json");
                if (!rc) rc = text ? write_file(path, text, strlen(text)) : -1;
                free(text);
            }
    px_buf_term(&out);
    return rc;
}

static int cmd_decode(px_avro_t *c, int n, char **files) {
    static const size_t max = PX_AVRO_MAX_RECORD + 16; /* read past the bound so oversize is seen */
    char *buf = malloc(max);
    if (!buf) return -1;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            fprintf(stderr, "avro_dump: %s: %s\n", files[i], strerror(errno));
            free(buf);
            return -1;
        }
        size_t len = fread(buf, 1, max, f);
        fclose(f);
        px_event_t ev;
        char err[256];
        int rc = px_avro_decode(c, buf, len, &ev, err, sizeof err);
        json_t *j;
        if (rc) {
            j = json_object();
            json_object_set_new(j, "error", json_string(px_err_name(rc)));
            json_object_set_new(j, "detail", json_string(err));
        } else {
            j = event_json(&ev);
        }
        json_object_set_new(j, "file", json_string(files[i]));
        char *text = json_dumps(j, JSON_SORT_KEYS);
        json_decref(j);
        if (text) puts(text);
        free(text);
    }
    free(buf);
    return 0;
}

static int cmd_hex(px_avro_t *c, const char *kind_name, const char *type_name) {
    int k;
    for (k = 0; k < PX_KIND__COUNT; k++)
        if (strcmp(kind_name, px_kind_name((px_kind_t)k)) == 0) break;
    int t = k < PX_KIND__COUNT ? px_event_type_parse((px_kind_t)k, type_name) : -1;
    if (t < 0) {
        fprintf(stderr, "avro_dump: unknown kind/type %s %s\n", kind_name, type_name);
        return -1;
    }
    px_event_t ev;
    px_sample_event(&ev, (px_kind_t)k, t, false);
    px_buf_t out;
    char err[256];
    px_buf_init(&out, PX_AVRO_MAX_RECORD);
    int rc = px_avro_encode(c, &ev, &out, err, sizeof err);
    if (rc) fprintf(stderr, "avro_dump: %s\n", err);
    for (size_t i = 0; !rc && i < out.len; i++)
        printf("%02x%s", (unsigned char)out.data[i], (i + 1) % 16 == 0 || i + 1 == out.len ? "\n" : " ");
    px_buf_term(&out);
    return rc;
}

int main(int argc, char **argv) {
    char err[256];
    int rc = 2;
    px_avro_t *c = px_avro_new(err, sizeof err);
    if (!c) {
        fprintf(stderr, "avro_dump: %s\n", err);
        return 1;
    }
    if (argc == 2 && strcmp(argv[1], "schemas") == 0) rc = cmd_schemas(c);
    else if (argc == 3 && strcmp(argv[1], "encode") == 0) rc = cmd_encode(c, argv[2]);
    else if (argc >= 3 && strcmp(argv[1], "decode") == 0) rc = cmd_decode(c, argc - 2, argv + 2);
    else if (argc == 4 && strcmp(argv[1], "hex") == 0) rc = cmd_hex(c, argv[2], argv[3]);
    else fprintf(stderr, "usage: avro_dump schemas | encode DIR | decode FILE... | hex KIND TYPE\n");
    px_avro_free(c);
    return rc == 0 ? 0 : 1;
}
