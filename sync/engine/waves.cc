// The run's queue worked through in waves. A wave is prepared (fetched from the source, decided,
// offered to the destination: batch.cc) while the run's writers are still writing the one before,
// and the writers go on from the last writes of one wave to the first of the next. Before, each
// wave was prepared only once the last write of the one before had returned: on real MISP 2.5.1
// the destination then sat idle about 0.35 s at each wave (the sizes, the bulk fetch and
// filterEventIdsForPush, one after the other), and the wave's last writes went out one or two at a
// time (docs/performance.md).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <list>
#include <thread>

#include "common/encoding.h"
#include "sync/engine/run.h"

namespace sgsync::engine {

// The run's writers: max_in_flight threads writing the waves' events in the order they were added.
// It holds at most two waves (the one written and the one prepared beside it) and, under a memory
// bound, only as many as fit it together; a wave is freed once its last write has returned and
// its completions are written.
class LinkEngine::WritePool {
 public:
  WritePool(LinkEngine& engine, RunContext& run) : engine_(engine), run_(run), parent_(CurrentLogContext()) {}
  WritePool(const WritePool&) = delete;
  WritePool& operator=(const WritePool&) = delete;
  ~WritePool() { Close(); }

  // Waits until a wave costing `cost` bytes may be prepared beside those in hand: fewer than two
  // are, and with a bound (`budget` > 0 bytes), their costs and `cost` fit it. Always, when none is.
  void WaitForRoom(std::int64_t cost, std::int64_t budget) {
    while (true) {
      std::unique_lock lock(mu_);
      auto room = [&] {
        std::int64_t used = 0;
        for (const auto& h : in_hand_) used += h.wave->cost;
        return in_hand_.empty() || (in_hand_.size() < 2 && (budget <= 0 || used + cost <= budget));
      };
      cv_.wait(lock, [&] { return room() || AnyWritten(); });
      if (!AnyWritten()) return;
      RetireWritten(lock);
    }
  }

  // Hands the wave's writes out to the writers, after those already handed out.
  void Add(std::unique_ptr<Wave> wave) {
    std::lock_guard lock(mu_);
    in_hand_.push_back({std::move(wave), 0});
    InHand& h = in_hand_.back();
    h.left = h.wave->to_write.size();
    for (Prepared* p : h.wave->to_write) queued_.push_back({&h, p});
    const std::size_t width = static_cast<std::size_t>(std::max(1, engine_.options_.max_in_flight));
    while (threads_.size() < std::min(width, queued_.size() + busy_))
      threads_.emplace_back([this] { Work(); });
    cv_.notify_all();
  }

  // No more waves: waits for every write, then completes and frees every wave. Fails when an item
  // not written (the run stopped) could not be handed back to the queue.
  Status Finish() {
    Close();
    std::unique_lock lock(mu_);
    RetireWritten(lock);
    return release_failure_;
  }

 private:
  struct InHand {
    std::unique_ptr<Wave> wave;
    std::size_t left = 0;  // writes not returned yet (queued or being written)
  };

  void Work() {
    ScopedLogContext context(parent_);
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return closed_ || !queued_.empty(); });
      if (queued_.empty()) return;
      auto [h, p] = queued_.front();
      queued_.pop_front();
      ++busy_;
      lock.unlock();
      Status released;
      // Once the run stops, no further event is handed out: the rest go back to the queue.
      if (run_.ShouldStop()) {
        released = engine_.store_.Release(p->item.id);
      } else {
        ScopedLogContext event({"", "", "", p->item.uuid});
        engine_.Write(run_, *p);
      }
      lock.lock();
      --busy_;
      if (!released.ok() && release_failure_.ok()) release_failure_ = released;
      if (--h->left == 0) cv_.notify_all();
    }
  }

  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    threads_.clear();  // joins: the writers drain the queue before they see it closed
  }

  bool AnyWritten() const {
    return std::any_of(in_hand_.begin(), in_hand_.end(), [](const InHand& h) { return h.left == 0; });
  }
  // Completes and frees the waves whose writes have all returned; `lock` (on mu_) is let go meanwhile.
  void RetireWritten(std::unique_lock<std::mutex>& lock) {
    std::list<InHand> written;
    for (auto it = in_hand_.begin(); it != in_hand_.end();) {
      auto next = std::next(it);
      if (it->left == 0) written.splice(written.end(), in_hand_, it);
      it = next;
    }
    if (written.empty()) return;
    lock.unlock();
    engine_.CompleteFinished(run_);  // before the waves' events are freed (RunContext::completing)
    written.clear();
    lock.lock();
  }

  LinkEngine& engine_;
  RunContext& run_;
  const LogContext parent_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::list<InHand> in_hand_;                         // guarded by mu_
  std::deque<std::pair<InHand*, Prepared*>> queued_;  // guarded by mu_: not handed out yet
  std::size_t busy_ = 0;                              // guarded by mu_: writes being made
  bool closed_ = false;                               // guarded by mu_
  Status release_failure_;                            // guarded by mu_
  std::vector<std::jthread> threads_;                 // only the thread that adds and finishes touches it
};

namespace {

// batch_memory_mb in bytes; 0: no bound.
std::int64_t MemoryBound(const EngineOptions& o) {
  return std::int64_t{std::max(0, o.batch_memory_mb)} << 20;
}

}  // namespace

std::vector<LinkEngine::PendingWave> LinkEngine::Waves(RunContext& run, std::vector<state::WorkItem> items) {
  std::vector<PendingWave> waves;
  const std::int64_t budget = MemoryBound(options_);
  if (budget == 0 || items.size() <= 1) {
    waves.push_back({std::move(items), budget});
    return waves;
  }
  std::vector<std::string> uuids;
  for (const auto& item : items) uuids.push_back(item.uuid);
  auto sizes = run.route.source->EventsMetadata(uuids);
  if (!sizes.ok()) {
    // Not a reason to fail the batch: its events are fetched as before, in one wave.
    spdlog::debug("link {}: the batch's sizes could not be read ({}); one wave", name_,
                  sizes.error().ToString());
    waves.push_back({std::move(items), budget});
    return waves;
  }
  for (auto& item : items) {
    auto it = sizes->find(AsciiLower(item.uuid));
    const std::int64_t cost =
        (it == sizes->end() ? 0 : std::max<std::int64_t>(0, it->second.attribute_count)) *
        kParsedBytesPerAttribute;
    if (waves.empty() || (waves.back().cost > 0 && waves.back().cost + cost > budget)) waves.emplace_back();
    waves.back().items.push_back(std::move(item));
    waves.back().cost += cost;
  }
  if (waves.size() > 1)
    spdlog::debug("link {}: {} events in {} waves of at most {} MiB", name_, uuids.size(), waves.size(),
                  options_.batch_memory_mb);
  return waves;
}

Status LinkEngine::ProcessQueue(RunContext& run, std::deque<PendingWave> pending, bool lease_more) {
  const std::int64_t budget = MemoryBound(options_);
  Status failed;
  WritePool writers(*this, run);
  // The run's first lease is small (two events per writer): the destination starts writing those
  // while the full batch after them is fetched. A full batch first would keep it idle for the
  // batch's sizes, fetch and filter, about 0.4 s for 64 events on real MISP (docs/performance.md).
  int lease = std::min(options_.batch, 2 * std::max(1, options_.max_in_flight));
  while (!run.ShouldStop()) {
    if (pending.empty()) {
      if (!lease_more) break;
      auto items = store_.Lease(link_id_, run.route.direction, lease, options_.lease_seconds);
      lease = options_.batch;
      if (!items.ok()) {
        failed = items.error();
        break;
      }
      if (items->empty()) break;
      for (auto& w : Waves(run, std::move(*items))) pending.push_back(std::move(w));
    }
    writers.WaitForRoom(pending.front().cost, budget);
    if (run.ShouldStop()) break;
    auto wave = std::make_unique<Wave>();
    wave->cost = pending.front().cost;
    std::vector<state::WorkItem> items = std::move(pending.front().items);
    pending.pop_front();
    if (Status st = PrepareWave(run, std::move(items), *wave); !st.ok()) {
      CompleteFinished(run);  // what it finished, before its events are freed
      failed = st;
      break;
    }
    writers.Add(std::move(wave));
  }
  Status written = writers.Finish();
  // The waves not reached (a stop, a failure of the state store) go back to the queue at once.
  for (const auto& w : pending) {
    for (const auto& item : w.items) {
      if (Status released = store_.Release(item.id); !released.ok()) {
        spdlog::error("link {}: handing back the waves not reached: {}", name_, released.error().ToString());
        if (failed.ok()) failed = released;
      }
    }
  }
  if (!failed.ok()) return failed;
  return written;
}

}  // namespace sgsync::engine
