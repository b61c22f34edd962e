/*
 * spk_socket.h - TCP sockets: address resolution, connect with a deadline,
 * and the blocking send/recv primitives of the blocking driver.
 *
 * Sockets used by the blocking driver stay in blocking mode with
 * SO_RCVTIMEO / SO_SNDTIMEO, so a request/response costs one send() and
 * usually one recv(); the event-loop driver keeps its sockets non-blocking.
 */
#ifndef SPK_SOCKET_H
#define SPK_SOCKET_H

#include <sys/socket.h>

#include "../spk_common.h"

typedef struct spk_addr {
  struct sockaddr_storage ss;
  socklen_t len;
} spk_addr;

/*
 * Resolve host:port to up to `max` addresses (IPv4 first).  Returns the
 * number found (>= 1) or a negative status (SPK_ERR_INVALID_HOST) with err.
 */
int spk_addr_resolve(const char *host, uint16_t port, spk_addr *out, int max,
                     spk_error *err);

/* "127.0.0.1:3000" / "[::1]:3000" into buf (>= 64 bytes). */
void spk_addr_format(const spk_addr *a, char *buf, size_t size);

/* 1 when the address is loopback (127/8 or ::1). */
int spk_addr_is_loopback(const spk_addr *a);

/*
 * Connect to a, giving up at deadline_ns (spk_now_ns clock; 0 = no limit).
 * On success *fd is a connected TCP socket with TCP_NODELAY, in blocking
 * mode unless nonblocking is set.  Returns 0 or SPK_ERR_CONNECTION /
 * SPK_ERR_TIMEOUT with err naming the address.
 */
int spk_sock_connect(const spk_addr *a, uint64_t deadline_ns, int nonblocking,
                     int *fd, spk_error *err);

/*
 * Set SO_RCVTIMEO and SO_SNDTIMEO (ms; 0 = block forever).  Returns 0 or
 * SPK_ERR_CONNECTION.
 */
int spk_sock_set_timeout(int fd, uint32_t ms);

/* Blocking send of all n bytes (MSG_NOSIGNAL; EINTR retried).  Returns 0,
 * SPK_ERR_TIMEOUT (SO_SNDTIMEO elapsed) or SPK_ERR_CONNECTION. */
int spk_sock_send_all(int fd, const uint8_t *p, size_t n, spk_error *err);

/* One blocking recv into [p, p+cap).  Returns bytes read (> 0), 0 when
 * SO_RCVTIMEO elapsed with nothing read, or SPK_ERR_CONNECTION (EOF or an
 * error; err says which).  EINTR is retried.  (A timeout is 0, never
 * SPK_ERR_TIMEOUT: that code is 9, a valid byte count.) */
long spk_sock_recv(int fd, uint8_t *p, size_t cap, spk_error *err);

/* 1 if an idle connection is still usable: nothing to read and no EOF or
 * error pending (a non-blocking one-byte peek). */
int spk_sock_idle_ok(int fd);

/* 1 for errno values that mean this process ran out of something
 * (descriptors, buffers, memory) rather than a network failure. */
int spk_errno_is_local(int e);

/* Close and mark -1. */
void spk_sock_close(int *fd);

#endif /* SPK_SOCKET_H */
