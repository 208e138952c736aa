// LinkEngine::SyncClusters: custom galaxy clusters between both sides (spec 8.3).
#include <spdlog/spdlog.h>

#include <map>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "sync/engine/engine.h"
#include "sync/policy/other_data.h"

namespace sgsync::engine {

Status LinkEngine::SyncClusters(const Route& route, ChannelStats& stats) {
  // MISP syncs clusters only with a remote account that has perm_galaxy_editor, and pushes only
  // with perm_sync too (Server::syncGalaxyClusters, GalaxyCluster::pullGalaxyClusters).
  if (!options_.remote_perm_galaxy_editor) return Status();
  const bool push = route.push();
  if (push && !options_.remote_perm_sync) return Status();
  connector::MispApi& source = *route.source;
  connector::MispApi& dest = *route.destination;
  const std::string dir(route.name());

  // Published custom clusters at the source, against the versions the destination holds.
  SGSYNC_TRY(auto offered, source.ClusterVersions(true, std::nullopt));
  if (offered.empty()) return Status();
  std::vector<std::string> uuids;
  for (const auto& [uuid, version] : offered) uuids.push_back(uuid);
  // MISP's push compares with the remote's published clusters; its pull with every local copy.
  SGSYNC_TRY(auto held, dest.ClusterVersions(push, uuids));
  for (const auto& [uuid, version] : offered) {
    auto h = held.find(uuid);
    if (!policy::ClusterNewerThanRemote(version, h == held.end() ? std::nullopt : std::optional(h->second)))
      continue;
    const std::string key = dir + " " + uuid;
    if (auto seen = cluster_decided_.find(key); seen != cluster_decided_.end() && seen->second == version)
      continue;
    auto cluster = source.ViewCluster(uuid);
    if (cluster.ok() && AsciiLower(misp::StringOr(*cluster, "uuid")) != AsciiLower(uuid)) {
      cluster = Fail(ErrorCode::kCorruption,
                     "asked for cluster " + uuid + ", the answer is another cluster: refused");
    }
    if (!cluster.ok()) {
      ++stats.failed;
      spdlog::warn("link {}: {} cluster {}: {}", name_, dir, uuid, cluster.error().ToString());
      continue;
    }
    policy::ElementDecision decision = push ? policy::PrepareClusterForPush(std::move(*cluster), link_)
                                            : policy::PreparePulledCluster(std::move(*cluster), link_);
    if (!decision.send) {
      ++stats.withheld;
      spdlog::debug("link {}: cluster {} stays home: {}", name_, uuid, decision.refusal()->detail);
      cluster_decided_[key] = version;
      continue;
    }
    auto written = dest.PushCluster(decision.element);
    if (!written.ok()) {
      ++stats.failed;
      spdlog::warn("link {}: {} cluster {}: {}", name_, dir, uuid, written.error().ToString());
      continue;
    }
    if (*written == connector::ClusterPush::kKeptByReceiver) {
      ++stats.withheld;
      spdlog::info(
          "link {}: {} cluster {} version {}: the receiver keeps its own copy (its own cluster, or one "
          "at least as new)",
          name_, dir, uuid, version);
      cluster_decided_[key] = version;
      continue;
    }
    ++stats.sent;
    cluster_decided_[key] = version;
  }
  if (metrics_ != nullptr && stats.sent > 0)
    metrics_->Add(metric::kClusters, {{"link", name_}, {"direction", dir}}, static_cast<double>(stats.sent));
  return Status();
}

}  // namespace sgsync::engine
