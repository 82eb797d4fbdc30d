/*
 * px_registry.h - a small client of a Confluent-compatible schema registry
 * (Confluent Schema Registry, Apicurio Registry's /apis/ccompat/v7, Karapace,
 * Redpanda): register a schema under a subject and get its id, and fetch a
 * schema by id. Subjects follow the topic-name strategy (`<topic>-value`).
 *
 * Two layers: px_registry_parse_*() read the registry's JSON answers over
 * (buf, len) with no I/O (unit-tested with hostile tables), and the calls
 * below do blocking HTTP(S) with libcurl, bounded by timeout_ms, with
 * optional basic auth and a CA file for TLS. Programs call them at start-up
 * and on the first record with an id they have not seen; callers cache.
 * A handle is not safe for concurrent use. Related: px_wire.h,
 * docs/analytics.md.
 */
#ifndef PX_REGISTRY_H
#define PX_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "px_avro.h"
#include "px_buf.h"
#include "px_config.h"

#define PX_REGISTRY_SCHEMA_MAX 65536 /* largest schema text accepted */

typedef struct px_registry_conf {
    const char *url;       /* base URL, e.g. http://127.0.0.1:8081 or
                            * http://host:port/apis/ccompat/v7; required */
    const char *user_info; /* "user:password" for basic auth, or NULL/"" */
    const char *ca_file;   /* PEM bundle to verify an https registry, or NULL/"" */
    long timeout_ms;       /* per request, connect included; > 0 */
} px_registry_conf_t;

typedef struct px_registry px_registry_t;

/* A handle for conf (strings copied). NULL with the reason in errstr when
 * the URL is not http:// or https:// or libcurl cannot start. */
px_registry_t *px_registry_new(const px_registry_conf_t *conf, char *errstr, size_t errstr_size);
void px_registry_free(px_registry_t *r); /* NULL is a no-op */

/* Register schema_json (Avro schema text) under subject, or find the id it
 * already has there (registries answer the existing id for an identical
 * schema). 0 with *id set; PX_EBACKEND (unreachable, timeout, HTTP error:
 * the registry's own message in errstr, e.g. an incompatible schema) or
 * PX_EPROTO (an answer that is not what the API promises). */
int px_registry_register(px_registry_t *r, const char *subject, const char *schema_json,
                         int32_t *id, char *errstr, size_t errstr_size);

/* The schema text registered under id, appended to out. 0, PX_EINVAL (the
 * registry does not know the id: HTTP 404), PX_EBACKEND or PX_EPROTO. */
int px_registry_schema(px_registry_t *r, int32_t id, px_buf_t *out, char *errstr,
                       size_t errstr_size);

/* The base URL with any credentials removed, for logs and messages. */
const char *px_registry_url(const px_registry_t *r);

/* Tie codec c to registry r (which must outlive c's use): ids c does not
 * know are fetched from r (px_avro_set_fetch), and each kinds[i] is
 * registered (or found) under the subject "<topics[i]>-value" (the
 * topic-name strategy) and encoded by c in the Confluent wire format with
 * the id the registry gave. n may be 0 (a program that only reads). 0, or
 * the first failure (PX_EBACKEND: registry unreachable or refusing, its
 * message in errstr): a program stops start-up then, it never frames
 * records with a guessed id. */
int px_registry_bind(px_registry_t *r, px_avro_t *c, const px_kind_t *kinds, const char *const *topics, size_t n,
                     char *errstr, size_t errstr_size);

/* --- the pure layer ----------------------------------------------------- */

/* {"id": N} (other members ignored): 0 with *id, or PX_EPROTO. */
int px_registry_parse_id(const char *buf, size_t len, int32_t *id, char *errstr,
                         size_t errstr_size);
/* {"schema": "..."} : the string appended to out (at most
 * PX_REGISTRY_SCHEMA_MAX bytes), or PX_EPROTO. */
int px_registry_parse_schema(const char *buf, size_t len, px_buf_t *out, char *errstr,
                             size_t errstr_size);
/* An error answer {"error_code": N, "message": "..."} as "N: message" in
 * errstr (the body itself, cut, if it is not that shape). */
void px_registry_parse_error(const char *buf, size_t len, long http_status, char *errstr,
                             size_t errstr_size);

/* --- the settings every program takes ---------------------------------- */

/* avro.wire_format, schema.registry.*: embed in a program's config struct
 * and list PX_REGISTRY_OPTS(struct, member) in its option table. */
typedef struct px_schema_conf {
    char wire_format[PX_CONF_STR_MAX]; /* single-object | confluent */
    char url[PX_CONF_STR_MAX];
    char basic_auth[PX_CONF_STR_MAX]; /* user:password */
    char ca_file[PX_CONF_STR_MAX];
    int64_t timeout_ms;
} px_schema_conf_t;

#define PX_REGISTRY_OPTS(T, m)                                                                                   \
    {"avro.wire_format", PX_OPT_STR, "single-object",                                                           \
     "framing of the Avro records this program writes: single-object or confluent (needs schema.registry.url)", \
     offsetof(T, m.wire_format), 0, 0},                                                                          \
        {"schema.registry.url", PX_OPT_STR, "",                                                                  \
         "Confluent-compatible schema registry (e.g. http://host:8081, or Apicurio's .../apis/ccompat/v7)",      \
         offsetof(T, m.url), 0, 0},                                                                              \
        {"schema.registry.basic_auth", PX_OPT_STR, "", "user:password for the registry (HTTP basic auth)",       \
         offsetof(T, m.basic_auth), 0, 0},                                                                       \
        {"schema.registry.ca_file", PX_OPT_STR, "", "PEM CA bundle to verify an https registry",                 \
         offsetof(T, m.ca_file), 0, 0},                                                                          \
        {"schema.registry.timeout_ms", PX_OPT_INT, "5000", "registry request timeout", offsetof(T, m.timeout_ms), \
         100, 120000}

/* Set up codec c from conf at start-up: a registry handle when a URL is
 * set (*out, the caller frees it after c), ids of unknown records fetched
 * from it, and with wire_format confluent each kinds[i] registered under
 * "<prefix><topics[i]>-value" and written in the Confluent framing. A wrong
 * wire_format, confluent without a URL, or a registry that cannot be
 * reached or refuses is an error (the program exits: it never writes
 * records framed with a guessed id). 0, PX_ECONFIG or PX_EBACKEND. */
int px_schema_setup(const px_schema_conf_t *conf, px_avro_t *c, const px_kind_t *kinds, const char *prefix,
                    const char *const *topics, size_t n, px_registry_t **out, char *errstr, size_t errstr_size);

#endif
