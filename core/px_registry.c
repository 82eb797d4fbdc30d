/*
 * px_registry.c - Confluent-compatible schema registry client. See
 * px_registry.h. HTTP through libcurl's easy interface, one reused handle
 * (keeps the connection alive between calls); answers are read into a
 * bounded buffer and parsed with jansson.
 */
#include "px_registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_wire.h"

#define PX_REGISTRY_BODY_MAX (1u << 20) /* largest answer read */

struct px_registry {
    CURL *curl;
    char *url;       /* without a trailing '/' */
    char *user_info; /* NULL: no auth */
    char *ca_file;   /* NULL: the system's CAs */
    long timeout_ms;
    px_buf_t body;   /* the last answer */
};

static json_t *load(const char *buf, size_t len, char *errstr, size_t errstr_size) {
    json_error_t je;
    if (!buf || len == 0) {
        px_errf(PX_EPROTO, errstr, errstr_size, "registry answer is empty");
        return NULL;
    }
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        px_errf(PX_EPROTO, errstr, errstr_size, "registry answer is not JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        px_errf(PX_EPROTO, errstr, errstr_size, "registry answer is not a JSON object");
        return NULL;
    }
    return j;
}

int px_registry_parse_id(const char *buf, size_t len, int32_t *id, char *errstr,
                         size_t errstr_size) {
    json_t *j = load(buf, len, errstr, errstr_size);
    if (!j) return PX_EPROTO;
    json_t *v = json_object_get(j, "id");
    int rc = 0;
    if (!json_is_integer(v)) {
        rc = px_errf(PX_EPROTO, errstr, errstr_size, "registry answer has no integer \"id\"");
    } else if (json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
        rc = px_errf(PX_EPROTO, errstr, errstr_size, "registry answer's id %lld is out of range",
                     (long long)json_integer_value(v));
    } else {
        *id = (int32_t)json_integer_value(v);
    }
    json_decref(j);
    return rc;
}

int px_registry_parse_schema(const char *buf, size_t len, px_buf_t *out, char *errstr,
                             size_t errstr_size) {
    json_t *j = load(buf, len, errstr, errstr_size);
    if (!j) return PX_EPROTO;
    json_t *v = json_object_get(j, "schema");
    int rc = 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        rc = px_errf(PX_EPROTO, errstr, errstr_size, "registry answer has no \"schema\" string");
    else if (json_string_length(v) > PX_REGISTRY_SCHEMA_MAX)
        rc = px_errf(PX_EPROTO, errstr, errstr_size, "registry schema of %zu bytes (most %d)",
                     json_string_length(v), PX_REGISTRY_SCHEMA_MAX);
    else if (px_buf_append(out, json_string_value(v), json_string_length(v)))
        rc = px_errf(PX_ENOMEM, errstr, errstr_size, "no room for a schema of %zu bytes",
                     json_string_length(v));
    json_decref(j);
    return rc;
}

void px_registry_parse_error(const char *buf, size_t len, long http_status, char *errstr,
                             size_t errstr_size) {
    char sub[64];
    json_t *j = load(buf, len, sub, sizeof sub);
    json_t *code = j ? json_object_get(j, "error_code") : NULL;
    json_t *msg = j ? json_object_get(j, "message") : NULL;
    if (json_is_integer(code) && json_is_string(msg)) {
        px_errf(PX_EBACKEND, errstr, errstr_size, "registry: HTTP %ld, error %lld: %.300s", http_status,
                (long long)json_integer_value(code), json_string_value(msg));
    } else {
        /* Not the documented shape: show the start of the body, printable
         * bytes only, so a proxy's HTML page still says something. */
        char clip[121];
        size_t n = 0;
        for (size_t i = 0; buf && i < len && n < sizeof clip - 1; i++)
            clip[n++] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '.';
        clip[n] = '\0';
        px_errf(PX_EBACKEND, errstr, errstr_size, "registry: HTTP %ld%s%s", http_status,
                n ? ": " : "", clip);
    }
    json_decref(j);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    px_buf_t *b = ud;
    size_t bytes = size * n;
    if (b->len + bytes > PX_REGISTRY_BODY_MAX || px_buf_append(b, p, bytes)) return 0; /* abort */
    return bytes;
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

px_registry_t *px_registry_new(const px_registry_conf_t *conf, char *errstr, size_t errstr_size) {
    if (!conf->url || (strncmp(conf->url, "http://", 7) != 0 && strncmp(conf->url, "https://", 8) != 0)) {
        px_errf(PX_ECONFIG, errstr, errstr_size, "schema registry URL '%.200s' must start with http:// or https://",
                conf->url ? conf->url : "");
        return NULL;
    }
    if (conf->timeout_ms <= 0) {
        px_errf(PX_ECONFIG, errstr, errstr_size, "schema registry timeout must be > 0 ms");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        px_errf(PX_EBACKEND, errstr, errstr_size, "libcurl could not start");
        return NULL;
    }
    px_registry_t *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    px_buf_init(&r->body, PX_REGISTRY_BODY_MAX);
    r->curl = curl_easy_init();
    r->url = strdup(conf->url);
    r->user_info = dup_or_null(conf->user_info);
    r->ca_file = dup_or_null(conf->ca_file);
    r->timeout_ms = conf->timeout_ms;
    if (!r->curl || !r->url || (conf->user_info && *conf->user_info && !r->user_info) ||
        (conf->ca_file && *conf->ca_file && !r->ca_file))
        goto oom;
    size_t n = strlen(r->url);
    while (n > 0 && r->url[n - 1] == '/') r->url[--n] = '\0';
    return r;
oom:
    px_registry_free(r);
    if (!r) curl_global_cleanup();
    px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory starting the registry client");
    return NULL;
}

void px_registry_free(px_registry_t *r) {
    if (!r) return;
    if (r->curl) curl_easy_cleanup(r->curl);
    free(r->url);
    free(r->user_info);
    free(r->ca_file);
    px_buf_term(&r->body);
    free(r);
    curl_global_cleanup();
}

const char *px_registry_url(const px_registry_t *r) { return r->url; }

/* One request: GET when post is NULL, else POST post. The answer lands in
 * r->body; *status gets the HTTP status. 0 or PX_EBACKEND (no answer). */
static int request(px_registry_t *r, const char *path, const char *post, long *status,
                   char *errstr, size_t errstr_size) {
    char url[2048];
    if ((size_t)snprintf(url, sizeof url, "%s%s", r->url, path) >= sizeof url)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "registry URL too long");
    CURL *c = r->curl;
    curl_easy_reset(c);
    px_buf_reset(&r->body);
    struct curl_slist *h = NULL, *h2;
    h2 = curl_slist_append(h, "Accept: application/vnd.schemaregistry.v1+json, application/json");
    if (h2) h = h2;
    if (post && h2) {
        h2 = curl_slist_append(h, "Content-Type: application/vnd.schemaregistry.v1+json");
        if (h2) h = h2;
    }
    if (!h2) {
        curl_slist_free_all(h);
        return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory building a registry request");
    }
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    if (r->user_info) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, r->user_info);
    }
    if (r->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK)
        return px_errf(PX_EBACKEND, errstr, errstr_size, "registry %s: %s", r->url,
                       cerr[0] ? cerr : curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

int px_registry_register(px_registry_t *r, const char *subject, const char *schema_json,
                         int32_t *id, char *errstr, size_t errstr_size) {
    json_t *req = json_pack("{s:s, s:s}", "schemaType", "AVRO", "schema", schema_json);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    char *esc = curl_easy_escape(r->curl, subject, 0);
    if (!body || !esc) {
        free(body);
        curl_free(esc);
        return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory building a registry request");
    }
    char path[512];
    int rc;
    long status = 0;
    if ((size_t)snprintf(path, sizeof path, "/subjects/%s/versions", esc) >= sizeof path)
        rc = px_errf(PX_EINVAL, errstr, errstr_size, "subject too long");
    else
        rc = request(r, path, body, &status, errstr, errstr_size);
    free(body);
    curl_free(esc);
    if (rc) return rc;
    if (status != 200) {
        px_registry_parse_error(r->body.data, r->body.len, status, errstr, errstr_size);
        return PX_EBACKEND;
    }
    return px_registry_parse_id(r->body.data, r->body.len, id, errstr, errstr_size);
}

int px_registry_schema(px_registry_t *r, int32_t id, px_buf_t *out, char *errstr,
                       size_t errstr_size) {
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%ld", (long)id);
    long status = 0;
    int rc = request(r, path, NULL, &status, errstr, errstr_size);
    if (rc) return rc;
    if (status == 404) {
        px_registry_parse_error(r->body.data, r->body.len, status, errstr, errstr_size);
        return PX_EINVAL;
    }
    if (status != 200) {
        px_registry_parse_error(r->body.data, r->body.len, status, errstr, errstr_size);
        return PX_EBACKEND;
    }
    return px_registry_parse_schema(r->body.data, r->body.len, out, errstr, errstr_size);
}

/* px_avro_fetch_fn over a registry: 404 is "no such id" (PX_EINVAL). */
static int fetch(void *ud, int32_t id, px_buf_t *out, char *errstr, size_t errstr_size) {
    return px_registry_schema(ud, id, out, errstr, errstr_size);
}

int px_registry_bind(px_registry_t *r, px_avro_t *c, const px_kind_t *kinds, const char *const *topics, size_t n,
                     char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < n; i++) {
        char subject[512], why[512];
        int32_t id = -1;
        if ((size_t)snprintf(subject, sizeof subject, "%s-value", topics[i]) >= sizeof subject)
            return px_errf(PX_ECONFIG, errstr, errstr_size, "topic name too long for a subject");
        int rc = px_registry_register(r, subject, px_avro_schema_json(kinds[i]), &id, why, sizeof why);
        if (rc) return px_errf(rc, errstr, errstr_size, "registering %s under %s: %s", px_kind_name(kinds[i]), subject, why);
        if ((rc = px_avro_set_confluent_id(c, kinds[i], id, why, sizeof why)))
            return px_errf(rc, errstr, errstr_size, "schema id %d of %s: %s", (int)id, subject, why);
    }
    px_avro_set_fetch(c, fetch, r);
    return 0;
}

#define PX_SCHEMA_TOPICS_MAX 8 /* kinds one program writes */

int px_schema_setup(const px_schema_conf_t *conf, px_avro_t *c, const px_kind_t *kinds, const char *prefix,
                    const char *const *topics, size_t n, px_registry_t **out, char *errstr, size_t errstr_size) {
    px_wire_format_t f;
    *out = NULL;
    if (px_wire_format_parse(conf->wire_format, &f))
        return px_errf(PX_ECONFIG, errstr, errstr_size, "avro.wire_format '%.100s': want single-object or confluent",
                       conf->wire_format);
    if (f == PX_WIRE_CONFLUENT && !conf->url[0])
        return px_errf(PX_ECONFIG, errstr, errstr_size, "avro.wire_format=confluent needs schema.registry.url");
    if (!conf->url[0]) return 0;
    if (n > PX_SCHEMA_TOPICS_MAX) return px_errf(PX_ECONFIG, errstr, errstr_size, "more than %d topics", PX_SCHEMA_TOPICS_MAX);
    char names[PX_SCHEMA_TOPICS_MAX][2 * PX_CONF_STR_MAX];
    const char *full[PX_SCHEMA_TOPICS_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s%s", prefix, topics[i]);
        full[i] = names[i];
    }
    px_registry_conf_t rc = {conf->url, conf->basic_auth, conf->ca_file, (long)conf->timeout_ms};
    px_registry_t *r = px_registry_new(&rc, errstr, errstr_size);
    if (!r) return PX_ECONFIG;
    int err = px_registry_bind(r, c, kinds, full, f == PX_WIRE_CONFLUENT ? n : 0, errstr, errstr_size);
    if (err) {
        px_registry_free(r);
        return err;
    }
    /* A reader still learns nothing until a record needs it; a writer has
     * registered its schemas by now. Either way, check the registry answers. */
    if (f != PX_WIRE_CONFLUENT) {
        px_buf_t tmp;
        px_buf_init(&tmp, PX_REGISTRY_SCHEMA_MAX);
        char why[256];
        int rc2 = px_registry_schema(r, 0, &tmp, why, sizeof why); /* id 0: an answer, found or not */
        px_buf_term(&tmp);
        if (rc2 == PX_EBACKEND) {
            px_registry_free(r);
            return px_errf(PX_EBACKEND, errstr, errstr_size, "%s", why);
        }
    }
    *out = r;
    return 0;
}
