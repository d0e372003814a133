// A transaction guard for `sie set`: each step that changes the kernel or the disk records how
// to undo it as it is done; unless committed, the destructor undoes every recorded step in
// reverse order, so a failure anywhere leaves the kernel as it was.
#pragma once
#include <functional>
#include <utility>
#include <vector>

namespace sie::loader {

class Transaction {
 public:
  Transaction() = default;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() { Rollback(); }

  // `undo` runs (at most once) if the transaction is not committed.
  void OnRollback(std::function<void()> undo) { undo_.push_back(std::move(undo)); }
  // Keeps everything done: no undo runs.
  void Commit() { undo_.clear(); }
  // Undoes every step now, newest first (the destructor's work, for callers that must act
  // after the kernel is clean again).
  void Rollback() {
    while (!undo_.empty()) {
      auto undo = std::move(undo_.back());
      undo_.pop_back();
      undo();
    }
  }

 private:
  std::vector<std::function<void()>> undo_;
};

}  // namespace sie::loader
