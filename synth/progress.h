// A progress counter for long loops (variant builds, the analysis of many tunables): each
// Tick() describes where the loop stands as "[3/12, 1m05s, ~3m20s left]", the estimate
// assuming the remaining items take as long as the average so far. Thread-safe.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sie::synth {

class Meter {
 public:
  explicit Meter(size_t total) : total_(total), start_(std::chrono::steady_clock::now()) {}

  // Counts one more item done.
  std::string Tick() {
    std::lock_guard<std::mutex> l(mu_);
    ++done_;
    int64_t elapsed =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_)
            .count();
    std::string s = absl::StrCat("[", done_, "/", total_, ", ", Duration(elapsed));
    if (done_ < total_)
      absl::StrAppend(
          &s, ", ~",
          Duration(elapsed * static_cast<int64_t>(total_ - done_) / static_cast<int64_t>(done_)),
          " left");
    return s + "]";
  }

 private:
  static std::string Duration(int64_t s) {
    return s >= 60 ? absl::StrFormat("%dm%02ds", s / 60, s % 60) : absl::StrCat(s, "s");
  }

  std::mutex mu_;
  size_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sie::synth
