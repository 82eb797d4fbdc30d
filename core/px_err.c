/* px_err.c - error code words and the errstr helper. See px_err.h. */
#include "px_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *px_err_name(int err) {
    switch (err) {
    case PX_OK: return "OK";
    case PX_EIO: return "IO";
    case PX_EPROTO: return "PROTOCOL";
    case PX_EINVAL: return "INVALID";
    case PX_ENOMEM: return "OOM";
    case PX_ETIMEOUT: return "TIMEOUT";
    case PX_ECONFIG: return "CONFIG";
    case PX_EBACKEND: return "BACKEND";
    case PX_EINCOMPLETE: return "INCOMPLETE";
    default: return "UNKNOWN";
    }
}

int px_verrf(int err, char *errstr, size_t errstr_size, const char *fmt, va_list ap) {
    if (errstr && errstr_size > 0) vsnprintf(errstr, errstr_size, fmt, ap);
    return err;
}

int px_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    px_verrf(err, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return err;
}
