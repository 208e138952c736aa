// LinkEngine::SyncAnalystData: notes, opinions and relationships between both sides (spec 8.5).
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "sync/engine/engine.h"
#include "sync/policy/other_data.h"

namespace sgsync::engine {

using AnalystIndex = std::map<std::string, std::map<std::string, std::string>>;

Status LinkEngine::SyncAnalystData(const Route& route, ChannelStats& stats) {
  // MISP syncs analyst data only with a remote account that has perm_analyst_data, and pushes
  // only with perm_sync too (AnalystData::push, ::pull; spec 8.5).
  if (!options_.remote_perm_analyst_data) return Status();
  const bool push = route.push();
  const std::string dir(route.name());
  if (push) {
    if (!options_.remote_perm_sync) return Status();
    SGSYNC_TRY(AnalystIndex index, route.source->AnalystDataIndex());
    AnalystIndex candidates;
    std::map<std::string, json::object> prepared;
    for (const auto& [type, entries] : index) {
      std::vector<std::string> changed;
      for (const auto& [uuid, modified] : entries) {
        auto seen = analyst_decided_.find(uuid);
        if (seen == analyst_decided_.end() || seen->second != modified) changed.push_back(uuid);
      }
      if (changed.empty()) continue;
      SGSYNC_TRY(json::array rows, route.source->AnalystData(type, changed));
      for (auto& row : rows) {
        std::string uuid(misp::StringOr(row.as_object(), "uuid"));
        std::string modified(misp::StringOr(row.as_object(), "modified"));
        policy::ElementDecision decision =
            policy::PrepareAnalystDataForPush(type, std::move(row.as_object()), link_);
        if (!decision.send) {
          ++stats.withheld;
          spdlog::debug("link {}: {} {} stays home: {}", name_, type, uuid, decision.refusal()->detail);
          analyst_decided_[uuid] = modified;
          continue;
        }
        candidates[type][uuid] = modified;
        prepared[uuid] = std::move(decision.element);
      }
    }
    if (candidates.empty()) return Status();
    // Only what passed the policy is offered: the receiver never learns of the rest.
    SGSYNC_TRY(AnalystIndex wanted, route.destination->FilterAnalystDataForPush(candidates));
    for (const auto& [type, entries] : candidates) {
      for (const auto& [uuid, modified] : entries) {
        auto t = wanted.find(type);
        if (t == wanted.end() || !t->second.contains(uuid)) {
          analyst_decided_[uuid] = modified;  // the Portal has it, or its own copy wins
          continue;
        }
        if (auto st = route.destination->PushAnalystData(type, prepared[uuid]); !st.ok()) {
          ++stats.failed;
          spdlog::warn("link {}: push {} {}: {}", name_, type, uuid, st.error().ToString());
          continue;
        }
        ++stats.sent;
        analyst_decided_[uuid] = modified;
      }
    }
  } else {
    // MISP's pull sends its org pull rules as creator-organisation filters (spec 8.5).
    std::vector<std::string> names = link_.pull_rules.orgs_or;
    for (const auto& n : link_.pull_rules.orgs_not) names.push_back("!" + n);
    SGSYNC_TRY(AnalystIndex remote_index, route.source->AnalystDataIndex(names));
    if (remote_index.empty()) return Status();
    SGSYNC_TRY(AnalystIndex local_index, route.destination->AnalystDataIndex());
    for (const auto& [type, entries] : remote_index) {
      std::vector<std::string> fetch;
      for (const auto& [uuid, modified] : entries) {
        auto t = local_index.find(type);
        if (t == local_index.end() || !t->second.contains(uuid) || t->second.at(uuid) < modified)
          fetch.push_back(uuid);
      }
      if (fetch.empty()) continue;
      SGSYNC_TRY(json::array rows, route.source->AnalystData(type, fetch));
      std::set<std::string> asked;
      for (const auto& u : fetch) asked.insert(AsciiLower(u));
      for (auto& row : rows) {
        // Only what was asked for, once (docs/security.md): a row for another uuid is not written.
        if (!row.is_object() || asked.erase(AsciiLower(misp::StringOr(row.as_object(), "uuid"))) == 0) {
          ++stats.failed;
          spdlog::warn("link {}: pull {}: the Portal answered with an entry that was not asked for: ignored",
                       name_, type);
          continue;
        }
        json::object& entry = row.as_object();
        std::string uuid(misp::StringOr(entry, "uuid"));
        if (policy::PullBlocklisted(link_, "", misp::StringOr(entry, "orgc_uuid"))) {
          ++stats.withheld;
          continue;
        }
        policy::ElementDecision decision = policy::PreparePulledAnalystData(type, std::move(entry), link_);
        if (auto st = route.destination->PushAnalystData(type, decision.element); !st.ok()) {
          ++stats.failed;
          spdlog::warn("link {}: pull {} {}: {}", name_, type, uuid, st.error().ToString());
          continue;
        }
        ++stats.sent;
      }
    }
  }
  if (metrics_ != nullptr && stats.sent > 0)
    metrics_->Add(metric::kAnalystData, {{"link", name_}, {"direction", dir}},
                  static_cast<double>(stats.sent));
  return Status();
}

}  // namespace sgsync::engine
