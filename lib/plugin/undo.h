// undo.h (private to lib/plugin) — the explicit undo stack of ADD: every step that changed the
// kernel or the IPAM store pushes how to take it back; an ADD that fails anywhere unwinds it in
// reverse order when the stack goes out of scope, an ADD that succeeds commits it.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/log.h"

namespace ipoib::plugin {

class UndoStack {
 public:
  explicit UndoStack(Logger& log) : log_(log) {}
  UndoStack(const UndoStack&) = delete;
  UndoStack& operator=(const UndoStack&) = delete;
  ~UndoStack() { unwind(); }

  void push(std::string what, std::function<Status()> undo) {
    steps_.push_back({std::move(what), std::move(undo)});
  }
  // ADD succeeded: keep everything.
  void commit() { steps_.clear(); }
  // Undoes everything in reverse order; a failing step is logged (the original error is what
  // the caller reports) and the rest still run.
  void unwind() {
    while (!steps_.empty()) {
      Step step = std::move(steps_.back());
      steps_.pop_back();
      Status s = step.undo();
      if (!s.ok()) {
        log_.error("rollback: " + step.what + " failed: " + s.error().msg());
      } else {
        log_.debug("rollback: " + step.what);
      }
    }
  }

 private:
  struct Step {
    std::string what;
    std::function<Status()> undo;
  };
  Logger& log_;
  std::vector<Step> steps_;
};

}  // namespace ipoib::plugin
