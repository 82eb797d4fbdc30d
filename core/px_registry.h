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

#include "px_buf.h"

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

#endif
