/*
 * gw_redis_uv.c - hiredis's async API on the gateway's libuv loop, in place
 * of hiredis 0.14's libuv adapter, which cost the gateway twice under load
 * (docs/benchmarks-history.md):
 *
 *  - every command queued called uv_poll_start, and so did its completed
 *    write; libuv 1.44 turns each call into three epoll_ctl calls (the fd
 *    deleted, a modify that fails, an add). Here the commands queued during
 *    a loop iteration are written together from an idle handle at the next
 *    one (which runs before the loop polls, so nothing waits), and the poll
 *    set changes only when its mask does: a write the socket did not take
 *    whole, and the connect, wait for POLLOUT as before;
 *  - one read() of 16 KiB per readable event: at 10k client messages/s the
 *    pub/sub connection kept 100-220 KB unread. Here a readable event reads
 *    until the socket is empty, at most GW_REDIS_READS times.
 */
#include <stdlib.h>
#include <sys/ioctl.h>

#include "gw_redis.h"

#define GW_REDIS_READS 16

typedef struct gw_ruv {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    uv_poll_t poll;
    uv_idle_t flush;
    int events;   /* what poll watches */
    bool writing; /* inside on_flush: an addWrite now means the socket is full */
    int open;     /* handles not yet closed; freed at 0 */
} gw_ruv_t;

static void on_poll(uv_poll_t *h, int status, int events);

static void set_events(gw_ruv_t *p, int events) {
    if (events == p->events) return;
    p->events = events;
    if (events) uv_poll_start(&p->poll, events, on_poll);
    else uv_poll_stop(&p->poll);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    gw_ruv_t *p = h->data;
    if (status < 0) return; /* as hiredis's adapter: the next read or write sees the error */
    if (p->ac && (events & UV_READABLE)) {
        for (int i = 0; i < GW_REDIS_READS; i++) {
            int fd = p->ac->c.fd, avail = 0;
            redisAsyncHandleRead(p->ac);
            if (!p->ac || ioctl(fd, FIONREAD, &avail) != 0 || avail <= 0) break;
        }
    }
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void on_flush(uv_idle_t *h) {
    gw_ruv_t *p = h->data;
    uv_idle_stop(&p->flush);
    if (!p->ac) return;
    p->writing = true;
    redisAsyncHandleWrite(p->ac); /* may clean up: p lives until its handles close */
    p->writing = false;
}

static void add_read(void *arg) {
    gw_ruv_t *p = arg;
    set_events(p, p->events | UV_READABLE);
}

static void del_read(void *arg) {
    gw_ruv_t *p = arg;
    set_events(p, p->events & ~UV_READABLE);
}

static void add_write(void *arg) {
    gw_ruv_t *p = arg;
    /* before the connect completes hiredis learns of it from POLLOUT, and a
     * write cut short waits for the socket */
    if (!(p->ac->c.flags & REDIS_CONNECTED) || p->writing) set_events(p, p->events | UV_WRITABLE);
    else uv_idle_start(&p->flush, on_flush);
}

static void del_write(void *arg) {
    gw_ruv_t *p = arg;
    uv_idle_stop(&p->flush);
    set_events(p, p->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h) {
    gw_ruv_t *p = h->data;
    if (--p->open == 0) free(p);
}

static void cleanup(void *arg) {
    gw_ruv_t *p = arg;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_closed);
    uv_close((uv_handle_t *)&p->flush, on_closed);
}

int gw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    if (ac->ev.data) return REDIS_ERR;
    gw_ruv_t *p = calloc(1, sizeof *p);
    if (!p) return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    uv_idle_init(loop, &p->flush);
    p->poll.data = p->flush.data = p;
    p->open = 2;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}
