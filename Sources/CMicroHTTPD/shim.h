#ifndef SPLICEGATE_CMICROHTTPD_SHIM_H
#define SPLICEGATE_CMICROHTTPD_SHIM_H
#include <sys/types.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>
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

/** Starts a daemon with the options splicegate uses; NULL on failure. */
static inline struct MHD_Daemon *sg_mhd_start_daemon(
    unsigned int flags,
    const struct sockaddr *bind_addr,
    MHD_AccessHandlerCallback handler, void *handler_cls,
    MHD_RequestCompletedCallback completed, void *completed_cls,
    MHD_LogCallback logger, void *logger_cls,
    unsigned int connection_limit,
    unsigned int connection_timeout_s,
    size_t connection_memory_limit,
    unsigned int thread_pool_size) {
    /* The logger goes first so that errors about later options reach it. */
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls,
        MHD_OPTION_EXTERNAL_LOGGER, logger, logger_cls,
        MHD_OPTION_SOCK_ADDR, bind_addr,
        MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
        MHD_OPTION_UNESCAPE_CALLBACK, sg_mhd_identity_unescape, NULL,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
        MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
        MHD_OPTION_END);
}

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

#endif
