// sgsyncctl's tables, tree and JSON, pinned by golden files in tests/golden/. After a deliberate
// change of the output, regenerate them with SGSYNC_UPDATE_GOLDEN=1 and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>

#include "cli/render.h"
#include "tests/support/files.h"

namespace sgsync::cli {
namespace {

using sgsync::testing::ReadFile;
using sgsync::testing::WriteFile;

void ExpectGolden(const std::string& name, const std::string& got) {
  std::string path = std::string(SGSYNC_SOURCE_DIR) + "/tests/golden/" + name;
  if (std::getenv("SGSYNC_UPDATE_GOLDEN") != nullptr) WriteFile(path, got);
  EXPECT_EQ(ReadFile(path), got) << "golden file " << path;
}

v1::GetStatusResponse Status() {
  v1::GetStatusResponse r;
  r.set_state_db_bytes(1482752);
  v1::LinkStatus* l = r.add_links();
  l->set_link("securegrid-portal");
  l->set_local_misp_version("2.5.1");
  l->set_remote_misp_version("2.5.1");
  l->set_open_conflicts(1);
  l->set_local_key_fingerprint("sha256:4f2a9c0e1b7d3355");
  l->set_remote_key_fingerprint("sha256:90ab12cd34ef5678");
  l->set_keys_loaded_at(1795807000);
  l->set_sync_window_start(1788220800);
  l->set_sync_window("initial_sync_since = 2026-09-01T00:00:00Z");
  v1::DirectionStatus* push = l->add_directions();
  push->set_direction(v1::DIRECTION_PUSH);
  push->set_state("idle");
  push->set_last_run_finished_at(1795807699);
  push->set_last_run_outcome("ok");
  push->set_cursor_timestamp(1795807600);
  push->set_sent(120);
  push->set_failed(2);
  push->set_queue_depth(0);
  push->set_dead_letters(1);
  (*push->mutable_skipped_by_reason())["push.event.distribution"] = 3;
  (*push->mutable_skipped_by_reason())["sgsync.blocked_tag"] = 1;
  v1::DirectionStatus* pull = l->add_directions();
  pull->set_direction(v1::DIRECTION_PULL);
  pull->set_state("paused");
  pull->set_paused_by("unix socket uid 1000 (yamada), pid 4242, operator yamada");
  pull->set_paused_at(1795807000);
  pull->set_received(40);
  return r;
}

TEST(CliRenderTest, StatusTable) { ExpectGolden("status.txt", RenderStatus(Status())); }

TEST(CliRenderTest, StatusJsonUsesTheProtoFieldNames) {
  // protobuf prints map entries in hash order: one entry keeps the golden file stable.
  v1::GetStatusResponse r = Status();
  r.mutable_links(0)->mutable_directions(0)->mutable_skipped_by_reason()->erase("sgsync.blocked_tag");
  ExpectGolden("status.json", RenderJson(r) + "\n");
}

TEST(CliRenderTest, EventsTableWithNextPage) {
  v1::ListEventsResponse r;
  for (int i = 0; i < 2; ++i) {
    v1::EventSummary* e = r.add_events();
    e->set_link("securegrid-portal");
    e->set_uuid(i == 0 ? "5b7d1c2e-0000-4000-8000-000000000001" : "5b7d1c2e-0000-4000-8000-000000000002");
    e->set_origin(i == 0 ? "local" : "remote");
    e->set_decision(i == 0 ? "send" : "skip");
    e->set_state(i == 0 ? "in_sync" : "skipped");
    e->set_local_timestamp(1795807699);
    if (i == 0) e->set_remote_timestamp(1795807699);
    e->set_updated_at(1795807700);
  }
  r.set_next_page_token("securegrid-portal@5b7d1c2e-0000-4000-8000-000000000002");
  ExpectGolden("events.txt", RenderEvents(r));
}

TEST(CliRenderTest, ExplainTreeShowsEveryRuleAndTheDifference) {
  v1::ExplainEventResponse r;
  v1::Decision* stored = r.mutable_stored();
  stored->set_send(true);
  stored->set_decided_at(1795807700);
  v1::Reason* a = stored->add_reasons();
  a->set_rule("push.event.downgrade");
  a->set_spec("3.2.1");
  a->set_path("Event.distribution");
  a->set_action("downgrade");
  a->set_from("2");
  a->set_to("1");
  a->set_detail("connected communities travel one hop as community");
  v1::Reason* b = stored->add_reasons();
  b->set_rule("push.attribute.distribution");
  b->set_spec("3.2.2");
  b->set_path("Event.Attribute[1]");
  b->set_action("remove");
  b->set_detail("an attribute for your organisation only does not leave");
  v1::Decision* fresh = r.mutable_fresh();
  fresh->set_send(false);
  fresh->set_decided_at(1795900000);
  v1::Reason* c = fresh->add_reasons();
  c->set_rule("sgsync.blocked_tag");
  c->set_spec("sgsync");
  c->set_path("Event.Tag[0]");
  c->set_action("refuse");
  c->set_detail("tlp:red is blocked on push by this link");
  fresh->add_warnings("the Portal keeps the copy it has");
  r.add_differences(
      "the decision changed: send -> skip (what was sent stays at the Portal: MISP cannot retract an event)");
  ExpectGolden("explain.txt", RenderExplain("5b7d1c2e-0000-4000-8000-000000000001", r));
}

TEST(CliRenderTest, ConflictsAndFailuresTables) {
  v1::ListConflictsResponse conflicts;
  v1::ConflictInfo* c = conflicts.add_conflicts();
  c->set_id(7);
  c->set_link("securegrid-portal");
  c->set_uuid("5b7d1c2e-0000-4000-8000-000000000003");
  c->set_local_timestamp(1795807800);
  c->set_local_hash("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  c->set_remote_timestamp(1795807900);
  c->set_remote_hash("60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752");
  c->set_detected_at(1795808000);
  ExpectGolden("conflicts.txt", RenderConflicts(conflicts));
  v1::ListFailuresResponse failures;
  v1::FailureInfo* f = failures.add_failures();
  f->set_id(12);
  f->set_link("securegrid-portal");
  f->set_direction(v1::DIRECTION_PUSH);
  f->set_uuid("5b7d1c2e-0000-4000-8000-000000000004");
  f->set_version(1795807699);
  f->set_state("dead");
  f->set_attempts(8);
  f->set_last_error("unavailable: https://portal.example/events/add: HTTP 503");
  ExpectGolden("failures.txt", RenderFailures(failures));
}

TEST(CliRenderTest, ProgressBarOnATerminalAndPlainLinesOtherwise) {
  v1::SyncProgress p;
  p.set_link("securegrid-portal");
  p.set_direction(v1::DIRECTION_PUSH);
  p.set_listed(200);
  p.set_sent(45);
  p.set_skipped(5);
  p.set_total(200);
  std::string bar = RenderProgress(p, 10.0, true, 60);
  EXPECT_EQ(
      bar,
      "\rsecuregrid-portal push [########......................]  25% 50/200 ETA 30s  listed 200, sent 45, "
      "skipped 5, failed 0\x1b[K");
  EXPECT_EQ(RenderProgress(p, 10.0, false),
            "securegrid-portal push: listed 200, sent 45, skipped 5, failed 0 of 200\n");
  p.set_finished(true);
  p.set_outcome("ok");
  EXPECT_NE(RenderProgress(p, 10.0, true).find("ETA done"), std::string::npos);
}

TEST(CliRenderTest, AuditTableAndJsonLines) {
  v1::ListAuditResponse r;
  v1::AuditEntry* e = r.add_entries();
  e->set_id(7);
  e->set_at(1795807699);
  e->set_actor("certificate CN=ops");
  e->set_action("ResolveConflict");
  e->set_target("securegrid-portal conflict 3 5b7d1c2e-0000-4000-8000-000000000001 prefer-portal");
  e->set_result("ok");
  r.set_next_after_id(7);
  ExpectGolden("audit.txt", RenderAudit(r));
  ExpectGolden("audit.jsonl", RenderAuditLine(*e));
}

TEST(CliRenderTest, PreviewCountsThenRulesThenEvents) {
  v1::PreviewRunResponse r;
  r.set_link("securegrid-portal");
  r.set_direction(v1::DIRECTION_PUSH);
  r.set_listed(5);
  r.set_changed(3);
  r.set_would_send(2);
  (*r.mutable_withheld_by_rule())["push.event.distribution"] = 1;
  for (int i = 0; i < 3; ++i) {
    v1::PreviewEvent* e = r.add_events();
    e->set_uuid("5b7d1c2e-0000-4000-8000-00000000000" + std::to_string(i));
    e->set_timestamp(1795807600 + i);
    e->set_send(i != 2);
    if (i == 2) e->set_rule("push.event.distribution");
  }
  ExpectGolden("preview.txt", RenderPreview(r));
}

}  // namespace
}  // namespace sgsync::cli
