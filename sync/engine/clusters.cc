// LinkEngine::SyncClusters: custom galaxy clusters between both sides (spec 8.3).
#include <spdlog/spdlog.h>

#include <map>

#include "common/encoding.h"
#include "sync/engine/engine.h"
#include "sync/policy/other_data.h"

namespace sgsync::engine {

namespace {

// The receiver keeps its own copy of a cluster (not received by sync) and ignores a version that
// is not newer: neither changes by trying again, so it is not a failure (captureCluster).
bool PermanentRefusal(const Error& e) {
  return (e.code == ErrorCode::kRefused || e.code == ErrorCode::kPermissionDenied) &&
         (e.message.find("created locally") != std::string::npos ||
          e.message.find("not newer") != std::string::npos ||
          e.message.find("non-default") != std::string::npos);
}

}  // namespace

Status LinkEngine::SyncClusters(Direction d, SightingsStats& stats) {
  // MISP syncs clusters only with a remote account that has perm_galaxy_editor, and pushes only
  // with perm_sync too (Server::syncGalaxyClusters, GalaxyCluster::pullGalaxyClusters).
  if (!options_.remote_perm_galaxy_editor) return Status();
  const bool push = d == Direction::kPush;
  if (push && !options_.remote_perm_sync) return Status();
  connector::MispApi& source = push ? local_ : remote_;
  connector::MispApi& dest = push ? remote_ : local_;
  const std::string dir(DirectionName(d));

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
      cluster = Fail(ErrorCode::kCorruption, "asked for cluster " + uuid + ", the answer is another cluster: refused");
    }
    if (!cluster.ok()) {
      ++stats.clusters_failed;
      spdlog::warn("link {}: {} cluster {}: {}", name_, dir, uuid, cluster.error().ToString());
      continue;
    }
    policy::ElementDecision decision = push ? policy::PrepareClusterForPush(std::move(*cluster), link_)
                                            : policy::PreparePulledCluster(std::move(*cluster), link_);
    if (!decision.send) {
      ++stats.clusters_withheld;
      spdlog::debug("link {}: cluster {} stays home: {}", name_, uuid, decision.refusal()->detail);
      cluster_decided_[key] = version;
      continue;
    }
    if (Status written = dest.PushCluster(decision.element); !written.ok()) {
      if (PermanentRefusal(written.error())) {
        ++stats.clusters_withheld;
        spdlog::info("link {}: {} cluster {} version {} refused by the receiver: {}", name_, dir, uuid,
                     version, written.error().ToString());
        cluster_decided_[key] = version;
      } else {
        ++stats.clusters_failed;
        spdlog::warn("link {}: {} cluster {}: {}", name_, dir, uuid, written.error().ToString());
      }
      continue;
    }
    ++stats.clusters_sent;
    cluster_decided_[key] = version;
  }
  if (metrics_ != nullptr && stats.clusters_sent > 0)
    metrics_->Add("sgsync_clusters_total", {{"link", name_}, {"direction", dir}},
                  static_cast<double>(stats.clusters_sent));
  return Status();
}

}  // namespace sgsync::engine
