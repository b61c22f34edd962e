/* spk_socket.c - TCP connect with deadline, blocking send/recv. */
#include "spk_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

int spk_addr_resolve(const char *host, uint16_t port, spk_addr *out, int max,
                     spk_error *err) {
  struct addrinfo hints, *res = NULL;
  char portbuf[8];
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  snprintf(portbuf, sizeof portbuf, "%u", (unsigned)port);
  int rc = getaddrinfo(host, portbuf, &hints, &res);
  if (rc == EAI_BADFLAGS || (rc != 0 && hints.ai_flags)) {
    /* AI_ADDRCONFIG hides loopback-only hosts on machines without a
     * configured address; retry without it. */
    hints.ai_flags = 0;
    rc = getaddrinfo(host, portbuf, &hints, &res);
  }
  if (rc != 0)
    return spk_error_set(err, SPK_ERR_INVALID_HOST, "cannot resolve host '%s': %s",
                         host, gai_strerror(rc));
  int n = 0;
  /* IPv4 first: Aerospike nodes usually advertise IPv4 service addresses. */
  for (int pass = 0; pass < 2; pass++) {
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
      int v4 = ai->ai_family == AF_INET;
      if ((pass == 0) != v4) continue;
      if (ai->ai_addrlen > sizeof out[n].ss) continue;
      memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
      out[n].len = ai->ai_addrlen;
      n++;
    }
  }
  freeaddrinfo(res);
  if (n == 0)
    return spk_error_set(err, SPK_ERR_INVALID_HOST,
                         "host '%s' has no usable address", host);
  return n;
}

void spk_addr_format(const spk_addr *a, char *buf, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(s->sin_port));
  } else if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    snprintf(buf, size, "[%s]:%u", ip, (unsigned)ntohs(s->sin6_port));
  } else {
    snprintf(buf, size, "?");
  }
}

int spk_addr_is_loopback(const spk_addr *a) {
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
    return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
  }
  if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
    return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
  }
  return 0;
}

static int set_nonblocking(int fd, int on) {
  int fl = fcntl(fd, F_GETFL, 0);
  if (fl < 0) return -1;
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  return fcntl(fd, F_SETFL, fl);
}

int spk_sock_connect(const spk_addr *a, uint64_t deadline_ns, int nonblocking,
                     int *fd_out, spk_error *err) {
  char where[80];
  int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    int e = errno;
    spk_addr_format(a, where, sizeof where);
    /* Out of descriptors or memory is this process's problem, not the
     * node's: report it as such (not counted against the node). */
    return spk_error_set(err, spk_errno_is_local(e) ? SPK_NO_MORE_CONNECTIONS
                                                    : SPK_ERR_CONNECTION,
                         "socket() for %s failed: %s", where, strerror(e));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
    if (errno != EINPROGRESS) goto fail_errno;
    for (;;) {
      int wait_ms = -1;
      if (deadline_ns) {
        uint64_t now = spk_now_ns();
        if (now >= deadline_ns) goto fail_timeout;
        uint64_t left = (deadline_ns - now + 999999) / 1000000;
        wait_ms = left > 0x7fffffff ? 0x7fffffff : (int)left;
      }
      struct pollfd pfd = {fd, POLLOUT, 0};
      int r = poll(&pfd, 1, wait_ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        goto fail_errno;
      }
      if (r == 0) goto fail_timeout;
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) goto fail_errno;
      if (soerr != 0) {
        errno = soerr;
        goto fail_errno;
      }
      break;
    }
  }
  if (!nonblocking && set_nonblocking(fd, 0) != 0) goto fail_errno;
  *fd_out = fd;
  return 0;

fail_errno: {
  int e = errno;
  spk_addr_format(a, where, sizeof where);
  close(fd);
  return spk_error_set(err, SPK_ERR_CONNECTION, "connect to %s failed: %s",
                       where, strerror(e));
}
fail_timeout:
  spk_addr_format(a, where, sizeof where);
  close(fd);
  return spk_error_set(err, SPK_ERR_TIMEOUT, "connect to %s timed out", where);
}

int spk_sock_set_timeout(int fd, uint32_t ms) {
  struct timeval tv;
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
    return SPK_ERR_CONNECTION;
  return 0;
}

int spk_sock_send_all(int fd, const uint8_t *p, size_t n, spk_error *err) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return spk_error_set(err, SPK_ERR_TIMEOUT, "socket send timed out");
    return spk_error_set(err, SPK_ERR_CONNECTION, "send failed: %s",
                         w < 0 ? strerror(errno) : "no progress");
  }
  return 0;
}

long spk_sock_recv(int fd, uint8_t *p, size_t cap, spk_error *err) {
  for (;;) {
    ssize_t r = recv(fd, p, cap, 0);
    if (r > 0) return (long)r;
    if (r == 0)
      return spk_error_set(err, SPK_ERR_CONNECTION,
                           "connection closed by server");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return spk_error_set(err, SPK_ERR_CONNECTION, "recv failed: %s",
                         strerror(errno));
  }
}

int spk_sock_idle_ok(int fd) {
  uint8_t b;
  for (;;) {
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    /* EOF (0), stray bytes (> 0) or an error: the stream is not clean. */
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

int spk_errno_is_local(int e) {
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

void spk_sock_close(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}
