#include "sync/policy/other_data.h"

#include "misp/event.h"
#include "sync/policy/policy.h"

namespace sgsync::policy {

namespace {

class Recorder {
 public:
  explicit Recorder(ElementDecision& d) : d_(d) {}
  void Add(std::string rule, std::string path, std::string action, std::string from, std::string to,
           std::string detail, std::string spec) {
    d_.reasons.push_back(Reason{std::move(rule), std::move(spec), std::move(path), std::move(action),
                                std::move(from), std::move(to), std::move(detail)});
  }
  ElementDecision& Refuse(std::string rule, std::string path, std::string detail, std::string spec) {
    Add(std::move(rule), std::move(path), "refuse", "", "", std::move(detail), std::move(spec));
    d_.send = false;
    return d_;
  }

 private:
  ElementDecision& d_;
};

int Level(const json::object& o, int fallback) {
  const json::value* v = o.if_contains("distribution");
  if (v == nullptr || v->is_null()) return fallback;
  return static_cast<int>(misp::IntOr(v, fallback));
}

void SetLevel(json::object& o, int level) { o["distribution"] = std::to_string(level); }

const json::object* GroupOf(const json::object& o) {
  const json::value* sg = o.if_contains("SharingGroup");
  if (sg == nullptr || !sg->is_object()) return nullptr;
  const json::value* inner = sg->as_object().if_contains("SharingGroup");
  return inner != nullptr && inner->is_object() ? &inner->as_object() : &sg->as_object();
}

// The group test MISP's cluster and analyst-data pushes make before checkIfServerInSG (spec 8.3,
// 8.5): a non-roaming group must list the remote among its servers; a group without server rows
// must be roaming. An internal link skips it.
bool GroupAdmitsRemote(const json::object& group, const Link& link, std::string* why) {
  misp::SharingGroupView sg(group);
  if (!link.internal) {
    auto rows = sg.servers();
    if (rows.empty() && !sg.roaming()) {
      *why = "its sharing group lists no servers and is not roaming";
      return false;
    }
    bool listed =
        std::any_of(rows.begin(), rows.end(), [&](const auto& r) { return SameUrl(r.url, link.remote.url); });
    if (!rows.empty() && !sg.roaming() && !listed) {
      *why = "its sharing group does not list " + link.remote.url;
      return false;
    }
  }
  return ServerInSharingGroup(sg, link, why);
}

// Distribution 1 -> 0 and 2 -> 1 on a non-internal pull (spec 3.3, 8.3, 8.5).
void PullDowngrade(Recorder& r, json::object& o, const std::string& path, const char* rule) {
  int level = Level(o, 1);
  if (level == 1 || level == 2) {
    SetLevel(o, level - 1);
    r.Add(rule, path, "downgrade", std::to_string(level), std::to_string(level - 1),
          "a pull from a non-internal server lowers the distribution one step", "3.3");
  }
}

bool OrgRulesAdmit(const json::object& entry, const FilterRules& rules, std::string* why) {
  std::string orgc(misp::StringOr(entry, "orgc_uuid"));
  if (const json::value* o = entry.if_contains("Orgc"); orgc.empty() && o != nullptr && o->is_object())
    orgc = std::string(misp::StringOr(o->as_object(), "uuid"));
  auto in = [&](const std::vector<std::string>& list) {
    return std::any_of(list.begin(), list.end(), [&](const std::string& x) { return SameText(x, orgc); });
  };
  if (!rules.orgs_or.empty() && !in(rules.orgs_or)) {
    *why = "its creator organisation is not in the push rules' organisations";
    return false;
  }
  if (in(rules.orgs_not)) {
    *why = "its creator organisation is excluded by the push rules";
    return false;
  }
  return true;
}

constexpr const char* kAnalystTypes[] = {"Note", "Opinion", "Relationship"};

ElementDecision AnalystPush(json::object entry, const Link& link, const std::string& path);
ElementDecision AnalystPull(json::object entry, const Link& link, const std::string& path);

// Children of an analyst-data entry (nested lists by type) get the same decision each; refused
// ones are removed with their reasons kept.
template <typename Fn>
void EachChild(json::object& entry, const std::string& path, ElementDecision& out, Fn decide) {
  for (const char* child : kAnalystTypes) {
    json::value* list = entry.if_contains(child);
    if (list == nullptr || !list->is_array()) continue;
    json::array kept;
    std::size_t i = 0;
    for (auto& item : list->as_array()) {
      std::string p = path + "." + child + "[" + std::to_string(i++) + "]";
      if (!item.is_object()) continue;
      ElementDecision d = decide(std::move(item.as_object()), p);
      out.reasons.insert(out.reasons.end(), d.reasons.begin(), d.reasons.end());
      if (d.send) kept.push_back(std::move(d.element));
    }
    *list = std::move(kept);
  }
}

ElementDecision AnalystPush(json::object entry, const Link& link, const std::string& path) {
  ElementDecision out;
  out.element = std::move(entry);
  Recorder r(out);
  json::object& e = out.element;
  const std::string rule = "push.analyst_data";
  int level = Level(e, 0);
  if (level == 0 || level == 5) {
    return r.Refuse(
        rule + ".distribution", path,
        "MISP offers analyst data of distribution 1 to 4 only; this one is " + std::to_string(level), "8.5");
  }
  if (level == 1 && !link.IntPushDist()) {
    return r.Refuse(rule + ".distribution", path, "distribution 1 (community only) never leaves by a push",
                    "8.5, 3.2.3");
  }
  if (level == 4) {
    std::string why = "it carries no sharing group to check";
    const json::object* group = GroupOf(e);
    if (group == nullptr || !GroupAdmitsRemote(*group, link, &why))
      return r.Refuse(rule + ".sharing_group", path, why, "8.5, 4.3");
    r.Add(rule + ".sharing_group", path, "keep", "4", "4", why, "8.5, 4.3");
  }
  if (std::string why; !OrgRulesAdmit(e, link.push_rules, &why))
    return r.Refuse("push.rules.orgs", path, why, "8.5, 6.1");
  if (level == 2 && !link.IntPushXform()) {
    SetLevel(e, 1);
    r.Add(rule + ".downgrade", path, "downgrade", "2", "1",
          "connected communities travel one hop as community", "8.5");
  }
  e.erase("id");
  e["locked"] = true;
  out.send = true;
  EachChild(e, path, out,
            [&](json::object child, const std::string& p) { return AnalystPush(std::move(child), link, p); });
  return out;
}

ElementDecision AnalystPull(json::object entry, const Link& link, const std::string& path) {
  ElementDecision out;
  out.element = std::move(entry);
  Recorder r(out);
  json::object& e = out.element;
  if (!link.IntPull()) PullDowngrade(r, e, path, "pull.analyst_data.downgrade");
  e["locked"] = true;
  out.send = true;
  EachChild(e, path, out,
            [&](json::object child, const std::string& p) { return AnalystPull(std::move(child), link, p); });
  return out;
}

}  // namespace

const Reason* ElementDecision::refusal() const {
  for (const auto& r : reasons)
    if (r.action == "refuse") return &r;
  return nullptr;
}

ElementDecision PrepareClusterForPush(json::object cluster, const Link& link) {
  ElementDecision out;
  out.element = std::move(cluster);
  Recorder r(out);
  json::object& c = out.element;
  const std::string path = "GalaxyCluster";
  if (misp::BoolOr(c, "default", false))
    return r.Refuse("push.cluster.default", path, "a default cluster ships with MISP; only custom ones sync",
                    "8.3");
  if (!misp::BoolOr(c, "published", false))
    return r.Refuse("push.cluster.published", path, "only published clusters are pushed", "8.3");
  int level = Level(c, 0);
  if (level < 2 && !link.IntPushDist()) {
    return r.Refuse("push.cluster.distribution", path,
                    "distribution " + std::to_string(level) + " blocks the cluster from being pushed",
                    "8.3, 3.2.3");
  }
  if (level == 4) {
    std::string why = "it carries no sharing group to check";
    const json::object* group = GroupOf(c);
    if (group == nullptr || !GroupAdmitsRemote(*group, link, &why))
      return r.Refuse("push.cluster.sharing_group", path, why, "8.3, 4.3");
    r.Add("push.cluster.sharing_group", path, "keep", "4", "4", why, "8.3, 4.3");
  }
  if (level == 2 && !link.IntPushXform()) {
    SetLevel(c, 1);
    r.Add("push.cluster.downgrade", path, "downgrade", "2", "1",
          "connected communities travel one hop as community", "8.3");
  }
  for (const char* k : {"id", "org_id", "orgc_id", "galaxy_id"}) c.erase(k);
  // sgsync marks a pushed cluster as received by sync, as MISP does for events and analyst data.
  // MISP's own cluster push leaves the sender's `locked` (false), so the receiver later refuses
  // every newer version as "created locally" (docs/sharing-rules.md, "Differences").
  c["locked"] = true;
  if (json::value* elements = c.if_contains("GalaxyElement"); elements != nullptr && elements->is_array()) {
    for (auto& el : elements->as_array())
      if (el.is_object()) {
        el.as_object().erase("id");
        el.as_object().erase("galaxy_cluster_id");
      }
  }
  if (json::value* rels = c.if_contains("GalaxyClusterRelation"); rels != nullptr && rels->is_array()) {
    json::array kept;
    std::size_t i = 0;
    for (auto& item : rels->as_array()) {
      std::string rp = path + ".GalaxyClusterRelation[" + std::to_string(i++) + "]";
      if (!item.is_object()) continue;
      json::object& rel = item.as_object();
      int rl = Level(rel, 0);
      if (rl < 2 && !link.IntPushXform()) {
        r.Add("push.cluster.relation.distribution", rp, "remove", std::to_string(rl), "",
              "relations of distribution 0 and 1 never leave by a non-internal push", "8.3");
        continue;
      }
      if (rl == 2 && !link.IntPushXform()) {
        SetLevel(rel, 1);
        r.Add("push.cluster.relation.downgrade", rp, "downgrade", "2", "1", "", "8.3");
      }
      if (rl == 4) {
        std::string why = "it carries no sharing group to check";
        const json::object* group = GroupOf(rel);
        if (group == nullptr || !ServerInSharingGroup(misp::SharingGroupView(*group), link, &why)) {
          r.Add("push.cluster.relation.sharing_group", rp, "remove", "4", "", why, "8.3, 4.3");
          continue;
        }
      }
      rel.erase("id");
      rel.erase("galaxy_cluster_id");
      if (json::value* tags = rel.if_contains("Tag"); tags != nullptr && tags->is_array()) {
        json::array keep_tags;
        for (auto& t : tags->as_array()) {
          if (t.is_object() && !misp::BoolOr(t.as_object(), "exportable", true)) {
            r.Add("push.cluster.relation.tag", rp, "strip_tag",
                  std::string(misp::StringOr(t.as_object(), "name")), "", "non-exportable tags never leave",
                  "8.3, 5");
            continue;
          }
          keep_tags.push_back(std::move(t));
        }
        *tags = std::move(keep_tags);
      }
      kept.push_back(std::move(item));
    }
    *rels = std::move(kept);
  }
  out.send = true;
  return out;
}

bool ClusterNewerThanRemote(std::int64_t local_version, std::optional<std::int64_t> remote_version) {
  return !remote_version || local_version > *remote_version;
}

ElementDecision PreparePulledCluster(json::object cluster, const Link& link) {
  ElementDecision out;
  out.element = std::move(cluster);
  Recorder r(out);
  json::object& c = out.element;
  if (!link.IntPull()) {
    PullDowngrade(r, c, "GalaxyCluster", "pull.cluster.downgrade");
    if (json::value* rels = c.if_contains("GalaxyClusterRelation"); rels != nullptr && rels->is_array()) {
      std::size_t i = 0;
      for (auto& rel : rels->as_array()) {
        std::string rp = "GalaxyCluster.GalaxyClusterRelation[" + std::to_string(i++) + "]";
        if (rel.is_object()) PullDowngrade(r, rel.as_object(), rp, "pull.cluster.relation.downgrade");
      }
    }
  }
  c["locked"] = true;
  out.send = true;
  return out;
}

ElementDecision AcceptCluster(const json::object& incoming, const std::optional<HeldCopy>& held,
                              bool from_internal_server) {
  ElementDecision out;
  out.element = incoming;
  Recorder r(out);
  if (misp::BoolOr(incoming, "default", false))
    return r.Refuse("receiver.cluster.default", "GalaxyCluster", "default clusters are never captured",
                    "8.3");
  if (held) {
    if (!held->locked && !from_internal_server) {
      return r.Refuse(
          "receiver.cluster.not_locked", "GalaxyCluster",
          "the receiver's own copy was not received by sync (not locked): sync never overwrites it", "8.3");
    }
    std::int64_t incoming_version = misp::IntOr(incoming, "version", 0);
    std::int64_t held_version = 0;
    for (char ch : held->stamp) {
      if (ch < '0' || ch > '9') break;
      held_version = held_version * 10 + (ch - '0');
    }
    if (incoming_version <= held_version) {
      return r.Refuse("receiver.cluster.not_newer", "GalaxyCluster",
                      "version " + std::to_string(incoming_version) + " is not newer than the stored " +
                          std::to_string(held_version),
                      "8.3");
    }
  }
  out.send = true;
  return out;
}

ElementDecision PrepareAnalystDataForPush(std::string_view type, json::object entry, const Link& link) {
  return AnalystPush(std::move(entry), link, std::string(type));
}

ElementDecision PreparePulledAnalystData(std::string_view type, json::object entry, const Link& link) {
  return AnalystPull(std::move(entry), link, std::string(type));
}

ElementDecision DecideProposal(json::object proposal, const json::object& source, const Decision& event) {
  ElementDecision out;
  Recorder r(out);
  const std::string uuid(misp::StringOr(proposal, "uuid"));
  const std::int64_t old_id = misp::IntOr(proposal, "old_id", 0);
  proposal.erase("id");
  // What it changes: the attribute of the source event it names, if any.
  std::string target;
  misp::ForEachAttribute(source, [&](const json::object& a) {
    if (!target.empty()) return;
    if ((old_id != 0 && misp::IntOr(a, "id", -1) == old_id) ||
        (!uuid.empty() && SameText(misp::StringOr(a, "uuid"), uuid)))
      target = std::string(misp::StringOr(a, "uuid"));
  });
  if (!event.send || !event.event) {
    const Reason* why = event.refusal();
    return r.Refuse("proposal.event_withheld", "ShadowAttribute",
                    "its event does not leave" + (why != nullptr ? " (" + why->rule + ")" : std::string()),
                    "sgsync");
  }
  if (target.empty() && old_id != 0) {
    return r.Refuse("proposal.attribute_unknown", "ShadowAttribute",
                    "it changes attribute id " + std::to_string(old_id) +
                        ", which the source event does not hold: it cannot be shown to travel",
                    "sgsync");
  }
  if (!target.empty()) {
    bool leaves = false;
    misp::ForEachAttribute(*event.event, [&](const json::object& a) {
      if (SameText(misp::StringOr(a, "uuid"), target)) leaves = true;
    });
    if (!leaves) {
      return r.Refuse("proposal.attribute_withheld", "ShadowAttribute",
                      "the attribute it changes (" + target + ") does not leave with its event", "sgsync");
    }
  }
  out.send = true;
  out.element = std::move(proposal);
  return out;
}

bool AnalystDataWanted(std::string_view offered_modified, const std::optional<HeldCopy>& held,
                       bool from_internal_server) {
  if (!held) return true;
  if (!held->locked && !from_internal_server) return false;
  return held->stamp < offered_modified;
}

}  // namespace sgsync::policy
