#ifndef SPLICEGATE_CMICROHTTPD_SHIM_H
#define SPLICEGATE_CMICROHTTPD_SHIM_H
#include <sys/types.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <microhttpd.h>

/* Swift cannot call C variadics (MHD_start_daemon, MHD_get_*_info) nor see
   cast macros (MHD_SIZE_UNKNOWN, MHD_CONTENT_READER_END_*): these wrappers
   and constants give it typed equivalents. */

/** MHD_SIZE_UNKNOWN: a callback response of unknown length (chunked). */
static const uint64_t SG_MHD_SIZE_UNKNOWN = MHD_SIZE_UNKNOWN;
/** Returned by a content reader: regular end of the stream. */
static const ssize_t SG_MHD_CONTENT_READER_END_OF_STREAM = MHD_CONTENT_READER_END_OF_STREAM;
/** Returned by a content reader: abort the connection. */
static const ssize_t SG_MHD_CONTENT_READER_END_WITH_ERROR = MHD_CONTENT_READER_END_WITH_ERROR;

/* Keeps the URL exactly as received: MHD would otherwise percent-decode the
   path before the access handler sees it, turning "a%2Fb" into two segments
   and invalid UTF-8 escapes into raw bytes. Query arguments are then also
   left encoded; the Swift side decodes them. */
static inline size_t sg_mhd_identity_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls; (void)c;
    return strlen(s);
}

/** Starts a daemon without a listening socket: splicegate accepts and
    screens connections itself and hands them over with MHD_add_connection.
    One internal thread per daemon (a thread pool needs a listening socket);
    NULL on failure. */
static inline struct MHD_Daemon *sg_mhd_start_daemon(
    unsigned int flags,
    MHD_AccessHandlerCallback handler, void *handler_cls,
    MHD_RequestCompletedCallback completed, void *completed_cls,
    MHD_NotifyConnectionCallback notify, void *notify_cls,
    MHD_LogCallback logger, void *logger_cls,
    unsigned int connection_limit,
    unsigned int connection_timeout_s,
    size_t connection_memory_limit) {
    /* The logger goes first so that errors about later options reach it. */
    return MHD_start_daemon(flags | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, handler, handler_cls,
        MHD_OPTION_EXTERNAL_LOGGER, logger, logger_cls,
        MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
        MHD_OPTION_NOTIFY_CONNECTION, notify, notify_cls,
        MHD_OPTION_UNESCAPE_CALLBACK, sg_mhd_identity_unescape, NULL,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
        MHD_OPTION_END);
}

/* The admin acceptor's system calls. epoll_event is packed on x86_64 and
   the flag constants are macros or C enums; these wrappers keep both out
   of Swift. */

/** Edge-triggered read interest: a peeked head stays in the socket, so a
    level-triggered poll would wake for it forever. */
static const uint32_t SG_EPOLL_HEAD = EPOLLIN | EPOLLRDHUP | EPOLLET;
/** Level-triggered read interest (the listening socket, the wake-up fd). */
static const uint32_t SG_EPOLL_IN = EPOLLIN;
/** The peer closed or half-closed: it will send nothing more. */
static const uint32_t SG_EPOLL_PEER_CLOSED = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

/** A new epoll instance, close-on-exec; -1 on failure. */
static inline int sg_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

/** Adds (op 1), modifies (op 3) or removes (op 2) `fd`; 0 on success. */
static inline int sg_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.fd = fd;
    int ops[] = {0, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
    return epoll_ctl(epfd, ops[op & 3], fd, &event);
}

/** Adds `fd` (op 1) with `tag` as its event data: the fd in the low 32 bits,
    a generation above, so an event queued for an earlier connection on the
    same descriptor number can be told apart. */
static inline int sg_epoll_add_tagged(int epfd, int fd, uint32_t events, uint64_t tag) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.u64 = tag;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

/** Waits for up to `max` (at most 64) events, unpacked into two arrays:
    each event's data as a 64-bit tag (fd in the low 32 bits) and its flags. */
static inline int sg_epoll_wait(int epfd, uint64_t *tags, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event ready[64];
    int count = epoll_wait(epfd, ready, max > 64 ? 64 : max, timeout_ms);
    for (int i = 0; i < count; i++) { tags[i] = ready[i].data.u64; events[i] = ready[i].events; }
    return count;
}

/** A non-blocking, close-on-exec eventfd; -1 on failure. */
static inline int sg_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

/** Accepts one connection, non-blocking and close-on-exec; -1 with errno. */
static inline int sg_accept(int fd, struct sockaddr_storage *address, socklen_t *length) {
    *length = sizeof *address;
    return accept4(fd, (struct sockaddr *)address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/** Copies what the peer sent without consuming it (MHD reads it later). */
static inline ssize_t sg_peek(int fd, void *buffer, size_t length) {
    return recv(fd, buffer, length, MSG_PEEK | MSG_DONTWAIT);
}

/** Reads and discards; -1 with errno EAGAIN when nothing is there. */
static inline ssize_t sg_discard(int fd, void *buffer, size_t length) {
    return recv(fd, buffer, length, MSG_DONTWAIT);
}

/** Writes without blocking and without SIGPIPE. */
static inline ssize_t sg_send(int fd, const void *buffer, size_t length) {
    return send(fd, buffer, length, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/** A listening TCP socket bound to `address` (IPv6 sockets are v6-only),
    non-blocking and close-on-exec; -1 with errno on failure. */
static inline int sg_listen(const struct sockaddr *address, socklen_t length, int backlog) {
    int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (address->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, address, length) != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/** The port `fd` is bound to, host order (0 if unknown). */
static inline uint16_t sg_bound_port(int fd) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) return 0;
    if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
    if (address.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
    return 0;
}

/** errno, which Swift cannot always read reliably after a shim call. */
static inline int sg_errno(void) { return errno; }

/** The port a running daemon is bound to (0 if unknown). */
static inline uint16_t sg_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

/** The peer address of a connection, or NULL. */
static inline const struct sockaddr *sg_mhd_client_address(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info == NULL ? NULL : info->client_addr;
}

/* The socket of `connection`, or -1. */
static inline int sg_mhd_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info == NULL ? -1 : (int)info->connect_fd;
}

#endif
