/*
 * probe: timestamped round trips through a proxy to an echo server (the handoff workload).
 *
 *   probe PORT K SIZE SAMPLES [GAP_US]
 *
 * Opens K connections to 127.0.0.1:PORT (TCP_NODELAY) and prints "running K". Each then
 * does request/answer round trips one at a time, back to back (or GAP_US apart at the
 * least, from send to send): a SIZE-byte message (probe index, sequence number, then a
 * pattern of both) that the echo must return byte for byte. Until stdin reaches EOF; then
 * no new message is sent, the answers in flight are waited for (10 s at most), each
 * connection is checked for stray bytes, and every round trip is written to SAMPLES as a
 * little-endian record (uint32 probe, uint32 0, double sent, double answered: seconds of
 * CLOCK_MONOTONIC, the clock of Python's time.monotonic(), so the harness can lay its own
 * timestamps over them). Last, on stdout: one "error PROBE TIME WHAT" line per failed
 * probe (EOF, reset, bytes that differ, no answer), then "done ROUND_TRIPS ERRORS".
 *
 * A probe that fails stops (its connection is closed); the others go on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_SIZE = 4096, HEADER = 12 };

struct sample { uint32_t probe, pad; double sent, answered; };

struct probe {
    int fd;            /* -1 once failed */
    uint64_t seq;      /* of the message in flight, or of the last one answered */
    int in_flight;
    double sent, due;  /* when the message in flight went, when the next may go */
    size_t got;
    unsigned char want[MAX_SIZE], have[MAX_SIZE];
};

static struct sample *samples;
static size_t nsamples, capsamples;
static int errors;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *m) { perror(m); exit(1); }

static void fail(struct probe *p, int index, const char *what) {
    printf("error %d %.6f %s\n", index, now(), what);
    errors++;
    close(p->fd);  /* also leaves the epoll set */
    p->fd = -1;
    p->in_flight = 0;
}

static void fill(struct probe *p, int index, size_t size) {
    uint32_t i = htonl((uint32_t)index);
    memcpy(p->want, &i, 4);
    for (int b = 0; b < 8; b++) p->want[4 + b] = (unsigned char)(p->seq >> (56 - 8 * b));
    for (size_t k = HEADER; k < size; k++) p->want[k] = (unsigned char)(index * 31 + p->seq * 7 + k);
}

static void send_next(struct probe *p, int index, size_t size) {
    p->seq++;
    fill(p, index, size);
    p->got = 0;
    p->sent = now();
    /* One small message in flight on an otherwise empty connection: it fits the send
       buffer whole, so a short write means the connection is broken. */
    ssize_t w = write(p->fd, p->want, size);
    if (w != (ssize_t)size) {
        char why[128];
        snprintf(why, sizeof why, "write: %s", w < 0 ? strerror(errno) : "short");
        fail(p, index, why);
        return;
    }
    p->in_flight = 1;
}

static void record(int index, double sent, double answered) {
    if (nsamples == capsamples) {
        capsamples = capsamples ? capsamples * 2 : 1 << 16;
        samples = realloc(samples, capsamples * sizeof *samples);
        if (!samples) die("realloc");
    }
    samples[nsamples++] = (struct sample){(uint32_t)index, 0, sent, answered};
}

/* Reads what the echo returned; returns 1 when the message in flight is complete. */
static int readable(struct probe *p, int index, size_t size) {
    for (;;) {
        ssize_t r = read(p->fd, p->have + p->got, size - p->got);
        if (r > 0 && !p->in_flight) { fail(p, index, "bytes nobody asked for"); return 0; }
        if (r > 0) {
            p->got += (size_t)r;
            if (p->got < size) continue;
            double t = now();
            if (memcmp(p->have, p->want, size) != 0) { fail(p, index, "echo differs from the message"); return 0; }
            record(index, p->sent, t);
            p->in_flight = 0;
            return 1;
        }
        if (r == 0) { fail(p, index, "EOF"); return 0; }
        if (errno == EAGAIN || errno == EINTR) return 0;
        char why[128];
        snprintf(why, sizeof why, "read: %s", strerror(errno));
        fail(p, index, why);
        return 0;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: probe PORT K SIZE SAMPLES [GAP_US]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]), k = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double gap = argc > 5 ? atof(argv[5]) / 1e6 : 0;
    if (k < 1 || size < HEADER || size > MAX_SIZE) {
        fprintf(stderr, "probe: K >= 1 and %d <= SIZE <= %d\n", HEADER, MAX_SIZE);
        return 2;
    }
    struct probe *probes = calloc((size_t)k, sizeof *probes);
    if (!probes) die("calloc");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)k};  /* k: stdin */
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    for (int i = 0; i < k; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* nonblocking once connected: a read must never stall the others */
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        probes[i].fd = fd;
        ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    printf("running %d\n", k);
    fflush(stdout);
    for (int i = 0; i < k; i++) send_next(&probes[i], i, size);
    int stopping = 0;
    double stop_by = 0;
    struct epoll_event evs[64];
    for (;;) {
        int busy = 0, waiting = 0;
        double next_due = 0;
        for (int i = 0; i < k; i++) {
            if (probes[i].fd < 0) continue;
            if (probes[i].in_flight) busy++;
            else if (!stopping) {
                if (probes[i].due <= now()) send_next(&probes[i], i, size);
                else if (!waiting++ || probes[i].due < next_due) next_due = probes[i].due;
                if (probes[i].in_flight) busy++;
            }
        }
        if (stopping && !busy) break;
        if (stopping && now() > stop_by) {
            for (int i = 0; i < k; i++)
                if (probes[i].fd >= 0 && probes[i].in_flight) fail(&probes[i], i, "no answer within 10 s");
            break;
        }
        int timeout = stopping ? 100 : waiting ? (int)((next_due - now()) * 1000) + 1 : -1;
        if (timeout < 0 && (stopping || waiting)) timeout = 0;
        int n = epoll_wait(ep, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            if (i == k) {
                char b[256];
                ssize_t r = read(0, b, sizeof b);
                if (r <= 0) {
                    stopping = 1;
                    stop_by = now() + 10;
                    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
                }
                continue;
            }
            struct probe *p = &probes[i];
            if (p->fd < 0) continue;
            if (readable(p, i, size)) p->due = p->sent + gap;
        }
    }
    /* Nothing more may arrive: an echo that duplicated bytes shows here. */
    for (int i = 0; i < k; i++) {
        if (probes[i].fd < 0) continue;
        unsigned char extra;
        ssize_t r = recv(probes[i].fd, &extra, 1, MSG_DONTWAIT);
        if (r > 0) fail(&probes[i], i, "bytes after the last answer");
        else close(probes[i].fd);
    }
    FILE *f = fopen(argv[4], "wb");
    if (!f) die(argv[4]);
    if (nsamples && fwrite(samples, sizeof *samples, nsamples, f) != nsamples) die("fwrite");
    if (fclose(f) != 0) die("fclose");
    printf("done %zu %d\n", nsamples, errors);
    return 0;
}
