// MISP 2.5.1's pull rules (spec 3.3): what the member's MISP takes from the Portal, and how.
#include "sync/policy/evaluation.h"

namespace sgsync::policy::detail {

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

}  // namespace sgsync::policy::detail
