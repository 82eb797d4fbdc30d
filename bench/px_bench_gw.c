/*
 * px_bench_gw.c - load generator for presence-gateway: many idle WebSocket
 * connections with heartbeats, and LOCK -> LOCK_ACK latency through Kafka
 * and the processor at a set rate.
 *
 *   px_bench_gw --port P --secret S [--conns N] [--sources K] [--entities E]
 *               [--lockers L] [--lock-rate R] [--duration D] [--hb-s 30]
 *               [--gw-pid PID] [--tenant T] [--socketio] [--path P]
 *               [--hb-burst 20] [--cpu NAME=PID ...]
 *               [--first I] [--source-base B] [--hold S] [--open-s 300]
 *
 * One thread, epoll, raw sockets and a minimal RFC 6455 client (masked
 * text frames out; unmasked frames in, no extensions), so the generator
 * costs little next to the gateway. Connections come from K loopback
 * source addresses (127.0.0.1 .. 127.0.0.K) so that more than one
 * address's worth of ephemeral ports can be used. Each connection is user
 * u<i> (an HS256 token minted with libjwt) and subscribes to entity
 * bench:order:e<i % E>; every connection heartbeats every --hb-s seconds,
 * spread evenly. Then, for --duration seconds, the first L connections
 * send LOCKs at --lock-rate per second in total (one outstanding per
 * connection, each on its own field), each answered LOCK_ACK followed at
 * once by an UNLOCK, and the LOCK -> LOCK_ACK times are reported as
 * percentiles. With --gw-pid, the gateway's VmRSS is read before the
 * connections open and once they are all subscribed and idle. Last, the
 * heartbeat throughput: every connection sends --hb-burst HBs at once and
 * a probe; HBs / time until the last probe's answer (hb_burst below).
 * Each --cpu NAME=PID (up to 8) has its CPU time (user + system, all
 * threads, from /proc/PID/stat) read before and after the LOCK phase:
 * the `cpu:` line gives each one's share of a core over the phase and its
 * microseconds per client message (LOCK or UNLOCK), a figure far steadier
 * from run to run than latency percentiles, for telling what a change
 * saves; `self` is this generator.
 *
 * --socketio runs the same scenarios against the Socket.IO baseline
 * (bench/baselines/socketio/server.js) over the same WebSocket code, in
 * engine.io v4 / socket.io v5 framing: GET <path>/?EIO=4&transport=websocket,
 * the server's open packet `0{...}`, our CONNECT `40{"token":"<jwt>"}`, its
 * `40{"sid":...}`, then events as `42["name",{...}]` text frames; the
 * server's engine.io ping `2` is answered `3`. The messages map one to one
 * (SUB -> sub, HB -> hb, LOCK -> lock, UNLOCK -> unlock; PRESENCE ->
 * presence, LOCK_ACK -> lock_ack, ERROR -> err); only the framing
 * (sio_* and px_* below) differs, the scheduling, epoll loop and
 * statistics are shared.
 *
 * Opening gives up after --open-s seconds (the connections opened by then
 * stay). --hold S holds the connections instead of the phases after the idle
 * measurement: it prints the `connections:` line and `idle: subscribed=N`
 * once every connection is subscribed and 5 s idle, then goes on
 * heartbeating and answering the server's pings for S seconds or until
 * SIGTERM/SIGINT, and prints `held:`. For more connections than one
 * process may open, run several side by side, each with its own --first
 * (user, tab and entity numbers start there; give --entities the whole
 * run's) and --source-base (its source addresses are 127.0.0.B ..
 * 127.0.0.B+K-1, so that no two processes draw on one address's ephemeral
 * ports): bench/run_idle.sh does.
 *
 * Limits: no TLS, no permessage-deflate, frames up to 64 KiB, one
 * process (so at most RLIMIT_NOFILE connections).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <jwt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING = 0, ST_HANDSHAKE, ST_OPEN, ST_DEAD };

typedef struct conn {
    int fd;
    int st;
    bool subscribed;
    bool sio_ready; /* socket.io: the namespace CONNECT was answered */
    bool lock_out; /* a LOCK awaits its ACK */
    bool echo_out; /* a baseline probe awaits its ERROR */
    bool burst_out; /* the heartbeat burst's closing probe awaits its ERROR */
    int64_t lock_sent_ns;
    uint32_t lock_seq;
    char *rbuf;
    size_t rlen, rcap;
} conn_t;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct {
    const char *host, *secret, *tenant;
    const char *path; /* socket.io: the server's path */
    int port, conns, sources, entities, lockers, gw_pid, hb_burst, first, source_base;
    bool sio;
    double lock_rate, duration, hb_s, hold_s, open_s;
} opt = {.host = "127.0.0.1", .tenant = "bench", .port = 8080, .conns = 1000, .sources = 1, .lockers = 100,
         .lock_rate = 1000, .duration = 10, .hb_s = 30, .path = "/socket.io",
         .hb_burst = 20, .source_base = 1, .open_s = 300};

static conn_t *cs;
static int ep;
typedef struct series {
    int64_t *v; /* ns */
    size_t n, cap;
} series_t;
static series_t lat, echo; /* LOCK -> LOCK_ACK; baseline probe -> ERROR */

static void series_add(series_t *s, int64_t d) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = d;
}
static uint64_t n_opened, n_subscribed, n_failed, n_acks, n_denied, n_errors, n_timeouts, n_locks_sent,
    n_hb_sent, n_unlocks, n_closed, n_pings, n_burst_done;
static int64_t burst_last_ns; /* when the last burst probe was answered */

static long rss_kb(int pid) {
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

/* utime + stime of a process, all its threads, in seconds; -1 if gone */
static double cpu_s(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* the machine's busy and total jiffies, all cores, from /proc/stat */
static void machine_jiffies(double *busy, double *total) {
    unsigned long long v[8] = {0};
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) == 8) {
        for (int i = 0; i < 8; i++) *total += (double)v[i];
        *busy = *total - (double)v[3] - (double)v[4]; /* less idle and iowait */
    }
    fclose(f);
}

/* Seconds the threads of a process spent runnable but waiting for a core
 * (the second field of /proc/PID/task/TID/schedstat), summed over the
 * threads alive now; -1 if the process is gone. */
static double runq_s(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    double sum = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char sp[96];
        unsigned long long run, wait;
        snprintf(sp, sizeof sp, "/proc/%d/task/%.16s/schedstat", pid, de->d_name);
        FILE *f = fopen(sp, "r");
        if (!f) continue; /* the thread ended meanwhile */
        if (fscanf(f, "%llu %llu", &run, &wait) == 2) sum += (double)wait / 1e9;
        fclose(f);
    }
    closedir(d);
    return sum;
}

#define MAX_CPU 8
static struct {
    const char *name;
    int pid;
    double t0, t1, w0, w1;
} cpus[MAX_CPU];
static int n_cpus;

/* The number of connection c: its user, tab and entity (--first on). */
static int conn_no(const conn_t *c) { return opt.first + (int)(c - cs); }

static char *mint(int i) {
    jwt_t *j = NULL;
    char sub[32];
    snprintf(sub, sizeof sub, "u%d", i);
    if (jwt_new(&j)) return NULL;
    jwt_add_grant(j, "sub", sub);
    jwt_add_grant(j, "tenant", opt.tenant);
    jwt_add_grant(j, "name", sub);
    jwt_add_grant_int(j, "exp", (long)time(NULL) + 24 * 3600);
    jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)opt.secret, (int)strlen(opt.secret));
    char *t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static void kill_conn(conn_t *c) {
    if (c->st == ST_DEAD) return;
    if (c->st == ST_OPEN) n_closed++;
    else n_failed++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->st = ST_DEAD;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
}

/* Write all of buf (small messages: a full socket buffer is a failure). */
static int send_all(conn_t *c, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            kill_conn(c);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_text(conn_t *c, const char *text) {
    unsigned char frame[16 + 1024];
    size_t n = strlen(text), h = 0;
    if (n > 1024) return -1;
    frame[h++] = 0x81;
    if (n < 126) frame[h++] = (unsigned char)(0x80 | n);
    else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(n >> 8);
        frame[h++] = (unsigned char)n;
    }
    static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(frame + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) frame[h + i] = (unsigned char)text[i] ^ mask[i & 3];
    return send_all(c, frame, h + n);
}

/* The messages the scenarios send and the answers they wait for; each
 * dialect (presence JSON, socket.io events) formats and classifies them. */
typedef enum { OUT_SUB, OUT_HB, OUT_PROBE, OUT_LOCK, OUT_UNLOCK } out_kind_t;
typedef enum { IN_OTHER, IN_PRESENCE, IN_LOCK_ACK, IN_BAD_FIELD, IN_ERROR, IN_CONTROL } in_kind_t;

/* Send message `k` of connection c in the dialect of the run. */
static int send_msg(conn_t *c, out_kind_t k) {
    int idx = conn_no(c);
    char m[256];
    /* socket.io: 42["event",{...}]; presence: {"type":"TYPE",...} */
    const char *pre = opt.sio ? "42[" : "", *post = opt.sio ? "}]" : "}";
    switch (k) {
    case OUT_SUB:
        snprintf(m, sizeof m, "%s%s\"entity\":\"order\",\"id\":\"e%d\",\"tab_id\":\"t%d\"%s", pre,
                 opt.sio ? "\"sub\",{" : "{\"type\":\"SUB\",", idx % opt.entities, idx, post);
        break;
    case OUT_HB: snprintf(m, sizeof m, "%s", opt.sio ? "42[\"hb\",{}]" : "{\"type\":\"HB\"}"); break;
    case OUT_PROBE:
        snprintf(m, sizeof m, "%s%s\"mode\":\"probe\"%s", pre, opt.sio ? "\"hb\",{" : "{\"type\":\"HB\",", post);
        break;
    case OUT_LOCK:
        snprintf(m, sizeof m, "%s%s\"field\":\"f%d\",\"request_id\":\"b%u\"%s", pre,
                 opt.sio ? "\"lock\",{" : "{\"type\":\"LOCK\",", idx, ++c->lock_seq, post);
        break;
    case OUT_UNLOCK:
        snprintf(m, sizeof m, "%s%s\"field\":\"f%d\"%s", pre, opt.sio ? "\"unlock\",{" : "{\"type\":\"UNLOCK\",",
                 idx, post);
        break;
    }
    return send_text(c, m);
}

static in_kind_t px_classify(const char *msg, size_t len) {
    if (len > 20 && memmem(msg, len, "\"type\":\"PRESENCE\"", 17)) return IN_PRESENCE;
    if (memmem(msg, len, "\"type\":\"LOCK_ACK\"", 17)) return IN_LOCK_ACK;
    if (memmem(msg, len, "\"code\":\"BAD_FIELD\"", 18)) return IN_BAD_FIELD;
    if (memmem(msg, len, "\"type\":\"ERROR\"", 14)) return IN_ERROR;
    return IN_OTHER;
}

static bool has_prefix(const char *msg, size_t len, const char *p) {
    size_t n = strlen(p);
    return len >= n && memcmp(msg, p, n) == 0;
}

/* engine.io / socket.io packets: answer the transport's own (open, ping,
 * namespace connect) here and classify the events. */
static in_kind_t sio_classify(conn_t *c, const char *msg, size_t len) {
    if (len == 0) return IN_OTHER;
    if (has_prefix(msg, len, "42[\"presence\"")) return IN_PRESENCE;
    if (has_prefix(msg, len, "42[\"lock_ack\"")) return IN_LOCK_ACK;
    if (has_prefix(msg, len, "42[\"err\"")) {
        return memmem(msg, len, "\"code\":\"BAD_FIELD\"", 18) ? IN_BAD_FIELD : IN_ERROR;
    }
    if (len == 1 && msg[0] == '2') { /* engine.io ping: pong or be dropped */
        n_pings++;
        send_text(c, "3");
        return IN_CONTROL;
    }
    if (msg[0] == '0') { /* engine.io open: connect the default namespace with our token */
        char *tok = mint(conn_no(c));
        char m[1024];
        if (!tok) {
            kill_conn(c);
            return IN_CONTROL;
        }
        snprintf(m, sizeof m, "40{\"token\":\"%s\"}", tok);
        free(tok);
        send_text(c, m);
        return IN_CONTROL;
    }
    if (has_prefix(msg, len, "40")) { /* namespace connected */
        if (!c->sio_ready) {
            c->sio_ready = true;
            send_msg(c, OUT_SUB);
        }
        return IN_CONTROL;
    }
    if (has_prefix(msg, len, "44") || has_prefix(msg, len, "41") || msg[0] == '1') {
        /* connect_error, namespace disconnect, engine.io close */
        n_errors++;
        if (n_errors <= 5) fprintf(stderr, "bench: socket.io server refused/closed: %.*s\n", (int)len, msg);
        kill_conn(c);
        return IN_CONTROL;
    }
    return IN_OTHER; /* e.g. "lock" broadcasts of the other tab's locks */
}

static void on_text(conn_t *c, const char *msg, size_t len) {
    switch (opt.sio ? sio_classify(c, msg, len) : px_classify(msg, len)) {
    case IN_PRESENCE:
        if (!c->subscribed) {
            c->subscribed = true;
            n_subscribed++;
        }
        break;
    case IN_LOCK_ACK:
        if (c->lock_out) {
            series_add(&lat, now_ns() - c->lock_sent_ns);
            c->lock_out = false;
        }
        n_acks++;
        if (memmem(msg, len, "\"success\":false", 15)) n_denied++;
        if (send_msg(c, OUT_UNLOCK) == 0) n_unlocks++;
        break;
    case IN_BAD_FIELD:
        if (c->burst_out) {
            c->burst_out = false;
            n_burst_done++;
            burst_last_ns = now_ns();
            break;
        }
        if (c->echo_out) {
            series_add(&echo, now_ns() - c->lock_sent_ns);
            c->echo_out = false;
            break;
        }
        /* fall through */
    case IN_ERROR:
        n_errors++;
        if (memmem(msg, len, "TIMEOUT", 7)) {
            n_timeouts++;
            c->lock_out = false;
        }
        if (n_errors <= 5) fprintf(stderr, "bench: ERROR from server: %.*s\n", (int)len, msg);
        break;
    case IN_OTHER:
    case IN_CONTROL: break;
    }
}

/* Parse complete frames in c->rbuf. */
static void on_frames(conn_t *c) {
    size_t i = 0;
    while (c->st == ST_OPEN && c->rlen - i >= 2) {
        const unsigned char *b = (const unsigned char *)c->rbuf + i;
        size_t n = b[1] & 0x7f, h = 2;
        if (n == 126) {
            if (c->rlen - i < 4) break;
            n = ((size_t)b[2] << 8) | b[3];
            h = 4;
        } else if (n == 127) {
            if (c->rlen - i < 10) break;
            n = 0;
            for (int k = 0; k < 8; k++) n = (n << 8) | b[2 + k];
            h = 10;
        }
        if (c->rlen - i < h + n) break;
        int op = b[0] & 0x0f;
        if (op == 1) on_text(c, (const char *)b + h, n);
        else if (op == 8) {
            kill_conn(c);
            return;
        } else if (op == 9) { /* ping -> pong */
            unsigned char pong[6] = {0x8a, 0x80, 0, 0, 0, 0};
            send_all(c, pong, sizeof pong);
        }
        i += h + n;
    }
    if (c->st != ST_OPEN) return;
    memmove(c->rbuf, c->rbuf + i, c->rlen - i);
    c->rlen -= i;
}

static void on_readable(conn_t *c) {
    for (;;) {
        if (c->rcap - c->rlen < 4096) {
            size_t nc = c->rcap ? c->rcap * 2 : 8192;
            if (nc > (1u << 20)) { /* a frame this large is not ours */
                kill_conn(c);
                return;
            }
            c->rbuf = realloc(c->rbuf, nc);
            c->rcap = nc;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            kill_conn(c);
            return;
        }
        c->rlen += (size_t)n;
    }
    if (c->st == ST_HANDSHAKE) {
        char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!end) return;
        if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0) {
            kill_conn(c);
            return;
        }
        size_t hl = (size_t)(end - c->rbuf) + 4;
        memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
        c->rlen -= hl;
        c->st = ST_OPEN;
        n_opened++;
        /* socket.io subscribes once its namespace is connected (sio_classify) */
        if (!opt.sio && send_msg(c, OUT_SUB)) return;
    }
    if (c->st == ST_OPEN) on_frames(c);
    /* keep idle connections cheap: drop an empty receive buffer */
    if (c->st == ST_OPEN && c->rlen == 0 && c->rbuf) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

static void on_connected(conn_t *c) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        if (n_failed < 5) fprintf(stderr, "bench: connect: %s\n", strerror(err));
        kill_conn(c);
        return;
    }
    /* presence: the token in the URL; socket.io: in the CONNECT packet */
    char *tok = opt.sio ? NULL : mint(conn_no(c));
    if (!opt.sio && !tok) {
        kill_conn(c);
        return;
    }
    char target[1200];
    if (opt.sio) snprintf(target, sizeof target, "%s/?EIO=4&transport=websocket", opt.path);
    else snprintf(target, sizeof target, "/ws/presence?access_token=%s", tok);
    free(tok);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     target, opt.host, opt.port);
    c->st = ST_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    send_all(c, req, (size_t)n);
}

static int open_conn(int idx) {
    conn_t *c = &cs[idx];
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        c->st = ST_DEAD;
        n_failed++;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000000u + (uint32_t)opt.source_base + (uint32_t)(idx % opt.sources));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src)) {
        close(c->fd);
        c->st = ST_DEAD;
        n_failed++;
        return -1;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &dst.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) && errno != EINPROGRESS) {
        close(c->fd);
        c->st = ST_DEAD;
        n_failed++;
        return -1;
    }
    c->st = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->st == ST_DEAD) continue;
        if (c->st == ST_CONNECTING) on_connected(c);
        else on_readable(c);
    }
}

/* Heartbeats: a cursor walks the connections so each gets one per hb_s. */
static double hb_cursor;
static void heartbeats(double dt_s) {
    hb_cursor += (double)opt.conns * dt_s / opt.hb_s;
    while (hb_cursor >= 1.0) {
        static int next;
        conn_t *c = &cs[next];
        next = (next + 1) % opt.conns;
        hb_cursor -= 1.0;
        if (c->st == ST_OPEN && c->subscribed && send_msg(c, OUT_HB) == 0) n_hb_sent++;
    }
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const series_t *s, double p) {
    if (!s->n) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    return (double)s->v[i] / 1e6;
}

/* Send `rate` probes per second for `secs` over the first L connections,
 * one outstanding per connection: LOCKs (lock) or, as the baseline, a
 * message the gateway refuses at once (BAD_FIELD), which measures the
 * WebSocket round trip through the gateway without Kafka and processor. */
static int64_t last;
static double run_phase(bool lock, double rate, double secs) {
    int64_t ls = now_ns(), lend = ls + (int64_t)(secs * 1e9);
    double due = 0;
    int lk = 0;
    uint64_t sent = 0;
    last = ls;
    while (opt.lockers > 0 && rate > 0 && now_ns() < lend) {
        poll_once(1);
        int64_t t = now_ns();
        heartbeats((double)(t - last) / 1e9);
        due += rate * (double)(t - last) / 1e9;
        last = t;
        for (int tries = 0; due >= 1.0 && tries < opt.lockers; tries++) {
            conn_t *c = &cs[lk];
            lk = (lk + 1) % opt.lockers;
            if (c->st != ST_OPEN || !c->subscribed || c->lock_out || c->echo_out) continue;
            c->lock_sent_ns = now_ns();
            if (send_msg(c, lock ? OUT_LOCK : OUT_PROBE)) continue;
            if (lock) {
                c->lock_out = true;
                n_locks_sent++;
            } else {
                c->echo_out = true;
            }
            sent++;
            due -= 1.0;
        }
        if (due > rate) due = rate; /* do not build an unbounded backlog */
    }
    /* the last answers: until none is outstanding, 3 s at most */
    int64_t drain_end = now_ns() + 3000000000LL;
    for (bool waiting = true; waiting && now_ns() < drain_end;) {
        poll_once(5);
        waiting = false;
        for (int i = 0; i < opt.lockers && !waiting; i++)
            waiting = cs[i].st == ST_OPEN && (cs[i].lock_out || cs[i].echo_out);
    }
    return (double)sent / secs;
}

/* Heartbeat throughput: every subscribed connection sends n HBs at once,
 * then a probe the server refuses at once. A server handles a
 * connection's messages in order, so the probe's answer means its HBs were
 * taken in (parsed and handed on: to the Kafka producer's queue, or to
 * ioredis's queue; not necessarily written yet). Returns the HBs sent and
 * sets *secs to the time until the last probe's answer (30 s at most). n
 * stays under the gateway's per-connection burst (limits.messages_burst,
 * 40), so no HB is rate limited. */
static uint64_t hb_burst(int n, double *secs) {
    uint64_t sent = 0, probes = 0;
    n_burst_done = 0;
    int64_t t0 = now_ns();
    burst_last_ns = t0;
    for (int i = 0; i < opt.conns; i++) {
        conn_t *c = &cs[i];
        if (c->st != ST_OPEN || !c->subscribed) continue;
        int k = 0;
        while (k < n && send_msg(c, OUT_HB) == 0) k++;
        sent += (uint64_t)k;
        if (k == n && send_msg(c, OUT_PROBE) == 0) {
            c->burst_out = true;
            probes++;
        }
        if ((i & 255) == 255) poll_once(0); /* take answers as they come */
    }
    int64_t end = t0 + 30000000000LL;
    while (n_burst_done < probes && now_ns() < end) poll_once(5);
    *secs = (double)(burst_last_ns - t0) / 1e9;
    if (n_burst_done < probes)
        fprintf(stderr, "bench: heartbeat burst: %llu of %llu probes unanswered after 30 s\n",
                (unsigned long long)(probes - n_burst_done), (unsigned long long)probes);
    return sent;
}

static volatile sig_atomic_t stop_hold;
static void on_stop_signal(int sig) {
    (void)sig;
    stop_hold = 1;
}

/* --hold: keep every connection open and heartbeating for hold_s seconds
 * or until SIGTERM/SIGINT; the caller has printed the idle figures. */
static void hold_idle(void) {
    signal(SIGTERM, on_stop_signal);
    signal(SIGINT, on_stop_signal);
    printf("idle: subscribed=%llu\n", (unsigned long long)n_subscribed);
    fflush(stdout);
    int64_t end = now_ns() + (int64_t)(opt.hold_s * 1e9);
    while (!stop_hold && now_ns() < end) {
        poll_once(100);
        int64_t t = now_ns();
        heartbeats((double)(t - last) / 1e9);
        last = t;
    }
    printf("held: subscribed=%llu closed_by_server=%llu heartbeats=%llu server_pings_answered=%llu\n",
           (unsigned long long)n_subscribed, (unsigned long long)n_closed, (unsigned long long)n_hb_sent,
           (unsigned long long)n_pings);
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},    {"port", 1, 0, 'p'},     {"secret", 1, 0, 's'},   {"conns", 1, 0, 'n'},
        {"sources", 1, 0, 'k'}, {"entities", 1, 0, 'e'}, {"lockers", 1, 0, 'l'},  {"lock-rate", 1, 0, 'r'},
        {"duration", 1, 0, 'd'}, {"hb-s", 1, 0, 'b'},    {"gw-pid", 1, 0, 'g'},   {"tenant", 1, 0, 't'},
        {"socketio", 0, 0, 'S'}, {"path", 1, 0, 'P'},    {"hb-burst", 1, 0, 'B'},   {"cpu", 1, 0, 'C'},
        {"first", 1, 0, 'F'},   {"source-base", 1, 0, 'K'}, {"hold", 1, 0, 'H'},  {"open-s", 1, 0, 'O'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 's': opt.secret = optarg; break;
        case 'n': opt.conns = atoi(optarg); break;
        case 'k': opt.sources = atoi(optarg); break;
        case 'e': opt.entities = atoi(optarg); break;
        case 'l': opt.lockers = atoi(optarg); break;
        case 'r': opt.lock_rate = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'b': opt.hb_s = atof(optarg); break;
        case 'g': opt.gw_pid = atoi(optarg); break;
        case 't': opt.tenant = optarg; break;
        case 'S': opt.sio = true; break;
        case 'P': opt.path = optarg; break;
        case 'B': opt.hb_burst = atoi(optarg); break;
        case 'F': opt.first = atoi(optarg); break;
        case 'K': opt.source_base = atoi(optarg); break;
        case 'H': opt.hold_s = atof(optarg); break;
        case 'O': opt.open_s = atof(optarg); break;
        case 'C': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || n_cpus == MAX_CPU || atoi(eq + 1) <= 0) {
                fprintf(stderr, "px_bench_gw: --cpu NAME=PID (a positive pid, at most %d)\n", MAX_CPU);
                return 2;
            }
            *eq = 0;
            cpus[n_cpus].name = optarg;
            cpus[n_cpus++].pid = atoi(eq + 1);
            break;
        }
        default: fprintf(stderr, "usage: see the header of bench/px_bench_gw.c\n"); return 2;
        }
    }
    if (!opt.secret || opt.conns < 1 || opt.sources < 1 || opt.hb_s <= 0 || opt.first < 0 || opt.source_base < 1 ||
        opt.source_base + opt.sources > 255) {
        fprintf(stderr, "px_bench_gw: --secret is required; --conns, --sources, --hb-s must be positive; "
                        "--first >= 0; 127.0.0.B .. 127.0.0.B+K-1 within 127.0.0.1-254\n");
        return 2;
    }
    if (!opt.entities) opt.entities = opt.conns > 1 ? opt.conns / 2 : 1;
    if (opt.lockers > opt.conns) opt.lockers = opt.conns;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)opt.conns + 16 > rl.rlim_cur) {
        fprintf(stderr, "px_bench_gw: %d connections need more than RLIMIT_NOFILE=%llu\n", opt.conns,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }
    cs = calloc((size_t)opt.conns, sizeof *cs);
    ep = epoll_create1(0);
    long rss0 = opt.gw_pid ? rss_kb(opt.gw_pid) : -1;

    /* 1. open, at most 500 handshakes in flight */
    int64_t t0 = now_ns();
    last = t0;
    int next = 0;
    while ((n_subscribed + n_failed + n_closed) < (uint64_t)opt.conns) {
        int inflight = next - (int)(n_subscribed + n_failed + n_closed);
        while (next < opt.conns && inflight < 500) {
            open_conn(next++);
            inflight++;
        }
        poll_once(5);
        int64_t t = now_ns();
        heartbeats((double)(t - last) / 1e9);
        last = t;
        if (t - t0 > (int64_t)(opt.open_s * 1e9)) {
            fprintf(stderr, "px_bench_gw: gave up opening after %.0f s\n", opt.open_s);
            break;
        }
    }
    double open_s = (double)(now_ns() - t0) / 1e9;
    /* idle for 5 s (heartbeats only), then measure the gateway */
    int64_t idle_end = now_ns() + 5000000000LL;
    while (now_ns() < idle_end) {
        poll_once(5);
        int64_t t = now_ns();
        heartbeats((double)(t - last) / 1e9);
        last = t;
    }
    long rss1 = opt.gw_pid ? rss_kb(opt.gw_pid) : -1;
    if (opt.hold_s > 0) {
        printf("connections: asked=%d opened=%llu subscribed=%llu failed=%llu closed_by_server=%llu open_s=%.1f\n",
               opt.conns, (unsigned long long)n_opened, (unsigned long long)n_subscribed,
               (unsigned long long)n_failed, (unsigned long long)n_closed, open_s);
        if (opt.gw_pid) printf("gateway_rss_kb: before=%ld after_idle=%ld\n", rss0, rss1);
        hold_idle();
        for (int i = 0; i < opt.conns; i++) kill_conn(&cs[i]);
        free(cs);
        close(ep);
        return 0;
    }

    /* 2. baseline: the gateway's own round trip at the same rate; 3. LOCKs */
    uint64_t acks0 = n_acks;
    double echo_rate = run_phase(false, opt.lock_rate, opt.duration < 5 ? opt.duration : 5);
    acks0 = n_acks;
    uint64_t msgs0 = n_locks_sent + n_unlocks;
    for (int i = 0; i < n_cpus; i++) {
        cpus[i].t0 = cpu_s(cpus[i].pid);
        cpus[i].w0 = runq_s(cpus[i].pid);
    }
    double selfw0 = runq_s(getpid()), self0 = cpu_s(getpid()), mb0, mt0, mb1, mt1;
    machine_jiffies(&mb0, &mt0);
    int64_t cpu_ns0 = now_ns();
    double lock_rate = run_phase(true, opt.lock_rate, opt.duration);
    double lock_s = opt.duration;
    double cpu_wall = (double)(now_ns() - cpu_ns0) / 1e9, self1 = cpu_s(getpid()), selfw1 = runq_s(getpid());
    for (int i = 0; i < n_cpus; i++) {
        cpus[i].t1 = cpu_s(cpus[i].pid);
        cpus[i].w1 = runq_s(cpus[i].pid);
    }
    machine_jiffies(&mb1, &mt1);
    uint64_t phase_msgs = n_locks_sent + n_unlocks - msgs0;
    /* 4. heartbeat throughput */
    double burst_s = 0;
    uint64_t burst_n = opt.hb_burst > 0 ? hb_burst(opt.hb_burst, &burst_s) : 0;
    if (lat.n) qsort(lat.v, lat.n, sizeof *lat.v, cmp64);
    if (echo.n) qsort(echo.v, echo.n, sizeof *echo.v, cmp64);
    printf("server: %s\n", opt.sio ? "socket.io (engine.io v4 framing)" : "presence-gateway");
    printf("connections: asked=%d opened=%llu subscribed=%llu failed=%llu closed_by_server=%llu open_s=%.1f\n",
           opt.conns, (unsigned long long)n_opened, (unsigned long long)n_subscribed, (unsigned long long)n_failed,
           (unsigned long long)n_closed, open_s);
    if (opt.gw_pid)
        printf("gateway_rss_kb: before=%ld after_idle=%ld per_connection_bytes=%.0f\n", rss0, rss1,
               n_subscribed ? (double)(rss1 - rss0) * 1024.0 / (double)n_subscribed : 0.0);
    printf("locks: sent=%llu acks=%llu denied=%llu timeouts=%llu errors=%llu unlocks=%llu rate_asked=%.0f/s "
           "lock_rate=%.0f/s client_msgs=%.0f/s heartbeats=%llu\n",
           (unsigned long long)n_locks_sent, (unsigned long long)(n_acks - acks0), (unsigned long long)n_denied,
           (unsigned long long)n_timeouts, (unsigned long long)n_errors, (unsigned long long)n_unlocks,
           opt.lock_rate, lock_rate, (double)(n_locks_sent + n_unlocks) / lock_s, (unsigned long long)n_hb_sent);
    double run_s = (double)(now_ns() - t0) / 1e9;
    printf("heartbeats: sent=%llu over %.1f s = %.0f/s (every %.0f s per connection) server_pings_answered=%llu\n",
           (unsigned long long)n_hb_sent, run_s, (double)n_hb_sent / run_s, opt.hb_s, (unsigned long long)n_pings);
    printf("hb_burst: hbs=%llu (%d per connection at once) probes_answered=%llu in %.2f s = %.0f/s taken in\n",
           (unsigned long long)burst_n, opt.hb_burst, (unsigned long long)n_burst_done, burst_s,
           burst_s > 0 ? (double)burst_n / burst_s : 0.0);
    printf("lock_ack_ms: n=%zu p50=%.2f p90=%.2f p99=%.2f p999=%.2f max=%.2f\n", lat.n, pct(&lat, 50),
           pct(&lat, 90), pct(&lat, 99), pct(&lat, 99.9), lat.n ? (double)lat.v[lat.n - 1] / 1e6 : 0.0);
    printf("baseline_gateway_roundtrip_ms: rate=%.0f/s n=%zu p50=%.2f p90=%.2f p99=%.2f p999=%.2f max=%.2f\n",
           echo_rate, echo.n, pct(&echo, 50), pct(&echo, 90), pct(&echo, 99), pct(&echo, 99.9),
           echo.n ? (double)echo.v[echo.n - 1] / 1e6 : 0.0);
    /* CPU over the LOCK phase: share of one core, and us per client message;
     * then the time its threads waited for a core, as a share of the phase
     * (threads that ended during the phase are left out) */
    printf("cpu: phase_s=%.1f client_msgs=%llu machine_busy=%.0f%%", cpu_wall, (unsigned long long)phase_msgs,
           mt1 > mt0 ? 100.0 * (mb1 - mb0) / (mt1 - mt0) : 0.0);
    for (int i = 0; i <= n_cpus; i++) {
        const char *name = i < n_cpus ? cpus[i].name : "self";
        double a = i < n_cpus ? cpus[i].t0 : self0, b = i < n_cpus ? cpus[i].t1 : self1;
        if (a < 0 || b < 0) {
            printf(" %s=gone", name);
            continue;
        }
        printf(" %s=%.0f%%/%.0fus", name, 100.0 * (b - a) / cpu_wall,
               phase_msgs ? (b - a) * 1e6 / (double)phase_msgs : 0.0);
    }
    printf("\nrunq_wait:");
    for (int i = 0; i <= n_cpus; i++) {
        const char *name = i < n_cpus ? cpus[i].name : "self";
        double a = i < n_cpus ? cpus[i].w0 : selfw0, b = i < n_cpus ? cpus[i].w1 : selfw1;
        if (a < 0 || b < 0) printf(" %s=gone", name);
        else printf(" %s=%.0f%%", name, 100.0 * (b - a) / cpu_wall);
    }
    printf("\n");
    for (int i = 0; i < opt.conns; i++) kill_conn(&cs[i]);
    free(cs);
    free(lat.v);
    free(echo.v);
    close(ep);
    return 0;
}
