#include "daemon/task_scheduler.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

namespace sgsync::daemon {

struct TaskScheduler::State {
  struct Task {
    std::string name;
    Turn turn;
    bool waiting = true;  // false while a worker runs its turn
    Clock::time_point due;
    std::uint64_t seq = 0;  // when it became waiting: ties on `due` go to the longest waiting
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Task> tasks;
  // (due, seq, index into tasks) of the waiting tasks, earliest first.
  std::set<std::tuple<Clock::time_point, std::uint64_t, std::size_t>> queue;
  std::uint64_t next_seq = 0;
  bool stopping = false;
  int busy = 0, most_busy = 0, running_workers = 0;

  void Enqueue(std::size_t i, Clock::time_point due) {
    Task& t = tasks[i];
    t.waiting = true;
    t.due = due;
    t.seq = next_seq++;
    queue.emplace(t.due, t.seq, i);
  }

  void Work() {
    std::unique_lock lock(mu);
    while (!stopping) {
      if (queue.empty()) {
        cv.wait(lock);
        continue;
      }
      auto [due, seq, i] = *queue.begin();
      if (Clock::now() < due) {
        cv.wait_until(lock, due);
        continue;
      }
      queue.erase(queue.begin());
      Task& t = tasks[i];
      t.waiting = false;
      most_busy = std::max(most_busy, ++busy);
      Turn turn = t.turn;
      lock.unlock();
      Clock::time_point next = turn();
      lock.lock();
      --busy;
      // A task due again already waits behind those that became due before it returned.
      Enqueue(i, std::max(next, Clock::now()));
      cv.notify_one();
    }
    --running_workers;
    cv.notify_all();
  }
};

TaskScheduler::TaskScheduler(int workers) : state_(std::make_shared<State>()), max_workers_(std::max(1, workers)) {}

TaskScheduler::~TaskScheduler() { Stop(Clock::now()); }

void TaskScheduler::Add(std::string name, Turn turn, Clock::time_point first) {
  std::lock_guard lock(state_->mu);
  State::Task t;
  t.name = std::move(name);
  t.turn = std::move(turn);
  state_->tasks.push_back(std::move(t));
  state_->Enqueue(state_->tasks.size() - 1, first);
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
      state_->queue.erase({t.due, t.seq, i});
      state_->Enqueue(i, Clock::now());
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

int TaskScheduler::busy() const {
  std::lock_guard lock(state_->mu);
  return state_->busy;
}

int TaskScheduler::most_busy() const {
  std::lock_guard lock(state_->mu);
  return state_->most_busy;
}

}  // namespace sgsync::daemon
