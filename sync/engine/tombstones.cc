// Events deleted at the Portal: found by a full pull run, and (tombstones on) the member's copy
// deleted, recorded and audited.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "misp/content_hash.h"
#include "misp/elements.h"
#include "misp/event.h"
#include "sync/engine/run.h"

namespace sgsync::engine {

// An event sgsync pulled that the Portal's full index no longer lists has either been deleted
// there or merely left the sync account's view (distribution lowered, pull rules). MISP's own
// filterEventIdsForPush tells them apart (spec 7.4): it asks for an unknown uuid back, and drops
// one it still holds (as new, or unlocked as the origin's).
Status LinkEngine::FindDeletions(RunContext& run, const std::vector<misp::EventIndexEntry>& listed) {
  std::set<std::string> present;
  for (const auto& row : listed) present.insert(row.uuid);
  SGSYNC_TRY(auto written, store_.ListWritten(link_id_, state::Side::kLocal));
  std::vector<std::pair<std::string, std::int64_t>> missing;
  // An event older than the sync window is not listed, not gone: it is not asked about.
  const std::int64_t window = options_.WindowStart(static_cast<std::int64_t>(std::time(nullptr)));
  for (const auto& w : written) {
    if (!present.count(w.uuid) && w.timestamp >= window) missing.emplace_back(w.uuid, w.timestamp);
  }
  if (missing.empty()) return {};
  SGSYNC_TRY(auto answered, remote_.FilterEventIdsForPush(missing));
  // Only what was asked about counts: an answer naming any other uuid (a lying Portal) is ignored.
  std::set<std::string> asked;
  for (const auto& m : missing) asked.insert(AsciiLower(m.first));
  std::vector<std::string> gone;
  for (const auto& uuid : answered) {
    if (asked.erase(AsciiLower(uuid)) == 0) {
      spdlog::warn("link {}: the Portal's filterEventIdsForPush named {}, which was not asked about: ignored",
                   name_, uuid);
      continue;
    }
    gone.push_back(uuid);
  }
  for (const auto& uuid : gone) {
    SGSYNC_TRY(auto ledger, store_.GetLedger(link_id_, uuid));
    // A tombstone applies only to an event that came from the Portal and that sgsync wrote here.
    if (!ledger || ledger->origin != state::Side::kRemote || ledger->written_side != state::Side::kLocal)
      continue;
    // Seen before while tombstones were off: reported then, applied once they are on (issue 16
    // item 10), never counted twice.
    if (!options_.tombstones && ledger->decision == state::LedgerDecision::kDeletedAtPortal) continue;
    ++run.stats.deleted_at_source;
    state::LedgerEntry entry = *ledger;
    if (!options_.tombstones) {
      entry.decision = state::LedgerDecision::kDeletedAtPortal;
      SGSYNC_TRY_STATUS(store_.UpsertLedger(link_id_, entry));
      spdlog::info("link {}: {} was deleted at the Portal; the member's copy stays (tombstones are off)",
                   name_, uuid);
      continue;
    }
    SGSYNC_TRY(auto held, local_.EventsMetadata({uuid}));
    if (auto it = held.find(AsciiLower(uuid)); it != held.end()) {
      if (std::string why = MemberOwns(it->second); !why.empty()) {
        spdlog::warn("link {}: {} is gone from the Portal, but its deletion is refused: {}", name_, uuid,
                     why);
        if (metrics_ != nullptr) metrics_->Add(metric::kProtected, {{"link", name_}, {"what", "delete"}});
        state::AuditRecord refused{};
        refused.actor = "sgsyncd";
        refused.action = "tombstone";
        refused.target = name_ + " " + uuid;
        refused.result = "refused";
        refused.details = why;
        SGSYNC_TRY_STATUS(store_.Audit(refused));
        continue;
      }
    }
    auto deleted = local_.DeleteEvent(uuid);
    state::AuditRecord audit;
    audit.actor = "sgsyncd";
    audit.action = "tombstone";
    audit.target = name_ + " " + uuid;
    audit.result = deleted.ok() ? "ok" : deleted.error().ToString();
    audit.details = "deleted at the Portal; the member's copy deleted (its MISP blocklists the uuid)";
    SGSYNC_TRY_STATUS(store_.Audit(audit));
    if (!deleted.ok() && deleted.error().code != ErrorCode::kNotFound) {
      spdlog::warn("link {}: {} was deleted at the Portal; deleting the member's copy failed: {}", name_,
                   uuid, deleted.error().ToString());
      continue;  // tried again at the next full run
    }
    SGSYNC_TRY_STATUS(store_.AddTombstone(link_id_, uuid, "portal", "deleted"));
    entry.decision = state::LedgerDecision::kTombstoned;
    SGSYNC_TRY_STATUS(store_.UpsertLedger(link_id_, entry));
    ++run.stats.tombstoned;
    spdlog::warn("link {}: {} was deleted at the Portal: the member's copy is deleted (tombstone recorded)",
                 name_, uuid);
  }
  return {};
}

}  // namespace sgsync::engine
