// sync/engine/run.h: what one events run of LinkEngine carries between its steps (private to
// sync/engine: events.cc, batch.cc, write.cc, conflicts.cc, tombstones.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/log_context.h"
#include "sync/engine/engine.h"

namespace sgsync::engine {

// Whether `e` says the MISP itself is in trouble (down, rate limiting, timing out), not the event.
inline bool PeerTrouble(const Error& e) {
  return e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kRateLimited ||
         e.code == ErrorCode::kTimeout;
}

// Runs fn(i) for i in [0, n) on up to `width` threads; stops handing out work once `stop()` holds
// and returns how many were handed out (a prefix of [0, n)). The workers log with the caller's
// context (link, direction, run).
template <typename Fn, typename Stop>
inline std::size_t ForEachBounded(std::size_t n, int width, Fn fn, Stop stop) {
  std::atomic<std::size_t> next{0};
  const LogContext parent = CurrentLogContext();
  auto worker = [&] {
    ScopedLogContext context(parent);
    while (true) {
      if (stop()) return;
      std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      fn(i);
    }
  };
  std::size_t threads = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, width)));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::jthread> pool;
    for (std::size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
  }
  return std::min(next.load(), n);
}

// One event on its way through a run.
struct LinkEngine::Prepared {
  // The arena of the bulk answer `prefetched` came in, which the decided event lives in too
  // (EventDocument::arena): first, so that it goes after them.
  std::shared_ptr<const void> arena;
  state::WorkItem item;
  std::optional<state::LedgerEntry> ledger;  // as it was before this run
  std::int64_t source_timestamp = 0;
  std::string source_hash;
  std::optional<policy::Decision> decision;
  std::optional<json::object> prefetched;  // from a bulk restSearch
  json::array sightings;                   // push: the sightings the event carried (EmbeddedSightings)
  bool done = false;                       // finished (completed or failed); nothing more to do
  bool reached = false;                    // the destination holds this version (sent, or already there)
};

// A wave of a run, prepared: its events fetched, decided and offered to the destination. Those it
// needs are in `to_write`, written by the run's WritePool; the rest are finished already.
struct LinkEngine::Wave {
  std::vector<Prepared> batch;
  std::vector<Prepared*> to_write;  // into `batch`
  std::int64_t cost = 0;            // PendingWave::cost
};

class LinkEngine::RunContext {
 public:
  RunContext(Route r, const RunOptions& o) : route(r), options(o) {}
  const Route route;
  const RunOptions& options;
  std::mutex mu;  // guards stats and finished
  RunStats stats;
  std::atomic<int> peer_failures{0};
  std::atomic<bool> peer_down{false};
  // An item of this run has reached its end (sent, already there, skipped, held or failed).
  std::atomic<bool> progressed{false};
  // Items finished (LinkEngine::Finish) whose completion is not written to the store yet: written
  // together, in one transaction, once as many have gathered as the run has writes in flight, and
  // before their wave is freed (LinkEngine::CompleteFinished).
  struct Finished {
    Prepared* p;
    state::LedgerEntry entry;
    Outcome outcome;
  };
  std::vector<Finished> finished;  // guarded by mu
  // Held through each CompleteFinished: a wave is freed only after its last completion, which
  // another thread may have taken out of `finished` and still be writing, is done.
  std::mutex completing;

  // The run's time slice is over (RunOptions::yield_at): no further event is handed out, those in
  // hand are finished, the rest go back to the queue for the next turn. Not before one item has
  // been finished: a listing longer than the slice would otherwise end every turn with nothing done,
  // and the link would never move while other links wait (the cursor stays behind queued work, so
  // each turn lists the same events again).
  bool SliceUp() const {
    return progressed.load() && options.yield_at && std::chrono::steady_clock::now() >= *options.yield_at &&
           (!options.others_waiting || options.others_waiting());
  }
  bool ShouldStop() const {
    return peer_down.load() || (options.stop != nullptr && options.stop->load()) || SliceUp();
  }
  void Report() {
    if (!options.progress) return;
    RunStats copy;
    {
      std::lock_guard lock(mu);
      copy = stats;
    }
    options.progress(copy);
  }
};

}  // namespace sgsync::engine
