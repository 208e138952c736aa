#include "daemon/task_scheduler.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

namespace sgsync::daemon {

struct TaskScheduler::State {
  struct Task {
    std::string name;
    Turn turn;
    bool waiting = true;  // false while a worker runs its turn
    bool continuation = false;
    Clock::time_point due;
    std::uint64_t seq = 0;  // when it became waiting: ties on `due` go to the longest waiting
  };
  using Queue = std::set<std::tuple<Clock::time_point, std::uint64_t, std::size_t>>;

  explicit State(int workers) : max_continuations(std::max(1, workers - 1)) {}

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Task> tasks;
  // (due, seq, index into tasks) of the waiting tasks of each class, earliest first.
  Queue regular, continuations;
  std::uint64_t next_seq = 0;
  bool stopping = false;
  const int max_continuations;
  int busy = 0, most_busy = 0, running_workers = 0, continuing = 0, most_continuing = 0;

  Queue& QueueOf(const Task& t) { return t.continuation ? continuations : regular; }

  void Enqueue(std::size_t i, Next next) {
    Task& t = tasks[i];
    t.waiting = true;
    t.continuation = next.continuation;
    t.due = next.due;
    t.seq = next_seq++;
    QueueOf(t).emplace(t.due, t.seq, i);
  }

  // The task a free worker takes now, if any; otherwise when to look again (max(): on a notify).
  std::optional<std::size_t> Pick(Clock::time_point now, Clock::time_point& wake_at) {
    wake_at = Clock::time_point::max();
    if (!regular.empty()) {
      auto [due, seq, i] = *regular.begin();
      if (due <= now) {
        regular.erase(regular.begin());
        return i;
      }
      wake_at = due;
    }
    if (!continuations.empty() && continuing < max_continuations) {
      auto [due, seq, i] = *continuations.begin();
      if (due <= now) {
        continuations.erase(continuations.begin());
        return i;
      }
      wake_at = std::min(wake_at, due);
    }
    return std::nullopt;
  }

  void Work() {
    std::unique_lock lock(mu);
    while (!stopping) {
      Clock::time_point wake_at;
      std::optional<std::size_t> picked = Pick(Clock::now(), wake_at);
      if (!picked) {
        if (wake_at == Clock::time_point::max()) {
          cv.wait(lock);
        } else {
          cv.wait_until(lock, wake_at);
        }
        continue;
      }
      Task& t = tasks[*picked];
      t.waiting = false;
      const bool continuation = t.continuation;
      most_busy = std::max(most_busy, ++busy);
      if (continuation) most_continuing = std::max(most_continuing, ++continuing);
      Turn turn = t.turn;
      lock.unlock();
      Next next = turn();
      lock.lock();
      --busy;
      if (continuation) --continuing;
      // A task due again already waits behind those of its class that became due before it returned.
      next.due = std::max(next.due, Clock::now());
      Enqueue(*picked, next);
      cv.notify_all();  // a continuation's slot may be free again: any worker may take it
    }
    --running_workers;
    cv.notify_all();
  }
};

TaskScheduler::TaskScheduler(int workers)
    : state_(std::make_shared<State>(std::max(1, workers))), max_workers_(std::max(1, workers)) {}

TaskScheduler::~TaskScheduler() { Stop(Clock::now()); }

void TaskScheduler::Add(std::string name, Turn turn, Clock::time_point first) {
  std::lock_guard lock(state_->mu);
  State::Task t;
  t.name = std::move(name);
  t.turn = std::move(turn);
  state_->tasks.push_back(std::move(t));
  state_->Enqueue(state_->tasks.size() - 1, Next{first, false});
}

void TaskScheduler::Start() {
  std::lock_guard lock(state_->mu);
  if (!threads_.empty()) return;
  const int n = std::min<int>(max_workers_, static_cast<int>(state_->tasks.size()));
  state_->running_workers = n;
  for (int w = 0; w < n; ++w) threads_.emplace_back([s = state_] { s->Work(); });
}

bool TaskScheduler::Wake(const std::string& name) {
  std::lock_guard lock(state_->mu);
  for (std::size_t i = 0; i < state_->tasks.size(); ++i) {
    State::Task& t = state_->tasks[i];
    if (t.name != name) continue;
    if (t.waiting && t.due > Clock::now()) {
      state_->QueueOf(t).erase({t.due, t.seq, i});
      state_->Enqueue(i, Next{Clock::now(), t.continuation});
      state_->cv.notify_one();
    }
    return true;
  }
  return false;
}

bool TaskScheduler::Stop(Clock::time_point deadline) {
  bool all = true;
  {
    std::unique_lock lock(state_->mu);
    state_->stopping = true;
    state_->cv.notify_all();
    all = state_->cv.wait_until(lock, deadline, [&] { return state_->running_workers == 0; });
  }
  for (auto& t : threads_) {
    if (all) {
      t.join();
    } else {
      t.detach();  // it holds its own reference to the state
    }
  }
  threads_.clear();
  return all;
}

bool TaskScheduler::AnyWaiting() const {
  std::lock_guard lock(state_->mu);
  const auto now = Clock::now();
  auto due = [&](const State::Queue& q) { return !q.empty() && std::get<0>(*q.begin()) <= now; };
  return due(state_->regular) || (due(state_->continuations) && state_->continuing < state_->max_continuations);
}

int TaskScheduler::busy() const {
  std::lock_guard lock(state_->mu);
  return state_->busy;
}

int TaskScheduler::most_busy() const {
  std::lock_guard lock(state_->mu);
  return state_->most_busy;
}

int TaskScheduler::most_continuations() const {
  std::lock_guard lock(state_->mu);
  return state_->most_continuing;
}

}  // namespace sgsync::daemon
