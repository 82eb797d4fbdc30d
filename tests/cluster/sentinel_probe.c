/*
 * sentinel_probe.c - asks Sentinels where the master is through
 * core/px_redis_sentinel.c, for tests/cluster/test_sentinel_master.py,
 * which starts the Sentinels and the servers and forces the faults
 * (pxcluster.py).
 *
 *   sentinel_probe NAME TIMEOUT_MS HOST:PORT...
 *
 * Prints "master=HOST:PORT sentinel=I" (I: the index of the Sentinel that
 * answered) and exits 0; exits 3 when every Sentinel that answered knows
 * no master called NAME, 1 on any other failure, 2 on bad arguments; the
 * module's message goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_redis_sentinel.h"

int main(int argc, char **argv) {
    px_redis_node_t s[PX_SENTINELS_MAX];
    int n = argc - 3;
    if (argc < 4 || n > PX_SENTINELS_MAX) {
        fprintf(stderr, "usage: sentinel_probe NAME TIMEOUT_MS HOST:PORT... (at most %d)\n", PX_SENTINELS_MAX);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        const char *a = argv[3 + i], *colon = strrchr(a, ':');
        if (!colon || colon == a || (size_t)(colon - a) > PX_REDIS_HOST_MAX) {
            fprintf(stderr, "sentinel_probe: not host:port: %s\n", a);
            return 2;
        }
        memcpy(s[i].host, a, (size_t)(colon - a));
        s[i].host[colon - a] = '\0';
        s[i].port = atoi(colon + 1);
    }
    px_redis_node_t m;
    int which = -1;
    char err[1024];
    int rc = px_sentinel_master(s, n, argv[1], atol(argv[2]), &m, &which, err, sizeof err);
    if (rc) {
        fprintf(stderr, "sentinel_probe: %s\n", err);
        return rc == PX_EINVAL ? 3 : 1;
    }
    printf("master=%s:%d sentinel=%d\n", m.host, m.port, which);
    return 0;
}
