// The member-side checks and the secretariat's probe (onboarding.h). Each check reads, never
// writes; a check that cannot run because an earlier one failed is a SKIP saying which.
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

namespace sgsync::onboarding {
namespace {

using namespace detail;  // NOLINT: this library's own check helpers
namespace json = boost::json;

void MemberLinkChecks(const Sink& sink, const CheckOptions& o, const config::LinkConfig& lc) {
  Side member{"member", nullptr, {}, {}}, portal{"portal", nullptr, {}, {}};
  for (Side* side : {&member, &portal}) {
    const auto& e = side == &member ? lc.local : lc.remote;
    auto client = config::MakeClient(e, nullptr, lc.name + "/" + side->name, nullptr, nullptr);
    if (!client.ok()) {
      Check c(sink, o.lang, side->name + ".reachable", lc.name, "client", "クライアント");
      c.FailWith(client.error().ToString(), "");
      return;
    }
    side->client = std::move(*client);
    CheckReachAndTls(sink, o, lc.name, *side, e);
    CheckKey(sink, o, lc.name, *side);
    CheckClock(sink, o, lc.name, *side);
  }

  Check version(sink, o.lang, "member.version", lc.name, "MISP versions compatible",
                "MISP のバージョンが互換");
  if (!member.version || !portal.version) {
    version.Skip(version.T("a version is unknown (see the reachability checks)",
                           "バージョンが不明です（到達性を参照）"));
  } else {
    std::string found =
        version.T("member " + member.version->version + ", Portal " + portal.version->version,
                  "会員 " + member.version->version + "、ポータル " + portal.version->version);
    if (member.version->major != portal.version->major || member.version->minor != portal.version->minor) {
      version.FailWith(found,
                       version.T("upgrade the member's MISP to the Portal's major.minor version",
                                 "会員の MISP をポータルのメジャー・マイナーバージョンに更新してください"));
    } else if (!member.version->AtLeast(portal.version->major, portal.version->minor,
                                        portal.version->hotfix)) {
      version.Warn(found, version.T("the member's MISP is behind the Portal: plan an upgrade",
                                    "会員の MISP がポータルより古いので更新を計画してください"));
    } else {
      version.Pass(found);
    }
  }

  Check admin(sink, o.lang, "member.site_admin", lc.name,
              "the member key is a site admin of the host organisation",
              "会員のキーがホスト組織のサイト管理者のもの");
  std::string host_org = lc.local.org_uuid;
  if (!member.me) {
    admin.Skip(admin.T("the key was not accepted", "キーが受け付けられませんでした"));
  } else {
    if (host_org.empty()) host_org = member.me->org_uuid;
    bool site_admin = member.me->Has("perm_site_admin");
    bool host = policy::SameText(member.me->org_uuid, host_org);
    std::string found = member.me->email + " (" + member.me->role_name + ", " + member.me->org_name + ")";
    if (site_admin && host) {
      admin.Pass(found);
    } else {
      admin.FailWith(
          found,
          admin.T("sgsync reads every shareable event and writes pulled ones keeping their creator: "
                  "use a key of a site admin of the host organisation",
                  "sgsync は共有可能なイベントをすべて読み、pull したイベントを作成組織を保って書き込みます。"
                  "ホスト組織のサイト管理者のキーを使ってください"));
    }
  }

  Check sync(sink, o.lang, "portal.sync_user", lc.name,
             "the Portal key is a sync user of the member's organisation",
             "ポータルのキーが会員組織の同期ユーザーのもの");
  if (!portal.me || !portal.version) {
    sync.Skip(sync.T("the key was not accepted", "キーが受け付けられませんでした"));
  } else {
    std::string found = portal.me->email + " (" + portal.me->role_name + ", " + portal.me->org_name +
                        ", perm_sync " + (portal.version->perm_sync ? "yes" : "no") + ")";
    if (!portal.version->perm_sync) {
      sync.FailWith(found, sync.T("ask the secretariat for a user with the role \"Sync user\"",
                                  "ロール \"Sync user\" のユーザーを事務局に依頼してください"));
    } else if (portal.me->Has("perm_site_admin") && !lc.remote.allow_site_admin) {
      sync.FailWith(found,
                    sync.T("a Portal site admin's key is refused: use the sync user's",
                           "ポータルのサイト管理者のキーは使えません。同期ユーザーのキーを使ってください"));
    } else if (portal.me->Has("perm_site_admin")) {
      // sgsyncd runs with it (remote.allow_site_admin), as the check says; the secretariat should know.
      sync.Warn(found,
                sync.T("a Portal site admin's key, accepted by remote.allow_site_admin: a sync user's key "
                       "is what sgsync needs",
                       "remote.allow_site_admin によりポータルのサイト管理者のキーを受け入れています。"
                       "sgsync に必要なのは同期ユーザーのキーです"));
    } else {
      sync.Pass(found);
    }
  }

  Check org(sink, o.lang, "portal.org_matches", lc.name,
            "the member's organisation is the same on the Portal and on the member's MISP",
            "会員組織がポータルと会員の MISP で同じ");
  if (!portal.me || host_org.empty()) {
    org.Skip(org.T("an identity is unknown (see the key checks)", "識別情報が不明です（キーの検査を参照）"));
  } else if (policy::SameText(portal.me->org_uuid, host_org)) {
    org.Pass(portal.me->org_name + " " + portal.me->org_uuid);
  } else {
    org.FailWith(org.T("the Portal user is of " + portal.me->org_name + " (" + portal.me->org_uuid +
                           "), the member's host organisation is " + host_org,
                       "ポータルのユーザーは " + portal.me->org_name + "（" + portal.me->org_uuid +
                           "）の所属、会員のホスト組織は " + host_org),
                 org.T("the secretariat must create the member's organisation on the Portal with the host "
                       "organisation's "
                       "uuid, and the sync user in it",
                       "事務局がポータル上に会員のホスト組織と同じ uuid "
                       "の組織と、その同期ユーザーを作成する必要があります"));
  }

  // The member MISP's own settings that the sharing rules depend on, against the link's keys.
  Check settings(sink, o.lang, "settings.match", lc.name, "the link's settings match the member MISP's own",
                 "リンクの設定が会員の MISP 自身の設定と一致");
  auto plink_settings = config::MakePolicyLink(
      lc, policy::OrgRef{portal.me ? portal.me->org_uuid : host_org, ""}, policy::OrgRef{host_org, ""});
  if (!member.me || !plink_settings.ok()) {
    settings.Skip(settings.T("the member's key was not accepted", "会員のキーが受け付けられませんでした"));
  } else {
    std::vector<std::string> differ, read;
    auto compare = [&](const char* name, const std::string& key, const std::string& file_value,
                       const std::function<std::string(const json::value&)>& as_text) {
      auto v = member.client->Setting(name);
      if (!v.ok()) {
        differ.push_back(std::string(name) + ": " + v.error().ToString());
        return;
      }
      std::string misp_value = as_text(*v);
      read.push_back(std::string(name) + " = " + misp_value);
      if (misp_value != file_value)
        differ.push_back(std::string(name) + " is " + misp_value + " on the member's MISP, " + key + " = " +
                         file_value + " in the file");
    };
    auto boolean = [](const json::value& v) {
      return std::string(misp::IntOr(&v, v.is_bool() && v.get_bool() ? 1 : 0) != 0 ||
                                 (v.is_bool() && v.get_bool())
                             ? "true"
                             : "false");
    };
    auto number = [](const json::value& v) { return std::to_string(misp::IntOr(&v, 0)); };
    compare("MISP.host_org_id", "host_org_id_set", plink_settings->host_org_id_set ? "set" : "unset",
            [](const json::value& v) {
              return misp::IntOr(&v, 0) != 0 ? std::string("set") : std::string("unset");
            });
    compare("MISP.enable_synchronisation_filtering_on_type", "filter_on_type",
            plink_settings->filter_on_type ? "true" : "false", boolean);
    compare("Plugin.Sightings_policy", "sightings_policy", std::to_string(lc.engine.sightings_policy.policy),
            number);
    compare("Plugin.Sightings_anonymise", "sightings_anonymise",
            lc.engine.sightings_policy.anonymise ? "true" : "false", boolean);
    if (!plink_settings->announced_url.empty()) {
      compare(
          "MISP.external_baseurl", "announced_url", plink_settings->announced_url,
          [](const json::value& v) { return v.is_string() ? std::string(v.get_string()) : std::string(); });
    }
    for (bool orgs : {false, true}) {
      auto held = member.client->Blocklist(orgs);
      if (!held.ok()) {
        differ.push_back(held.error().ToString());
        continue;
      }
      const auto& configured =
          orgs ? plink_settings->pull_blocked_org_uuids : plink_settings->pull_blocked_event_uuids;
      std::set<std::string> in_file;
      for (const auto& u : configured) in_file.insert(AsciiLower(u));
      for (const auto& u : *held) {
        if (!in_file.count(u))
          differ.push_back(std::string(orgs ? "org" : "event") + " blocklist entry " + u +
                           " of the member's MISP is not in " +
                           (orgs ? "pull_blocked_orgs" : "pull_blocked_events"));
      }
      read.push_back(std::string(orgs ? "organisation" : "event") +
                     " blocklist: " + std::to_string(held->size()));
    }
    std::string found;
    for (const auto& x : (differ.empty() ? read : differ)) found += (found.empty() ? "" : "; ") + x;
    if (differ.empty()) {
      settings.Pass(found);
    } else {
      settings.FailWith(
          found,
          settings.T("make the file say what the member's MISP does (docs/configuration.md names "
                     "each key's MISP setting)",
                     "設定ファイルを会員の MISP の設定に合わせてください（docs/configuration.ja.md）"));
    }
  }

  // Rules: every id and name must mean something on the MISP it applies to.
  Check rules(sink, o.lang, "rules.known", lc.name,
              "push and pull rules name existing tags and organisations",
              "push・pull 規則のタグと組織が存在する");
  auto plink = config::MakePolicyLink(lc, policy::OrgRef{portal.me ? portal.me->org_uuid : "", ""},
                                      policy::OrgRef{host_org, ""});
  if (!plink.ok()) {
    rules.FailWith(plink.error().ToString(), "");
  } else {
    std::vector<std::string> notes, unknown;
    for (bool push : {true, false}) {
      Side& owner = push ? member : portal;
      policy::FilterRules rulesx = push ? plink->push_rules : plink->pull_rules;
      if (rulesx.tags_or.empty() && rulesx.tags_not.empty() && rulesx.orgs_or.empty() &&
          rulesx.orgs_not.empty())
        continue;
      auto tags = owner.client->Tags();
      auto orgs = owner.client->Organisations();
      if (!tags.ok() || !orgs.ok()) {
        unknown.push_back((push ? "push_rules: " : "pull_rules: ") +
                          (!tags.ok() ? tags.error() : orgs.error()).ToString());
        continue;
      }
      policy::RuleIdNames names;
      std::set<std::string> tag_names, org_keys;
      for (const auto& t : *tags) {
        names.tags[t.id] = t.name;
        tag_names.insert(AsciiLower(t.name));
      }
      for (const auto& g : *orgs) {
        names.orgs[g.id] = g.uuid;
        names.org_names[g.id] = g.name;
        org_keys.insert(AsciiLower(g.uuid));
        org_keys.insert(AsciiLower(g.name));
      }
      const std::string which = push ? "push_rules" : "pull_rules";
      auto resolved = policy::ResolveRuleIds(rulesx, names, which, push ? "the member's MISP" : "the Portal");
      if (!resolved.ok()) {
        unknown.push_back(resolved.error().ToString());
        continue;
      }
      notes.insert(notes.end(), resolved->begin(), resolved->end());
      (push ? plink->push_rules : plink->pull_rules) = rulesx;  // the dry run decides as sgsyncd would
      for (const auto* list : {&rulesx.tags_or, &rulesx.tags_not})
        for (const auto& t : *list)
          if (!tag_names.count(AsciiLower(t))) unknown.push_back(which + ": no tag named \"" + t + "\"");
      for (const auto* list : {&rulesx.orgs_or, &rulesx.orgs_not})
        for (const auto& g : *list)
          if (!org_keys.count(AsciiLower(g))) unknown.push_back(which + ": no organisation \"" + g + "\"");
    }
    std::string found;
    for (const auto& n : notes) found += (found.empty() ? "" : "; ") + n;
    if (!unknown.empty()) {
      std::string list;
      for (const auto& u : unknown) list += (list.empty() ? "" : "; ") + u;
      rules.FailWith(list, rules.T("a rule that names nothing matches nothing: fix or remove it",
                                   "何も指さない規則は何にも一致しません。修正または削除してください"));
    } else {
      rules.Pass(found.empty() ? rules.T("no tag or organisation rules", "タグ・組織の規則はありません")
                               : found);
    }

    // The dry run: what each direction would send now, and what it would withhold, by reason.
    for (bool push : {true, false}) {
      Check dry(sink, o.lang, push ? "dry_run.push" : "dry_run.pull", lc.name,
                push ? "what a push would send now" : "what a pull would bring now",
                push ? "今 push すると送られるもの" : "今 pull すると取り込まれるもの");
      if (!(push ? lc.push : lc.pull)) {
        dry.Skip(dry.T("the link does not run this direction", "このリンクはこの方向を実行しません"));
        continue;
      }
      Side& source = push ? member : portal;
      json::object filter = push ? json::object{} : policy::PullIndexFilter(plink->pull_rules);
      filter["minimal"] = 1;
      filter["published"] = 1;
      auto page = source.client->EventIndex(filter, "");
      if (!page.ok()) {
        dry.Skip(page.error().ToString());
        continue;
      }
      constexpr std::size_t kMaxEvents = 2000, kPerSearch = 50;
      std::size_t send = 0, withhold = 0, looked = std::min(page->rows.size(), kMaxEvents);
      std::map<std::string, int> reasons;
      bool failed = false;
      for (std::size_t from = 0; from < looked && !failed; from += kPerSearch) {
        json::array uuids;
        for (std::size_t i = from; i < std::min(looked, from + kPerSearch); ++i)
          uuids.emplace_back(page->rows[i].uuid);
        auto docs = source.client->RestSearch(
            json::object{{"uuid", std::move(uuids)}, {"deleted", json::array{0, 1}}});
        if (!docs.ok()) {
          dry.Skip(docs.error().ToString());
          failed = true;
          break;
        }
        for (auto& d : *docs) {
          policy::Decision decision =
              policy::Evaluate(push ? Direction::kPush : Direction::kPull,
                               std::optional<json::object>(std::move(d).TakeEvent()), *plink);
          if (decision.send) {
            ++send;
          } else {
            ++withhold;
            const policy::Reason* why = decision.refusal();
            ++reasons[why != nullptr ? why->rule : "not_served"];
          }
        }
      }
      if (failed) continue;
      std::string found = dry.T("of " + std::to_string(looked) + " published event(s): would send " +
                                    std::to_string(send) + ", withhold " + std::to_string(withhold),
                                "公開イベント " + std::to_string(looked) + " 件のうち、送信 " +
                                    std::to_string(send) + " 件、保留 " + std::to_string(withhold) + " 件");
      for (const auto& [rule, n] : reasons) found += "; " + rule + " x " + std::to_string(n);
      if (page->rows.size() > kMaxEvents)
        found += dry.T(
            " (the first " + std::to_string(kMaxEvents) + " of " + std::to_string(page->rows.size()) + ")",
            "（" + std::to_string(page->rows.size()) + " 件中、先頭 " + std::to_string(kMaxEvents) + " 件）");
      dry.Pass(found);
    }

    if (o.canary) Canary(sink, o, lc, member, portal, *plink);

    // Sharing groups of the member's shareable events: which reach the Portal.
    Check groups(sink, o.lang, "sharing_groups.reach", lc.name,
                 "the sharing groups of shareable events reach the Portal",
                 "共有イベントの共有グループがポータルに届く");
    auto docs =
        member.client->RestSearch(json::object{{"published", 1}, {"metadata", 1}, {"distribution", 4}});
    if (!docs.ok()) {
      groups.Skip(docs.error().ToString());
    } else {
      std::map<std::string, std::pair<std::string, int>> outside;  // uuid -> name, events
      int reaching = 0;
      for (auto& d : *docs) {
        const json::value* sgv = d.event_json().if_contains("SharingGroup");
        if (sgv == nullptr || !sgv->is_object()) continue;
        json::object sg = sgv->get_object();
        std::string why;
        if (policy::ServerInSharingGroup(misp::SharingGroupView(sg), *plink, &why)) {
          ++reaching;
        } else {
          auto& entry = outside[std::string(misp::StringOr(sg, "uuid"))];
          entry.first = std::string(misp::StringOr(sg, "name"));
          ++entry.second;
        }
      }
      if (outside.empty()) {
        groups.Pass(
            groups.T(std::to_string(reaching) + " event(s) in sharing groups, all reaching the Portal",
                     "共有グループのイベント " + std::to_string(reaching) + " 件、すべてポータルに届きます"));
      } else {
        std::string list;
        for (const auto& [uuid, v] : outside)
          list += (list.empty() ? "" : "; ") + v.first + " (" + uuid + "): " + std::to_string(v.second) +
                  groups.T(" event(s) will not cross", " 件は送られません");
        groups.Warn(
            list,
            groups.T("add the Portal's organisation and server to these groups, or make them roaming, "
                     "if their events are meant for SecureGRID",
                     "これらのイベントを SecureGRID に出す場合は、ポータルの組織とサーバーを共有グループに"
                     "加えるか、ローミングにしてください"));
      }
    }
  }
}

}  // namespace

void RunMemberChecks(const std::string& config_path, const CheckOptions& o, const Sink& sink) {
  Check valid(sink, o.lang, "config.valid", "", "the configuration is valid", "設定が有効");
  auto cfg = config::LoadConfig(config_path);
  if (!cfg.ok()) {
    valid.FailWith(
        cfg.error().message,
        valid.T("fix the file, then run sgsyncd --config " + config_path + " --check",
                "ファイルを修正し、sgsyncd --config " + config_path + " --check を実行してください"));
    return;
  }
  valid.Pass(config_path + valid.T(": " + std::to_string(cfg->links.size()) + " link(s)",
                                   "：リンク " + std::to_string(cfg->links.size()) + " 件"));

  namespace fs = std::filesystem;
  fs::path db(cfg->state_db);
  fs::path dir = db.has_parent_path() ? db.parent_path() : fs::path(".");
  Check writable(sink, o.lang, "state.writable", "", "the state database can be written",
                 "状態データベースに書き込める");
  bool dir_ok = ::access(dir.c_str(), W_OK | X_OK) == 0;
  bool db_ok = !fs::exists(db) || ::access(db.c_str(), R_OK | W_OK) == 0;
  if (dir_ok && db_ok) {
    writable.Pass(cfg->state_db);
  } else {
    writable.FailWith(
        cfg->state_db + writable.T(": not writable by this user", "：このユーザーは書き込めません"),
        writable.T(
            "create " + dir.string() + " owned by the service user (the package makes /var/lib/sgsync)",
            dir.string() +
                " をサービスユーザーの所有で作成してください（パッケージは /var/lib/sgsync を作ります）"));
  }
  Check disk(sink, o.lang, "state.disk_space", "", "free disk space for the state", "状態のための空き容量");
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) {
    disk.Skip(dir.string() + disk.T(": cannot be examined", "：調べられません"));
  } else {
    std::uint64_t free_mb = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize >> 20;
    std::string found = std::to_string(free_mb) + disk.T(" MiB free in ", " MiB の空き：") + dir.string();
    if (free_mb < 100) {
      disk.FailWith(found, disk.T("free space: the ledger grows with the events tracked",
                                  "空き容量を確保してください。台帳は追跡するイベントとともに増えます"));
    } else if (free_mb < 1024) {
      disk.Warn(found, disk.T("keep at least 1 GiB free", "1 GiB 以上の空きを保ってください"));
    } else {
      disk.Pass(found);
    }
  }
  for (const auto& lc : cfg->links) MemberLinkChecks(sink, o, lc);
}

void RunProbe(const ProbeTarget& target, const CheckOptions& o, const Sink& sink) {
  config::MispEndpointConfig e;
  e.url = target.url;
  e.ca_file = target.ca_file;
  e.insecure_http = target.insecure_http;
  std::ifstream in(target.key_file);
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  e.api_key = config::Secret(key);
  Side side{"member", nullptr, {}, {}};
  auto client = config::MakeClient(e, nullptr, "probe", nullptr, nullptr);
  if (!client.ok()) {
    Check c(sink, o.lang, "member.reachable", "", "the member's MISP answers", "会員の MISP が応答する");
    c.FailWith(client.error().ToString(), "");
    return;
  }
  side.client = std::move(*client);
  CheckReachAndTls(sink, o, "", side, e);
  CheckKey(sink, o, "", side);
  Check role(sink, o.lang, "member.sync_capable", "", "the key's role can sync", "キーのロールが同期できる");
  if (!side.me || !side.version) {
    role.Skip(role.T("the key was not accepted", "キーが受け付けられませんでした"));
  } else if (side.version->perm_sync || side.me->Has("perm_site_admin")) {
    role.Pass(side.me->role_name + ", " + side.me->org_name + " " + side.me->org_uuid);
  } else {
    role.FailWith(side.me->role_name + " (perm_sync no)",
                  role.T("the member must give a key whose role has perm_sync",
                         "perm_sync のあるロールのキーが必要です"));
  }
  Check version(sink, o.lang, "member.version", "", "the MISP version is supported",
                "MISP のバージョンが対応範囲");
  if (!side.version) {
    version.Skip(version.T("the version is unknown", "バージョンが不明です"));
  } else {
    int mj = 0, mn = 0, hf = 0;
    std::sscanf(target.latest_version.c_str(), "%d.%d.%d", &mj, &mn, &hf);
    std::string found = side.version->version + version.T(" (latest supported " + target.latest_version + ")",
                                                          "（対応する最新 " + target.latest_version + "）");
    if (side.version->major != mj || side.version->minor != mn) {
      version.FailWith(found, version.T("upgrade to " + target.latest_version,
                                        target.latest_version + " に更新してください"));
    } else if (!side.version->AtLeast(mj, mn, hf)) {
      version.Warn(found, version.T("upgrade to " + target.latest_version,
                                    target.latest_version + " に更新してください"));
    } else {
      version.Pass(found);
    }
  }
  CheckClock(sink, o, "", side);
}

}  // namespace sgsync::onboarding
