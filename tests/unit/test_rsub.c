/*
 * test_rsub.c - unit tests for px_rsub.c, the asynchronous subscriber:
 *
 *  - px_rsub_push_parse: every push shape a subscriber gets, and a
 *    hostile table (wrong counts, types, names, nil and nested elements);
 *  - the bounded reader: a valid stream split at every byte gives the same
 *    replies; a hostile table (bad type bytes and lengths, a 2^31-element
 *    array announced, a bulk or a line over the bound, too deep nesting,
 *    many small elements adding up past the bound) fails with the right
 *    class, fed whole and byte by byte, without allocating what the bytes
 *    announce;
 *  - the connection's reader path over a real loopback socket: a scripted
 *    server answers the subscriber's SUBSCRIBE with hostile bytes; the
 *    subscriber drops the connection (counted as a protocol error, logged
 *    once at level error), connects again and subscribes, and the message
 *    the server then sends is delivered. Error answers, an unsolicited
 *    unsubscribe and a connection closed after the confirmation are
 *    subscribed again without a protocol error (on_subscribed's `again`),
 *    and a server that never answers is dropped after timeout_ms.
 *
 * Run under ASan/UBSan and valgrind by ctest (label unit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_log.h"
#include "px_rsub.h"

/* ---- pushes ---------------------------------------------------------- */

/* The one reply in RESP text s (which must hold exactly one). */
static redisReply *one_reply(const char *s, size_t n) {
    px_rsub_reader_t *rd = px_rsub_reader_new(1 << 20);
    assert_non_null(rd);
    char err[200];
    assert_int_equal(px_rsub_reader_feed(rd, s, n, err, sizeof err), 0);
    redisReply *r = NULL;
    assert_int_equal(px_rsub_reader_next(rd, &r, err, sizeof err), 1);
    redisReply *more = NULL;
    assert_int_equal(px_rsub_reader_next(rd, &more, err, sizeof err), 0);
    px_rsub_reader_free(rd);
    return r;
}

#define S(lit) lit, sizeof(lit) - 1

/* A reply px_rsub_push_parse takes, and what it must read from it. */
typedef struct {
    const char *resp;
    size_t n;
    px_rsub_push_kind_t kind;
    bool sharded;
    const char *channel, *data;
    size_t data_len;
    long long count;
} push_ok_t;

/* Case i of the accepted replies: parsed as k says. */
static void check_push_ok(const push_ok_t *k, size_t i) {
    redisReply *r = one_reply(k->resp, k->n);
    px_rsub_push_t p;
    if (px_rsub_push_parse(r, &p) != k->kind || p.kind != k->kind) fail_msg("case %zu: kind", i);
    assert_int_equal(p.sharded, k->sharded);
    if (k->channel) {
        assert_int_equal(p.channel_len, strlen(k->channel));
        assert_memory_equal(p.channel, k->channel, p.channel_len);
    } else {
        assert_null(p.channel);
    }
    if (k->data) {
        assert_int_equal(p.data_len, k->data_len);
        assert_memory_equal(p.data, k->data, p.data_len);
    }
    assert_int_equal(p.count, k->count);
    freeReplyObject(r);
}

static void test_push_parse(void **state) {
    (void)state;
    static const push_ok_t ok[] = {
        {S("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"), PX_RSUB_PUSH_MESSAGE, false, "ch", "hello", 5, 0},
        {S("*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$0\r\n\r\n"), PX_RSUB_PUSH_MESSAGE, true, "ch", "", 0, 0},
        {S("*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$3\r\na\0b\r\n"), PX_RSUB_PUSH_MESSAGE, true, "ch", "a\0b", 3, 0},
        {S("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"), PX_RSUB_PUSH_SUBSCRIBED, false, "ch", NULL, 0, 1},
        {S("*3\r\n$10\r\nssubscribe\r\n$2\r\nch\r\n:7\r\n"), PX_RSUB_PUSH_SUBSCRIBED, true, "ch", NULL, 0, 7},
        {S("*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n"), PX_RSUB_PUSH_UNSUBSCRIBED, false, "ch", NULL, 0, 0},
        {S("*3\r\n$12\r\nsunsubscribe\r\n$2\r\nch\r\n:0\r\n"), PX_RSUB_PUSH_UNSUBSCRIBED, true, "ch", NULL, 0, 0},
        {S("*2\r\n$4\r\npong\r\n$0\r\n\r\n"), PX_RSUB_PUSH_PONG, false, NULL, "", 0, 0},
        {S("+PONG\r\n"), PX_RSUB_PUSH_PONG, false, NULL, NULL, 0, 0},
        {S("-MOVED 3999 127.0.0.1:6381\r\n"), PX_RSUB_PUSH_ERROR, false, NULL, "MOVED 3999 127.0.0.1:6381", 25, 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) check_push_ok(&ok[i], i);

    static const struct {
        const char *resp;
        size_t n;
    } bad[] = {
        {S(":1\r\n")},
        {S("+OK\r\n")},
        {S("+pong\r\n")},
        {S("$7\r\nmessage\r\n")},
        {S("$-1\r\n")},
        {S("*-1\r\n")},
        {S("*0\r\n")},
        {S("*1\r\n$7\r\nmessage\r\n")},
        {S("*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n")},
        {S("*4\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n$1\r\ny\r\n")},
        {S("*3\r\n+message\r\n$2\r\nch\r\n$1\r\nx\r\n")},            /* a status, not a bulk */
        {S("*3\r\n$7\r\nMESSAGE\r\n$2\r\nch\r\n$1\r\nx\r\n")},       /* names are lower case */
        {S("*3\r\n$8\r\nmessagex\r\n$2\r\nch\r\n$1\r\nx\r\n")},
        {S("*3\r\n$6\r\nmessag\r\n$2\r\nch\r\n$1\r\nx\r\n")},
        {S("*3\r\n$7\r\nmessage\r\n:5\r\n$1\r\nx\r\n")},             /* integer channel */
        {S("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:5\r\n")},            /* integer payload */
        {S("*3\r\n$7\r\nmessage\r\n$-1\r\n$1\r\nx\r\n")},            /* nil channel */
        {S("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*1\r\n$1\r\nx\r\n")}, /* nested payload */
        {S("*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n")},
        {S("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n$1\r\n1\r\n")},     /* count as a string */
        {S("*3\r\n$10\r\nssubscribe\r\n$2\r\nch\r\n$-1\r\n")},
        {S("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$1\r\nx\r\n")},
        {S("*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n")},
        {S("*2\r\n$4\r\npong\r\n:1\r\n")},
        {S("*3\r\n$4\r\npong\r\n$0\r\n\r\n$0\r\n\r\n")},
        {S("*3\r\n$1\r\n\0\r\n$2\r\nch\r\n$1\r\nx\r\n")},
        {S("*3\r\n*1\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReply *r = one_reply(bad[i].resp, bad[i].n);
        px_rsub_push_t p;
        if (px_rsub_push_parse(r, &p) != PX_RSUB_PUSH_INVALID) fail_msg("bad case %zu accepted", i);
        freeReplyObject(r);
    }
    px_rsub_push_t p;
    assert_int_equal(px_rsub_push_parse(NULL, &p), PX_RSUB_PUSH_INVALID);
}

/* ---- the bounded reader ---------------------------------------------- */

static void test_reader_splits(void **state) {
    (void)state;
    static const char stream[] = "*3\r\n$8\r\nsmessage\r\n$24\r\npresence:updates:{t:e:1}\r\n$12\r\n{\"v\":\"a\r\nb\"}\r\n"
                                 "*3\r\n$10\r\nssubscribe\r\n$1\r\nx\r\n:2\r\n"
                                 "+PONG\r\n"
                                 "-MOVED 1 127.0.0.1:7000\r\n"
                                 "*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    const size_t n = sizeof stream - 1;
    static const px_rsub_push_kind_t want[] = {PX_RSUB_PUSH_MESSAGE, PX_RSUB_PUSH_SUBSCRIBED, PX_RSUB_PUSH_PONG,
                                               PX_RSUB_PUSH_ERROR, PX_RSUB_PUSH_PONG};
    char err[200];
    /* Two feeds split at every byte, and one feed per byte. */
    for (size_t cut = 0; cut <= n + 1; cut++) {
        px_rsub_reader_t *rd = px_rsub_reader_new(1024); /* ~300 bytes of reply objects */
        assert_non_null(rd);
        size_t got = 0;
        size_t pos = 0;
        while (pos < n) {
            size_t len = cut == n + 1 ? 1 : pos == 0 ? cut : n - pos;
            if (len == 0) len = n;
            assert_int_equal(px_rsub_reader_feed(rd, stream + pos, len, err, sizeof err), 0);
            pos += len;
            redisReply *r;
            int k;
            while ((k = px_rsub_reader_next(rd, &r, err, sizeof err)) == 1) {
                px_rsub_push_t p;
                assert_true(got < 5);
                assert_int_equal(px_rsub_push_parse(r, &p), want[got]);
                if (got == 0) {
                    assert_int_equal(p.data_len, 12);
                    assert_memory_equal(p.data, "{\"v\":\"a\r\nb\"}", 12);
                }
                got++;
                freeReplyObject(r);
            }
            assert_int_equal(k, 0);
        }
        if (got != 5) fail_msg("cut %zu: %zu replies", cut, got);
        px_rsub_reader_free(rd);
    }
}

/* Feed s (in chunks of `chunk`) to a reader bounded at max until it fails;
 * returns the error (0 if it never failed). */
static int feed_until_error(const char *s, size_t n, size_t chunk, size_t max, char *err, size_t errn) {
    px_rsub_reader_t *rd = px_rsub_reader_new(max);
    assert_non_null(rd);
    int rc = 0;
    for (size_t pos = 0; pos < n && rc == 0;) {
        size_t len = n - pos < chunk ? n - pos : chunk;
        rc = px_rsub_reader_feed(rd, s + pos, len, err, errn);
        pos += len;
        redisReply *r;
        while (rc == 0 && (rc = px_rsub_reader_next(rd, &r, err, errn)) == 1) {
            freeReplyObject(r);
            rc = 0;
        }
    }
    /* sticky */
    if (rc) {
        redisReply *r;
        assert_int_equal(px_rsub_reader_next(rd, &r, err, errn), rc);
        assert_null(r);
        assert_int_equal(px_rsub_reader_feed(rd, "+PONG\r\n", 7, err, errn), rc);
    }
    px_rsub_reader_free(rd);
    return rc;
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail, size_t *outn) {
    size_t hn = strlen(head), un = strlen(unit), tn = strlen(tail);
    size_t n = hn + un * times + tn;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, head, hn);
    for (size_t i = 0; i < times; i++) memcpy(s + hn + i * un, unit, un);
    memcpy(s + hn + un * times, tail, tn);
    s[n] = '\0';
    *outn = n;
    return s;
}

static void test_reader_hostile(void **state) {
    (void)state;
    const size_t max = 64 * 1024;
    static const struct {
        const char *s;
        size_t n;
        int want;
        const char *why;
    } table[] = {
        {S("!oops\r\n"), PX_EPROTO, "Protocol error"},
        {S("\x00\xff\r\n"), PX_EPROTO, "Protocol error"},
        {S("$abc\r\n"), PX_EPROTO, "Bad bulk string length"},
        {S("$-5\r\n"), PX_EPROTO, "Bulk string length out of range"},
        {S("$99999999999999999999999\r\n"), PX_EPROTO, "Bad bulk string length"},
        {S("*-7\r\n"), PX_EPROTO, "out of range"},
        {S("*2147483648\r\n"), PX_EPROTO, "out of range"},
        {S("*2147483647\r\n"), PX_ENOMEM, "over 65536"}, /* refused before calloc(2^31, 8) */
        {S("*1000000\r\n"), PX_ENOMEM, "over 65536"},
        {S(":12x\r\n"), PX_EPROTO, "integer"},
        {S(":99999999999999999999\r\n"), PX_EPROTO, "integer"},
        {S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), PX_EPROTO, "nested"},
        {S("*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$70000\r\n"), 0, NULL}, /* incomplete, within bound */
    };
    char err[200];
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        for (size_t chunk = 1; chunk <= PX_RSUB_FEED_MAX; chunk *= PX_RSUB_FEED_MAX) {
            int rc = feed_until_error(table[i].s, table[i].n, chunk, max, err, sizeof err);
            if (rc != table[i].want) fail_msg("case %zu chunk %zu: %d (%s)", i, chunk, rc, rc ? err : "");
            if (table[i].why && !strstr(err, table[i].why)) fail_msg("case %zu: '%s'", i, err);
        }

    /* A bulk over the bound, streamed: refused once more than max is
     * buffered, never allocated whole. */
    size_t n;
    char *s = repeat("*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$200000\r\n", "x", 200000, "\r\n", &n);
    assert_int_equal(feed_until_error(s, n, 4096, max, err, sizeof err), PX_ENOMEM);
    assert_non_null(strstr(err, "a reply over 65536 bytes"));
    free(s);
    /* A status line that never ends. */
    s = repeat("+", "a", 100000, "", &n);
    assert_int_equal(feed_until_error(s, n, 4096, max, err, sizeof err), PX_ENOMEM);
    free(s);
    /* Many small elements adding up past the bound (each costs a reply
     * object), in small feeds so no single buffer is ever large. */
    s = repeat("*100000\r\n", "$0\r\n\r\n", 100000, "", &n);
    assert_int_equal(feed_until_error(s, n, 4096, 1 << 20, err, sizeof err), PX_ENOMEM);
    free(s);
    /* The same reply under a bound that holds it: accepted. */
    s = repeat("*1000\r\n", "$0\r\n\r\n", 1000, "", &n);
    assert_int_equal(feed_until_error(s, n, 4096, 1 << 20, err, sizeof err), 0);
    free(s);
    /* A bulk of exactly the bound's payload minus the object costs. */
    s = repeat("$60000\r\n", "y", 60000, "\r\n", &n);
    assert_int_equal(feed_until_error(s, n, 4096, max, err, sizeof err), 0);
    free(s);
    /* Over-long feeds are the caller's error. */
    px_rsub_reader_t *rd = px_rsub_reader_new(max);
    static char big[PX_RSUB_FEED_MAX + 1];
    assert_int_equal(px_rsub_reader_feed(rd, big, sizeof big, err, sizeof err), PX_EINVAL);
    px_rsub_reader_free(rd);
}

/* ---- the connection over a real socket ------------------------------ */

#define CH "presence:updates:{acme:order:42}"
#define CONFIRM "*3\r\n$9\r\nsubscribe\r\n$32\r\n" CH "\r\n:1\r\n"
#define HELLO "*3\r\n$7\r\nmessage\r\n$32\r\n" CH "\r\n$5\r\nhello\r\n"

typedef struct {
    const char *bytes; /* NULL: built by the case (big) */
    size_t len;
    bool close_after;
} answer_t;

typedef struct srv srv_t;
typedef struct {
    uv_tcp_t h;
    srv_t *srv;
    char buf[8192];
    size_t len, seen; /* bytes received; SUBSCRIBEs counted */
} client_t;

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    const answer_t *answers;
    size_t nanswers, next; /* the k-th SUBSCRIBE gets answers[k] */
    client_t *clients[8];
    int nclients, accepted;
    px_rsub_t *sub;
    bool done;            /* the message was delivered */
    int subscribed, again;
    uv_timer_t deadline;
    bool timed_out;
};

static void on_client_closed(uv_handle_t *h) { free(h->data); }

static void close_client(client_t *c) {
    srv_t *s = c->srv;
    for (int i = 0; i < s->nclients; i++)
        if (s->clients[i] == c) {
            s->clients[i] = s->clients[--s->nclients];
            uv_close((uv_handle_t *)&c->h, on_client_closed);
            return;
        }
}

static void on_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

static void send_answer(client_t *c, const answer_t *a) {
    if (a->len == 0) return; /* silence */
    uv_write_t *w = malloc(sizeof *w);
    assert_non_null(w);
    uv_buf_t b = uv_buf_init((char *)a->bytes, (unsigned)a->len);
    assert_int_equal(uv_write(w, (uv_stream_t *)&c->h, &b, 1, on_written), 0);
    if (a->close_after) close_client(c);
}

static void on_cl_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    client_t *c = h->data;
    (void)n;
    if (c->len >= sizeof c->buf - 1) c->len = 0; /* only command words matter */
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void on_cl_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    client_t *c = st->data;
    (void)b;
    if (n < 0) {
        close_client(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    const char *p = c->buf;
    size_t count = 0;
    while ((p = strstr(p, "$9\r\nSUBSCRIBE\r\n"))) count++, p++;
    while (c->seen < count) {
        c->seen++;
        srv_t *s = c->srv;
        if (s->next < s->nanswers) {
            const answer_t *a = &s->answers[s->next++];
            send_answer(c, a);
            if (a->close_after) return;
        }
    }
}

static void on_accept(uv_stream_t *l, int status) {
    srv_t *s = l->data;
    assert_int_equal(status, 0);
    client_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->h);
    c->h.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->h), 0);
    assert_true(s->nclients < 8);
    s->clients[s->nclients++] = c;
    s->accepted++;
    uv_read_start((uv_stream_t *)&c->h, on_cl_alloc, on_cl_read);
}

static void on_msg(void *ud, const char *ch, size_t chlen, const char *p, size_t plen) {
    srv_t *s = ud;
    assert_int_equal(chlen, strlen(CH));
    assert_memory_equal(ch, CH, chlen);
    if (plen == 5 && memcmp(p, "hello", 5) == 0) {
        s->done = true;
        uv_stop(s->loop);
    }
}

static void on_sub(void *ud, const char *ch, size_t chlen, bool again) {
    srv_t *s = ud;
    (void)ch;
    (void)chlen;
    s->subscribed++;
    s->again += again;
}

static void on_deadline(uv_timer_t *t) {
    srv_t *s = t->data;
    s->timed_out = true;
    uv_stop(s->loop);
}

typedef struct {
    const char *name;
    answer_t first;      /* the answer to the first SUBSCRIBE */
    answer_t second;     /* to the second (after the reconnect or the retry) */
    int proto, drops, errors, unsubscribed, stray, again, connects;
    long timeout_ms, ping_ms; /* 0: 2000 and 60000 (no PING) */
} conn_case_t;

/* Count log lines at `level` holding `what` in fd (from its start). */
static int count_lines(int fd, const char *level, const char *what) {
    static char text[65536];
    off_t end = lseek(fd, 0, SEEK_END);
    assert_true(end >= 0 && (size_t)end < sizeof text);
    assert_int_equal(pread(fd, text, (size_t)end, 0), end);
    text[end] = '\0';
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, level) && strstr(line, what)) n++;
    return n;
}

static void run_case(const conn_case_t *k) {
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    srv_t s = {.loop = &loop};
    answer_t answers[2] = {k->first, k->second};
    s.answers = answers;
    s.nanswers = 2;
    uv_tcp_init(&loop, &s.listener);
    s.listener.data = &s;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&s.listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s.listener, 8, on_accept), 0);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    uv_tcp_getsockname(&s.listener, (struct sockaddr *)&ss, &sl);
    s.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    FILE *log = tmpfile();
    assert_non_null(log);
    px_log_set_fd(fileno(log));
    px_rsub_conf_t conf = {.host = "127.0.0.1", .port = s.port, .timeout_ms = k->timeout_ms ? k->timeout_ms : 2000,
                           .ping_ms = k->ping_ms ? k->ping_ms : 60000,
                           .max_reply = 64 * 1024, .retry_min_ms = 10, .log_comp = "test"};
    px_rsub_handlers_t h = {on_msg, on_sub, NULL, &s};
    char err[200];
    s.sub = px_rsub_new(&loop, &conf, &h, err, sizeof err);
    assert_non_null(s.sub);
    assert_int_equal(px_rsub_add(s.sub, CH, strlen(CH)), 0);
    uv_timer_init(&loop, &s.deadline);
    s.deadline.data = &s;
    uv_timer_start(&s.deadline, on_deadline, 5000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    px_rsub_stats_t st = px_rsub_stats(s.sub);
    if (s.timed_out || !s.done)
        fail_msg("%s: no message (timed out %d, proto %llu drops %llu errors %llu subscribed %d)", k->name,
                 s.timed_out, (unsigned long long)st.protocol_errors, (unsigned long long)st.drops,
                 (unsigned long long)st.errors, s.subscribed);
    if (st.protocol_errors != (uint64_t)k->proto || st.drops != (uint64_t)k->drops ||
        st.errors != (uint64_t)k->errors || st.unsubscribed != (uint64_t)k->unsubscribed ||
        st.stray != (uint64_t)k->stray || s.again != k->again || st.connects != (uint64_t)k->connects ||
        st.messages != 1 || st.live != 1 || !px_rsub_up(s.sub) || px_rsub_channel_state(s.sub, CH, strlen(CH)) != 1)
        fail_msg("%s: proto %llu drops %llu errors %llu unsubscribed %llu stray %llu again %d connects %llu "
                 "messages %llu live %zu",
                 k->name, (unsigned long long)st.protocol_errors, (unsigned long long)st.drops,
                 (unsigned long long)st.errors, (unsigned long long)st.unsubscribed, (unsigned long long)st.stray,
                 s.again, (unsigned long long)st.connects, (unsigned long long)st.messages, st.live);
    /* Logged once: one error line per protocol error, nothing else at error. */
    if (count_lines(fileno(log), "level=error", "bad reply") != k->proto ||
        count_lines(fileno(log), "level=error", "") != k->proto)
        fail_msg("%s: %d error lines", k->name, count_lines(fileno(log), "level=error", ""));

    px_rsub_free(s.sub);
    while (s.nclients) close_client(s.clients[0]);
    uv_close((uv_handle_t *)&s.listener, NULL);
    uv_close((uv_handle_t *)&s.deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed */
    px_log_set_fd(2);
    fclose(log);
}

static void test_conn_hostile(void **state) {
    (void)state;
    static const answer_t ok = {S(CONFIRM HELLO), false};
    size_t bign, linen;
    char *big = repeat("$100000\r\n", "x", 100000, "\r\n", &bign);
    char *line = repeat("+", "a", 70000, "", &linen);
    const conn_case_t cases[] = {
        /* hostile bytes: dropped, counted, logged once; then subscribed */
        {"bad type byte", {S("!oops\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"binary", {S("\x00\xff\xfe\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"bad bulk length", {S("*3\r\n$7\r\nmessage\r\n$-5\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"bad array length", {S("*-7\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"2^31 elements announced", {S("*2147483647\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"bulk over max_reply", {big, bign, false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"endless line", {line, linen, false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"nested too deep", {S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), false}, ok, 1, 1, 0,
         0, 0, 0, 2, 0, 0},
        {"integer", {S(":1\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"status", {S("+OK\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"pmessage", {S("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$1\r\nx\r\n"), false}, ok, 1, 1, 0, 0, 0, 0,
         2, 0, 0},
        {"integer payload", {S("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:5\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"nil channel", {S("*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"confirmation of another channel", {S("*3\r\n$9\r\nsubscribe\r\n$5\r\nother\r\n:1\r\n"), false}, ok, 1, 1,
         0, 0, 0, 0, 2, 0, 0},
        {"pong never asked", {S("*2\r\n$4\r\npong\r\n$0\r\n\r\n"), false}, ok, 1, 1, 0, 0, 0, 0, 2, 0, 0},
        {"two confirmations", {S(CONFIRM CONFIRM), false}, ok, 1, 1, 0, 0, 0, 1, 2, 0, 0},
        /* not hostile: handled without a protocol error */
        {"error answer", {S("-ERR not now\r\n"), false}, ok, 0, 0, 1, 0, 0, 0, 1, 0, 0},
        {"unsolicited unsubscribe",
         {S(CONFIRM "*3\r\n$11\r\nunsubscribe\r\n$32\r\n" CH "\r\n:0\r\n"), false}, ok, 0, 0, 0, 1, 0, 1, 1, 0, 0},
        {"closed after the confirmation", {S(CONFIRM), true}, ok, 0, 1, 0, 0, 0, 1, 2, 0, 0},
        {"message on a channel not wanted", {S("*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$1\r\nx\r\n" CONFIRM HELLO), false},
         {NULL, 0, false}, 0, 0, 0, 0, 1, 0, 1, 0, 0},
        /* a server that never answers: dropped after timeout_ms (checked every ping_ms) */
        {"no answer", {"", 0, false}, ok, 0, 1, 0, 0, 0, 0, 2, 200, 50},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    free(big);
    free(line);
}

/* ---- the API's own bounds --------------------------------------------- */

static int states[4], nstates;
static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }
static void on_state(void *ud, bool up) {
    (void)ud;
    if (nstates < 4) states[nstates++] = up;
}

static void test_api_bounds(void **state) {
    (void)state;
    char err[200];
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    px_rsub_conf_t bad[] = {
        {.host = NULL, .port = 6379},
        {.host = "", .port = 6379},
        {.host = "/a/socket/path/that/is/far/too/long/for/a/sockaddr_un/which/holds/one/hundred/and/eight/bytes/"
                 "xxxxxxxxxxxxxxx"},
        {.cluster = true, .seeds = "nocolon"},
        {.cluster = true, .seeds = NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (px_rsub_new(&loop, &bad[i], NULL, err, sizeof err)) fail_msg("bad conf %zu accepted", i);
        assert_true(err[0] != '\0');
    }
    /* Nothing listens on port 1: down, counted, never up; the channel cap
     * and name bounds hold meanwhile. */
    FILE *log = tmpfile();
    px_log_set_fd(fileno(log));
    px_rsub_conf_t conf = {.host = "127.0.0.1", .port = 1, .max_channels = 3, .retry_min_ms = 5, .retry_max_ms = 20};
    px_rsub_handlers_t h = {NULL, NULL, on_state, NULL};
    px_rsub_t *s = px_rsub_new(&loop, &conf, &h, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(px_rsub_add(s, "", 0), PX_EINVAL);
    static char longname[PX_RSUB_CHANNEL_MAX + 1];
    memset(longname, 'c', sizeof longname);
    assert_int_equal(px_rsub_add(s, longname, sizeof longname), PX_EINVAL);
    assert_int_equal(px_rsub_add(s, longname, PX_RSUB_CHANNEL_MAX), 0);
    assert_int_equal(px_rsub_add(s, "a", 1), 0);
    assert_int_equal(px_rsub_add(s, "a", 1), 0); /* already wanted */
    assert_int_equal(px_rsub_add(s, "b\0c", 3), 0);
    assert_int_equal(px_rsub_add(s, "d", 1), PX_ENOMEM);
    assert_int_equal(px_rsub_channel_state(s, "b\0c", 3), 0);
    assert_int_equal(px_rsub_channel_state(s, "b", 1), -1);
    assert_int_equal(px_rsub_del(s, "a", 1), 0);
    assert_int_equal(px_rsub_del(s, "a", 1), 0);
    assert_int_equal(px_rsub_add(s, "d", 1), 0);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, stop_loop, 300, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    px_rsub_stats_t st = px_rsub_stats(s);
    assert_false(px_rsub_up(s));
    assert_int_equal(nstates, 0); /* never up, so never a change */
    assert_true(st.connect_failures >= 3);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.channels, 3);
    /* one warning for the run of failures, the rest at debug */
    assert_int_equal(count_lines(fileno(log), "level=warn", "cannot connect"), 1);
    px_rsub_free(s);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    px_log_set_fd(2);
    fclose(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_parse),
        cmocka_unit_test(test_reader_splits),
        cmocka_unit_test(test_reader_hostile),
        cmocka_unit_test(test_conn_hostile),
        cmocka_unit_test(test_api_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
