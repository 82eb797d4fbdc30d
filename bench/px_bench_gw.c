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
 * a probe; HBs / time until the last probe's answer (burst_phase in
 * px_bench_gw_phase.c).
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
 * (sio_* and px_* in px_bench_gw_conn.c) differs, the scheduling, epoll
 * loop and statistics are shared.
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
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "px_bench_gw.h"

bench_opt_t opt = {.host = "127.0.0.1", .tenant = "bench", .port = 8080, .conns = 1000, .sources = 1, .lockers = 100,
                   .lock_rate = 1000, .duration = 10, .hb_s = 30, .path = "/socket.io",
                   .hb_burst = 20, .source_base = 1, .open_s = 300};
conn_t *cs;
int ep;
series_t lat, echo;
uint64_t n_opened, n_subscribed, n_failed, n_acks, n_denied, n_errors, n_timeouts, n_locks_sent, n_hb_sent, n_unlocks,
    n_closed, n_pings, n_burst_done;
int64_t burst_last_ns;

/* The command line into opt and cpus; 0, or 2 (the exit code) after saying why. */
static int parse_args(int argc, char **argv) {
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
    return 0;
}

/* RLIMIT_NOFILE up to its hard limit; 0, or 2 if the connections need more. */
static int raise_nofile(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)opt.conns + 16 > rl.rlim_cur) {
        fprintf(stderr, "px_bench_gw: %d connections need more than RLIMIT_NOFILE=%llu\n", opt.conns,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    int rc = parse_args(argc, argv);
    if (rc || (rc = raise_nofile())) return rc;
    cs = calloc((size_t)opt.conns, sizeof *cs);
    ep = epoll_create1(0);
    bench_result_t r = {0};
    r.rss0 = opt.gw_pid ? rss_kb(opt.gw_pid) : -1;
    r.t0 = now_ns();
    open_phase(&r);
    if (opt.hold_s > 0) {
        printf("connections: asked=%d opened=%llu subscribed=%llu failed=%llu closed_by_server=%llu open_s=%.1f\n",
               opt.conns, (unsigned long long)n_opened, (unsigned long long)n_subscribed,
               (unsigned long long)n_failed, (unsigned long long)n_closed, r.open_s);
        if (opt.gw_pid) printf("gateway_rss_kb: before=%ld after_idle=%ld\n", r.rss0, r.rss1);
        hold_idle();
        for (int i = 0; i < opt.conns; i++) kill_conn(&cs[i]);
        free(cs);
        close(ep);
        return 0;
    }

    lock_phase(&r);
    /* 4. heartbeat throughput */
    r.burst_s = 0;
    r.burst_n = opt.hb_burst > 0 ? burst_phase(opt.hb_burst, &r.burst_s) : 0;
    report(&r);
    for (int i = 0; i < opt.conns; i++) kill_conn(&cs[i]);
    free(cs);
    free(lat.v);
    free(echo.v);
    close(ep);
    return 0;
}
