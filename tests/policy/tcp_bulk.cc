// A bulk TCP transfer for the CUBIC policy test (no iperf3 in the guest):
//   tcp_bulk recv PORT               accept connections forever, read each to EOF
//   tcp_bulk send ADDR PORT BYTES    send BYTES with CUBIC, then print one JSON line with the
//                                    sender's TCP_INFO (ssthresh, cwnd, min/smoothed RTT) and
//                                    where the flow left slow start: the first ssthresh below
//                                    "infinite" (HyStart sets it to cwnd; a loss to 0.7 cwnd),
//                                    when (ms after connect) and the cwnd then
#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

int Recv(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) || listen(s, 16)) {
    perror("bind/listen");
    return 1;
  }
  for (;;) {
    int c = accept(s, nullptr, nullptr);
    if (c < 0) continue;
    std::thread([c] {
      std::vector<char> buf(1 << 16);
      while (read(c, buf.data(), buf.size()) > 0) {
      }
      close(c);
    }).detach();
  }
}

int Send(const char* addr, int port, long bytes) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  const char cc[] = "cubic";
  if (setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc))) perror("TCP_CONGESTION");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, addr, &a.sin_addr);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a))) {
    perror("connect");
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  // The slow-start exit, sampled every 0.5 ms by a second thread (the writes do not block
  // while the socket buffer has room).
  std::atomic<bool> done{false};
  unsigned exit_ssthresh = 0, exit_cwnd = 0;
  double exit_ms = -1;
  std::thread watch([&] {
    while (!done.load()) {
      tcp_info ti{};
      socklen_t len = sizeof(ti);
      if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_snd_ssthresh < 0xffff) {
        exit_ssthresh = ti.tcpi_snd_ssthresh;
        exit_cwnd = ti.tcpi_snd_cwnd;
        exit_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                      .count();
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  std::vector<char> buf(1 << 16, 'x');
  for (long left = bytes; left > 0;) {
    ssize_t n = write(s, buf.data(), left < (long)buf.size() ? left : buf.size());
    if (n <= 0) {
      perror("write");
      done = true;
      watch.join();
      return 1;
    }
    left -= n;
  }
  shutdown(s, SHUT_WR);  // then wait for the receiver's EOF: everything is acknowledged
  char c;
  while (read(s, &c, 1) > 0) {
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  done = true;
  watch.join();
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len);
  std::printf(
      "{\"bytes\": %ld, \"secs\": %.3f, \"ssthresh\": %u, \"cwnd\": %u, "
      "\"min_rtt_us\": %u, \"rtt_us\": %u, \"retrans\": %u, \"exit_ssthresh\": %u, "
      "\"exit_cwnd\": %u, \"exit_ms\": %.1f}\n",
      bytes, secs, ti.tcpi_snd_ssthresh, ti.tcpi_snd_cwnd, ti.tcpi_min_rtt, ti.tcpi_rtt,
      ti.tcpi_total_retrans, exit_ssthresh, exit_cwnd, exit_ms);
  close(s);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && !strcmp(argv[1], "recv")) return Recv(atoi(argv[2]));
  if (argc == 5 && !strcmp(argv[1], "send")) return Send(argv[2], atoi(argv[3]), atol(argv[4]));
  std::fprintf(stderr, "usage: tcp_bulk recv PORT | tcp_bulk send ADDR PORT BYTES\n");
  return 2;
}
