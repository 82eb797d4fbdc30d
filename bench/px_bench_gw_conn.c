/*
 * px_bench_gw_conn.c - px_bench_gw's connections: opening them from the
 * loopback source addresses, the WebSocket handshake and frames, the two
 * dialects (presence JSON, socket.io events) and the heartbeat cursor.
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

#include "px_bench_gw.h"

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

void kill_conn(conn_t *c) {
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

/* Send message `k` of connection c in the dialect of the run. */
int send_msg(conn_t *c, out_kind_t k) {
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

int open_conn(int idx) {
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

void poll_once(int timeout_ms) {
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
void heartbeat_tick(double dt_s) {
    hb_cursor += (double)opt.conns * dt_s / opt.hb_s;
    while (hb_cursor >= 1.0) {
        static int next;
        conn_t *c = &cs[next];
        next = (next + 1) % opt.conns;
        hb_cursor -= 1.0;
        if (c->st == ST_OPEN && c->subscribed && send_msg(c, OUT_HB) == 0) n_hb_sent++;
    }
}
