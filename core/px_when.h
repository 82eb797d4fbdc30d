/*
 * px_when.h - points in time as operators type them on a command line
 * (presencectl --from/--to), parsed without I/O, clock or allocation:
 *
 *   now                          the caller's now_ms
 *   1700000000000                ms since the Unix epoch (digits only)
 *   -15m  -2h  -30s  -7d  -250ms now minus a duration (units ms s m h d)
 *   2026-11-22                   midnight UTC of that day
 *   2026-11-22T10:00:00Z         RFC 3339: seconds and the fraction are
 *   2026-11-22T10:00+01:00       optional, ' ' may replace 'T', the zone
 *   2026-11-22 10:00:00.250Z     (Z or +-HH:MM) is required
 *
 * Everything else is refused with a reason: empty strings, trailing bytes,
 * out-of-range fields (month 13, Feb 30, hour 24, offset +25:00), results
 * before the epoch or beyond year 9999, overflowing numbers. Related:
 * tools/ctl_*.c, tests/unit/test_when.c.
 */
#ifndef PX_WHEN_H
#define PX_WHEN_H

#include <stddef.h>
#include <stdint.h>

/* Parse s (NUL-terminated) into *out_ms. 0, or PX_EINVAL with the reason
 * in errstr (*out_ms untouched). */
int px_when_parse(const char *s, int64_t now_ms, int64_t *out_ms, char *errstr, size_t errstr_size);

/* A half-open range [from, to): either string may be NULL (from: 0, to:
 * INT64_MAX). PX_EINVAL when one does not parse or from >= to. */
int px_when_range(const char *from, const char *to, int64_t now_ms, int64_t *from_ms, int64_t *to_ms,
                  char *errstr, size_t errstr_size);

/* Format ms since the epoch as 2026-11-22T10:00:00.250Z into out (at least
 * 32 bytes); returns out. */
char *px_when_format(int64_t ms, char *out, size_t out_size);

#endif
