/*
 * bt: tiny load tools for splicegate's benchmarks (loopback only).
 *
 *   bt sink PORT              accept, read and discard everything, close on EOF
 *                             (split recipients, idle-session holder)
 *   bt echo PORT              echo server: write back everything read, close on EOF
 *                             (the handoff workload's upstream)
 *   bt echo1 PORT             connection-rate server: read anything, answer one
 *                             byte and close (the server closes first, so
 *                             TIME_WAIT lands on the listening port's side)
 *   bt connrate PORT SECS CONC
 *                             client: CONC sessions in flight, each connects,
 *                             sends 1 byte, waits for the 1-byte answer and EOF
 *                             (EOF without the answer counts as an error),
 *                             closes with RST (no client TIME_WAIT); prints
 *                             "conns_per_s=<x> ok=<n> errors=<e>"
 *   bt holder PORT            idle-session holder that answers one request per
 *                             connection: an 8-byte header (UP, DOWN: uint32, network
 *                             order), then UP-8 more bytes; it answers DOWN bytes and
 *                             then holds the connection, discarding input, until EOF
 *   bt idle PORT N [UP DOWN]  open N connections, print "opened N" and hold
 *                             them until stdin reaches EOF; with UP > 0, each first
 *                             sends a request of UP bytes to a holder and reads its
 *                             DOWN-byte answer (an idle session after some traffic)
 *
 * Everything binds/connects 127.0.0.1, or the IPv4 address in $BT_HOST (the cluster
 * benchmark's nodes listen on 127.0.0.2-4). Single-threaded, epoll.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *m) { perror(m); exit(1); }

static struct sockaddr_in addr_of(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char *host = getenv("BT_HOST");
    if (host && *host && inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "BT_HOST is not an IPv4 address: %s\n", host);
        exit(2);
    }
    return a;
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = addr_of(port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 4096) < 0) die("listen");
    return fd;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The servers (sink, echo, echo1, holder) share one accept-and-read loop: `accepted` may refuse
   a connection (non-zero: it is closed), `readable` reads what a connection has. */
static char iobuf[1 << 18];

static _Noreturn void serve(int port, int (*accepted)(int fd), void (*readable)(int fd)) {
    int lfd = listen_on(port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("ready\n");
    fflush(stdout);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != lfd) {
                readable(fd);
                continue;
            }
            for (;;) {
                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c < 0) break;
                if (accepted && accepted(c)) { close(c); continue; }
                struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
            }
        }
    }
}

/* sink: read and discard everything, close on EOF */
static void sink_readable(int fd) {
    for (;;) {
        ssize_t r = read(fd, iobuf, sizeof iobuf);
        if (r > 0) continue;
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) close(fd);
        return;
    }
}

/* echo: write back what was read. The handoff workload's messages are small and one at a
   time, so a write that would block is waited out here rather than queued. */
static void echo_readable(int fd) {
    for (;;) {
        ssize_t r = read(fd, iobuf, sizeof iobuf);
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) close(fd);
            return;
        }
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, iobuf + off, (size_t)(r - off));
            if (w > 0) off += w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) { close(fd); return; }
        }
    }
}

/* echo1: answer the first read with one byte and close */
static void echo1_readable(int fd) {
    ssize_t r = read(fd, iobuf, sizeof iobuf);
    if (r > 0) (void)!write(fd, "x", 1);
    if (r > 0 || r == 0 || (errno != EAGAIN && errno != EINTR)) close(fd);
}

/* holder: per connection, request bytes still expected and answer bytes still owed */
enum { HDR = 8 };
struct held { unsigned char hdr[HDR]; long got, up, down; };
static struct held held_state[1 << 16];

static int holder_accepted(int fd) {
    if (fd >= (1 << 16)) return -1;
    memset(&held_state[fd], 0, sizeof held_state[fd]);
    held_state[fd].up = -1;
    return 0;
}

static void holder_readable(int fd) {
    struct held *h = &held_state[fd];
    for (;;) {
        ssize_t r = read(fd, iobuf, sizeof iobuf);
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) { close(fd); return; }
            break;
        }
        for (ssize_t k = 0; k < r && h->got + k < HDR; k++) h->hdr[h->got + k] = (unsigned char)iobuf[k];
        h->got += r;
        if (h->up < 0 && h->got >= HDR) {
            h->up = (long)ntohl(*(uint32_t *)h->hdr);
            h->down = (long)ntohl(*(uint32_t *)(h->hdr + 4));
        }
    }
    /* answer once the request is in: a blocking-style loop is fine, the client reads at once */
    while (h->up >= 0 && h->got >= h->up && h->down > 0) {
        ssize_t w = write(fd, iobuf, h->down < (long)sizeof iobuf ? (size_t)h->down : sizeof iobuf);
        if (w > 0) h->down -= w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) break;
    }
}

enum { ST_CONNECTING, ST_WAITING };

static int start_conn(int ep, struct sockaddr_in *a) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(fd, (struct sockaddr *)a, sizeof *a);
    if (r < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
                             .data.u64 = ((uint64_t)fd << 1) | ST_CONNECTING};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return fd;
}

static void rst_close(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static int connrate(int port, double secs, int conc) {
    struct sockaddr_in a = addr_of(port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long ok = 0, errs = 0;
    int inflight = 0;
    for (int i = 0; i < conc; i++)
        if (start_conn(ep, &a) >= 0) inflight++;
        else errs++;
    double t0 = now(), end = t0 + secs;
    static unsigned char got[1 << 16];
    struct epoll_event evs[512];
    char buf[64];
    while (now() < end) {
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            int fd = (int)(evs[i].data.u64 >> 1);
            int st = (int)(evs[i].data.u64 & 1);
            int done = 0, bad = 0;
            if (st == ST_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) bad = 1;
                else if (write(fd, "p", 1) != 1) bad = 1;
                else {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                             .data.u64 = ((uint64_t)fd << 1) | ST_WAITING};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                    continue;
                }
            } else {
                for (;;) {
                    ssize_t r = read(fd, buf, sizeof buf);
                    if (r > 0) {
                        got[fd] = 1;
                        continue;
                    }
                    /* a session counts only if the answer came back before EOF */
                    if (r == 0 && got[fd]) done = 1;
                    else if (r == 0 || errno != EAGAIN) bad = 1;
                    break;
                }
            }
            if (done || bad) {
                got[fd] = 0;
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                rst_close(fd);
                inflight--;
                if (done) ok++;
                else errs++;
                if (start_conn(ep, &a) >= 0) inflight++;
                else errs++;
            }
        }
    }
    double el = now() - t0;
    printf("conns_per_s=%.1f ok=%ld errors=%ld secs=%.3f\n", ok / el, ok, errs, el);
    return 0;
}

static void exchange(int fd, long up, long down) {
    static char buf[1 << 18];
    uint32_t hdr[2] = {htonl((uint32_t)up), htonl((uint32_t)down)};
    memcpy(buf, hdr, sizeof hdr);
    for (long sent = 0; sent < up;) {
        long chunk = up - sent < (long)sizeof buf ? up - sent : (long)sizeof buf;
        ssize_t w = write(fd, buf, (size_t)chunk);
        if (w <= 0) die("request");
        sent += w;
        memset(buf, 'u', HDR);
    }
    for (long got = 0; got < down;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) die("answer");
        got += r;
    }
}

static int idle(int port, int n, long up, long down) {
    struct sockaddr_in a = addr_of(port);
    int *fds = calloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
        if (up > 0) exchange(fd, up, down);
        fds[i] = fd;
        /* pace a little so a proxy's accept queue never overflows (a dropped SYN
           costs a 1 s retransmit) */
        if (i % 256 == 255) usleep(20000);
    }
    printf("opened %d\n", n);
    fflush(stdout);
    char b[256];
    while (read(0, b, sizeof b) > 0) {
    }
    for (int i = 0; i < n; i++) close(fds[i]);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 3 && !strcmp(argv[1], "sink")) serve(atoi(argv[2]), NULL, sink_readable);
    if (argc >= 3 && !strcmp(argv[1], "echo")) serve(atoi(argv[2]), NULL, echo_readable);
    if (argc >= 3 && !strcmp(argv[1], "echo1")) serve(atoi(argv[2]), NULL, echo1_readable);
    if (argc >= 5 && !strcmp(argv[1], "connrate"))
        return connrate(atoi(argv[2]), atof(argv[3]), atoi(argv[4]));
    if (argc >= 3 && !strcmp(argv[1], "holder")) serve(atoi(argv[2]), holder_accepted, holder_readable);
    if (argc >= 4 && !strcmp(argv[1], "idle"))
        return idle(atoi(argv[2]), atoi(argv[3]), argc >= 6 ? atol(argv[4]) : 0, argc >= 6 ? atol(argv[5]) : 0);
    fprintf(stderr, "usage: bt sink|echo|echo1|holder PORT | connrate PORT SECS CONC | idle PORT N [UP DOWN]\n");
    return 2;
}
