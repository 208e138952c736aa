// daemon/task_scheduler.h: a fixed pool of worker threads taking turns at many repeating tasks
// (every link's push, pull and side channels, and the daemon's maintenance), so that the number of
// threads does not grow with the number of links.
//
// Each task is a function that does one turn of work and says when it wants the next, and whether
// that next turn continues a backlog. Workers take the task that has waited longest since it became
// due, in two classes: a task's regular turns (a link looking for changes on its interval) go
// before continuations (a run that used up its time slice with work still queued), and
// continuations never hold more than all workers but one. So a link with a large backlog takes
// turns with the others instead of holding a worker until it is done, and a link's small change
// waits for no backlog. A task is never run by two workers at once.
//
// Thread-safe. Stop() lets the turns in hand finish, up to a deadline; a turn still running after it
// is left to finish on its own (the scheduler's state outlives this object for it).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace sgsync::daemon {

class TaskScheduler {
 public:
  using Clock = std::chrono::steady_clock;
  // When a task wants its next turn (now or earlier: as soon as a worker is free, behind the tasks
  // of its class already waiting), and whether that turn continues a backlog.
  struct Next {
    Clock::time_point due;
    bool continuation = false;
  };
  using Turn = std::function<Next()>;

  // `workers` threads at most (at least 1), started by the first Start(); fewer when there are
  // fewer tasks. Continuations run on at most `workers - 1` of them at once (all, with one).
  explicit TaskScheduler(int workers);
  ~TaskScheduler();
  TaskScheduler(const TaskScheduler&) = delete;
  TaskScheduler& operator=(const TaskScheduler&) = delete;

  // Adds a task named `name` (unique; logs and Wake use it), first due at `first`. Before Start().
  void Add(std::string name, Turn turn, Clock::time_point first);
  void Start();
  // The task named is due now if it is waiting (a resumed link runs at once); a task in its turn
  // is not affected. False for an unknown name.
  bool Wake(const std::string& name);
  // Stops handing out turns and waits until `deadline` for the turns in hand; true when every
  // worker returned.
  bool Stop(Clock::time_point deadline);

  int workers() const { return static_cast<int>(threads_.size()); }
  // Whether a task is due and waiting for a worker (a run past its time slice hands on only then).
  bool AnyWaiting() const;
  // Turns running now, and the most that ever ran at once (tests).
  int busy() const;
  int most_busy() const;
  // The most continuations that ever ran at once (tests).
  int most_continuations() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  const int max_workers_;
  std::vector<std::thread> threads_;
};

}  // namespace sgsync::daemon
