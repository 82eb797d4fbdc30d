/*
 * px_bench_gw.h - the parts of px_bench_gw (bench/px_bench_gw.c has the
 * usage and what it measures) and what they share: the options, the
 * connections and the counters. One thread; nothing here is locked.
 *
 *   px_bench_gw.c         options, main: the phases in order
 *   px_bench_gw_conn.c    connections: open, WebSocket frames, the two
 *                         dialects (presence JSON, socket.io), heartbeats
 *   px_bench_gw_phase.c   the phases: open and idle, the probe and LOCK
 *                         phases, the heartbeat burst, --hold
 *   px_bench_gw_report.c  readings (/proc: RSS, CPU, run-queue wait),
 *                         percentiles and the printed report
 */
#ifndef PX_BENCH_GW_H
#define PX_BENCH_GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct bench_opt {
    const char *host, *secret, *tenant;
    const char *path; /* socket.io: the server's path */
    int port, conns, sources, entities, lockers, gw_pid, hb_burst, first, source_base;
    bool sio;
    double lock_rate, duration, hb_s, hold_s, open_s;
} bench_opt_t;
extern bench_opt_t opt;

extern conn_t *cs; /* opt.conns of them */
extern int ep; /* the epoll instance */
typedef struct series {
    int64_t *v; /* ns */
    size_t n, cap;
} series_t;
extern series_t lat, echo; /* LOCK -> LOCK_ACK; baseline probe -> ERROR */
extern uint64_t n_opened, n_subscribed, n_failed, n_acks, n_denied, n_errors, n_timeouts, n_locks_sent,
    n_hb_sent, n_unlocks, n_closed, n_pings, n_burst_done;
extern int64_t burst_last_ns; /* when the last burst probe was answered */
extern int64_t last; /* when heartbeat_tick() last ran */

#define MAX_CPU 8
/* The --cpu processes: CPU time and run-queue wait before (t0, w0) and
 * after (t1, w1) the LOCK phase. */
typedef struct bench_cpu {
    const char *name;
    int pid;
    double t0, t1, w0, w1;
} bench_cpu_t;
extern bench_cpu_t cpus[MAX_CPU];
extern int n_cpus;

/* The messages the scenarios send and the answers they wait for; each
 * dialect (presence JSON, socket.io events) formats and classifies them. */
typedef enum { OUT_SUB, OUT_HB, OUT_PROBE, OUT_LOCK, OUT_UNLOCK } out_kind_t;
typedef enum { IN_OTHER, IN_PRESENCE, IN_LOCK_ACK, IN_BAD_FIELD, IN_ERROR, IN_CONTROL } in_kind_t;

/* What the phases measured, for the report. */
typedef struct bench_result {
    long rss0, rss1; /* the gateway's VmRSS before opening and once idle; -1 without --gw-pid */
    int64_t t0; /* when opening began */
    double open_s, echo_rate, lock_rate, lock_s;
    uint64_t acks0; /* n_acks before the LOCK phase */
    double cpu_wall, self0, self1, selfw0, selfw1, mb0, mt0, mb1, mt1; /* over the LOCK phase */
    uint64_t phase_msgs;
    double burst_s;
    uint64_t burst_n;
} bench_result_t;

/* px_bench_gw_conn.c */
void kill_conn(conn_t *c);
int send_msg(conn_t *c, out_kind_t k);
int open_conn(int idx);
void poll_once(int timeout_ms);
void heartbeat_tick(double dt_s);

/* px_bench_gw_phase.c */
void open_phase(bench_result_t *r);
double run_phase(bool lock, double rate, double secs);
void lock_phase(bench_result_t *r);
uint64_t burst_phase(int n, double *secs);
void hold_idle(void);

/* px_bench_gw_report.c */
void series_add(series_t *s, int64_t d);
long rss_kb(int pid);
double cpu_s(int pid);
void machine_jiffies(double *busy, double *total);
double runq_s(int pid);
void report(const bench_result_t *r);

#endif
