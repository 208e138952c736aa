#include "sync/policy/sightings.h"

namespace sgsync::policy {

namespace {

std::string_view OrgUuid(const json::object& s) {
  const json::value* org = s.if_contains("Organisation");
  if (org == nullptr || !org->is_object()) return {};
  return misp::StringOr(org->as_object(), "uuid");
}

}  // namespace

SightingsSelection SelectSightings(const json::array& rows, std::string_view event_org_uuid,
                                   std::string_view viewer_org_uuid, const SightingsPolicy& p) {
  SightingsSelection out;
  std::vector<const json::object*> sightings;
  for (const auto& r : rows) {
    if (!r.is_object()) continue;
    const json::object& o = r.as_object();
    const json::value* inner = o.if_contains("Sighting");
    sightings.push_back(inner != nullptr && inner->is_object() ? &inner->as_object() : &o);
  }
  const bool owner = SameText(event_org_uuid, viewer_org_uuid);
  bool viewer_reported = false;
  for (const auto* s : sightings) viewer_reported = viewer_reported || SameText(OrgUuid(*s), viewer_org_uuid);
  for (const auto* s : sightings) {
    std::string_view org = OrgUuid(*s);
    bool own = SameText(org, viewer_org_uuid);
    bool visible = owner || p.policy == 2 || own || (p.policy == 1 && viewer_reported) ||
                   (p.policy == 3 && !p.host_org_uuid.empty() && SameText(org, p.host_org_uuid));
    if (!visible) {
      ++out.withheld;
      continue;
    }
    // bulkSaveSightings form: the sending instance's row ids stay home.
    json::object row;
    for (const char* k :
         {"uuid", "attribute_uuid", "event_uuid", "date_sighting", "source", "type", "org_id"}) {
      if (const json::value* v = s->if_contains(k)) row[k] = *v;
    }
    if (const json::value* o = s->if_contains("Organisation"); o != nullptr && o->is_object()) {
      row["Organisation"] = json::object{{"name", misp::StringOr(o->as_object(), "name")},
                                         {"uuid", misp::StringOr(o->as_object(), "uuid")}};
    }
    if (p.anonymise && !own) {
      ++out.anonymised;
      if (!p.anonymise_as.uuid.empty()) {
        row["Organisation"] = json::object{{"name", p.anonymise_as.name}, {"uuid", p.anonymise_as.uuid}};
      } else {
        row.erase("Organisation");
        row["org_id"] = "0";
      }
    }
    out.send.push_back(std::move(row));
  }
  if (out.withheld > 0) {
    out.reasons.push_back(Reason{"push.sighting.policy", "8.1", "Sighting", "remove", "", "",
                                 std::to_string(out.withheld) + " sighting(s) the sighting policy " +
                                     std::to_string(p.policy) + " does not show the receiving organisation"});
  }
  if (out.anonymised > 0) {
    out.reasons.push_back(
        Reason{"push.sighting.anonymise", "8.1", "Sighting.Organisation", "set", "",
               p.anonymise_as.uuid.empty() ? "" : p.anonymise_as.name,
               std::to_string(out.anonymised) + " sighting(s) of other organisations anonymised"});
  }
  return out;
}

}  // namespace sgsync::policy
