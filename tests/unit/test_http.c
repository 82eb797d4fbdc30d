/*
 * test_http.c - px_http: the request-head parser (valid heads, a hostile
 * table, every prefix, random mutations) and the libuv responder over real
 * loopback sockets (routes, HEAD, 405, 400, 431, many requests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px_http.h"

static void test_parse_valid(void **state) {
    px_http_req_t r;
    const char *h = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nBODY";
    int n = px_http_parse_request(h, strlen(h), &r);
    assert_int_equal(n, (int)(strlen(h) - 4));
    assert_int_equal(r.method_len, 3);
    assert_memory_equal(r.method, "GET", 3);
    assert_int_equal(r.path_len, 8);
    assert_memory_equal(r.path, "/metrics", 8);
    assert_int_equal(r.minor_version, 1);
    const char *lf = "HEAD / HTTP/1.0\n\n";
    assert_int_equal(px_http_parse_request(lf, strlen(lf), &r), (int)strlen(lf));
    assert_int_equal(r.minor_version, 0);
}

static const struct {
    const char *in;
    int want;
} hostile[] = {
    {"", -2},
    {"GET", -2},
    {"GET / HTTP/1.1\r\n", -2},
    {"GET / HTTP/1.1\r\nHost: a\r\n", -2},
    {"GET / HTTP/1.1\r", -2},
    {" GET / HTTP/1.1\r\n\r\n", -1},
    {"GET  / HTTP/1.1\r\n\r\n", -1},
    {"GET / HTTP/1.1 \r\n\r\n", -1},
    {"GET / HTTP/2.0\r\n\r\n", -1},
    {"GET / HTTP/1.2\r\n\r\n", -1},
    {"GET / http/1.1\r\n\r\n", -1},
    {"GET /\r\n\r\n", -1},
    {"GET\r\n\r\n", -1},
    {"G(T / HTTP/1.1\r\n\r\n", -1},
    {"GET /a b HTTP/1.1\r\n\r\n", -1},
    {"GET /\x7f HTTP/1.1\r\n\r\n", -1},
    {"GET /\x80 HTTP/1.1\r\n\r\n", -1},
    {"GET / HTTP/1.1\rX\r\n\r\n", -1},
    {"GET / HTTP/1.1\r\nHost a\r\n\r\n", -1},
    {"GET / HTTP/1.1\r\n: a\r\n\r\n", -1},
    {"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", -1},
    {"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", -1},
    {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -1},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", -1},
    {"GET / HTTP/1.10\r\n\r\n", -1},
    {"\r\n\r\n", -1},
};

static void test_parse_hostile(void **state) {
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        px_http_req_t r;
        size_t len = strlen(hostile[i].in);
        char *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        memcpy(copy, hostile[i].in, len);
        int got = px_http_parse_request(copy, len, &r);
        if (got != hostile[i].want) fail_msg("row %zu '%s': got %d want %d", i, hostile[i].in, got, hostile[i].want);
        free(copy);
    }
    /* a NUL inside the request line */
    px_http_req_t r;
    assert_int_equal(px_http_parse_request("GET /\0 HTTP/1.1\r\n\r\n", 19, &r), -1);
}

static void test_parse_prefixes(void **state) {
    const char *h = "GET /readyz HTTP/1.1\r\nHost: localhost:9102\r\nUser-Agent: t\r\n\r\n";
    size_t len = strlen(h);
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, h, n);
        px_http_req_t r;
        int got = px_http_parse_request(copy, n, &r);
        if (got != -2) fail_msg("prefix %zu: got %d", n, got);
        free(copy);
    }
    px_http_req_t r;
    assert_int_equal(px_http_parse_request(h, len, &r), (int)len);
}

static void test_parse_mutations(void **state) {
    const char *h = "GET /metrics HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
    size_t len = strlen(h);
    uint32_t seed = 12345;
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        char *m = malloc(len);
        memcpy(m, h, len);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            m[(seed >> 8) % len] = (char)(seed >> 16);
        }
        px_http_req_t r;
        int got = px_http_parse_request(m, len, &r);
        assert_true(got == -1 || got == -2 || (got > 0 && (size_t)got <= len));
        if (got > 0) {
            ok++;
            assert_true(r.method_len > 0 && r.path >= m && r.path + r.path_len <= m + len);
        }
        free(m);
    }
    assert_true(ok > 0);
}

/* ---- server ---------------------------------------------------------------- */

typedef struct {
    int port;
    uv_async_t done;
    char replies[8][512];
} srv_test_t;

static void handler(void *arg, const char *path, int *status, const char **ctype, px_buf_t *body) {
    if (strcmp(path, "/healthz") == 0) {
        *status = 200;
        px_buf_puts(body, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        *status = 503;
        px_buf_puts(body, "not-ready redis=down\n");
    }
}

static void request(int port, const char *req, size_t len, char *out, size_t out_size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    out[0] = '\0';
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(fd, req + off, len - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
        size_t got = 0;
        ssize_t n;
        while (got + 1 < out_size && (n = read(fd, out + got, out_size - 1 - got)) > 0) got += (size_t)n;
        out[got] = '\0';
    }
    close(fd);
}

static void *client(void *arg) {
    srv_test_t *t = arg;
    static const char *reqs[] = {
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /healthz HTTP/1.1\r\n\r\n",
        "POST /healthz HTTP/1.1\r\n\r\n",
        "GET /nope HTTP/1.0\r\n\r\n",
        "GARBAGE\r\n\r\n",
        "GET /readyz HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < 6; i++) request(t->port, reqs[i], strlen(reqs[i]), t->replies[i], sizeof t->replies[i]);
    /* a head larger than the limit */
    size_t big = PX_HTTP_MAX_HEAD + 100;
    char *b = malloc(big);
    memcpy(b, "GET / HTTP/1.1\r\nX: ", 19);
    memset(b + 19, 'a', big - 19);
    request(t->port, b, big, t->replies[6], sizeof t->replies[6]);
    free(b);
    uv_async_send(&t->done);
    return NULL;
}

static px_httpd_t *g_srv;
static void on_done(uv_async_t *a) {
    px_httpd_stop(g_srv);
    uv_close((uv_handle_t *)a, NULL);
}

static void test_server(void **state) {
    uv_loop_t loop;
    srv_test_t t;
    char err[256];
    memset(&t, 0, sizeof t);
    uv_loop_init(&loop);
    g_srv = px_httpd_start(&loop, "127.0.0.1", 0, handler, NULL, err, sizeof err);
    assert_non_null(g_srv);
    t.port = px_httpd_port(g_srv);
    assert_true(t.port > 0);
    uv_async_init(&loop, &t.done, on_done);
    pthread_t th;
    pthread_create(&th, NULL, client, &t);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);

    assert_non_null(strstr(t.replies[0], "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(t.replies[0], "Content-Length: 3\r\n"));
    assert_string_equal(strstr(t.replies[0], "\r\n\r\n") + 4, "ok\n");
    assert_non_null(strstr(t.replies[1], "HTTP/1.1 200 OK\r\n"));
    assert_string_equal(strstr(t.replies[1], "\r\n\r\n") + 4, ""); /* HEAD: no body */
    assert_non_null(strstr(t.replies[2], "HTTP/1.1 405 "));
    assert_non_null(strstr(t.replies[3], "HTTP/1.1 404 "));
    assert_non_null(strstr(t.replies[4], "HTTP/1.1 400 "));
    assert_non_null(strstr(t.replies[5], "HTTP/1.1 503 "));
    assert_non_null(strstr(t.replies[5], "not-ready redis=down"));
    assert_non_null(strstr(t.replies[6], "HTTP/1.1 431 "));
}

static void test_start_errors(void **state) {
    uv_loop_t loop;
    char err[256];
    uv_loop_init(&loop);
    assert_null(px_httpd_start(&loop, "not-an-ip", 1, handler, NULL, err, sizeof err));
    assert_non_null(strstr(err, "bad address"));
    px_httpd_t *a = px_httpd_start(&loop, "127.0.0.1", 0, handler, NULL, err, sizeof err);
    assert_non_null(a);
    assert_null(px_httpd_start(&loop, "127.0.0.1", px_httpd_port(a), handler, NULL, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen"));
    px_httpd_stop(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),     cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_parse_prefixes),  cmocka_unit_test(test_parse_mutations),
        cmocka_unit_test(test_server),          cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
