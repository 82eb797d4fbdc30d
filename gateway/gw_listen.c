/*
 * gw_listen.c - the gateway's own listening socket, for http.reuse_port.
 *
 * libwebsockets 4.1 sets SO_REUSEPORT on its listener only when it runs
 * several service threads, so with http.reuse_port the gateway makes the
 * socket itself (SO_REUSEADDR and SO_REUSEPORT, bound before listen),
 * watches it on the loop and hands each accepted connection to the vhost
 * with lws_adopt_socket_vhost, which then serves it exactly as one its own
 * listener accepted (HTTP, then the WebSocket upgrade). Every process on
 * the host that listens on the same address and port with SO_REUSEPORT,
 * under the same user, gets its share of new connections from the kernel;
 * a socket bound without it (another program) still makes the bind fail.
 *
 * Limits: IPv4 only, as the lws listener is configured. When the process
 * is out of descriptors (EMFILE, ENFILE) the pending connection cannot be
 * taken off the queue, so the socket is not watched for GW_LISTEN_PAUSE_MS
 * instead of spinning; the connection waits in the backlog meanwhile.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw.h"
#include "px_log.h"
#include "px_time.h"

#define GW_LISTEN_PAUSE_MS 100
#define GW_LISTEN_BATCH 64 /* connections accepted per readable event */

struct gw_listen {
    uv_poll_t poll;
    uv_timer_t pause;
    int fd;
    int open_handles; /* freed when both handles are closed */
    int64_t warned_ms; /* the last refusal logged: at most one line a second */
    uint64_t refused;  /* refusals since then */
    gw_ctx_t *gw;
    struct lws_vhost *vh;
};

static void on_readable(uv_poll_t *p, int status, int events);

static void on_resume(uv_timer_t *t) {
    gw_listen_t *l = t->data;
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

/* Count a connection not taken, and log it at most once a second (with
 * how many since the last line): under fd exhaustion this happens for
 * every connection that arrives. */
static void refused(gw_listen_t *l, const char *msg, const char *why) {
    gw_count_error(l->gw, "ACCEPT");
    l->refused++;
    int64_t now = px_mono_ms();
    if (now - l->warned_ms < 1000) return;
    PX_WARN(GW_COMP, msg, "err=\"%s\" count=%llu", why, (unsigned long long)l->refused);
    l->warned_ms = now;
    l->refused = 0;
}

/* Take one connection off the queue. 1: adopted or dropped, go on; 0: the
 * queue is empty or the listener paused. */
static int accept_one(gw_listen_t *l) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) return 1;
        refused(l, "cannot accept connections; the listener pauses 100 ms each time", strerror(errno));
        uv_poll_stop(&l->poll);
        uv_timer_start(&l->pause, on_resume, GW_LISTEN_PAUSE_MS, 0);
        return 0;
    }
    int one = 1; /* as the lws listener sets it: replies are small, send them now */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!lws_adopt_socket_vhost(l->vh, fd)) /* lws closed fd */
        refused(l, "libwebsockets refused accepted connections", "no room for another connection");
    return 1;
}

static void on_readable(uv_poll_t *p, int status, int events) {
    gw_listen_t *l = p->data;
    (void)events;
    if (status < 0) {
        gw_count_error(l->gw, "ACCEPT");
        PX_WARN(GW_COMP, "listening socket error", "err=\"%s\"", uv_strerror(status));
        return;
    }
    for (int i = 0; i < GW_LISTEN_BATCH && !l->gw->stopping; i++)
        if (!accept_one(l)) break;
}

int gw_listen_start(gw_ctx_t *gw, struct lws_vhost *vh, char *errstr, size_t errstr_size) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)gw->cfg.http_port)};
    const char *host = gw->cfg.http_host;
    if (host[0] && inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "cannot listen on %s:%lld: not an IPv4 address (http.host)",
                       host, (long long)gw->cfg.http_port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, SOMAXCONN) != 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        return px_errf(PX_EIO, errstr, errstr_size,
                       "cannot listen on %s:%lld with SO_REUSEPORT: %s (http.port, http.host, http.reuse_port; "
                       "the port is shared only with sockets that set it too, under the same user)",
                       host, (long long)gw->cfg.http_port, strerror(err));
    }
    gw_listen_t *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory (listener)");
    }
    l->fd = fd;
    l->gw = gw;
    l->vh = vh;
    int rc = uv_poll_init_socket(gw->loop, &l->poll, fd);
    if (rc) {
        close(fd);
        free(l);
        return px_errf(PX_EIO, errstr, errstr_size, "cannot watch the listening socket: %s", uv_strerror(rc));
    }
    uv_timer_init(gw->loop, &l->pause);
    l->poll.data = l->pause.data = l;
    l->open_handles = 2;
    gw->listener = l; /* from here gw_listen_stop closes it */
    rc = uv_poll_start(&l->poll, UV_READABLE, on_readable);
    if (rc) return px_errf(PX_EIO, errstr, errstr_size, "cannot watch the listening socket: %s", uv_strerror(rc));
    return 0;
}

static void on_closed(uv_handle_t *h) {
    gw_listen_t *l = h->data;
    if (--l->open_handles == 0) {
        close(l->fd);
        free(l);
    }
}

void gw_listen_stop(gw_ctx_t *gw) {
    gw_listen_t *l = gw->listener;
    if (!l) return;
    gw->listener = NULL;
    uv_close((uv_handle_t *)&l->poll, on_closed);
    uv_close((uv_handle_t *)&l->pause, on_closed);
}
