/*
 * px_bench_gw_phase.c - px_bench_gw's phases: opening the connections and
 * idling, the probe and LOCK phases at a set rate (the CPU readings around
 * the LOCK phase), the heartbeat burst, and --hold.
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

int64_t last;

/* 1. Open, at most 500 handshakes in flight, heartbeating meanwhile (up to
 * --open-s); then 5 s idle (heartbeats only) and the gateway's RSS. */
void open_phase(bench_result_t *r) {
    /* 1. open, at most 500 handshakes in flight */
    int64_t t0 = r->t0;
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
        heartbeat_tick((double)(t - last) / 1e9);
        last = t;
        if (t - t0 > (int64_t)(opt.open_s * 1e9)) {
            fprintf(stderr, "px_bench_gw: gave up opening after %.0f s\n", opt.open_s);
            break;
        }
    }
    r->open_s = (double)(now_ns() - t0) / 1e9;
    /* idle for 5 s (heartbeats only), then measure the gateway */
    int64_t idle_end = now_ns() + 5000000000LL;
    while (now_ns() < idle_end) {
        poll_once(5);
        int64_t t = now_ns();
        heartbeat_tick((double)(t - last) / 1e9);
        last = t;
    }
    r->rss1 = opt.gw_pid ? rss_kb(opt.gw_pid) : -1;
}

/* Send `rate` probes per second for `secs` over the first L connections,
 * one outstanding per connection: LOCKs (lock) or, as the baseline, a
 * message the gateway refuses at once (BAD_FIELD), which measures the
 * WebSocket round trip through the gateway without Kafka and processor. */
double run_phase(bool lock, double rate, double secs) {
    int64_t ls = now_ns(), lend = ls + (int64_t)(secs * 1e9);
    double due = 0;
    int lk = 0;
    uint64_t sent = 0;
    last = ls;
    while (opt.lockers > 0 && rate > 0 && now_ns() < lend) {
        poll_once(1);
        int64_t t = now_ns();
        heartbeat_tick((double)(t - last) / 1e9);
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
uint64_t burst_phase(int n, double *secs) {
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
void hold_idle(void) {
    signal(SIGTERM, on_stop_signal);
    signal(SIGINT, on_stop_signal);
    printf("idle: subscribed=%llu\n", (unsigned long long)n_subscribed);
    fflush(stdout);
    int64_t end = now_ns() + (int64_t)(opt.hold_s * 1e9);
    while (!stop_hold && now_ns() < end) {
        poll_once(100);
        int64_t t = now_ns();
        heartbeat_tick((double)(t - last) / 1e9);
        last = t;
    }
    printf("held: subscribed=%llu closed_by_server=%llu heartbeats=%llu server_pings_answered=%llu\n",
           (unsigned long long)n_subscribed, (unsigned long long)n_closed, (unsigned long long)n_hb_sent,
           (unsigned long long)n_pings);
}

/* 2. The baseline probes at the LOCK rate (5 s at most), then 3. the LOCKs
 * for --duration, with the CPU readings around them. */
void lock_phase(bench_result_t *r) {
    /* 2. baseline: the gateway's own round trip at the same rate; 3. LOCKs */
    r->acks0 = n_acks;
    r->echo_rate = run_phase(false, opt.lock_rate, opt.duration < 5 ? opt.duration : 5);
    r->acks0 = n_acks;
    uint64_t msgs0 = n_locks_sent + n_unlocks;
    for (int i = 0; i < n_cpus; i++) {
        cpus[i].t0 = cpu_s(cpus[i].pid);
        cpus[i].w0 = runq_s(cpus[i].pid);
    }
    r->selfw0 = runq_s(getpid());
    r->self0 = cpu_s(getpid());
    machine_jiffies(&r->mb0, &r->mt0);
    int64_t cpu_ns0 = now_ns();
    r->lock_rate = run_phase(true, opt.lock_rate, opt.duration);
    r->lock_s = opt.duration;
    r->cpu_wall = (double)(now_ns() - cpu_ns0) / 1e9;
    r->self1 = cpu_s(getpid());
    r->selfw1 = runq_s(getpid());
    for (int i = 0; i < n_cpus; i++) {
        cpus[i].t1 = cpu_s(cpus[i].pid);
        cpus[i].w1 = runq_s(cpus[i].pid);
    }
    machine_jiffies(&r->mb1, &r->mt1);
    r->phase_msgs = n_locks_sent + n_unlocks - msgs0;
}
