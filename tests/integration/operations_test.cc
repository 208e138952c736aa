// The daemon's operations (daemon/operations.h) in process: a Service read from a real
// configuration file, two misp-sim on loopback, a real state database; each operator action as a
// plain call, with what it checks, what it sets going and what it audits.
#include "daemon/operations.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <ctime>

#include "tests/support/files.h"
#include "tests/support/policy_fixtures.h"
#include "tests/support/sim_instance.h"

namespace sgsync::daemon {
namespace {

using sgsync::testing::Instance;
using sgsync::testing::kOrg1;
using sgsync::testing::kOrg2;

class OperationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(member_.sim().AddOrg("ORG2", kOrg2, false).ok());
    ASSERT_TRUE(portal_.sim().AddOrg("ORG1", kOrg1, false).ok());
    std::string sync_key = *portal_.sim().AddUser("sync@org1.test", kOrg1, sim::Role::kSyncUser);
    member_key_ = Key("member.key", member_.admin_key());
    portal_key_ = Key("portal.key", sync_key);
    MakeService("");
  }

  // The service (and its operations) for a configuration whose link adds `link_settings`.
  void MakeService(const std::string& link_settings) {
    ops_.reset();
    service_.reset();  // releases the state database's lock
    const std::string& member_key = member_key_;
    const std::string& portal_key = portal_key_;
    std::string toml = "[state]\ndatabase = \"" + (dir_.path() / "state.db").string() +
                       "\"\nmax_attempts = 1\n[admin]\nsocket = \"" + (dir_.path() / "a.sock").string() +
                       "\"\n[metrics]\nlisten = \"\"\n[[link]]\nname = \"portal\"\noverlap_seconds = 0\n"
                       "blocked_tags_push = []\n" +
                       link_settings + "[link.local]\nurl = \"" + member_.url() +
                       "\"\ninsecure_http = true\napi_key_file = \"" + member_key +
                       "\"\n[link.remote]\nurl = \"" + portal_.url() +
                       "\"\ninsecure_http = true\napi_key_file = \"" + portal_key + "\"\norg_uuid = \"" +
                       kOrg2 + "\"\norg_name = \"ORG2\"\n";
    auto config = config::ParseConfig(toml, (dir_.path() / "sgsync.toml").string());
    ASSERT_TRUE(config.ok()) << config.error().ToString();
    auto service = Service::Create(std::move(*config));
    ASSERT_TRUE(service.ok()) << service.error().ToString();
    service_ = std::move(*service);
    ops_ = std::make_unique<Operations>(*service_);
  }

  std::string Key(const std::string& name, const std::string& key) {
    std::string path = (dir_.path() / name).string();
    sgsync::testing::WriteFile(path, key);
    ::chmod(path.c_str(), 0600);
    return path;
  }

  engine::RunStats Push() {
    auto stats = ops_->Trigger("portal", Direction::kPush, false, "operator alice", nullptr);
    EXPECT_TRUE(stats.ok()) << stats.error().ToString();
    return stats.ok() ? *stats : engine::RunStats{};
  }

  std::vector<std::string> AuditActions() {
    std::vector<std::string> out;
    auto audit = service_->store().ListAudit(0);  // kept alive for the loop (not a temporary's member)
    EXPECT_TRUE(audit.ok());
    for (const auto& r : *audit) out.push_back(r.action + " by " + r.actor);
    return out;
  }

  sgsync::testing::TempDir dir_;
  std::string member_key_, portal_key_;
  Instance member_{"ORG1", kOrg1};
  Instance portal_{"ORG2", kOrg2};
  std::unique_ptr<Service> service_;
  std::unique_ptr<Operations> ops_;
};

TEST_F(OperationsTest, StatusShowsEachEnabledDirectionWithItsCursorAndQueueAndRefusesAnUnknownLink) {
  ASSERT_TRUE(member_.sim().Seed(2, 2, 0, 3, 21, 5).ok());
  ASSERT_EQ(Push().sent, 2);
  auto links = ops_->LinkStatus("");
  ASSERT_TRUE(links.ok()) << links.error().ToString();
  ASSERT_EQ(links->size(), 1u);
  const auto& push = (*links)[0].directions[0];
  EXPECT_EQ(push.direction, Direction::kPush);
  EXPECT_EQ(push.sent, 2);
  EXPECT_GT(push.cursor_timestamp, 0);
  EXPECT_EQ(push.queue_depth, 0);
  EXPECT_EQ(push.status.last_outcome.Text(), "ok");
  EXPECT_EQ((*links)[0].directions.size(), 2u);
  auto unknown = ops_->LinkStatus("nope");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
}

TEST_F(OperationsTest, TheLedgerIsPagedFilteredByDecisionAndAnUnknownDecisionIsRefused) {
  ASSERT_TRUE(member_.sim().Seed(3, 2, 0, 3, 22, 5).ok());
  ASSERT_TRUE(member_.sim().Seed(1, 2, 0, 0, 23, 5).ok());  // distribution 0: stays home
  Push();
  auto all = ops_->ListEvents("", "", "", 0, "", 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->events.size(), 4u);
  auto first = ops_->ListEvents("", "", "", 0, "", 3);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->events.size(), 3u);
  auto rest = ops_->ListEvents("", "", "", 0, first->next_page_token, 3);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->events.size(), 1u);
  EXPECT_TRUE(rest->next_page_token.empty());
  auto skipped = ops_->ListEvents("portal", "skip", "", 0, "", 100);
  ASSERT_TRUE(skipped.ok());
  ASSERT_EQ(skipped->events.size(), 1u);
  EXPECT_EQ(skipped->events[0].state, "skipped");
  auto bad = ops_->ListEvents("portal", "maybe", "", 0, "", 100);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(OperationsTest, ExplainComparesTheStoredDecisionWithOneTakenNow) {
  std::string uuid = (*member_.sim().Seed(1, 2, 0, 0, 24, 5))[0];
  Push();
  auto e = ops_->Explain("portal", uuid, std::nullopt);
  ASSERT_TRUE(e.ok()) << e.error().ToString();
  ASSERT_TRUE(e->stored && e->fresh);
  EXPECT_EQ(e->stored->at("decision"), "skip");
  EXPECT_TRUE(e->differences.empty()) << e->differences[0];
  auto unknown = ops_->Explain("portal", "00000000-0000-4000-8000-000000000009", std::nullopt);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kInvalidArgument) << "no record and no direction given";
}

TEST_F(OperationsTest, OnlyADeadLetterIsRetriedOrDroppedAndEachActionIsAudited) {
  std::string uuid = (*member_.sim().Seed(1, 2, 0, 3, 25, 5))[0];
  for (const char* route : {"/events/restSearch", "/events/view/"}) {
    sim::Fault f;
    f.route = route;
    f.error_rate = 1.0;
    f.error_status = 500;
    member_.sim().AddFault(f);
  }
  EXPECT_EQ(Push().failed, 1);
  auto failures = ops_->ListFailures("portal", true);
  ASSERT_TRUE(failures.ok());
  ASSERT_EQ(failures->size(), 1u) << "max_attempts = 1: dead at once";
  std::int64_t id = (*failures)[0].item.id;
  member_.sim().ClearFaults();
  auto retried = ops_->RetryFailure(id, "operator alice");
  ASSERT_TRUE(retried.ok()) << retried.error().ToString();
  EXPECT_EQ(retried->item.state, state::WorkState::kPending);
  auto again = ops_->RetryFailure(id, "operator alice");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition) << again.error().message;
  EXPECT_EQ(Push().sent, 1) << "the retried item is taken by the next run";
  EXPECT_FALSE(portal_.View(uuid).is_null());
  EXPECT_EQ(ops_->DropFailure(424242, "operator alice").error().code, ErrorCode::kNotFound);
  // The refused retry changed nothing and is not in the audit log.
  EXPECT_EQ(AuditActions(),
            (std::vector<std::string>{"TriggerSync by operator alice", "RetryFailure by operator alice",
                                      "TriggerSync by operator alice"}));
}

TEST_F(OperationsTest, ResolvingAConflictSetsTheEventGoingInBothDirectionsUnderTheResolution) {
  std::string uuid = (*member_.sim().Seed(1, 2, 0, 3, 26, 5))[0];
  ASSERT_EQ(Push().sent, 1);
  portal_.EditInfo(uuid, "changed at the Portal", 200);
  ASSERT_TRUE(ops_->Trigger("portal", Direction::kPull, false, "operator alice", nullptr).ok());
  member_.EditInfo(uuid, "changed on the member", 300);
  // prefer-newer (the default) writes the member's newer change; the conflict is recorded anyway.
  ASSERT_EQ(Push().conflicts, 1);
  auto conflicts = ops_->ListConflicts("portal", false);
  ASSERT_TRUE(conflicts.ok());
  ASSERT_EQ(conflicts->size(), 1u);
  EXPECT_EQ(ops_->ResolveConflict((*conflicts)[0].conflict.id, "manual", "operator alice").error().code,
            ErrorCode::kInvalidArgument);
  auto resolved = ops_->ResolveConflict((*conflicts)[0].conflict.id, "prefer-portal", "operator alice");
  ASSERT_TRUE(resolved.ok()) << resolved.error().ToString();
  EXPECT_EQ(resolved->conflict.resolution.value_or(""), "prefer-portal");
  auto queue = service_->store().CountQueue(*service_->LinkId("portal"), Direction::kPull);
  ASSERT_TRUE(queue.ok());
  EXPECT_EQ(queue->pending, 1) << "the event is queued again for the pull";
  EXPECT_EQ(service_->store().CountQueue(*service_->LinkId("portal"), Direction::kPush)->pending, 1);
}

TEST_F(OperationsTest, APauseIsRecordedWithWhoAskedAndAnUnknownLinkIsNotFound) {
  ASSERT_TRUE(ops_->SetPaused("portal", Direction::kPush, true, "operator bob").ok());
  auto links = ops_->LinkStatus("portal");
  ASSERT_TRUE(links.ok());
  EXPECT_TRUE((*links)[0].directions[0].status.paused);
  EXPECT_EQ((*links)[0].directions[0].status.paused_by, "operator bob");
  EXPECT_EQ(ops_->SetPaused("nope", std::nullopt, true, "operator bob").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(AuditActions(), (std::vector<std::string>{"Pause by operator bob", "Pause by operator bob"}));
}

TEST_F(OperationsTest, TheSideChannelsRunWhenAnyOfThemIsOnNotOnlyWhenSightingsAre) {
  MakeService("sightings = false\n");
  auto runs = service_->RunSideChannelsOnce();
  ASSERT_TRUE(runs.ok()) << runs.error().ToString();
  EXPECT_EQ(runs->size(), 2u) << "proposals, clusters and analyst data still travel, both directions";
  MakeService("sightings = false\nproposals = false\nanalyst_data = false\ngalaxy_clusters = false\n");
  runs = service_->RunSideChannelsOnce();
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
}

TEST_F(OperationsTest, TheAuditTrailIsPagedOldestFirstAndFilteredByLink) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(ops_->SetPaused("portal", Direction::kPull, i % 2 == 0, "operator carol").ok());
  ASSERT_TRUE(ops_->Backup((dir_.path() / "b.db").string(), "operator carol").ok());
  auto first = ops_->ListAudit(0, "", 0, 2);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_EQ(first->entries.size(), 2u);
  EXPECT_EQ(first->entries[0].action, "Pause");
  EXPECT_EQ(first->entries[1].action, "Resume");
  ASSERT_NE(first->next_after_id, 0);
  auto rest = ops_->ListAudit(0, "", first->next_after_id, 2);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->entries.size(), 2u);
  EXPECT_EQ(rest->entries[1].action, "BackupState");
  EXPECT_EQ(rest->next_after_id, 0) << "the last page";
  auto link = ops_->ListAudit(0, "portal", 0, 100);
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->entries.size(), 3u) << "the backup concerns no link";
  EXPECT_EQ(ops_->ListAudit(0, "nope", 0, 100).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(ops_->ListAudit(std::time(nullptr) + 60, "", 0, 100)->entries.empty()) << "since a later time";
}

TEST_F(OperationsTest, AResendSaysWhatBecameOfTheEventAndIsAudited) {
  std::string uuid = (*member_.sim().Seed(1, 2, 0, 3, 27, 5))[0];
  Push();
  auto again = ops_->Resend("portal", uuid, std::nullopt, "operator dave");
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(again->outcome, "already");
  auto unknown =
      ops_->Resend("portal", "00000000-0000-4000-8000-000000000009", std::nullopt, "operator dave");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kInvalidArgument) << "no record and no direction given";
  EXPECT_EQ(AuditActions().back(), "ResendEvent by operator dave");
}

TEST_F(OperationsTest, ABackupGoesOnlyToANewAbsolutePath) {
  EXPECT_EQ(ops_->Backup("relative.db", "operator bob").error().code, ErrorCode::kInvalidArgument);
  std::string path = (dir_.path() / "backup.db").string();
  ASSERT_TRUE(ops_->Backup(path, "operator bob").ok());
  EXPECT_EQ(ops_->Backup(path, "operator bob").error().code, ErrorCode::kAlreadyExists);
}

}  // namespace
}  // namespace sgsync::daemon
