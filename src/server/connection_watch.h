// Tells whether the client of a request is still there while its answer is being generated.
// cpp-httplib 0.11.4 (Debian 12) has no Request::is_connection_closed and gives handlers no
// socket, so the connection's socket is found by its addresses (local port, peer address and
// port: unique among this process's sockets) and polled for the peer's hang-up (POLLRDHUP:
// the client closed or reset). A streamed answer also notices a failed write; this catches a
// client that leaves while nothing is written (a long prompt, a non-streamed answer).
#pragma once

#include <string>

namespace unicorn::server {

class ConnectionWatch {
 public:
  ConnectionWatch() = default;
  // The socket of the connection with these addresses, or a watch that never fires when
  // none is found.
  ConnectionWatch(int local_port, const std::string& remote_addr, int remote_port);

  bool found() const { return fd_ >= 0; }
  // True once the peer has closed or reset the connection. Does not read from it.
  bool peer_closed() const;

 private:
  int fd_ = -1;  // borrowed: the server's connection owns it for the request's lifetime
};

}  // namespace unicorn::server
