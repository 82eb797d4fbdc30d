/*
 * px_bench_gw_report.c - px_bench_gw's readings and report: the latency
 * series, the gateway's RSS, the CPU time and run-queue wait of the --cpu
 * processes (/proc), percentiles, and the lines bench/run_gateway.sh and
 * bench/report.py read.
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

bench_cpu_t cpus[MAX_CPU];
int n_cpus;

void series_add(series_t *s, int64_t d) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = d;
}

long rss_kb(int pid) {
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
double cpu_s(int pid) {
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
void machine_jiffies(double *busy, double *total) {
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
double runq_s(int pid) {
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

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const series_t *s, double p) {
    if (!s->n) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    return (double)s->v[i] / 1e6;
}

/* Print the report: the lines bench/run_gateway.sh and bench/report.py read. */
void report(const bench_result_t *r) {
    if (lat.n) qsort(lat.v, lat.n, sizeof *lat.v, cmp64);
    if (echo.n) qsort(echo.v, echo.n, sizeof *echo.v, cmp64);
    printf("server: %s\n", opt.sio ? "socket.io (engine.io v4 framing)" : "presence-gateway");
    printf("connections: asked=%d opened=%llu subscribed=%llu failed=%llu closed_by_server=%llu open_s=%.1f\n",
           opt.conns, (unsigned long long)n_opened, (unsigned long long)n_subscribed, (unsigned long long)n_failed,
           (unsigned long long)n_closed, r->open_s);
    if (opt.gw_pid)
        printf("gateway_rss_kb: before=%ld after_idle=%ld per_connection_bytes=%.0f\n", r->rss0, r->rss1,
               n_subscribed ? (double)(r->rss1 - r->rss0) * 1024.0 / (double)n_subscribed : 0.0);
    printf("locks: sent=%llu acks=%llu denied=%llu timeouts=%llu errors=%llu unlocks=%llu rate_asked=%.0f/s "
           "lock_rate=%.0f/s client_msgs=%.0f/s heartbeats=%llu\n",
           (unsigned long long)n_locks_sent, (unsigned long long)(n_acks - r->acks0), (unsigned long long)n_denied,
           (unsigned long long)n_timeouts, (unsigned long long)n_errors, (unsigned long long)n_unlocks,
           opt.lock_rate, r->lock_rate, (double)(n_locks_sent + n_unlocks) / r->lock_s, (unsigned long long)n_hb_sent);
    double run_s = (double)(now_ns() - r->t0) / 1e9;
    printf("heartbeats: sent=%llu over %.1f s = %.0f/s (every %.0f s per connection) server_pings_answered=%llu\n",
           (unsigned long long)n_hb_sent, run_s, (double)n_hb_sent / run_s, opt.hb_s, (unsigned long long)n_pings);
    printf("hb_burst: hbs=%llu (%d per connection at once) probes_answered=%llu in %.2f s = %.0f/s taken in\n",
           (unsigned long long)r->burst_n, opt.hb_burst, (unsigned long long)n_burst_done, r->burst_s,
           r->burst_s > 0 ? (double)r->burst_n / r->burst_s : 0.0);
    printf("lock_ack_ms: n=%zu p50=%.2f p90=%.2f p99=%.2f p999=%.2f max=%.2f\n", lat.n, pct(&lat, 50),
           pct(&lat, 90), pct(&lat, 99), pct(&lat, 99.9), lat.n ? (double)lat.v[lat.n - 1] / 1e6 : 0.0);
    printf("baseline_gateway_roundtrip_ms: rate=%.0f/s n=%zu p50=%.2f p90=%.2f p99=%.2f p999=%.2f max=%.2f\n",
           r->echo_rate, echo.n, pct(&echo, 50), pct(&echo, 90), pct(&echo, 99), pct(&echo, 99.9),
           echo.n ? (double)echo.v[echo.n - 1] / 1e6 : 0.0);
    /* CPU over the LOCK phase: share of one core, and us per client message;
     * then the time its threads waited for a core, as a share of the phase
     * (threads that ended during the phase are left out) */
    printf("cpu: phase_s=%.1f client_msgs=%llu machine_busy=%.0f%%", r->cpu_wall, (unsigned long long)r->phase_msgs,
           r->mt1 > r->mt0 ? 100.0 * (r->mb1 - r->mb0) / (r->mt1 - r->mt0) : 0.0);
    for (int i = 0; i <= n_cpus; i++) {
        const char *name = i < n_cpus ? cpus[i].name : "self";
        double a = i < n_cpus ? cpus[i].t0 : r->self0, b = i < n_cpus ? cpus[i].t1 : r->self1;
        if (a < 0 || b < 0) {
            printf(" %s=gone", name);
            continue;
        }
        printf(" %s=%.0f%%/%.0fus", name, 100.0 * (b - a) / r->cpu_wall,
               r->phase_msgs ? (b - a) * 1e6 / (double)r->phase_msgs : 0.0);
    }
    printf("\nrunq_wait:");
    for (int i = 0; i <= n_cpus; i++) {
        const char *name = i < n_cpus ? cpus[i].name : "self";
        double a = i < n_cpus ? cpus[i].w0 : r->selfw0, b = i < n_cpus ? cpus[i].w1 : r->selfw1;
        if (a < 0 || b < 0) printf(" %s=gone", name);
        else printf(" %s=%.0f%%", name, 100.0 * (b - a) / r->cpu_wall);
    }
    printf("\n");
}
