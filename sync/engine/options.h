// sync/engine/options.h: how one link's engine behaves, as the configuration sets it
// (config/config.cc reads every field from the link's TOML table, docs/configuration.md) and
// discovery completes it (what the Portal account may do, the member's organisation).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "sync/policy/sightings.h"

namespace sgsync::engine {

// What happens to an event changed on both sides since sgsync last wrote it (docs/operations.md).
enum class ConflictPolicy {
  kPreferNewer,   // MISP's rule: the write goes ahead; the destination keeps the strictly newer copy
  kPreferPortal,  // the member's conflicting change is not pushed
  kPreferLocal,   // the Portal's conflicting change is not pulled into the member's MISP
  kManual,        // neither is written until an operator resolves the conflict
};
// "prefer-newer", "prefer-portal", "prefer-local", "manual": the configuration's and the conflict
// resolutions' text.
std::string_view ConflictPolicyName(ConflictPolicy p);
std::optional<ConflictPolicy> ParseConflictPolicy(std::string_view text);

// What to do with an event the receiver saved without some of its elements (issue 16 item 11).
enum class PartialWrite {
  kAccept,      // recorded as sent, the dropped elements in the ledger, a warning and a metric
  kRetry,       // failed and retried (the receiver's copy is checked again), dead-lettered at last
  kDeadLetter,  // straight to the dead letters
};
// "accept", "retry", "dead_letter": the configuration's text.
std::string_view PartialWriteName(PartialWrite p);
std::optional<PartialWrite> ParsePartialWrite(std::string_view text);

// The start of a failed item's error when its event was saved in part (kRetry looks for it).
inline constexpr const char* kPartialPrefix = "partial write: ";

// What one attribute of a fetched event costs once parsed: a 150k-attribute event (67 MB of JSON)
// held about 195 MiB in sgsyncd (docs/performance.md).
inline constexpr std::int64_t kParsedBytesPerAttribute = 1400;

struct EngineOptions {
  std::int64_t overlap_seconds = 600;
  int max_in_flight = 4;  // concurrent event fetches and writes per run
  int batch = 64;         // work items leased at a time
  // Events fetched per restSearch request (bulk fetch; 0 fetches each with events/view): a wave of
  // `batch` events in one, since a wave's memory is bounded by batch_memory_mb. On real MISP 2.5.1,
  // one restSearch of 64 events took a third of the CPU of four of 16 (100 against 300 ms: each
  // request costs MISP about 55 ms before it reads anything), CPU the destination's adds share on
  // a machine running both (docs/performance.md).
  int bulk_fetch = 64;
  // What the events of one batch may cost in memory once parsed (MiB; 0: no bound). A batch of
  // more than one event first asks the source for the events' attribute counts (one restSearch
  // with metadata:1) and is processed in waves that fit, an event larger than the bound alone:
  // 64 events of 100k attributes are never held at once. Estimated at kParsedBytesPerAttribute.
  int batch_memory_mb = 256;
  std::int64_t lease_seconds = 600;  // a crashed run's items become ready again after this
  // Consecutive peer failures (unavailable, rate limited, timeout) that end a run early.
  int peer_failures_to_abort = 3;
  // The Portal account has perm_sync (servers/getVersion). Without it MISP pushes no events
  // (spec 12 case 36): a push run is refused with a message saying so.
  bool remote_perm_sync = true;
  // Event deletions at the Portal reach the member: a full pull run that finds an event sgsync
  // pulled gone from the Portal deletes the member's copy (the member's MISP blocklists its uuid),
  // records a tombstone (never pulled again) and audits it. Off: the deletion is only reported.
  bool tombstones = false;
  ConflictPolicy conflict_policy = ConflictPolicy::kPreferNewer;
  PartialWrite on_partial_write = PartialWrite::kAccept;
  // Sightings travel on the side-channel runs (RunSideChannels): a big backlog never holds up events.
  bool sightings = true;
  policy::SightingsPolicy sightings_policy;  // the member's MISP's sighting settings (push)
  // Proposals (ShadowAttribute) travel on the side-channel runs too (spec 8.2).
  bool proposals = true;
  // Analyst data (notes, opinions, relationships) too (spec 8.5), when the Portal account has
  // perm_analyst_data (servers/getVersion).
  bool analyst_data = true;
  bool remote_perm_analyst_data = false;
  // Custom galaxy clusters too (spec 8.3), when the Portal account has perm_galaxy_editor.
  bool galaxy_clusters = true;
  bool remote_perm_galaxy_editor = false;
  // Proposals, clusters and analyst data have no conditional request and no index entry that says
  // they changed: they are asked for at most this often (seconds; 0: every cycle), so that an idle
  // cycle costs the conditional index requests only. A full side-channel run (sgsyncd --once --full)
  // and the first after a start ask at once. Sightings are asked
  // every cycle: their index request is conditional.
  std::int64_t other_channels_interval_seconds = 3600;

  // The sync window (docs/configuration.md, "A member joining with a large history"): events whose
  // last change is older than its start are never listed, by the first run or by a full
  // reconciliation. A fixed start (epoch seconds, 0: none) and a rolling one (days back from now,
  // 0: none); the later of the two applies.
  std::int64_t initial_sync_since = 0;
  int initial_sync_days = 0;
  // The window's start at `now` (epoch seconds), 0 when there is none.
  std::int64_t WindowStart(std::int64_t now) const {
    std::int64_t rolling = initial_sync_days > 0 ? now - std::int64_t{initial_sync_days} * 86400 : 0;
    return initial_sync_since > rolling ? initial_sync_since : rolling;
  }

  // Whether any channel beside the events is on (the side-channel runs happen at all).
  bool side_channels_on() const { return sightings || proposals || analyst_data || galaxy_clusters; }
};

}  // namespace sgsync::engine
