/*
 * px_redis_addr.h - where a Redis server is: `redis.host` and `redis.port`.
 *
 * A host that begins with '/' is the path of the server's Unix socket
 * (redis.conf `unixsocket`), and the port is not used: a Redis on the
 * same machine may then listen on no TCP port at all. Anything else is a
 * TCP host name or address. The processor, the gateway and presencectl
 * check and connect through these functions, so all three take the same
 * settings (docs/configuration.md, "Redis on a Unix socket").
 */
#ifndef PX_REDIS_ADDR_H
#define PX_REDIS_ADDR_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>

static inline bool px_redis_is_unix(const char *host) {
    return host[0] == '/';
}

/* The server's address for messages: "host:port", or the socket's path. */
static inline const char *px_redis_addr(const char *host, long long port, char *buf, size_t n) {
    if (px_redis_is_unix(host)) return host;
    snprintf(buf, n, "%s:%lld", host, port);
    return buf;
}

/* Checked at start-up: an empty host, or a socket path longer than a
 * sockaddr_un holds (hiredis would cut it and try another path), is a
 * configuration error. 0, or -1 with the reason in err. */
static inline int px_redis_host_check(const char *host, char *err, size_t err_size) {
    if (!host[0]) {
        snprintf(err, err_size, "redis.host is empty");
        return -1;
    }
    if (px_redis_is_unix(host) && strlen(host) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, err_size, "redis.host: a Unix socket path is at most %zu bytes, not %zu",
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1, strlen(host));
        return -1;
    }
    return 0;
}

/* A blocking connection within tv; NULL only when out of memory, else
 * check ->err as for redisConnectWithTimeout. */
static inline redisContext *px_redis_connect(const char *host, int port, struct timeval tv) {
    return px_redis_is_unix(host) ? redisConnectUnixWithTimeout(host, tv) : redisConnectWithTimeout(host, port, tv);
}

/* A non-blocking connection for an event loop (check ->err likewise). */
static inline redisAsyncContext *px_redis_connect_async(const char *host, int port) {
    return px_redis_is_unix(host) ? redisAsyncConnectUnix(host) : redisAsyncConnect(host, port);
}

#endif
