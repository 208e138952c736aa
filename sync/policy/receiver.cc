// The receiving side of a sync write: what a MISP stores when a sync account adds an event through
// its REST API (spec 3.4, 4.5, 7.5), so sgsync can predict arrivals and warn before they happen.
#include <algorithm>

#include "misp/event.h"
#include "sync/policy/policy.h"
#include "sync/policy/receiver.h"

namespace sgsync::policy {
namespace {

using misp::Child;
using misp::ElementView;
using misp::Index;
using misp::SharingGroupView;

bool Listed(const std::vector<std::string>& urls, std::string_view url) {
  return std::any_of(urls.begin(), urls.end(), [&](const std::string& u) { return SameUrl(u, url); });
}

// captureSG's acceptance test for a new group (spec 4.5); `why` says what failed.
bool Capturable(const SharingGroupView& sg, const Receiver& r, std::string* why) {
  if (r.writer_is_site_admin) return true;
  auto rows = sg.servers();
  auto own = std::find_if(rows.begin(), rows.end(), [&](const auto& row) { return SameUrl(row.url, r.url); });
  bool server_ok = rows.empty() || own != rows.end();
  auto orgs = sg.org_uuids();
  bool member = std::any_of(orgs.begin(), orgs.end(),
                            [&](std::string_view u) { return SameText(u, r.writer_org.uuid); });
  bool org_ok = (member && r.writer_has_perm_sync) || (own != rows.end() && own->all_orgs);
  if (!server_ok) {
    *why = "its URL " + r.url + " is not in the sharing group's server list";
  } else if (!org_ok) {
    *why = "the writing account's organisation " +
           (r.writer_org.name.empty() ? r.writer_org.uuid : r.writer_org.name) +
           " is not a member of the sharing group";
  }
  return server_ok && org_ok;
}

// The group as the receiver stores it: rows mapped to its own server records (unknown URLs dropped,
// all_orgs lost, spec 4.5 and 11.26) and the writer's organisation added when not a member.
void RewriteCaptured(json::object& sg, const Receiver& r) {
  if (json::value* rows = sg.if_contains("SharingGroupServer"); rows != nullptr && rows->is_array()) {
    json::array kept;
    for (auto& row : rows->get_array()) {
      if (!row.is_object()) continue;
      json::object& ro = row.get_object();
      json::value* server = ro.if_contains("Server");
      std::string url = server != nullptr && server->is_object()
                            ? std::string(misp::StringOr(server->get_object(), "url"))
                            : "";
      bool own = SameUrl(url, r.url);
      if (!own && !Listed(r.known_server_urls, url)) continue;
      ro["all_orgs"] = false;
      if (own) {
        misp::WriteInt(ro, "server_id", 0);
        json::object s;
        s["id"] = "0";
        s["url"] = r.url;
        s["name"] = r.url;
        ro["Server"] = std::move(s);
      }
      kept.push_back(std::move(row));
    }
    rows->get_array() = std::move(kept);
  }
  SharingGroupView view(sg);
  auto orgs = view.org_uuids();
  bool member = std::any_of(orgs.begin(), orgs.end(),
                            [&](std::string_view u) { return SameText(u, r.writer_org.uuid); });
  if (!member) {
    json::value* list = sg.if_contains("SharingGroupOrg");
    if (list == nullptr || !list->is_array()) list = &(sg["SharingGroupOrg"] = json::array());
    json::object org;
    org["uuid"] = r.writer_org.uuid;
    org["name"] = r.writer_org.name;
    json::object row;
    row["extend"] = false;
    row["Organisation"] = std::move(org);
    list->get_array().push_back(std::move(row));
  }
}

// Visits the event and each distributable element in it with its JSON path, built only on demand.
template <typename Fn>
void ForEachDistributable(json::object& e, Fn fn) {
  fn(e, [] { return std::string("Event"); });
  auto each = [&](json::object& holder, const char* key, auto base) {
    json::value* list = holder.if_contains(key);
    if (list == nullptr || !list->is_array()) return;
    for (std::size_t i = 0; i < list->get_array().size(); ++i) {
      json::value& item = list->get_array()[i];
      if (item.is_object()) fn(item.get_object(), [&] { return Index(Child(base(), key), i); });
    }
  };
  auto event_path = [] { return std::string("Event"); };
  each(e, "Attribute", event_path);
  each(e, "EventReport", event_path);
  if (json::value* objects = e.if_contains("Object"); objects != nullptr && objects->is_array()) {
    for (std::size_t i = 0; i < objects->get_array().size(); ++i) {
      json::value& o = objects->get_array()[i];
      if (!o.is_object()) continue;
      auto object_path = [i] { return Index("Event.Object", i); };
      fn(o.get_object(), object_path);
      each(o.get_object(), "Attribute", object_path);
    }
  }
}

// Whether a distribution-4 element's group will be accepted; `why` says why not.
bool GroupAccepted(const json::object& el, const Receiver& r, std::string* why) {
  const json::value* sgv = el.if_contains("SharingGroup");
  *why = "no sharing group was sent with it";
  return sgv != nullptr && sgv->is_object() && Capturable(SharingGroupView(sgv->get_object()), r, why);
}

}  // namespace

bool AssessArrival(const json::object& sent, const Receiver& r, std::vector<Reason>* reasons,
                   std::vector<std::string>* warnings) {
  misp::EventView ev(const_cast<json::object&>(sent));
  if (ev.published() && !misp::HasElements(sent)) {
    reasons->push_back(Reason{"receiver.empty", "7.5, 12 case 64", "Event", "refuse", "", "",
                              r.name + " refuses a published event with no attribute, object or report"});
    return false;
  }
  ForEachDistributable(const_cast<json::object&>(sent), [&](json::object& el, auto path) {
    if (misp::IntOr(el, "distribution", -1) != 4) return;
    std::string why;
    if (GroupAccepted(el, r, &why)) return;
    std::string where = path();
    reasons->push_back(Reason{"receiver.sharing_group.capture", "3.4, 4.5", where, "uncapture", "4", "0",
                              r.name + " will not accept the sharing group: " + why});
    warnings->push_back(r.name + " will store " + where +
                        " at distribution 0 (your organisation only): " + why);
  });
  return true;
}

json::object MaterializeArrival(json::object e, const Receiver& r) {
  misp::EventView ev(e);
  if (!r.writer_has_perm_publish && ev.published()) ev.set_published(false);
  // `locked` is taken from the payload on add (spec 3.4); sgsync's own pushes and pulls set it.
  json::object org;
  org["name"] = r.writer_org.name;
  org["uuid"] = r.writer_org.uuid;
  e["Org"] = std::move(org);
  ForEachDistributable(e, [&](json::object& el, auto) {
    ElementView view(el);
    if (view.distribution() != 4) return;
    std::string why;
    if (GroupAccepted(el, r, &why)) {
      RewriteCaptured(el["SharingGroup"].get_object(), r);
      return;
    }
    view.set_distribution(0);
    view.set_sharing_group_id(0);
    el.stable_erase("SharingGroup");
  });
  return e;
}

std::optional<json::object> PredictArrival(const json::object& sent, const Receiver& r,
                                           std::vector<Reason>* reasons, std::vector<std::string>* warnings) {
  if (!AssessArrival(sent, r, reasons, warnings)) return std::nullopt;
  return MaterializeArrival(sent, r);
}

json::object PullIndexFilter(const FilterRules& rules, bool org_as_string) {
  json::object f;
  auto list = [](const std::vector<std::string>& ors, const std::vector<std::string>& nots) {
    json::array a;
    for (const auto& v : ors) {
      if (!v.empty()) a.push_back(json::value(v));
    }
    for (const auto& v : nots) {
      if (!v.empty()) a.push_back(json::value("!" + v));
    }
    return a;
  };
  if (auto tags = list(rules.tags_or, rules.tags_not); !tags.empty()) f["tag"] = std::move(tags);
  if (auto orgs = list(rules.orgs_or, rules.orgs_not); !orgs.empty()) {
    if (org_as_string) {
      std::string joined;
      for (const auto& v : orgs) joined += (joined.empty() ? "" : "|") + std::string(v.get_string());
      f["org"] = joined;
    } else {
      f["org"] = std::move(orgs);
    }
  }
  if (auto t = list({}, rules.type_attributes_not); !t.empty()) f["type_attribute"] = std::move(t);
  if (auto t = list({}, rules.type_objects_not); !t.empty()) f["type_object"] = std::move(t);
  if (!rules.url_params.empty()) {
    auto params = misp::ParseJson(rules.url_params);
    if (params.ok() && params->is_object()) {
      for (auto& kv : params->get_object()) {
        json::value* existing = f.if_contains(kv.key());
        if (existing != nullptr && existing->is_array() && kv.value().is_array()) {
          for (auto& v : kv.value().get_array()) existing->get_array().push_back(v);
        } else {
          f[kv.key()] = kv.value();
        }
      }
    }
  }
  f["minimal"] = 1;
  f["published"] = 1;
  return f;
}

}  // namespace sgsync::policy
