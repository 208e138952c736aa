// MISP 2.5.1's push rules (spec 3.2): what leaves the member's MISP for the Portal, and how.
#include "sync/policy/evaluation.h"

namespace sgsync::policy::detail {

// One attribute (standalone or in an object). Returns false when it must not be sent. This runs
// once per attribute of every pushed event: it looks each field up once and builds the path only
// when it records a reason.
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
            std::to_string(proposals) +
                " proposal(s) left out of the payload: they travel on their own, "
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

}  // namespace sgsync::policy::detail
