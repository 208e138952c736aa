// The onboarding canary (onboarding.h, --canary): one event moved both ways and cleaned up.
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "common/encoding.h"
#include "config/client.h"
#include "onboarding/check.h"
#include "onboarding/onboarding.h"
#include "sync/policy/policy.h"

namespace sgsync::onboarding::detail {

namespace json = boost::json;

// The canary: an event of its own tag, visible to the two organisations only (a sharing group of
// both, listing both servers), created on one side, moved by sgsync's policy and client, read back
// on the other; then removed where the keys allow.
void Canary(const Sink& sink, const CheckOptions& o, const config::LinkConfig& lc, Side& member, Side& portal,
            const policy::Link& plink) {
  const std::string stamp = std::to_string(std::time(nullptr));
  auto make = [&](const std::string& which, const std::string& creator_uuid) {
    const std::string uuid = RandomUuid();
    json::object sg{
        {"uuid", RandomUuid()},
        {"name", "sgsync onboarding canary " + stamp + " " + which},
        {"releasability", "the two organisations of one sgsync link"},
        {"description", "made by sgsyncctl onboarding check --canary; safe to delete"},
        {"organisation_uuid", creator_uuid},
        {"active", true},
        {"roaming", false},
        {"Organisation", json::object{{"uuid", creator_uuid}, {"name", ""}}},
        {"SharingGroupOrg",
         json::array{json::object{{"extend", false},
                                  {"Organisation", json::object{{"uuid", plink.local.org.uuid},
                                                                {"name", plink.local.org.name}}}},
                     json::object{{"extend", false},
                                  {"Organisation", json::object{{"uuid", plink.remote.org.uuid},
                                                                {"name", plink.remote.org.name}}}}}},
        {"SharingGroupServer",
         json::array{json::object{{"all_orgs", false},
                                  {"Server", json::object{{"url", plink.local.url}, {"name", "member"}}}},
                     json::object{{"all_orgs", false},
                                  {"Server", json::object{{"url", plink.remote.url}, {"name", "portal"}}}}}}};
    json::object ev{
        {"uuid", uuid},
        {"info", "sgsync onboarding canary " + stamp + " (" + which + "); safe to delete"},
        {"distribution", "4"},
        {"sharing_group_id", "0"},
        {"SharingGroup", sg},
        {"analysis", "2"},
        {"threat_level_id", "4"},
        {"published", true},
        {"timestamp", stamp},
        {"date", "2026-01-01"},
        {"Tag", json::array{json::object{
                    {"name", "sgsync:onboarding-canary"}, {"colour", "#808080"}, {"exportable", true}}}},
        {"Attribute", json::array{json::object{{"uuid", RandomUuid()},
                                               {"type", "comment"},
                                               {"category", "Other"},
                                               {"value", "sgsync onboarding canary " + stamp},
                                               {"distribution", "5"},
                                               {"to_ids", false},
                                               {"timestamp", stamp}}}}};
    return ev;
  };
  std::vector<std::string> left;  // what could not be removed
  auto trip = [&](bool push) {
    Check c(sink, o.lang, push ? "canary.push" : "canary.pull", lc.name,
            push ? "a canary event crosses from the member to the Portal"
                 : "a canary event crosses from the Portal to the member",
            push ? "カナリアイベントが会員からポータルへ届く" : "カナリアイベントがポータルから会員へ届く");
    Side& from = push ? member : portal;
    Side& to = push ? portal : member;
    json::object ev = make(push ? "member to Portal" : "Portal to member",
                           push ? plink.local.org.uuid : (portal.me ? portal.me->org_uuid : ""));
    const std::string uuid(misp::StringOr(ev, "uuid"));
    const json::object& group = ev.at("SharingGroup").as_object();
    left.push_back(c.T("sharing group " + std::string(misp::StringOr(group, "uuid")) + " \"" +
                           std::string(misp::StringOr(group, "name")) + "\" stays on both MISPs",
                       "共有グループ " + std::string(misp::StringOr(group, "uuid")) + "「" +
                           std::string(misp::StringOr(group, "name")) + "」が両方の MISP に残ります"));
    auto created = from.client->AddEvent(ev);
    if (!created.ok()) {
      c.Skip(c.T("could not create it on the " + std::string(push ? "member's MISP" : "Portal") + ": ",
                 std::string(push ? "会員の MISP" : "ポータル") + "で作成できませんでした：") +
             created.error().ToString());
      return;
    }
    auto served = from.client->ViewEvent(uuid, connector::ViewForm{true, !push});
    policy::Decision d = served.ok() && *served
                             ? policy::Evaluate(push ? Direction::kPush : Direction::kPull,
                                                std::optional<json::object>((**served).event_json()), plink)
                             : policy::Evaluate(push ? Direction::kPush : Direction::kPull, nullptr, plink);
    std::string outcome;
    if (!d.send) {
      const policy::Reason* why = d.refusal();
      outcome = c.T("the policy withheld it: ", "方針により保留：") +
                (why ? why->rule + " (" + why->detail + ")" : "");
    } else if (auto sent = to.client->AddEvent(*d.event); !sent.ok()) {
      outcome = c.T("the write failed: ", "書き込みに失敗：") + sent.error().ToString();
    }
    auto back = outcome.empty()
                    ? to.client->ViewEvent(uuid, connector::ViewForm{true, true})
                    : Result<std::optional<misp::EventDocument>>(std::optional<misp::EventDocument>());
    if (outcome.empty() && back.ok() && *back) {
      c.Pass(uuid + c.T(" read back on the ", " を読み戻しました：") + (push ? "Portal" : "member's MISP"));
    } else {
      c.FailWith(
          uuid + ": " +
              (outcome.empty() ? c.T("not found where it was sent", "送り先に見つかりません") : outcome),
          c.T("look at the other checks (keys, sharing groups, rules)",
              "他の確認（キー、共有グループ、規則）を参照してください"));
    }
    for (Side* side : {&from, &to}) {
      auto removed = side->client->DeleteEvent(uuid);
      const std::string where = side == &member ? "the member's MISP" : "the Portal";
      if (removed.ok()) {
        left.push_back(c.T(
            "event " + uuid + " deleted on " + where + ", where MISP keeps its uuid on the event blocklist",
            "イベント " + uuid + " を削除しました（" + where +
                "）。MISP はその uuid をイベントブロックリストに残します"));
      } else if (removed.error().code != ErrorCode::kNotFound) {
        left.push_back(
            uuid +
            c.T(" could not be deleted on " + where + ": ", " を削除できませんでした（" + where + "）：") +
            removed.error().message);
      }
    }
  };
  trip(true);
  trip(false);
  Check cleanup(sink, o.lang, "canary.cleanup", lc.name, "the canary events are removed",
                "カナリアイベントが削除された");
  std::string found;
  for (const auto& l : left) found += (found.empty() ? "" : "; ") + l;
  if (left.empty()) {
    cleanup.Pass(cleanup.T("nothing left behind", "何も残っていません"));
  } else {
    cleanup.Warn(
        found,
        cleanup.T(
            "what is named here was left behind: the secretariat (and the member's admin) can find "
            "it by these uuids and delete it",
            "ここに挙げたものが残っています。事務局（と会員の管理者）はこの uuid で見つけて削除できます"));
  }
}

}  // namespace sgsync::onboarding::detail
