/* liburing's prep helpers are static inline and import; these wrappers exist for what
   does not: fields inside the SQE's anonymous unions, and the CQE flag macros. */
#include <liburing.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

static inline void proto_prep_recv_select(struct io_uring_sqe *sqe, int fd, unsigned len, unsigned short bgid, unsigned long long data) {
    io_uring_prep_recv(sqe, fd, 0, len, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = bgid;
    io_uring_sqe_set_data64(sqe, data);
}
static inline void proto_prep_send(struct io_uring_sqe *sqe, int fd, const void *buf, size_t len, unsigned long long data) {
    io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, data);
}
static inline void proto_prep_connect(struct io_uring_sqe *sqe, int fd, const struct sockaddr *addr, socklen_t len, unsigned long long data) {
    io_uring_prep_connect(sqe, fd, addr, len);
    io_uring_sqe_set_data64(sqe, data);
}
static inline void proto_prep_multishot_accept(struct io_uring_sqe *sqe, int fd, unsigned long long data) {
    io_uring_prep_multishot_accept(sqe, fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, data);
}
static inline void proto_prep_shutdown(struct io_uring_sqe *sqe, int fd, int how, unsigned long long data) {
    io_uring_prep_shutdown(sqe, fd, how);
    io_uring_sqe_set_data64(sqe, data);
}
static inline unsigned proto_cqe_buffer_id(const struct io_uring_cqe *cqe) { return cqe->flags >> IORING_CQE_BUFFER_SHIFT; }
static inline int proto_cqe_has_more(const struct io_uring_cqe *cqe) { return (cqe->flags & IORING_CQE_F_MORE) != 0; }

/* A provided-buffer ring of `entries` slots (a power of two), registered as group `bgid`. */
static inline struct io_uring_buf_ring *proto_setup_buf_ring(struct io_uring *ring, unsigned entries, unsigned short bgid) {
    size_t size = entries * sizeof(struct io_uring_buf);
    void *mem = mmap(0, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return 0;
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)br;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    if (io_uring_register_buf_ring(ring, &reg, 0) != 0) return 0;
    return br;
}
/* Gives one buffer (back) to the kernel. */
static inline void proto_buf_ring_give(struct io_uring_buf_ring *br, void *addr, unsigned len, unsigned short bid, unsigned entries) {
    io_uring_buf_ring_add(br, addr, len, bid, io_uring_buf_ring_mask(entries), 0);
    io_uring_buf_ring_advance(br, 1);
}
