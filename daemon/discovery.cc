// Service: building each link's clients, and discovery: what the two MISPs say before a link's
// engine can start (who sgsync is on the Portal, the member's organisation, rule ids).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <random>

#include "common/encoding.h"
#include "config/client.h"
#include "daemon/link_runtime.h"

namespace sgsync::daemon {

// One limit per MISP (by URL, case and a trailing slash ignored), shared by every link and run that
// talks to it; its size is the smallest max_in_flight configured for that URL. Kept across reloads
// (a run in flight still holds its slot), resized only by a restart.
namespace {
std::string EndpointKey(const std::string& url) {
  std::string key = AsciiLower(url);
  while (!key.empty() && key.back() == '/') key.pop_back();
  return key;
}
}  // namespace

std::shared_ptr<connector::EndpointLimit> Service::LimitFor(const config::MispEndpointConfig& e) {
  const std::string key = EndpointKey(e.url);
  int want = e.max_in_flight;
  for (const auto& l : config_.links) {
    for (const auto* other : {&l.local, &l.remote})
      if (EndpointKey(other->url) == key) want = std::min(want, other->max_in_flight);
  }
  auto& slot = endpoint_limits_[key];
  if (!slot) slot = std::make_shared<connector::EndpointLimit>(want);
  return slot;
}

std::shared_ptr<engine::NewTagGate> Service::GateFor(const config::MispEndpointConfig& e) {
  auto& slot = new_tag_gates_[EndpointKey(e.url)];
  if (!slot) slot = std::make_shared<engine::NewTagGate>();
  return slot;
}

Status Service::BuildLinks() {
  links_.clear();
  if (!process_limit_) process_limit_ = std::make_shared<connector::EndpointLimit>(config_.max_requests_in_flight);
  for (const auto& lc : config_.links) {
    auto rt = std::make_unique<LinkRuntime>();
    rt->config = lc;
    SGSYNC_TRY(rt->local, config::MakeClient(lc.local, &metrics_, lc.name + "/local", documents_budget_,
                                             LimitFor(lc.local), process_limit_));
    SGSYNC_TRY(rt->remote, config::MakeClient(lc.remote, &metrics_, lc.name + "/remote", documents_budget_,
                                              LimitFor(lc.remote), process_limit_));
    rt->new_tags = {GateFor(lc.local), GateFor(lc.remote)};
    rt->status[0].enabled = lc.push;
    rt->status[1].enabled = lc.pull;
    links_.push_back(std::move(rt));
  }
  SGSYNC_TRY(auto pauses, store_->ListPauses());
  for (const auto& p : pauses) {
    LinkRuntime* l = Find(p.link);
    if (l == nullptr) continue;  // a link no longer configured: its pause waits, should it come back
    DirectionStatus& st = l->status[p.direction == Direction::kPush ? 0 : 1];
    st.paused = true;
    st.paused_by = p.paused_by;
    st.paused_at = p.paused_at;
  }
  return {};
}

// Whose key sgsync holds for the Portal, checked before anything moves (docs/security.md): a key of
// another organisation's user would pull that organisation's own events (distribution 0 included)
// into the member's MISP and push the member's events as that organisation's. MISP's own sync has
// the same hole; sgsync closes it.
// `org` is the Portal's answer for remote.org_uuid, asked beside the other questions.
Status CheckPortalAccount(const config::LinkConfig& lc, const misp::UserInfo& me,
                          const misp::ServerVersion& version, const policy::OrgRef& member,
                          const Result<std::optional<connector::OrganisationInfo>>& org) {
  auto who = [&] {
    return (me.email.empty() ? std::string("a user") : me.email) + " of " +
           (me.org_name.empty() ? me.org_uuid : me.org_name + " (" + me.org_uuid + ")");
  };
  const std::string member_name = member.name.empty() ? member.uuid : member.name + " (" + member.uuid + ")";
  if (!policy::SameText(me.org_uuid, member.uuid)) {
    return Fail(
        ErrorCode::kPermissionDenied,
        "the Portal key belongs to " + who() + ", not to a user of the member's organisation " + member_name +
            ": refused (it would bring that organisation's own events in and send the member's as "
            "its own). Use the key of the sync user the secretariat made for the member's organisation",
        "link " + lc.name + " remote.api_key");
  }
  if (!version.perm_sync) {
    return Fail(ErrorCode::kPermissionDenied,
                "the Portal account " + who() + " has no perm_sync (role " +
                    (me.role_name.empty() ? std::string("unknown") : me.role_name) +
                    "): sgsync runs only with a sync user's key; ask the Portal's administrators for one",
                "link " + lc.name + " remote.api_key");
  }
  if (me.Has("perm_site_admin") && !lc.remote.allow_site_admin) {
    return Fail(ErrorCode::kPermissionDenied,
                "the Portal account " + who() +
                    " is a site admin of the Portal: refused, a sync user's key is what sgsync needs (set "
                    "remote.allow_site_admin = true to accept it anyway, docs/configuration.md)",
                "link " + lc.name + " remote.api_key");
  }
  if (!org.ok()) {
    if (org.error().code == ErrorCode::kUnavailable || org.error().code == ErrorCode::kTimeout)
      return org.error();
    spdlog::warn("link {}: remote.org_uuid {} could not be checked with the Portal: {}", lc.name,
                 lc.remote.org_uuid, org.error().ToString());
    return {};
  }
  const std::string where = "link " + lc.name + " remote.org_uuid";
  if (!*org)
    return Fail(ErrorCode::kInvalidArgument,
                lc.remote.org_uuid + " is not an organisation the Portal knows: it must be the Portal's own",
                where);
  if (policy::SameText((*org)->uuid, member.uuid))
    return Fail(ErrorCode::kInvalidArgument,
                lc.remote.org_uuid + " is the member's own organisation, not the Portal's", where);
  if (!(*org)->local)
    return Fail(ErrorCode::kInvalidArgument,
                lc.remote.org_uuid + " (" + (*org)->name +
                    ") is known to the Portal but is not one of its own organisations (local: false)",
                where);
  return {};
}

// What the configuration leaves to the MISPs: who sgsync is on the Portal, and the member's host
// organisation when not configured (users/view/me on each side).
Status Service::Discover(LinkRuntime& link) {
  std::lock_guard lock(link.mu);
  if (link.engine) return {};
  const auto& lc = link.config;
  // The questions are asked of both MISPs at once, not one after the other: each is a round trip
  // (about 60 ms on real MISP 2.5.1, docs/performance.md) and the link's first run waits for them
  // all. The answers are read in the order the checks were always made, so a link that fails several
  // reports the same one as before. A return before every answer is read still waits for the rest:
  // a std::async future's destructor joins its thread, which uses `link`.
  auto ask = [](auto question) { return std::async(std::launch::async, std::move(question)); };
  auto remote_me_answer = ask([&link] { return link.remote->WhoAmI(); });
  auto remote_version_answer = ask([&link] { return link.remote->GetVersion(); });
  auto local_version_answer = ask([&link] { return link.local->GetVersion(); });
  std::future<Result<misp::UserInfo>> local_me_answer;
  if (lc.local.org_uuid.empty()) local_me_answer = ask([&link] { return link.local->WhoAmI(); });
  auto portal_org_answer =
      ask([&link] { return link.remote->ViewOrganisation(link.config.remote.org_uuid); });
  SGSYNC_TRY(misp::UserInfo remote_me, remote_me_answer.get());
  SGSYNC_TRY(misp::ServerVersion remote_version, remote_version_answer.get());
  SGSYNC_TRY(misp::ServerVersion local_version, local_version_answer.get());
  // MISP's own push logs a version gap and goes on (spec 12 case 37); so does sgsync.
  if (auto gap = misp::CompareVersions(local_version, remote_version)) {
    if (gap->error) {
      spdlog::error("link {}: {} (docs/operations.md)", lc.name, gap->message);
    } else {
      spdlog::warn("link {}: {}", lc.name, gap->message);
    }
  }
  link.local_version = local_version.version;
  link.remote_version = remote_version.version;
  policy::OrgRef local_org{lc.local.org_uuid, lc.local.org_name};
  if (local_org.uuid.empty()) {
    SGSYNC_TRY(misp::UserInfo local_me, local_me_answer.get());
    local_org = {local_me.org_uuid, local_me.org_name};
  }
  SGSYNC_TRY_STATUS(CheckPortalAccount(lc, remote_me, remote_version, local_org, portal_org_answer.get()));
  SGSYNC_TRY(policy::Link plink,
             config::MakePolicyLink(lc, policy::OrgRef{remote_me.org_uuid, remote_me.org_name}, local_org));
  plink.remote_version = remote_version.version;
  // Rules pasted from MISP's server settings name tags and organisations by id (issue 16 item 1).
  std::vector<std::string> notes;
  for (bool push : {true, false}) {
    policy::FilterRules& rules = push ? plink.push_rules : plink.pull_rules;
    if (!policy::HasRuleIds(rules)) continue;
    connector::MispClient& owner = push ? *link.local : *link.remote;
    const std::string misp =
        push ? "the member's MISP (" + lc.local.url + ")" : "the Portal (" + lc.remote.url + ")";
    policy::RuleIdNames names;
    SGSYNC_TRY(auto tags, owner.Tags());
    for (const auto& t : tags) names.tags[t.id] = t.name;
    SGSYNC_TRY(auto orgs, owner.Organisations());
    for (const auto& o : orgs) {
      names.orgs[o.id] = o.uuid;
      names.org_names[o.id] = o.name;
    }
    auto resolved = policy::ResolveRuleIds(rules, names, push ? "push_rules" : "pull_rules", misp);
    if (!resolved.ok()) return resolved.error().Within("link " + lc.name);
    for (auto& n : *resolved) {
      spdlog::info("link {}: {} ({})", lc.name, n, misp);
      notes.push_back(n + " (" + misp + ")");
    }
  }
  link.rule_notes = std::move(notes);
  SGSYNC_TRY(state::LinkRegistration reg, store_->RegisterLink(lc.name, config::SharingIdentity(lc)));
  if (reg.identity_changed && !reg.is_new) {
    // Decisions taken under the old configuration are taken again: withheld events that are now
    // eligible are sent; sent ones that no longer are are reported (MISP cannot retract them).
    SGSYNC_TRY_STATUS(store_->ForgetSeen(reg.id));
    spdlog::warn(
        "link {}: its sharing configuration changed since the last run: every event is decided again "
        "(docs/operations.md)",
        lc.name);
  }
  link.link_id = reg.id;
  // The engine as the file sets it, plus what only the two MISPs can say.
  engine::EngineOptions eo = lc.engine;
  eo.max_in_flight = std::min(lc.local.max_in_flight, lc.remote.max_in_flight);
  eo.remote_perm_sync = remote_version.perm_sync;
  eo.remote_perm_analyst_data = remote_version.perm_analyst_data;
  eo.remote_perm_galaxy_editor = remote_version.perm_galaxy_editor;
  eo.sightings_policy.host_org_uuid = local_org.uuid;
  if (!remote_version.perm_sync && lc.push) {
    spdlog::error("link {}: the Portal account has no perm_sync: push runs are refused until it has one",
                  lc.name);
  }
  link.engine = std::make_unique<engine::LinkEngine>(lc.name, reg.id, std::move(plink), eo, *link.local,
                                                     *link.remote, *store_, &metrics_, link.new_tags);
  spdlog::info("link {}: ready (sgsync is {} of {} on the Portal; local organisation {})", lc.name,
               remote_me.email.empty() ? "a user" : remote_me.email, remote_me.org_name,
               local_org.name.empty() ? local_org.uuid : local_org.name);
  return {};
}

}  // namespace sgsync::daemon
