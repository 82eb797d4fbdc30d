/*
 * rsub_probe.c - drives core/px_rsub.c against a real Redis (Cluster) for
 * tests/cluster/test_redis_rsub.py, which forces the faults (pxcluster.py).
 *
 *   rsub_probe cluster SEEDS NPER MAX_SECONDS [EXTRA [WBUF]]
 *                                        NPER channels on each master
 *   rsub_probe single ADDR N MAX_SECONDS [EXTRA [WBUF]]
 *                                        ADDR host:port or a socket path
 *
 * Channels are `presence:updates:{t:e:<i>}`, each in its own slot. The
 * subscriber runs on a libuv loop; publisher threads (one per master that
 * owned channels at the start, each with its own blocking px_rcl client)
 * SPUBLISH (cluster) or PUBLISH (single) "<seq> <monotonic ms>" on every
 * channel every 20 ms. EXTRA more channels `presence:updates:{x:e:<i>}`
 * are subscribed and never published on (WBUF: the subscriber's max_wbuf,
 * small to make subscribes wait for room). Lines on stdout, each with
 * t=<CLOCK_MONOTONIC ms> (the clock of Python's time.monotonic()):
 *
 *   channel ch=C slot=S node=H:P        at the start, one per channel
 *   ready t=                            every channel confirmed, first time
 *   sub ch=C again=0|1 t=               on_subscribed
 *   state up|down t=                    on_state
 *   gap ch=C ms=G lost=L t=             two messages of C more than 60 ms apart
 *                                       (L sequence numbers never came)
 *   msg ch=C seq=Q pub=P gap=G lost=L t=  the first message of C after each `sub`
 *                                       (G ms after the one before it)
 *   final key=value...                  at the end: px_rsub_stats and the
 *                                       publishers' figures
 *
 * Commands on stdin, one a line: `del A B` / `add A B` (the extra
 * channels A..B-1; answered `done del|add`), `stats` (answered `stats
 * channels= live= up=`), `quit` (or EOF). Stops after MAX_SECONDS too.
 * Exits 0 when every channel wanted is confirmed at the end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "px_redis_cluster.h"
#include "px_rsub.h"

#define MAXCH 64      /* published */
#define MAXEXTRA 8192 /* not published */
#define PERIOD_MS 20
#define GAP_MS 60

static long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

typedef struct {
    char name[96];
    size_t len;
    int slot, group;
    long last_recv, last_seq, recv, lost, max_gap;
    bool want_first; /* print the next message (after a `sub`) */
} chan_t;

static chan_t ch[MAXCH];
static int nch, nextra;
static char (*extra)[48];
static bool cluster;
static const char *addr;
static atomic_bool stop_pub;
static atomic_long published, pub_failed, receivers;

typedef struct {
    pthread_t t;
    int group;
} pub_t;

static px_rcl_t *client(char *err, size_t n) {
    px_rcl_conf_t conf = {.cluster = cluster, .timeout_ms = 1000, .retry_ms = 3000};
    char host[256] = "";
    if (cluster) {
        conf.seeds = addr;
    } else if (addr[0] == '/') {
        conf.host = addr;
    } else {
        const char *colon = strrchr(addr, ':');
        snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - addr) : 0, addr);
        conf.host = host;
        conf.port = colon ? atoi(colon + 1) : 6379;
    }
    px_rcl_t *c = px_rcl_new(&conf, err, n);
    if (c && px_rcl_connect(c, err, n) != 0) {
        px_rcl_free(c);
        c = NULL;
    }
    return c;
}

static void *publisher(void *arg) {
    pub_t *p = arg;
    char err[512];
    px_rcl_t *c = client(err, sizeof err);
    if (!c) {
        fprintf(stderr, "publisher: %s\n", err);
        return NULL;
    }
    px_rcl_batch_t b;
    px_rcl_batch_init(&b, 1 << 20);
    long seq = 0;
    while (!atomic_load(&stop_pub)) {
        long t0 = mono_ms();
        seq++;
        int n = 0;
        for (int i = 0; i < nch; i++) {
            if (ch[i].group != p->group) continue;
            char msg[64];
            int ml = snprintf(msg, sizeof msg, "%ld %ld", seq, mono_ms());
            const char *argv[3] = {cluster ? "SPUBLISH" : "PUBLISH", ch[i].name, msg};
            size_t argvlen[3] = {strlen(argv[0]), ch[i].len, (size_t)ml};
            px_rcl_add(&b, ch[i].name, ch[i].len, 3, argv, argvlen);
            n++;
        }
        if (px_rcl_exec(c, &b, err, sizeof err) == 0) {
            for (size_t k = 0; k < b.n; k++)
                if (b.cmd[k].reply->type == REDIS_REPLY_INTEGER) {
                    atomic_fetch_add(&published, 1);
                    atomic_fetch_add(&receivers, (long)b.cmd[k].reply->integer);
                } else {
                    atomic_fetch_add(&pub_failed, 1);
                }
        } else {
            atomic_fetch_add(&pub_failed, n);
        }
        px_rcl_batch_reset(&b);
        long left = PERIOD_MS - (mono_ms() - t0);
        if (left > 0) {
            struct timespec ts = {0, left * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    px_rcl_batch_term(&b);
    px_rcl_free(c);
    return NULL;
}

/* ---- the subscriber ---- */

static px_rsub_t *sub;
static uv_loop_t *loop;
static uv_pipe_t in;
static uv_timer_t deadline;
static bool ready_said, stopping;
static char inbuf[256], line[256];
static size_t linelen;

static chan_t *find(const char *c, size_t len) {
    for (int i = 0; i < nch; i++)
        if (ch[i].len == len && memcmp(ch[i].name, c, len) == 0) return &ch[i];
    return NULL;
}

static void on_message(void *ud, const char *c, size_t clen, const char *p, size_t plen) {
    (void)ud;
    chan_t *x = find(c, clen);
    if (!x) {
        printf("unknown ch=%.*s\n", (int)clen, c);
        return;
    }
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.*s", (int)(plen < 63 ? plen : 63), p);
    long seq = 0, pub = 0;
    sscanf(tmp, "%ld %ld", &seq, &pub);
    long now = mono_ms();
    if (x->last_recv && now - x->last_recv > GAP_MS) {
        long lost = seq - x->last_seq - 1;
        printf("gap ch=%s ms=%ld lost=%ld t=%ld\n", x->name, now - x->last_recv, lost > 0 ? lost : 0, now);
    }
    if (x->last_recv && now - x->last_recv > x->max_gap) x->max_gap = now - x->last_recv;
    if (x->last_seq && seq > x->last_seq + 1) x->lost += seq - x->last_seq - 1;
    if (x->want_first) {
        long lost = x->last_seq ? seq - x->last_seq - 1 : 0;
        printf("msg ch=%s seq=%ld pub=%ld gap=%ld lost=%ld t=%ld\n", x->name, seq, pub,
               x->last_recv ? now - x->last_recv : 0, lost > 0 ? lost : 0, now);
        x->want_first = false;
    }
    x->last_recv = now;
    x->last_seq = seq;
    x->recv++;
    fflush(stdout);
}

static void on_subscribed(void *ud, const char *c, size_t clen, bool again) {
    (void)ud;
    chan_t *x = find(c, clen);
    printf("sub ch=%.*s again=%d t=%ld\n", (int)clen, c, again, mono_ms());
    if (x) x->want_first = true;
    if (!ready_said && px_rsub_stats(sub).live == (size_t)(nch + nextra)) {
        ready_said = true;
        printf("ready t=%ld\n", mono_ms());
    }
    fflush(stdout);
}

static void on_state(void *ud, bool up) {
    (void)ud;
    printf("state %s t=%ld\n", up ? "up" : "down", mono_ms());
    fflush(stdout);
}

static void stop(void) {
    if (stopping) return;
    stopping = true;
    uv_timer_stop(&deadline);
    uv_read_stop((uv_stream_t *)&in);
    uv_stop(loop);
}

static void on_deadline(uv_timer_t *t) {
    (void)t;
    printf("deadline t=%ld\n", mono_ms());
    stop();
}

static void on_in_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
    (void)h;
    (void)s;
    *b = uv_buf_init(inbuf, sizeof inbuf);
}

static void command(const char *cmd) {
    int a = 0, z = 0;
    if (strcmp(cmd, "quit") == 0) {
        stop();
    } else if (strcmp(cmd, "stats") == 0) {
        px_rsub_stats_t st = px_rsub_stats(sub);
        printf("stats channels=%zu live=%zu up=%d t=%ld\n", st.channels, st.live, px_rsub_up(sub), mono_ms());
    } else if ((sscanf(cmd, "del %d %d", &a, &z) == 2 || sscanf(cmd, "add %d %d", &a, &z) == 2) && a >= 0 &&
               z <= nextra) {
        bool add = cmd[0] == 'a';
        for (int i = a; i < z; i++) {
            int rc = add ? px_rsub_add(sub, extra[i], strlen(extra[i])) : px_rsub_del(sub, extra[i], strlen(extra[i]));
            if (rc) printf("refused %s rc=%d\n", extra[i], rc);
        }
        printf("done %s t=%ld\n", add ? "add" : "del", mono_ms());
    } else {
        printf("unknown command %s\n", cmd);
    }
    fflush(stdout);
}

static void on_in(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    (void)st;
    if (n < 0) {
        stop();
        return;
    }
    for (ssize_t i = 0; i < n && !stopping; i++) {
        if (b->base[i] == '\n') {
            line[linelen] = '\0';
            command(line);
            linelen = 0;
        } else if (linelen < sizeof line - 1) {
            line[linelen++] = b->base[i];
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 7 || (strcmp(argv[1], "cluster") && strcmp(argv[1], "single"))) {
        fprintf(stderr, "usage: rsub_probe cluster SEEDS NPER MAX_SECONDS [EXTRA [WBUF]] | "
                        "single ADDR N MAX_SECONDS [EXTRA [WBUF]]\n");
        return 2;
    }
    nextra = argc > 5 ? atoi(argv[5]) : 0;
    if (nextra < 0 || nextra > MAXEXTRA) nextra = MAXEXTRA;
    extra = calloc((size_t)nextra + 1, sizeof *extra);
    for (int i = 0; i < nextra; i++) snprintf(extra[i], sizeof extra[i], "presence:updates:{x:e:%d}", i);
    setvbuf(stdout, NULL, _IOLBF, 0);
    cluster = strcmp(argv[1], "cluster") == 0;
    addr = argv[2];
    int want = atoi(argv[3]);
    char err[512];
    int ngroups = 1;
    if (cluster) {
        px_rcl_t *c = client(err, sizeof err);
        if (!c) {
            fprintf(stderr, "rsub_probe: %s\n", err);
            return 1;
        }
        ngroups = px_rcl_nodes(c);
        int per[PX_REDIS_NODES_MAX] = {0};
        uint32_t used[PX_REDIS_SLOTS / 32] = {0};
        for (int i = 0; nch < want * ngroups && nch < MAXCH && i < 100000; i++) {
            chan_t x = {0};
            x.len = (size_t)snprintf(x.name, sizeof x.name, "presence:updates:{t:e:%d}", i);
            x.slot = px_redis_slot(x.name, x.len);
            int o = px_rcl_owner(c, x.slot);
            if (o < 0 || per[o] >= want || (used[x.slot / 32] >> (x.slot % 32)) & 1u) continue;
            used[x.slot / 32] |= 1u << (x.slot % 32);
            per[o]++;
            x.group = o;
            ch[nch++] = x;
            char nm[300];
            printf("channel ch=%s slot=%d node=%s\n", x.name, x.slot, px_rcl_node_name(c, o, nm, sizeof nm));
        }
        px_rcl_free(c);
    } else {
        for (int i = 0; i < want && i < MAXCH; i++) {
            chan_t *x = &ch[nch++];
            x->len = (size_t)snprintf(x->name, sizeof x->name, "presence:updates:{t:e:%d}", i);
            x->slot = px_redis_slot(x->name, x->len);
            printf("channel ch=%s slot=%d node=%s\n", x->name, x->slot, addr);
        }
    }

    loop = uv_default_loop();
    px_rsub_conf_t conf = {.cluster = cluster, .timeout_ms = 1000, .ping_ms = 500, .retry_max_ms = 500,
                           .max_wbuf = argc > 6 ? (size_t)atol(argv[6]) : 0};
    char host[256];
    if (cluster) {
        conf.seeds = addr;
    } else if (addr[0] == '/') {
        conf.host = addr;
    } else {
        const char *colon = strrchr(addr, ':');
        snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - addr) : 0, addr);
        conf.host = host;
        conf.port = colon ? atoi(colon + 1) : 6379;
    }
    px_rsub_handlers_t h = {on_message, on_subscribed, on_state, NULL};
    sub = px_rsub_new(loop, &conf, &h, err, sizeof err);
    if (!sub) {
        fprintf(stderr, "rsub_probe: %s\n", err);
        return 1;
    }
    for (int i = 0; i < nch; i++)
        if (px_rsub_add(sub, ch[i].name, ch[i].len) != 0) {
            fprintf(stderr, "rsub_probe: add %s refused\n", ch[i].name);
            return 1;
        }
    for (int i = 0; i < nextra; i++)
        if (px_rsub_add(sub, extra[i], strlen(extra[i])) != 0) {
            fprintf(stderr, "rsub_probe: add %s refused\n", extra[i]);
            return 1;
        }
    uv_pipe_init(loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, on_in_alloc, on_in);
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 1000UL * (uint64_t)atol(argv[4]), 0);

    pub_t pubs[PX_REDIS_NODES_MAX];
    for (int g = 0; g < ngroups; g++) {
        pubs[g].group = g;
        pthread_create(&pubs[g].t, NULL, publisher, &pubs[g]);
    }

    uv_run(loop, UV_RUN_DEFAULT);

    atomic_store(&stop_pub, true);
    for (int g = 0; g < ngroups; g++) pthread_join(pubs[g].t, NULL);
    px_rsub_stats_t st = px_rsub_stats(sub);
    long max_gap = 0, lost = 0, recv = 0;
    for (int i = 0; i < nch; i++) {
        printf("chan ch=%s recv=%ld lost=%ld max_gap_ms=%ld\n", ch[i].name, ch[i].recv, ch[i].lost, ch[i].max_gap);
        if (ch[i].max_gap > max_gap) max_gap = ch[i].max_gap;
        lost += ch[i].lost;
        recv += ch[i].recv;
    }
    printf("final messages=%llu stray=%llu subscribes=%llu resubscribes=%llu unsubscribed=%llu moved=%llu "
           "errors=%llu refreshes=%llu refresh_failures=%llu connects=%llu connect_failures=%llu drops=%llu "
           "protocol_errors=%llu channels=%zu live=%zu connections=%zu up=%d published=%ld pub_failed=%ld "
           "receivers=%ld lost=%ld max_gap_ms=%ld recv=%ld\n",
           (unsigned long long)st.messages, (unsigned long long)st.stray, (unsigned long long)st.subscribes,
           (unsigned long long)st.resubscribes, (unsigned long long)st.unsubscribed, (unsigned long long)st.moved,
           (unsigned long long)st.errors, (unsigned long long)st.refreshes, (unsigned long long)st.refresh_failures,
           (unsigned long long)st.connects, (unsigned long long)st.connect_failures, (unsigned long long)st.drops,
           (unsigned long long)st.protocol_errors, st.channels, st.live, st.connections, px_rsub_up(sub),
           atomic_load(&published), atomic_load(&pub_failed), atomic_load(&receivers), lost, max_gap, recv);
    int rc = st.live == st.channels ? 0 : 1;
    free(extra);
    px_rsub_free(sub);
    uv_close((uv_handle_t *)&in, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return rc;
}
