/*
 * px_log.c - logfmt lines, one write(2) each. See px_log.h.
 *
 * A line is formatted into a stack buffer of PX_LOG_LINE_MAX bytes (below
 * PIPE_BUF, so a write to a pipe is atomic and lines of concurrent threads
 * never interleave). A line that does not fit is cut at the last key=value
 * boundary that fits and ends in ` truncated=true`, so it stays one
 * well-formed line. The only shared state is the level and the fd, both
 * atomics: there is no lock to take on the logging path.
 *
 * Limits: `comp` and the kv tail are the caller's text; control characters
 * in them are replaced by spaces (a newline there would split the line),
 * but quoting values in the tail is the caller's job (px_log_q()).
 */
#include "px_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PX_LOG_LINE_MAX 2048
#define PX_LOG_TRUNC " truncated=true"

static atomic_int px_log_level = PX_LOG_INFO;
static atomic_int px_log_fd = 2;

static const char *const px_log_names[] = {"debug", "info", "warn", "error"};

void px_log_set_level(px_log_level_t level) {
    if (level < PX_LOG_DEBUG) level = PX_LOG_DEBUG;
    if (level > PX_LOG_ERROR) level = PX_LOG_ERROR;
    atomic_store_explicit(&px_log_level, (int)level, memory_order_relaxed);
}

px_log_level_t px_log_get_level(void) {
    return (px_log_level_t)atomic_load_explicit(&px_log_level, memory_order_relaxed);
}

/* Case-insensitive, so PRESENCE_LOG_LEVEL=INFO works; "warning" is accepted
 * as an alias because operators type it. */
int px_log_level_parse(const char *name) {
    if (!name) return -1;
    for (int i = 0; i <= PX_LOG_ERROR; i++)
        if (strcasecmp(name, px_log_names[i]) == 0) return i;
    if (strcasecmp(name, "warning") == 0) return PX_LOG_WARN;
    return -1;
}

void px_log_set_fd(int fd) { atomic_store_explicit(&px_log_fd, fd, memory_order_relaxed); }

/* Escape s into dst[0..cap) without a NUL and without splitting an escape
 * sequence. Returns the bytes written; *cut is set when s did not fit. */
static size_t px_log_escape(char *dst, size_t cap, const char *s, bool *cut) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    *cut = false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[4];
        size_t n;
        switch (*p) {
        case '"': esc[0] = '\\'; esc[1] = '"'; n = 2; break;
        case '\\': esc[0] = '\\'; esc[1] = '\\'; n = 2; break;
        case '\n': esc[0] = '\\'; esc[1] = 'n'; n = 2; break;
        case '\r': esc[0] = '\\'; esc[1] = 'r'; n = 2; break;
        case '\t': esc[0] = '\\'; esc[1] = 't'; n = 2; break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                esc[0] = '\\'; esc[1] = 'x'; esc[2] = hex[*p >> 4]; esc[3] = hex[*p & 15];
                n = 4;
            } else {
                esc[0] = (char)*p;
                n = 1;
            }
        }
        if (cap - o < n) {
            *cut = true;
            break;
        }
        memcpy(dst + o, esc, n);
        o += n;
    }
    return o;
}

const char *px_log_q(char *buf, size_t size, const char *s) {
    if (!buf || size == 0) return "\"\"";
    if (size < 3) {
        buf[0] = '\0';
        return buf;
    }
    bool cut;
    size_t n = px_log_escape(buf + 1, size - 3, s ? s : "", &cut);
    buf[0] = '"';
    buf[1 + n] = '"';
    buf[2 + n] = '\0';
    return buf;
}

/* Length of the longest prefix of tail[0..len) that ends at a key=value
 * boundary (a space outside double quotes), so cutting there keeps the
 * line parseable. 0 if there is none. */
static size_t px_log_kv_boundary(const char *tail, size_t len) {
    size_t last = 0;
    bool inq = false;
    for (size_t i = 0; i < len; i++) {
        if (inq && tail[i] == '\\') {
            i++;
        } else if (tail[i] == '"') {
            inq = !inq;
        } else if (!inq && tail[i] == ' ') {
            last = i;
        }
    }
    return last;
}

/* The line is built in place: [ts level comp msg][ kv tail][ truncated=true]\n.
 * `reserve` keeps room for the marker and the newline at every step, so the
 * marker can always be added. */
void px_log(px_log_level_t level, const char *comp, const char *msg, const char *kvfmt, ...) {
    if ((int)level < atomic_load_explicit(&px_log_level, memory_order_relaxed)) return;
    if (level < PX_LOG_DEBUG || level > PX_LOG_ERROR) level = PX_LOG_ERROR;

    char line[PX_LOG_LINE_MAX];
    const size_t reserve = sizeof(PX_LOG_TRUNC) - 1 + 1; /* marker + '\n' */
    const size_t limit = sizeof line - reserve;          /* bytes for the body */
    bool truncated = false;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t o = strftime(line, limit, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line + o, limit - o, ".%03ldZ level=%s comp=", ts.tv_nsec / 1000000L,
                     px_log_names[level]);
    o += (size_t)n;

    /* comp: caller's identifier; keep it one token. */
    for (const char *c = comp ? comp : "-"; *c && o < limit / 4; c++) {
        unsigned char ch = (unsigned char)*c;
        line[o++] = (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '=') ? '_' : (char)ch;
    }

    memcpy(line + o, " msg=\"", 6);
    o += 6;
    bool cut;
    o += px_log_escape(line + o, limit - o - 1, msg ? msg : "", &cut);
    line[o++] = '"';
    truncated = cut;

    if (kvfmt && kvfmt[0] && !truncated && o + 1 < limit) {
        size_t start = o;
        line[o++] = ' ';
        va_list ap;
        va_start(ap, kvfmt);
        int k = vsnprintf(line + o, limit - o + 1, kvfmt, ap); /* +1: NUL may use a marker byte */
        va_end(ap);
        if (k < 0) {
            o = start;
        } else if ((size_t)k > limit - o) {
            truncated = true;
            size_t b = px_log_kv_boundary(line + start, limit - start);
            o = start + b;
        } else {
            o += (size_t)k;
        }
        for (size_t i = start; i < o; i++) {
            unsigned char ch = (unsigned char)line[i];
            if (ch < 0x20 || ch == 0x7f) line[i] = ' ';
        }
        if (o == start + 1) o = start; /* empty tail: no trailing space */
    }

    if (truncated) {
        memcpy(line + o, PX_LOG_TRUNC, sizeof(PX_LOG_TRUNC) - 1);
        o += sizeof(PX_LOG_TRUNC) - 1;
    }
    line[o++] = '\n';

    int fd = atomic_load_explicit(&px_log_fd, memory_order_relaxed);
    size_t off = 0;
    while (off < o) {
        ssize_t w = write(fd, line + off, o - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report a logging failure */
        }
        off += (size_t)w;
    }
}
