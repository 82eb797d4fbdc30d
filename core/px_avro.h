/*
 * px_avro.h - Avro codec for the four record schemas, in Avro's
 * single-object encoding (C3 01, the 8-byte little-endian CRC-64-AVRO
 * fingerprint of the schema's Parsing Canonical Form, then the binary body)
 * or in the Confluent wire format (00, a schema registry's 4-byte
 * big-endian id, then the body); see px_wire.h.
 *
 * The schemas (schemas/<Name>.avsc) are compiled into the library, so programs
 * need no schema files at run time. avro-c does the body; this module
 * computes the Parsing Canonical Form and fingerprint itself (avro-c has
 * neither), and a unit test checks both against python3-avro.
 *
 * Decoding is hostile-input safe: truncated bodies, bad varints, huge
 * lengths, unknown fingerprints, strings over the px_event.h bounds and
 * invalid UTF-8 all return an error, never crash or allocate without bound.
 * A decoded event has been through px_event_validate().
 * Related: px_event.h, schemas/, tests/unit/test_avro.c.
 */
#ifndef PX_AVRO_H
#define PX_AVRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"
#include "px_event.h"

/* The most bytes a single-object-encoded event can take; decoders refuse
 * anything larger before touching avro-c. */
#define PX_AVRO_MAX_RECORD 8192

typedef struct px_avro px_avro_t;

/* Parse the built-in schemas and set up reusable values and buffers.
 * Returns NULL with the reason in errstr. Free with px_avro_free(). One
 * codec per thread: it is not safe for concurrent use. */
px_avro_t *px_avro_new(char *errstr, size_t errstr_size);
void px_avro_free(px_avro_t *c); /* NULL is a no-op */

/* Append the single-object encoding of ev (its kind picks the schema) to
 * out. ev must pass px_event_validate(). 0, PX_EINVAL or PX_ENOMEM. */
int px_avro_encode(px_avro_t *c, const px_event_t *ev, px_buf_t *out, char *errstr,
                   size_t errstr_size);

/* Decode one record of any of the four schemas into out, in either
 * framing (px_wire.h): single-object (the fingerprint says which schema) or
 * Confluent (an id set with px_avro_set_confluent_id or px_avro_add_schema,
 * or one the fetch function of px_avro_set_fetch finds, learnt for next
 * time). Returns 0, PX_EPROTO (not Avro, unknown fingerprint or schema id,
 * truncated or trailing bytes, bad varint), PX_EINVAL (decodes but fails
 * validation, or the writer schema of its id cannot be read into ours) or
 * PX_EBACKEND (the schema of its id could not be fetched now: the record
 * is not at fault, try again later), with the reason in errstr. */
int px_avro_decode(px_avro_t *c, const void *buf, size_t len, px_event_t *out, char *errstr,
                   size_t errstr_size);

/* Encode records of kind in the Confluent wire format with schema id id
 * (the id a schema registry gave the built-in schema under the topic's
 * subject), or in single-object encoding again when id < 0. The id also
 * becomes known to the decoder. 0, PX_EINVAL or PX_ENOMEM. */
int px_avro_set_confluent_id(px_avro_t *c, px_kind_t kind, int32_t id, char *errstr, size_t errstr_size);

/* Teach the decoder a Confluent schema id and the writer schema registered
 * under it (JSON text, e.g. from px_registry_schema): any version of one of
 * the four schemas that Avro's resolution rules can read into the built-in
 * one (fields by name, new optional fields, removed fields; see
 * px_avro_int.h). 0, PX_EINVAL (not resolvable, reason in errstr),
 * PX_EPROTO (not a schema) or PX_ENOMEM (more than 256 ids). */
int px_avro_add_schema(px_avro_t *c, int32_t id, const char *schema_json, char *errstr, size_t errstr_size);

/* True if the decoder knows schema id id. */
bool px_avro_knows_id(const px_avro_t *c, int32_t id);

/* Where the decoder gets the writer schema of an id it does not know: fn
 * appends the schema text registered under id to out and returns 0,
 * PX_EINVAL when no schema has that id, or PX_EBACKEND when it cannot tell
 * now (a registry that does not answer). Set by px_registry_bind(); NULL
 * fn: unknown ids are refused. */
typedef int (*px_avro_fetch_fn)(void *ud, int32_t id, px_buf_t *out, char *errstr, size_t errstr_size);
void px_avro_set_fetch(px_avro_t *c, px_avro_fetch_fn fn, void *ud);

/* The schema JSON compiled in for a kind (the .avsc text), its Parsing
 * Canonical Form, and the CRC-64-AVRO fingerprint of that form. */
const char *px_avro_schema_json(px_kind_t kind);
const char *px_avro_canonical_form(px_avro_t *c, px_kind_t kind);
uint64_t px_avro_fingerprint(px_avro_t *c, px_kind_t kind);

/* Parsing Canonical Form (Avro spec, "Transforming into Parsing Canonical
 * Form") of any schema given as JSON text, appended to out. */
int px_avro_pcf(const char *schema_json, px_buf_t *out, char *errstr, size_t errstr_size);

/* CRC-64-AVRO (the Rabin fingerprint of the Avro spec) of buf[0..len). */
uint64_t px_crc64_avro(const void *buf, size_t len);

#endif
