/*
 * px_utf8.h - strict UTF-8 validation.
 *
 * Strict means RFC 3629: no overlong forms, no UTF-16 surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequences.
 * NUL is valid UTF-8; callers that store C strings check for it
 * themselves. Pure function, no allocation.
 * Related: px_event.c, px_avro_rd.c (every decoded Avro string passes here).
 */
#ifndef PX_UTF8_H
#define PX_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True if buf[0..len) is well-formed UTF-8. buf may be NULL when len is 0. */
bool px_utf8_valid(const char *buf, size_t len);

/* The one decoder both functions here and the JSON writer use: the length
 * (1..4) of the well-formed sequence at s[0..n) (n >= 1), or the negated
 * length of its maximal ill-formed subpart (Unicode 3.9, D93b), so a writer
 * can replace each broken sequence by exactly one U+FFFD, as browsers'
 * TextDecoder does. */
int px_utf8_seq(const unsigned char *s, size_t n);

#endif
