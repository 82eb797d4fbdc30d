/*
 * px_key.h - the entity key `tenant:entity:id`.
 *
 * Each part is 1..PX_KEY_PART_MAX bytes of [A-Za-z0-9._-]; nothing else is a
 * key. The key is the Kafka record key of every input record and, wrapped
 * in braces, the Redis hash tag of every key of the entity.
 * Parsing is strict and does no allocation. Related: px_event.h.
 */
#ifndef PX_KEY_H
#define PX_KEY_H

#include <stdbool.h>
#include <stddef.h>

#define PX_KEY_PART_MAX 128
#define PX_KEY_MAX (3 * PX_KEY_PART_MAX + 2)

typedef struct px_key {
    char tenant[PX_KEY_PART_MAX + 1];
    char entity[PX_KEY_PART_MAX + 1];
    char id[PX_KEY_PART_MAX + 1];
} px_key_t;

/* True if buf[0..len) is a valid key part (1..128 bytes of [A-Za-z0-9._-]). */
bool px_key_part_valid(const char *buf, size_t len);

/* Parse `tenant:entity:id` from buf[0..len) (not NUL-terminated). Returns 0,
 * or PX_EINVAL with the reason in errstr. `out` is untouched on error. */
int px_key_parse(const char *buf, size_t len, px_key_t *out, char *errstr, size_t errstr_size);

/* Build a key from three NUL-terminated parts, validating each. */
int px_key_set(px_key_t *out, const char *tenant, const char *entity, const char *id,
               char *errstr, size_t errstr_size);

/* Write `tenant:entity:id` into out (size >= PX_KEY_MAX + 1 always
 * suffices). Returns the length written, or -1 if out_size is too small. */
int px_key_format(const px_key_t *key, char *out, size_t out_size);

bool px_key_equal(const px_key_t *a, const px_key_t *b);

#endif
