/*
 * px_buf.h - a growable byte buffer with a hard cap.
 *
 * Used for encoders' output (Avro, JSON, Prometheus text) so hot paths reuse
 * one buffer instead of allocating per message. Growth stops at `cap`:
 * an append past it fails with PX_ENOMEM and leaves the buffer as it was,
 * so memory stays bounded whatever the input.
 */
#ifndef PX_BUF_H
#define PX_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct px_buf {
    char *data;  /* owned; NUL-terminated after every successful append */
    size_t len;
    size_t alloc;
    size_t cap;  /* most bytes it may ever hold (not counting the NUL) */
} px_buf_t;

/* Initialise an empty buffer that may grow to cap bytes. Allocates nothing. */
void px_buf_init(px_buf_t *b, size_t cap);
/* Free the storage; the buffer may be initialised again. */
void px_buf_term(px_buf_t *b);
/* Forget the contents, keep the storage. */
void px_buf_reset(px_buf_t *b);
/* Make room for n more bytes. 0 or PX_ENOMEM. */
int px_buf_reserve(px_buf_t *b, size_t n);
int px_buf_append(px_buf_t *b, const void *p, size_t n);
int px_buf_puts(px_buf_t *b, const char *s);
int px_buf_printf(px_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in decimal (as "%" PRId64) / as 16 lowercase hex digits ("%016" PRIx64),
 * without printf: the encoders of the hot path write many numbers. */
int px_buf_put_i64(px_buf_t *b, int64_t v);
int px_buf_put_hex64(px_buf_t *b, uint64_t v);

#endif
