/* What Glibc's Swift module leaves out. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/tcp.h>

/* accept4 is declared only under _GNU_SOURCE. */
static inline int proto_accept_nonblocking(int fd) {
    return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
