/* Linux calls the relay core makes that Glibc's Swift module leaves out (epoll, eventfd;
   accept4, pipe2 and pthread_setname_np), and the epoll flags as plain unsigned constants.
   No _GNU_SOURCE here: it renames fd_set's field, and this module's fd_set must match the
   one every other module (Dispatch, libmicrohttpd's) sees. The few GNU calls are declared
   below instead. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const unsigned splice_epoll_in = EPOLLIN;
static const unsigned splice_epoll_out = EPOLLOUT;
static const unsigned splice_epoll_rdhup = EPOLLRDHUP;
static const unsigned splice_epoll_hup = EPOLLHUP;
static const unsigned splice_epoll_err = EPOLLERR;
static const unsigned splice_epoll_et = EPOLLET;
static const unsigned splice_epoll_exclusive = EPOLLEXCLUSIVE;

static inline int splice_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static inline int splice_epoll_add(int epfd, int fd, unsigned events, unsigned long long data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static inline int splice_epoll_del(int epfd, int fd) {
    struct epoll_event ev = {0};
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

/* Waits for events; writes each one's flags and data into the two arrays (epoll_event is
   packed on x86_64, which Swift does not import field by field). */
static inline int splice_epoll_wait(int epfd, struct epoll_event *scratch, int max, int timeout_ms,
                                    unsigned *flags, unsigned long long *data) {
    int n = epoll_wait(epfd, scratch, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        flags[i] = scratch[i].events;
        data[i] = scratch[i].data.u64;
    }
    return n;
}

static inline struct epoll_event *splice_epoll_events(int count) {
    return (struct epoll_event *)calloc((size_t)count, sizeof(struct epoll_event));
}

static inline int splice_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
extern int pipe2(int fds[2], int flags);
extern int pthread_setname_np(pthread_t thread, const char *name);

/* Accepts a client and writes its address into `peer` (saves a getpeername per client). */
static inline int splice_accept(int fd, struct sockaddr_storage *peer) {
    socklen_t len = sizeof *peer;
    return accept4(fd, (struct sockaddr *)peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

static inline int splice_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

static inline int splice_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static inline int splice_stream_socket(int family) {
    return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static inline int splice_set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}

static inline int splice_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

static inline int splice_errno(void) { return errno; }

/* The number the next new descriptor would get (the lowest free one), or -1 if none is free. */
static inline int splice_lowest_free_descriptor(int any_open_fd) {
    int probe = fcntl(any_open_fd, F_DUPFD_CLOEXEC, 0);
    if (probe >= 0) close(probe);
    return probe;
}

/* A child's pidfd (Linux 5.3+): readable once the child exits; signals through it cannot
   reach another process that reused the pid. -1 with errno set when unavailable. */
static inline int splice_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static inline int splice_pidfd_send_signal(int pidfd, int sig) {
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* The soft limit on open descriptors (RLIMIT_NOFILE), or -1 when unlimited or unknown. */
static inline long splice_descriptor_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return -1;
    return (long)limit.rlim_cur;
}

/* Runs `body(context)` on a new detached thread; 0 or an error number. */
static inline int splice_detached_thread(void *(*body)(void *), void *context) {
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    int rc = pthread_create(&thread, &attributes, body, context);
    pthread_attr_destroy(&attributes);
    return rc;
}

static inline void splice_name_thread(const char *name) {
    char short_name[16];
    strncpy(short_name, name, 15);
    short_name[15] = 0;
    pthread_setname_np(pthread_self(), short_name);
}

/* The handoff socket (issue 15): a Unix stream socket that carries descriptors. */

/* A Unix stream socket and the address of `path` in `address`; -1 with errno set on
   failure (ENAMETOOLONG for a path that does not fit). */
static inline int splice_unix_socket(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(address->sun_path, path);
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Listens on `path`, mode 0600 (set on the socket before bind, so the file never exists
   with wider permissions); -1 with errno set on failure. */
static inline int splice_unix_listen(const char *path, int backlog) {
    struct sockaddr_un address;
    int fd = splice_unix_socket(path, &address);
    if (fd < 0) return -1;
    /* fchmodat without following a symlink: a path swapped for one between bind and here
       must not make some other file 0600. The peer's uid is checked on every connection
       anyway (splice_peer_uid); keep the socket in a directory only its owner can write. */
    if (fchmod(fd, 0600) != 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0
        || fchmodat(AT_FDCWD, path, 0600, AT_SYMLINK_NOFOLLOW) != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* The uid of the process at the other end of a connected Unix socket (SO_PEERCRED), or
   -1 with errno set. */
struct splice_ucred { pid_t pid; uid_t uid; gid_t gid; };  /* struct ucred, a GNU name */

static inline long long splice_peer_uid(int fd) {
    struct splice_ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    return (long long)credentials.uid;
}

/* The pid of the process at the other end of a connected Unix socket (SO_PEERCRED: the
   process that connected, or listened), or -1 with errno set. */
static inline int splice_peer_pid(int fd) {
    struct splice_ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    return (int)credentials.pid;
}

/* Whether the other end of a connected socket has closed it or shut down its sending side,
   without waiting: 1 if so, 0 if not, -1 with errno set. POLLRDHUP is a GNU name (0x2000 on
   every Linux architecture). */
static inline int splice_peer_hung_up(int fd) {
    struct pollfd entry = { .fd = fd, .events = 0x2000, .revents = 0 };
    int ready = poll(&entry, 1, 0);
    if (ready < 0) return -1;
    return ready > 0 && (entry.revents & (0x2000 | POLLHUP | POLLERR)) != 0;
}

/* Connects to the Unix stream socket at `path` (blocking); -1 with errno set on failure. */
static inline int splice_unix_connect(const char *path) {
    struct sockaddr_un address;
    int fd = splice_unix_socket(path, &address);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Accepts on a Unix listening socket (blocking), close-on-exec. */
static inline int splice_unix_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

/* The most descriptors one message carries (the kernel's SCM_MAX_FD is 253). */
#define SPLICE_MAX_FDS 16

/* A message of `length` bytes at `bytes` with room for SPLICE_MAX_FDS descriptors. */
struct splice_fd_message {
    struct iovec iov;
    union { struct cmsghdr align; char space[CMSG_SPACE(sizeof(int) * SPLICE_MAX_FDS)]; } control;
    struct msghdr header;
};

static inline void splice_fd_message_init(struct splice_fd_message *m, void *bytes, size_t length) {
    memset(m, 0, sizeof *m);
    m->iov.iov_base = bytes;
    m->iov.iov_len = length;
    m->header.msg_iov = &m->iov;
    m->header.msg_iovlen = 1;
    m->header.msg_control = m->control.space;
    m->header.msg_controllen = sizeof m->control.space;
}

/* Sends `length` bytes of `bytes` with `count` descriptors attached (SCM_RIGHTS; count 0
   sends none); returns what sendmsg returns. */
static inline ssize_t splice_send_fds(int fd, const void *bytes, size_t length, const int *fds, int count) {
    if (count < 0 || count > SPLICE_MAX_FDS) { errno = EINVAL; return -1; }
    struct splice_fd_message m;
    splice_fd_message_init(&m, (void *)bytes, length);
    if (count == 0) {
        m.header.msg_control = NULL;
        m.header.msg_controllen = 0;
    } else {
        m.header.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&m.header);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)count);
    }
    return sendmsg(fd, &m.header, MSG_NOSIGNAL);
}

/* Receives up to `length` bytes; descriptors that came with them (close-on-exec) are
   written to `fds` (room for SPLICE_MAX_FDS) and their number to `*count`. A message whose
   descriptors did not fit fails with EMSGSIZE, the ones that did arrive closed. */
static inline ssize_t splice_recv_fds(int fd, void *bytes, size_t length, int *fds, int *count) {
    struct splice_fd_message m;
    splice_fd_message_init(&m, bytes, length);
    struct msghdr *message = &m.header;
    *count = 0;
    ssize_t n = recvmsg(fd, message, MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(message); cmsg; cmsg = CMSG_NXTHDR(message, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        int received = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < received; i++) {
            int one;
            memcpy(&one, CMSG_DATA(cmsg) + sizeof(int) * (size_t)i, sizeof one);
            if (*count < SPLICE_MAX_FDS) fds[(*count)++] = one; else close(one);
        }
    }
    if (message->msg_flags & MSG_CTRUNC) {
        for (int i = 0; i < *count; i++) close(fds[i]);
        *count = 0;
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

/* A send timeout on a blocking socket (0: none). */
static inline int splice_set_send_timeout(int fd, int milliseconds) {
    struct timeval tv = { milliseconds / 1000, (milliseconds % 1000) * 1000 };
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A receive timeout on a blocking socket (0: none). */
static inline int splice_set_receive_timeout(int fd, int milliseconds) {
    struct timeval tv = { milliseconds / 1000, (milliseconds % 1000) * 1000 };
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* `systemctl reload` (issue 15): the service manager's notification socket and the
   successor a reload starts. */
#include <spawn.h>
#include <stddef.h>

/* Sends `message` as one datagram to the sd_notify(3) socket `address`: a path, or an
   abstract address written with a leading '@'. Never blocks (a service manager that is
   not reading loses the message rather than stalls the gateway); -1 with errno set on
   failure (ENAMETOOLONG for an address that does not fit, EAFNOSUPPORT for another kind). */
static inline int splice_notify_send(const char *address, const char *message, size_t length) {
    struct sockaddr_un target;
    memset(&target, 0, sizeof target);
    target.sun_family = AF_UNIX;
    size_t size = strlen(address);
    if (size == 0 || (address[0] != '/' && address[0] != '@')) { errno = EAFNOSUPPORT; return -1; }
    if (size >= sizeof target.sun_path) { errno = ENAMETOOLONG; return -1; }
    memcpy(target.sun_path, address, size);
    /* An abstract name is not NUL-terminated: its length is all there is of it. */
    socklen_t target_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + size + 1);
    if (address[0] == '@') {
        target.sun_path[0] = '\0';
        target_length -= 1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t sent = sendto(fd, message, length, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&target, target_length);
    int saved = errno;
    close(fd);
    errno = saved;
    return sent == (ssize_t)length ? 0 : -1;
}

/* glibc 2.34+ (declared only under _GNU_SOURCE, see the top): the spawned child closes
   every descriptor from `from` on, whether close-on-exec or not. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/* A signal that arrives before its dispatch source is registered, latched instead of lost
   (SignalWaiter): the latch's handler records it; the source's registration replaces the
   handler (libdispatch installs its own), and the waiter then takes what was latched. Both
   functions must be called from one Swift file (a static inline function's statics are
   per translation unit). */
static inline volatile sig_atomic_t *splice_signal_latch(void) {
    static volatile sig_atomic_t latched[65];
    return latched;
}

static inline void splice_signal_latch_handler(int number) {
    if (number > 0 && number < 65) splice_signal_latch()[number] = 1;
}

static inline int splice_signal_latch_install(int number) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = splice_signal_latch_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    return sigaction(number, &action, NULL);
}

/* 1 if `number` was latched since the last call (and clears it), else 0. */
static inline int splice_signal_latch_take(int number) {
    if (number <= 0 || number >= 65) return 0;
    int seen = splice_signal_latch()[number];
    splice_signal_latch()[number] = 0;
    return seen;
}

/* glibc 2.26+ (declared only under _GNU_SOURCE, which the Glibc module's spawn.h may have
   been read without): the spawned child starts a session of its own. */
#ifndef POSIX_SPAWN_SETSID
#define POSIX_SPAWN_SETSID 0x80
#endif
static inline short splice_posix_spawn_setsid(void) { return POSIX_SPAWN_SETSID; }
