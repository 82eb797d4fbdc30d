/*
 * px_err.h - the error classes shared by every module of presence.
 *
 * Every fallible function returns 0 on success or one of the negative codes
 * below; the detail goes into a caller-provided `errstr` buffer (or the
 * module's context). The set is small on purpose: callers branch on the
 * class, operators read the text. px_err_name() gives the code word used in
 * logs, metrics labels and protocol ERROR messages.
 */
#ifndef PX_ERR_H
#define PX_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum {
    PX_OK = 0,
    PX_EIO = -1,        /* a read/write/socket failed */
    PX_EPROTO = -2,     /* a peer sent bytes that break the wire format */
    PX_EINVAL = -3,     /* well-formed input with invalid content */
    PX_ENOMEM = -4,     /* allocation failed or a bound was reached */
    PX_ETIMEOUT = -5,   /* a deadline passed */
    PX_ECONFIG = -6,    /* configuration is wrong; start-up stops */
    PX_EBACKEND = -7,   /* Kafka or Redis refused or is unreachable */
    PX_EINCOMPLETE = -8 /* more input needed (streaming parsers only) */
};

/* Code word for an error code: "IO", "PROTOCOL", ... ("OK" for 0,
 * "UNKNOWN" for anything else). Static storage; never NULL. */
const char *px_err_name(int err);

/* snprintf into errstr (if non-NULL and errstr_size > 0) and return err.
 * Lets error paths read `return px_errf(PX_EINVAL, e, n, "bad key '%s'", k);` */
int px_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* px_errf with the arguments as a va_list (for other formatting helpers). */
int px_verrf(int err, char *errstr, size_t errstr_size, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
