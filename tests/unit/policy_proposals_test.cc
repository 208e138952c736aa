// Issue 16 item 2: a proposal travels only where what it changes travels, decided by the policy
// with a reason (policy::DecideProposal).
#include <gtest/gtest.h>

#include "sync/policy/other_data.h"
#include "sync/policy/policy.h"
#include "tests/support/policy_fixtures.h"

namespace sgsync::policy {
namespace {

using sgsync::testing::MakeLink;

constexpr const char* kEvent = R"({"uuid": "a1b2c3d4-0000-4000-8000-000000000001", "info": "e",
  "distribution": "3", "published": true, "timestamp": "1795807000",
  "Orgc": {"name": "ORG1", "uuid": "ce867008-0536-4358-9f2e-20df12768cd3"},
  "Attribute": [
    {"id": "11", "uuid": "a1b2c3d4-0000-4000-8000-000000000011", "type": "domain", "category": "Network activity",
     "value": "kept.example", "distribution": "5", "timestamp": "1795807000"},
    {"id": "12", "uuid": "a1b2c3d4-0000-4000-8000-000000000012", "type": "domain", "category": "Network activity",
     "value": "private.example", "distribution": "0", "timestamp": "1795807000"}],
  "Object": [{"id": "3", "uuid": "a1b2c3d4-0000-4000-8000-000000000003", "name": "domain-ip",
    "distribution": "5", "timestamp": "1795807000", "Attribute": [
    {"id": "13", "uuid": "a1b2c3d4-0000-4000-8000-000000000013", "type": "ip-dst", "category": "Network activity",
     "value": "192.0.2.1", "distribution": "5", "timestamp": "1795807000"}]}]})";

json::object Proposal(const std::string& old_id, const std::string& uuid) {
  return json::object{{"id", "99"},       {"old_id", old_id},
                      {"uuid", uuid},     {"value", "proposed.example"},
                      {"type", "domain"}, {"category", "Network activity"}};
}

TEST(PolicyProposalsTest, AProposalOnAnAttributeTheEventLeavesWithoutStaysHome) {
  json::object source = json::parse(kEvent).as_object();
  Decision event = Evaluate(Direction::kPush, &source, MakeLink());
  ASSERT_TRUE(event.send);
  auto on_private = DecideProposal(Proposal("12", "a1b2c3d4-0000-4000-8000-000000000012"), source, event);
  EXPECT_FALSE(on_private.send);
  ASSERT_NE(on_private.refusal(), nullptr);
  EXPECT_EQ(on_private.refusal()->rule, "proposal.attribute_withheld");
  // Named by uuid alone (old_id lost on the way): the same.
  EXPECT_FALSE(DecideProposal(Proposal("0", "a1b2c3d4-0000-4000-8000-000000000012"), source, event).send);
  auto on_kept = DecideProposal(Proposal("11", "a1b2c3d4-0000-4000-8000-000000000011"), source, event);
  EXPECT_TRUE(on_kept.send);
  EXPECT_FALSE(on_kept.element.contains("id")) << "the local id does not travel";
  EXPECT_TRUE(DecideProposal(Proposal("13", "a1b2c3d4-0000-4000-8000-000000000013"), source, event).send)
      << "an attribute inside an object that leaves";
  EXPECT_TRUE(DecideProposal(Proposal("0", "a1b2c3d4-0000-4000-8000-0000000000ff"), source, event).send)
      << "a new attribute proposed on an event that leaves";
  auto unknown = DecideProposal(Proposal("77", "a1b2c3d4-0000-4000-8000-0000000000fe"), source, event);
  EXPECT_FALSE(unknown.send);
  EXPECT_EQ(unknown.refusal()->rule, "proposal.attribute_unknown");
}

TEST(PolicyProposalsTest, NoProposalLeavesWithAnEventThatDoesNot) {
  json::object source = json::parse(kEvent).as_object();
  source["distribution"] = "0";
  Decision event = Evaluate(Direction::kPush, &source, MakeLink());
  ASSERT_FALSE(event.send);
  auto p = DecideProposal(Proposal("0", "a1b2c3d4-0000-4000-8000-0000000000ff"), source, event);
  EXPECT_FALSE(p.send);
  EXPECT_EQ(p.refusal()->rule, "proposal.event_withheld");
  EXPECT_NE(p.refusal()->detail.find("push.event.distribution"), std::string::npos) << p.refusal()->detail;
}

}  // namespace
}  // namespace sgsync::policy
