// LinkEngine's sightings channel (spec 8.1; engine.h, RunSideChannels).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <future>
#include <map>
#include <set>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "sync/engine/engine.h"

namespace sgsync::engine {

namespace {

constexpr std::size_t kEventsPerSearch = 20;        // MISP's pull asks 20 events at a time (spec 8.1)
constexpr std::size_t kSightingsPerRequest = 2000;  // bulkSaveSightings bodies stay small

}  // namespace

Status LinkEngine::SyncSightings(const Route& route, const RunOptions& options, SightingsStats& stats) {
  const bool push = route.push();
  connector::MispApi& source = *route.source;
  const std::string dir(route.name());

  SGSYNC_TRY(state::Cursor cursor,
             store_.GetCursor(link_id_, route.direction, state::CursorKind::kSightings));
  const json::object filter = BaseIndexFilter(route);
  const std::string channel = "sightings " + dir, filter_text = json::serialize(filter);
  const int slot = push ? 0 : 1;
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  // The events channel's last index of this direction, when it is recent enough: no request.
  std::vector<std::pair<std::string, std::int64_t>> listed;
  std::optional<std::uint64_t> generation;
  if (!options.full && options.shared_index_max_age_seconds > 0) {
    std::lock_guard lock(snapshot_mu_);
    const SightingsSnapshot& snap = snapshot_[slot];
    if (snap.generation > 0 && snap.filter == filter_text &&
        now - snap.confirmed_at <= options.shared_index_max_age_seconds) {
      generation = snap.generation;
      if (snap.generation != sightings_done_generation_[slot]) listed = snap.rows;
    }
  }
  std::string page_etag;
  if (generation && *generation == sightings_done_generation_[slot]) {
    stats.not_modified = true;
    stats.cursor = cursor.last_timestamp;
    return {};
  }
  if (!generation) {
    std::string etag = options.full ? "" : CachedEtag(channel, filter_text);
    SGSYNC_TRY(connector::IndexPage page, source.EventIndex(filter, etag));
    if (page.not_modified) {
      stats.not_modified = true;
      stats.cursor = cursor.last_timestamp;
      return {};
    }
    page_etag = page.etag;
    for (auto& row : page.rows) {
      if (row.sighting_timestamp > 0) listed.emplace_back(std::move(row.uuid), row.sighting_timestamp);
    }
  }
  // Events with new sightings that both sides hold: on push, those the Portal has (sgsync sent
  // them, or pulled them from it); on pull, those the member has.
  struct Due {
    std::string uuid;
    std::int64_t sighting_timestamp;
  };
  std::vector<Due> due;
  std::int64_t newest = cursor.last_timestamp;
  for (auto& [uuid, sighting_timestamp] : listed) {
    if (sighting_timestamp <= cursor.last_timestamp && !options.full) continue;
    if (sighting_timestamp == 0) continue;
    if (!PlausibleTimestamp(sighting_timestamp)) {
      spdlog::warn("link {}: {} sightings of {} left out: sighting timestamp {} is not plausible", name_, dir,
                   uuid, sighting_timestamp);
      if (metrics_ != nullptr)
        metrics_->Add(metric::kIndexRowsRejected,
                      {{"link", name_}, {"direction", dir}, {"reason", "implausible_timestamp"}});
      continue;
    }
    SGSYNC_TRY(auto ledger, store_.GetLedger(link_id_, uuid));
    if (!ledger) continue;
    if (!DestinationHolds(*ledger, route.destination_side)) continue;
    due.push_back(Due{std::move(uuid), sighting_timestamp});
  }
  bool all_ok = true;
  for (std::size_t from = 0; from < due.size(); from += kEventsPerSearch) {
    if (options.stop != nullptr && options.stop->load()) {
      all_ok = false;
      break;
    }
    std::size_t to = std::min(due.size(), from + kEventsPerSearch);
    std::vector<std::string> uuids;
    for (std::size_t i = from; i < to; ++i) uuids.push_back(due[i].uuid);
    auto rows = source.SightingsForEvents(uuids);
    if (!rows.ok()) {
      spdlog::warn("link {}: {} sightings of {} events: {}", name_, dir, uuids.size(),
                   rows.error().ToString());
      stats.failed_events += static_cast<std::int64_t>(uuids.size());
      all_ok = false;
      continue;
    }
    std::map<std::string, json::array> by_event;
    for (auto& r : *rows) {
      const json::object* s = nullptr;
      if (r.is_object()) {
        const json::value* inner = r.as_object().if_contains("Sighting");
        s = inner != nullptr && inner->is_object() ? &inner->as_object() : &r.as_object();
      }
      if (s == nullptr) continue;
      by_event[AsciiLower(std::string(misp::StringOr(*s, "event_uuid")))].push_back(r);
    }
    for (std::size_t i = from; i < to; ++i) {
      const std::string& event = due[i].uuid;
      ++stats.events;
      const json::array& event_rows = by_event[AsciiLower(event)];
      SGSYNC_TRY(bool sent_all, SendEventSightings(route, event, event_rows, stats));
      if (!sent_all) {
        ++stats.failed_events;
        all_ok = false;
      }
    }
    for (std::size_t i = from; i < to; ++i) newest = std::max(newest, due[i].sighting_timestamp);
  }
  // An incomplete run asks for the whole index (or takes the shared rows) again next time.
  if (generation) {
    if (all_ok) sightings_done_generation_[slot] = *generation;
  } else {
    RememberEtag(channel, filter_text, all_ok ? page_etag : "");
  }
  if (all_ok && newest > cursor.last_timestamp) {
    SGSYNC_TRY_STATUS(store_.AdvanceCursor(link_id_, route.direction, state::CursorKind::kSightings, newest));
    cursor.last_timestamp = newest;
  }
  stats.cursor = cursor.last_timestamp;
  if (metrics_ != nullptr) {
    metrics_->Add(metric::kSightings, {{"link", name_}, {"direction", dir}, {"outcome", "sent"}},
                  static_cast<double>(stats.sent));
    metrics_->Add(metric::kSightings, {{"link", name_}, {"direction", dir}, {"outcome", "withheld"}},
                  static_cast<double>(stats.withheld));
  }
  if (stats.sent > 0 || stats.failed_events > 0) {
    spdlog::info(
        "link {} {} sightings: {} events, sent {}, already there {}, withheld by policy {}, failed events {}",
        name_, dir, stats.events, stats.sent, stats.already, stats.withheld, stats.failed_events);
  }
  return {};
}

Result<bool> LinkEngine::SendEventSightings(const Route& route, const std::string& event,
                                            const json::array& event_rows, SightingsStats& stats) {
  const bool push = route.push();
  connector::MispApi& dest = *route.destination;
  const std::string dir(route.name());
  // Push: the member's policy decides what the Portal's organisation may see. Pull: the Portal
  // served what its policy lets sgsync's account see; it is taken as served.
  policy::SightingsPolicy pol = options_.sightings_policy;
  if (!push) pol = policy::SightingsPolicy{2, false, {}, ""};
  auto sel = policy::SelectSightings(event_rows, link_.local.org.uuid,
                                     push ? link_.remote.org.uuid : link_.local.org.uuid, pol);
  stats.withheld += static_cast<std::int64_t>(sel.withheld);
  std::vector<std::string> offered;
  std::map<std::string, const json::value*> row_by_uuid;
  for (const auto& r : sel.send) {
    std::string u(misp::StringOr(r.as_object(), "uuid"));
    offered.push_back(u);
    row_by_uuid[AsciiLower(u)] = &r;
  }
  if (offered.empty()) return true;
  SGSYNC_TRY(auto unsynced, store_.UnsyncedSightings(link_id_, route.direction, offered));
  if (unsynced.empty()) return true;
  auto known = dest.KnownSightings(event, unsynced);
  if (!known.ok()) {
    spdlog::warn("link {}: {} sightings of {}: {}", name_, dir, event, known.error().ToString());
    return false;
  }
  std::set<std::string> have;
  for (const auto& k : *known) have.insert(AsciiLower(k));
  json::array batch;
  bool ok = true;
  auto flush = [&] {
    if (batch.empty() || !ok) return;
    auto saved = dest.SaveSightings(event, batch);
    if (!saved.ok()) {
      spdlog::warn("link {}: {} sightings of {}: {}", name_, dir, event, saved.error().ToString());
      ok = false;
      return;
    }
    stats.sent += static_cast<std::int64_t>(batch.size());
    batch = json::array();
  };
  for (const auto& u : unsynced) {
    if (have.count(AsciiLower(u))) {
      ++stats.already;
      continue;
    }
    batch.push_back(*row_by_uuid[AsciiLower(u)]);
    if (batch.size() >= kSightingsPerRequest) flush();
  }
  flush();
  if (!ok) return false;
  SGSYNC_TRY_STATUS(store_.MarkSightingsSynced(link_id_, route.direction, event, unsynced));
  return true;
}

}  // namespace sgsync::engine
