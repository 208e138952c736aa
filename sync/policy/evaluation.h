// sync/policy/evaluation.h: what one evaluation of the policy carries (private to sync/policy:
// policy.cc evaluates, push.cc holds MISP's push rules, pull.cc its pull rules).
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "misp/event.h"
#include "sync/policy/policy.h"

namespace sgsync::policy::detail {

using misp::AttributeView;
using misp::Child;
using misp::ElementView;
using misp::EventView;
using misp::Index;
using misp::SharingGroupView;
using misp::TagView;

inline std::string Num(std::optional<int> v) { return v ? std::to_string(*v) : std::string("absent"); }

inline bool Contains(const std::vector<std::string>& list, std::string_view s) {
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
inline void AnnounceOwnServerRow(json::object& element, const Link& link) {
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
inline void EraseKeys(json::object& o, std::initializer_list<std::string_view> keys) {
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

// What the attribute rules read, found in one pass over the attribute's keys: a hashed lookup per
// key costs about 40 ns, and an attribute was looked up eight times (bench/policy_bench.cc).
struct AttributeKeys {
  bool has_tags = false;  // a non-empty Tag or AttributeTag list
  json::value* distribution = nullptr;
};

// The receiver recomputes these (spec 3.2.3, 7.9); erasing moves the last key into the hole, so
// pointers into `a` are stale afterwards.
inline void EraseLocalIds(json::object& a) {
  for (auto it = a.begin(); it != a.end();) {
    std::string_view k = it->key();
    if (k == "id" || k == "value1" || k == "value2") {
      it = a.erase(it);
    } else {
      ++it;
    }
  }
}

inline AttributeKeys ScanAttribute(json::object& a) {
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

// The link's push or pull rules (spec 6) on the event as a whole: tags and organisations.
bool EventPassesRules(Run& run, EventView ev);
// MISP's push (spec 3.2): whether the event leaves at all, then what of it leaves, downgraded.
bool PushSelectEvent(Run& run, EventView ev);
void PushTransform(Run& run, EventView ev);
// MISP's pull (spec 3.3): whether the event is taken, then what of it, downgraded and locked.
bool PullSelectEvent(Run& run, EventView ev);
void PullTransform(Run& run, EventView ev);
// Whether anything not deleted is left (an attribute, an object attribute or a report).
bool HasLiveContent(EventView ev);

}  // namespace sgsync::policy::detail
