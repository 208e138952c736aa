// The admin API's generated code: the service and its methods are what docs/admin-api.md and
// sgsyncctl rely on, and messages round-trip through the wire format.
#include <gtest/gtest.h>

#include "sgsync/admin/v1/admin.grpc.pb.h"
#include "sgsync/admin/v1/admin.pb.h"

namespace {

TEST(AdminApiProtoTest, TheServiceHasEveryCallOfVersion1) {
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("sgsync.admin.v1.SyncAdmin");
  ASSERT_NE(service, nullptr);
  std::vector<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) methods.push_back(service->method(i)->name());
  // Version 1 grows only by new calls (issue 21 added ResendEvent, PreviewRun, ListAudit, VacuumState).
  EXPECT_EQ(methods, (std::vector<std::string>{"GetStatus", "TriggerSync", "Pause", "Resume", "ListEvents",
                                               "ExplainEvent", "ResendEvent", "PreviewRun", "ListConflicts",
                                               "ResolveConflict", "ListFailures", "RetryFailure",
                                               "DropFailure", "GetConfig", "ReloadConfig", "BackupState",
                                               "ListAudit", "VacuumState", "CheckOnboarding"}));
  EXPECT_TRUE(service->FindMethodByName("TriggerSync")->server_streaming());
  EXPECT_TRUE(service->FindMethodByName("CheckOnboarding")->server_streaming());
}

TEST(AdminApiProtoTest, ADecisionRoundTripsThroughTheWireFormat) {
  sgsync::admin::v1::Decision d;
  d.set_send(true);
  auto* r = d.add_reasons();
  r->set_rule("push.attribute.downgrade");
  r->set_path("Event.Attribute[0]");
  r->set_from("2");
  r->set_to("1");
  d.add_warnings("the Portal will store Event.Attribute[1] at distribution 0");
  std::string wire = d.SerializeAsString();
  sgsync::admin::v1::Decision back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.reasons(0).rule(), "push.attribute.downgrade");
  EXPECT_EQ(back.warnings_size(), 1);
}

}  // namespace
