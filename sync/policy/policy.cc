#include "sync/policy/policy.h"

#include <algorithm>

#include "misp/event.h"

namespace sgsync::policy {
bool ServerInSharingGroup(const misp::SharingGroupView& sg, const Link& link, std::string* why) {
  auto label = [](const OrgRef& o) { return o.name.empty() ? o.uuid : o.name; };
  auto rows = sg.servers();
  if (!rows.empty() && !sg.roaming()) {
    auto row = std::find_if(rows.begin(), rows.end(),
                            [&](const auto& r) { return SameUrl(r.url, link.remote.url); });
    if (row != rows.end() && row->all_orgs) {
      *why = "the group lists " + link.remote.url + " with all_orgs";
      return true;
    }
    if (row == rows.end() && !link.internal) {
      *why = "the group's server list does not include " + link.remote.url;
      return false;
    }
  }
  auto orgs = sg.org_uuids();
  if (std::any_of(orgs.begin(), orgs.end(),
                  [&](std::string_view u) { return SameText(u, link.remote.org.uuid); })) {
    *why = "the remote organisation " + label(link.remote.org) + " is a member";
    return true;
  }
  *why = "the remote organisation " + label(link.remote.org) + " is not a member";
  return false;
}

namespace {

using misp::AttributeView;
using misp::Child;
using misp::ElementView;
using misp::EventView;
using misp::Index;
using misp::SharingGroupView;
using misp::TagView;

std::string Num(std::optional<int> v) { return v ? std::to_string(*v) : std::string("absent"); }

bool Contains(const std::vector<std::string>& list, std::string_view s) {
  return std::any_of(list.begin(), list.end(), [&](const std::string& x) { return SameText(x, s); });
}

// Everything one evaluation needs; reasons accumulate here.
class Run {
 public:
  Run(Direction d, const Link& link, Decision& out) : dir_(d), link_(link), out_(out) {}

  void Add(std::string rule, std::string spec, std::string path, std::string action, std::string from,
           std::string to, std::string detail) {
    out_.reasons.push_back(Reason{std::move(rule), std::move(spec), std::move(path), std::move(action),
                                  std::move(from), std::move(to), std::move(detail)});
  }
  void Refuse(std::string rule, std::string spec, std::string path, std::string detail) {
    Add(std::move(rule), std::move(spec), std::move(path), "refuse", "", "", std::move(detail));
    out_.send = false;
  }

  // checkIfServerInSG (spec 4.3): may the remote server receive an element of this group?
  bool ServerInGroup(const SharingGroupView& sg, std::string* why) const {
    return ServerInSharingGroup(sg, link_, why);
  }

  static std::vector<std::string> ToStrings(const std::vector<std::string_view>& in) {
    return {in.begin(), in.end()};
  }
  static std::string OrgLabel(const OrgRef& o) { return o.name.empty() ? o.uuid : o.name; }

  const std::vector<std::string>& Blocked() const {
    return dir_ == Direction::kPush ? link_.blocked_tags_push : link_.blocked_tags_pull;
  }
  const FilterRules& Rules() const { return dir_ == Direction::kPush ? link_.push_rules : link_.pull_rules; }

  // The first tag of `element` on the blocked list, or empty.
  std::string BlockedTagOn(json::object& element) const {
    for (const TagView& t : misp::TagsOf(element)) {
      if (Contains(Blocked(), t.name())) return std::string(t.name());
    }
    return {};
  }

  // Removes non-exportable tags always, local tags unless `keep_local`; says why for each.
  void StripTags(json::object& element, const std::string& path, bool keep_local, const char* side) {
    std::string spec = dir_ == Direction::kPush ? "3.2.3, 5" : "3.3, 5";
    for (const std::string& name :
         misp::RemoveTagsIf(element, [](const TagView& t) { return !t.exportable(); })) {
      Add(std::string(side) + ".tag.non_exportable", spec, path, "strip_tag", name, "",
          "non-exportable tags never leave an instance");
    }
    if (keep_local) {
      for (const TagView& t : misp::TagsOf(element)) {
        if (t.local()) {
          Add(std::string(side) + ".tag.local", spec, path, "keep", std::string(t.name()), "",
              "local tag kept: the link is internal");
        }
      }
      return;
    }
    for (const std::string& name : misp::RemoveTagsIf(element, [](const TagView& t) { return t.local(); })) {
      Add(std::string(side) + ".tag.local", spec, path, "strip_tag", name, "",
          "local tags stay on their instance unless the link is internal");
    }
  }

  Direction dir_;
  const Link& link_;
  Decision& out_;
};

// The sender's own sharing-group row (server_id 0) announces MISP.external_baseurl or else
// MISP.baseurl (spec 3.2.3, 4.4).
void AnnounceOwnServerRow(json::object& element, const Link& link) {
  json::value* sg = element.if_contains("SharingGroup");
  if (sg == nullptr || !sg->is_object()) return;
  json::value* rows = sg->get_object().if_contains("SharingGroupServer");
  if (rows == nullptr || !rows->is_array()) return;
  for (auto& row : rows->get_array()) {
    if (!row.is_object() || misp::IntOr(row.get_object(), "server_id", -1) != 0) continue;
    json::object server;
    server["id"] = "0";
    server["url"] = link.announced_url;
    server["name"] = link.announced_url;
    row.get_object()["Server"] = std::move(server);
  }
}

// Removes `keys` from a document sgsync is about to send. Boost.JSON's erase moves the object's last
// key into the freed place (its stable_erase keeps the order but reindexes the whole object per
// key, which tripled the policy's cost per attribute); MISP reads keys by name, so on outbound
// copies the cheaper form is used. Documents sgsync stores or forwards unchanged are never reordered.
void EraseKeys(json::object& o, std::initializer_list<std::string_view> keys) {
  for (auto k : keys) {
    if (auto it = o.find(k); it != o.end()) o.erase(it);
  }
}

// Removes the array elements whose index `drop` says, keeping order.
template <typename Fn>
void EraseIf(json::array& a, Fn drop) {
  // In place, order kept: a 150k-attribute event is not copied into a second array.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (drop(i)) continue;
    if (kept != i) a[kept] = std::move(a[i]);
    ++kept;
  }
  a.erase(a.begin() + static_cast<std::ptrdiff_t>(kept), a.end());
}

// ---------------------------------------------------------------- push

// One attribute (standalone or in an object). Returns false when it must not be sent. This runs
// once per attribute of every pushed event: it looks each field up once and builds the path only
// when it records a reason.
// What the attribute rules read, found in one pass over the attribute's keys: a hashed lookup per
// key costs about 40 ns, and an attribute was looked up eight times (bench/policy_bench.cc).
struct AttributeKeys {
  bool has_tags = false;  // a non-empty Tag or AttributeTag list
  json::value* distribution = nullptr;
};

// The receiver recomputes these (spec 3.2.3, 7.9); erasing moves the last key into the hole, so
// pointers into `a` are stale afterwards.
void EraseLocalIds(json::object& a) {
  for (auto it = a.begin(); it != a.end();) {
    std::string_view k = it->key();
    if (k == "id" || k == "value1" || k == "value2") {
      it = a.erase(it);
    } else {
      ++it;
    }
  }
}

AttributeKeys ScanAttribute(json::object& a) {
  AttributeKeys out;
  for (auto& kv : a) {
    std::string_view k = kv.key();
    if (k == "distribution") {
      out.distribution = &kv.value();
    } else if (k == "Tag" || k == "AttributeTag" || k == "EventTag") {
      if (kv.value().is_array() && !kv.value().get_array().empty()) out.has_tags = true;
    }
  }
  return out;
}

bool PushAttribute(Run& run, json::object& a, std::string_view base, std::size_t index) {
  const Link& link = run.link_;
  auto path = [&] { return Index(base, index); };
  AttributeView view(a);
  if (link.filter_on_type && Contains(link.push_rules.type_attributes_not, view.type())) {
    run.Add("push.rules.type_attributes", "6.1, 3.2.3", path(), "remove", std::string(view.type()), "",
            "push_rules.type_attributes.NOT lists this type");
    return false;
  }
  AttributeKeys keys = ScanAttribute(a);
  std::vector<TagView> tags;
  if (keys.has_tags) tags = view.tags();
  for (const TagView& t : tags) {
    if (Contains(link.push_rules.tags_not, t.name())) {
      run.Add("push.rules.tags_not", "6.1", path(), "remove", std::string(t.name()), "",
              "push_rules.tags.NOT lists a tag of this attribute");
      return false;
    }
    if (Contains(run.Blocked(), t.name())) {
      run.Add("sgsync.blocked_tag", "sgsync", path(), "remove", std::string(t.name()), "",
              "tag is blocked on this link (TLP/PAP policy)");
      return false;
    }
  }
  json::value* dist_value = keys.distribution;
  std::optional<int> dist;
  if (dist_value != nullptr && !dist_value->is_null()) dist = static_cast<int>(misp::IntOr(dist_value, 5));
  int level = dist.value_or(5);
  if (level < 2) {
    if (!link.IntPushXform()) {
      run.Add("push.attribute.distribution", "3.2.3", path(), "remove", Num(dist), "",
              "distribution " + std::to_string(level) + " never leaves by a non-internal push");
      return false;
    }
    run.Add("push.attribute.distribution", "3.2.3, 2.3", path(), "keep", Num(dist), Num(dist),
            "sent unchanged: the link is internal");
  } else if (level == 2 && !link.IntPushXform()) {
    *dist_value = "1";
    run.Add("push.attribute.downgrade", "3.2.3", path(), "downgrade", "2", "1",
            "connected communities travel one hop as community");
  } else if (level == 4) {
    auto sg = view.sharing_group();
    std::string why = "the attribute carries no sharing group to check";
    if (!link.IntPushXform() && (!sg || !run.ServerInGroup(*sg, &why))) {
      run.Add("push.attribute.sharing_group", "4.3", path(), "remove", "4", "", why);
      return false;
    }
    run.Add("push.attribute.sharing_group", "4.3", path(), "keep", "4", "4",
            link.IntPushXform() ? "sent whatever its group says: the link is internal (the receiver checks)"
                                : why);
    AnnounceOwnServerRow(a, link);
  }
  if (!tags.empty()) run.StripTags(a, path(), link.IntPushXform(), "push");
  EraseLocalIds(a);  // last: only kept attributes pay for it
  return true;
}

// A distributable container (object or report): returns false when it must not be sent.
bool PushContainer(Run& run, json::object& o, const std::string& path, const char* what) {
  const Link& link = run.link_;
  ElementView view(o);
  std::optional<int> dist = view.distribution();
  int level = dist.value_or(5);
  std::string rule = std::string("push.") + what + ".distribution";
  if (level < 2) {
    if (!link.IntPushXform()) {
      run.Add(rule, "3.2.3", path, "remove", Num(dist), "",
              std::string("distribution ") + std::to_string(level) + " never leaves by a non-internal push" +
                  (std::string(what) == "object" ? " (with all its attributes)" : ""));
      return false;
    }
    run.Add(rule, "3.2.3, 2.3", path, "keep", Num(dist), Num(dist), "sent unchanged: the link is internal");
  } else if (level == 2 && !link.IntPushXform()) {
    view.set_distribution(1);
    run.Add(std::string("push.") + what + ".downgrade", "3.2.3", path, "downgrade", "2", "1",
            "connected communities travel one hop as community");
  } else if (level == 4 && !link.IntPushXform()) {
    auto sg = view.sharing_group();
    std::string why = "it carries no sharing group to check";
    if (!sg || !run.ServerInGroup(*sg, &why)) {
      run.Add(std::string("push.") + what + ".sharing_group", "4.3", path, "remove", "4", "", why);
      return false;
    }
    run.Add(std::string("push.") + what + ".sharing_group", "4.3", path, "keep", "4", "4", why);
  }
  AnnounceOwnServerRow(o, link);
  return true;
}

bool PushObject(Run& run, json::object& o, const std::string& path) {
  const Link& link = run.link_;
  misp::ObjectView view(o);
  if (link.filter_on_type && Contains(link.push_rules.type_objects_not, view.template_uuid())) {
    run.Add("push.rules.type_objects", "6.1, 3.2.3", path, "remove", std::string(view.template_uuid()), "",
            "push_rules.type_objects.NOT lists this object template");
    return false;
  }
  if (!PushContainer(run, o, path, "object")) return false;
  if (json::array* attrs = view.attributes()) {
    std::string apath = Child(path, "Attribute");
    EraseIf(*attrs, [&](std::size_t i) {
      return !(*attrs)[i].is_object() || !PushAttribute(run, (*attrs)[i].get_object(), apath, i);
    });
  }
  return true;
}

// The event-level rules both directions share: tags OR/NOT on event tags (attribute tags do not
// count), orgs OR/NOT on the creator org by uuid or name (spec 6.1, 6.2), then sgsync's blocked
// tags. Returns false with a refusal recorded.
bool EventPassesRules(Run& run, EventView ev) {
  const bool push = run.dir_ == Direction::kPush;
  const FilterRules& rules = run.Rules();
  const std::string side = push ? "push" : "pull";
  const char* spec = push ? "6.1" : "6.2";
  auto tags = ev.tags();
  if (!rules.tags_or.empty() && std::none_of(tags.begin(), tags.end(), [&](const TagView& t) {
        return Contains(rules.tags_or, t.name());
      })) {
    run.Refuse(side + ".rules.tags_or", spec, "Event.Tag",
               "no event tag is in " + side + "_rules.tags.OR (attribute tags do not count)");
    return false;
  }
  for (const TagView& t : tags) {
    if (Contains(rules.tags_not, t.name())) {
      run.Refuse(side + ".rules.tags_not", spec, "Event.Tag",
                 "event tag " + std::string(t.name()) + " is in " + side + "_rules.tags.NOT");
      return false;
    }
  }
  std::string orgc_uuid(ev.orgc_uuid()), orgc_name(ev.orgc_name());
  auto org_matches = [&](const std::vector<std::string>& list) {
    return Contains(list, orgc_uuid) || (!orgc_name.empty() && Contains(list, orgc_name));
  };
  if (!rules.orgs_or.empty() && !org_matches(rules.orgs_or)) {
    run.Refuse(side + ".rules.orgs_or", spec, "Event.Orgc",
               "the creator organisation is not in " + side + "_rules.orgs.OR");
    return false;
  }
  if (org_matches(rules.orgs_not)) {
    run.Refuse(side + ".rules.orgs_not", spec, "Event.Orgc",
               "the creator organisation is in " + side + "_rules.orgs.NOT");
    return false;
  }
  if (std::string tag = run.BlockedTagOn(ev.json()); !tag.empty()) {
    run.Refuse("sgsync.blocked_tag", "sgsync", "Event.Tag",
               "event tag " + tag + " is blocked on this link (TLP/PAP policy)");
    return false;
  }
  return true;
}

// The event-level selection of spec 3.2.1-3.2.3. Returns false with a refusal recorded.
bool PushSelectEvent(Run& run, EventView ev) {
  const Link& link = run.link_;
  if (!ev.published()) {
    run.Refuse("push.select.published", "3.2.1", "Event.published", "only published events are pushed");
    return false;
  }
  if (ev.is_protected()) {
    // MISP signs a protected event with its instance key and refuses remotes older than 2.4.156
    // before sending (spec 7.7, case 38). sgsync holds no instance key, and the Portal refuses an
    // unsigned protected event from a sync account (HTTP 405): it is never sent.
    std::string why =
        VersionOlderThan(link.remote_version, 2, 4, 156)
            ? "a protected event needs a remote MISP of 2.4.156 or later; the remote runs " +
                  link.remote_version
            : "a protected event must be signed with the sending instance's key, which sgsync does not hold; "
              "the remote MISP would refuse it unsigned";
    run.Refuse("push.event.protected", "7.7", "Event.protected", why);
    return false;
  }
  std::optional<int> dist = ev.distribution();
  int level = dist.value_or(1);
  if (level < 2) {
    if (!link.IntPushDist()) {
      std::string why = "distribution " + std::to_string(level) + " (" +
                        std::string(misp::DistributionName(level)) + ") blocks the event from being pushed";
      if (link.internal)
        why += "; the link is internal but the remote organisation is not this instance's host organisation";
      run.Refuse("push.event.distribution", "3.2.3, 2.3", "Event.distribution", why);
      return false;
    }
    run.Add("push.event.distribution", "3.2.2, 2.3", "Event.distribution", "keep", Num(dist), Num(dist),
            "sent unchanged: the link is internal and the remote is this instance's host organisation");
  }
  if (level == 4) {
    auto sg = ev.sharing_group();
    if (!sg) {
      run.Refuse("push.event.sharing_group", "4.3", "Event.SharingGroup",
                 "the event carries no sharing group to check");
      return false;
    }
    std::string why;
    if (!run.ServerInGroup(*sg, &why)) {
      run.Refuse("push.event.sharing_group", "4.3", "Event.SharingGroup", why);
      return false;
    }
    // __prepareForPushToServer is stricter for the event itself (3.2.3); MISP 2.5.1 fails with an
    // HTTP 500 when only this second test refuses (11.25). sgsync refuses cleanly.
    bool member = Contains(Run::ToStrings(sg->org_uuids()), link.remote.org.uuid);
    auto rows = sg->servers();
    bool listed =
        std::any_of(rows.begin(), rows.end(), [&](const auto& r) { return SameUrl(r.url, link.remote.url); });
    if (!member) {
      run.Refuse("push.event.sharing_group", "3.2.3, 11.25", "Event.SharingGroup",
                 "the remote organisation " + Run::OrgLabel(link.remote.org) +
                     " is not a member of the event's sharing group (an all_orgs server row is not enough "
                     "for the event)");
      return false;
    }
    if (!sg->roaming() && !link.internal && !listed) {
      run.Refuse("push.event.sharing_group", "3.2.3, 11.25", "Event.SharingGroup",
                 "the event's sharing group is not roaming and does not list " + link.remote.url);
      return false;
    }
    run.Add("push.event.sharing_group", "3.2.3, 4.3", "Event.SharingGroup", "keep", "4", "4",
            "the remote organisation is a member and the group " +
                std::string(sg->roaming()              ? "is roaming"
                            : link.internal && !listed ? "is sent over an internal link"
                                                       : "lists the remote server"));
  }
  return EventPassesRules(run, ev);
}

// Sightings and proposals never ride in a pushed event: MISP's own payload carries no sightings
// (Event::__rearrangeEventStructureForSync, spec 8.1) and a receiver captures those it finds
// (Sighting::captureSightings), bypassing the sighting policy; embedded proposals are ignored by the
// receiver (spec 8.2) but would still carry their values out. Each travels on its own channel,
// under its own rules (SelectSightings, DecideProposal).
void StripRiders(Run& run, json::object& e) {
  std::size_t sightings = 0, proposals = 0;
  auto strip = [&](json::object& holder) {
    if (const json::value* v = holder.if_contains("Sighting"); v != nullptr) {
      sightings += v->is_array() ? v->get_array().size() : 1;
      holder.erase("Sighting");
    }
    if (const json::value* v = holder.if_contains("ShadowAttribute"); v != nullptr) {
      proposals += v->is_array() ? v->get_array().size() : 1;
      holder.erase("ShadowAttribute");
    }
  };
  strip(e);
  misp::ForEachAttribute(e, strip);
  if (sightings > 0)
    run.Add("push.event.sightings", "8.1", "Event", "remove", "", "",
            std::to_string(sightings) +
                " sighting(s) left out of the payload: they follow the event under the sighting policy");
  if (proposals > 0)
    run.Add("push.event.proposals", "8.2", "Event", "remove", "", "",
            std::to_string(proposals) + " proposal(s) left out of the payload: they travel on their own, "
                                        "each only where what it changes goes");
}

void PushTransform(Run& run, EventView ev) {
  const Link& link = run.link_;
  json::object& e = ev.json();
  EraseKeys(e, {"Org", "org_id", "orgc_id", "org", "orgc", "proposal_email_lock"});
  StripRiders(run, e);
  ev.set_locked(true);
  if (link.unpublish_event) {
    ev.set_published(false);
    run.Add("push.unpublish_event", "2.2, 3.2.1", "Event.published", "set", "true", "false",
            "the link pushes events unpublished");
  }
  run.StripTags(e, "Event", link.IntPushXform(), "push");
  AnnounceOwnServerRow(e, link);
  if (ev.distribution() == 2 && !link.IntPushXform()) {
    ev.set_distribution(1);
    run.Add("push.event.downgrade", "3.2.3", "Event.distribution", "downgrade", "2", "1",
            "connected communities travel one hop as community");
  }
  if (json::array* attrs = ev.attributes()) {
    EraseIf(*attrs, [&](std::size_t i) {
      return !(*attrs)[i].is_object() || !PushAttribute(run, (*attrs)[i].get_object(), "Event.Attribute", i);
    });
  }
  if (json::array* objects = ev.objects()) {
    EraseIf(*objects, [&](std::size_t i) {
      return !(*objects)[i].is_object() ||
             !PushObject(run, (*objects)[i].get_object(), Index("Event.Object", i));
    });
  }
  if (json::array* reports = ev.reports()) {
    if (!link.remote_supports_reports && !reports->empty()) {
      run.Add("push.report.unsupported", "3.2.3", "Event.EventReport", "remove", "", "",
              "the remote does not announce event report support (GET /eventReports/add)");
      reports->clear();
    }
    EraseIf(*reports, [&](std::size_t i) {
      return !(*reports)[i].is_object() ||
             !PushContainer(run, (*reports)[i].get_object(), Index("Event.EventReport", i), "report");
    });
  }
}

// ---------------------------------------------------------------- pull

void PullDowngrade(Run& run, ElementView el, const std::string& path, const char* what) {
  std::optional<int> d = el.distribution();
  if (d != 1 && d != 2) return;
  int to = *d - 1;
  el.set_distribution(to);
  run.Add(std::string("pull.") + what + ".downgrade", "3.3", Child(path, "distribution"), "downgrade",
          std::to_string(*d), std::to_string(to),
          *d == 1 ? "community-only data becomes organisation-only on the pulling instance"
                  : "connected communities travel one hop as community");
}

bool PullAttribute(Run& run, json::object& a, std::string_view base, std::size_t index, bool downgrade) {
  const Link& link = run.link_;
  auto path = [&] { return Index(base, index); };
  AttributeView view(a);
  if (downgrade && link.filter_on_type && Contains(link.pull_rules.type_attributes_not, view.type())) {
    run.Add("pull.rules.type_attributes", "3.3, 6.2", path(), "remove", std::string(view.type()), "",
            "pull_rules.type_attributes.NOT lists this type");
    return false;
  }
  AttributeKeys keys = ScanAttribute(a);
  std::vector<TagView> tags;
  if (keys.has_tags) tags = view.tags();
  for (const TagView& t : tags) {
    if (Contains(run.Blocked(), t.name())) {
      run.Add("sgsync.blocked_tag", "sgsync", path(), "remove", std::string(t.name()), "",
              "tag is blocked on this link (TLP/PAP policy)");
      return false;
    }
  }
  if (downgrade) {
    std::optional<int> d;
    if (keys.distribution != nullptr && !keys.distribution->is_null())
      d = static_cast<int>(misp::IntOr(keys.distribution, 5));
    if (d == 1 || d == 2) {
      // As PullDowngrade, through the pointer the scan found.
      *keys.distribution = *d == 1 ? "0" : "1";
      run.Add("pull.attribute.downgrade", "3.3", Child(path(), "distribution"), "downgrade",
              std::to_string(*d), *d == 1 ? "0" : "1",
              *d == 1 ? "community-only data becomes organisation-only on the pulling instance"
                      : "connected communities travel one hop as community");
    }
    if (!tags.empty()) run.StripTags(a, path(), false, "pull");
  }
  return true;
}

bool PullSelectEvent(Run& run, EventView ev) {
  if (!ev.published()) {
    run.Refuse("pull.select.published", "3.3, 7.1", "Event.published", "only published events are pulled");
    return false;
  }
  if (PullBlocklisted(run.link_, ev.uuid(), "")) {
    run.Refuse("pull.blocklist.event", "7.8", "Event.uuid",
               "the event is on the local MISP's event blocklist");
    return false;
  }
  if (PullBlocklisted(run.link_, "", ev.orgc_uuid())) {
    run.Refuse("pull.blocklist.org", "7.8", "Event.Orgc",
               "its creator organisation is on the local MISP's organisation blocklist");
    return false;
  }
  if (ev.is_protected()) {
    // MISP stores a pulled protected event only when its signature verifies (spec 7.7, case 52);
    // sgsync cannot verify it (it holds no instance keys, and the remote signs only for MISP's own
    // user agent), so it does not pull it rather than store it unchecked.
    run.Refuse(
        "pull.event.protected", "7.7", "Event.protected",
        "a protected event's signature cannot be verified by sgsync; MISP stores it only when it verifies");
    return false;
  }
  return EventPassesRules(run, ev);
}

bool HasLiveContent(EventView ev) {
  for (auto& a : ev.attribute_views()) {
    if (!a.deleted()) return true;
  }
  for (auto& o : ev.object_views()) {
    if (o.deleted()) continue;
    for (auto& a : o.attribute_views()) {
      if (!a.deleted()) return true;
    }
  }
  for (auto& r : ev.report_views()) {
    if (!r.deleted()) return true;
  }
  return false;
}

void PullTransform(Run& run, EventView ev) {
  const Link& link = run.link_;
  bool downgrade = !link.IntPull();
  if (!downgrade) {
    run.Add(
        "pull.internal", "3.3, 2.3", "Event", "keep", "", "",
        "nothing downgraded and local tags kept: the link is internal and owned by the host organisation");
  }
  if (link.internal && downgrade) {
    run.Add("pull.internal", "3.3, 2.3", "Event", "downgrade", "", "",
            "the link is internal but the pull-internal test fails (MISP.host_org_id unset or not the link's "
            "owner org): downgraded as a normal link");
  }
  ev.set_locked(true);
  if (!ev.distribution()) {
    ev.set_distribution(1);
    run.Add("pull.event.distribution_missing", "3.3", "Event.distribution", "set", "absent", "1",
            "a missing event distribution is read as community");
  }
  if (downgrade) {
    PullDowngrade(run, ev, "Event", "event");
    run.StripTags(ev.json(), "Event", false, "pull");
  }
  if (json::array* attrs = ev.attributes()) {
    EraseIf(*attrs, [&](std::size_t i) {
      return !(*attrs)[i].is_object() ||
             !PullAttribute(run, (*attrs)[i].get_object(), "Event.Attribute", i, downgrade);
    });
  }
  if (json::array* objects = ev.objects()) {
    EraseIf(*objects, [&](std::size_t i) {
      if (!(*objects)[i].is_object()) return true;
      misp::ObjectView o((*objects)[i].get_object());
      std::string path = Index("Event.Object", i);
      if (downgrade && link.filter_on_type && Contains(link.pull_rules.type_objects_not, o.template_uuid())) {
        run.Add("pull.rules.type_objects", "3.3, 6.2", path, "remove", std::string(o.template_uuid()), "",
                "pull_rules.type_objects.NOT lists this object template");
        return true;
      }
      if (downgrade) PullDowngrade(run, o, path, "object");
      json::array* attrs = o.attributes();
      if (attrs == nullptr) return false;
      bool had = !attrs->empty();
      std::string apath = Child(path, "Attribute");
      EraseIf(*attrs, [&](std::size_t j) {
        return !(*attrs)[j].is_object() || !PullAttribute(run, (*attrs)[j].get_object(), apath, j, downgrade);
      });
      if (had && attrs->empty()) {
        run.Add("pull.object.empty", "3.3", path, "remove", "", "",
                "every attribute of the object was filtered");
        return true;
      }
      return false;
    });
  }
  if (json::array* reports = ev.reports()) {
    for (std::size_t i = 0; i < reports->size(); ++i) {
      if ((*reports)[i].is_object() && downgrade) {
        PullDowngrade(run, ElementView((*reports)[i].get_object()), Index("Event.EventReport", i), "report");
      }
    }
  }
}

}  // namespace

const Reason* Decision::refusal() const {
  for (const auto& r : reasons) {
    if (r.action == "refuse") return &r;
  }
  return nullptr;
}

json::value Decision::ToJson() const {
  json::object o;
  o["decision"] = send ? "send" : "skip";
  auto wrap = [](const std::optional<json::object>& e) -> json::value {
    if (!e) return nullptr;
    json::object w;
    w["Event"] = *e;
    return w;
  };
  o["event"] = wrap(event);
  o["arrival"] = wrap(Arrival());
  json::array rs;
  for (const auto& r : reasons) {
    json::object j;
    j["rule"] = r.rule;
    j["spec"] = r.spec;
    j["path"] = r.path;
    j["action"] = r.action;
    if (!r.from.empty()) j["from"] = r.from;
    if (!r.to.empty()) j["to"] = r.to;
    j["detail"] = r.detail;
    rs.push_back(std::move(j));
  }
  o["reasons"] = std::move(rs);
  json::array ws;
  for (const auto& w : warnings) ws.push_back(json::value(w));
  o["warnings"] = std::move(ws);
  return o;
}

std::optional<json::object> Decision::Arrival() const {
  if (!send || !event) return std::nullopt;
  return MaterializeArrival(*event, receiver);
}

Decision Evaluate(Direction direction, const json::object* event, const Link& link) {
  return Evaluate(direction, event ? std::optional<json::object>(*event) : std::nullopt, link);
}

Decision Evaluate(Direction direction, std::optional<json::object> event, const Link& link) {
  Decision out;
  Run run(direction, link, out);
  out.send = true;
  if (!event) {
    run.Refuse("pull.select.not_served", "3.1, 3.3", "Event",
               "the remote does not serve this event to sgsync's account (its access rules hide it)");
    return out;
  }
  json::object& copy = *event;
  EventView ev(copy);
  if (link.internal && !link.IntPushDist() && direction == Direction::kPush) {
    out.warnings.push_back(
        "the link is internal but the remote organisation is not this instance's host organisation: MISP "
        "2.5.1 "
        "then sends attributes, objects and reports undowngraded (with local tags) while refusing events at "
        "distribution 0 or 1 (spec 2.3); check that " +
        link.remote.url + " really belongs to your organisation");
  }
  Receiver receiver;
  if (direction == Direction::kPush) {
    if (!PushSelectEvent(run, ev)) return out;
    PushTransform(run, ev);
    receiver = Receiver{"the remote MISP (" + link.remote.url + ")",
                        link.remote.url,
                        link.remote_user_org,
                        false,
                        true,
                        true,
                        link.remote_known_server_urls};
  } else {
    if (!PullSelectEvent(run, ev)) return out;
    PullTransform(run, ev);
    if (!HasLiveContent(ev)) {
      // Emptied by the pull rules, MISP counts the event neither as pulled nor as failed (spec 3.3).
      bool by_rules = std::any_of(out.reasons.begin(), out.reasons.end(),
                                  [](const Reason& r) { return r.rule.rfind("pull.rules.", 0) == 0; });
      run.Refuse(by_rules ? "pull.rules.emptied" : "pull.empty", "3.3", "Event",
                 by_rules ? "the pull rules left nothing that is not deleted: skipped, not a failure"
                          : "nothing that is not deleted is left (no attribute, object attribute or report): "
                            "MISP does not store an empty event");
      return out;
    }
    receiver = Receiver{"the local MISP (" + link.local.url + ")",
                        link.local.url,
                        link.local.org,
                        link.local_writer_is_site_admin,
                        true,
                        true,
                        {link.remote.url}};
  }
  out.receiver = std::move(receiver);
  if (!AssessArrival(copy, out.receiver, &out.reasons, &out.warnings)) {
    // The receiving MISP would refuse it (an empty published event): sgsync does not send what will
    // be refused, and says why.
    out.send = false;
    return out;
  }
  out.event = std::move(copy);
  return out;
}

}  // namespace sgsync::policy
