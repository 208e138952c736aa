// sgsyncd's HTTP probes (daemon/health.h): when it is ready and what it says when it is not.
#include "daemon/health.h"

#include <gtest/gtest.h>

namespace sgsync::daemon {
namespace {

Service::LinkSnapshot Started(const std::string& name) {
  Service::LinkSnapshot l;
  l.name = name;
  l.link_id = 1;
  l.push.enabled = l.pull.enabled = true;
  return l;
}

TEST(DaemonHealthTest, LivenessIsAnsweredWhateverTheLinksDo) {
  EXPECT_EQ(LivenessProbe().status, 200);
  EXPECT_EQ(LivenessProbe().body, "ok\n");
}

TEST(DaemonHealthTest, ReadyWhenEveryLinkStartedAndNoDirectionFailsLongerThanAllowed) {
  auto a = Started("portal");
  a.push.failing_since = 1000;  // failing, but for 100 s only
  a.push.last_outcome = RunOutcome::Failed("MISP answered 503");
  auto answer = ReadinessProbe({a, Started("second")}, 1100, 900);
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body, "ready\n");
}

TEST(DaemonHealthTest, NotReadyNamesALinkThatHasNotStartedAndADirectionFailingTooLong) {
  Service::LinkSnapshot waiting;
  waiting.name = "waiting";
  auto failing = Started("portal");
  failing.pull.failing_since = 1000;
  failing.pull.last_outcome = RunOutcome::Failed("the Portal kept failing");
  auto answer = ReadinessProbe({waiting, failing}, 2000, 900);
  EXPECT_EQ(answer.status, 503);
  EXPECT_EQ(answer.body,
            "link waiting: not started (its MISPs have not answered yet)\n"
            "link portal pull: failing for 1000 s: error: the Portal kept failing\n");
}

TEST(DaemonHealthTest, APausedOrDisabledDirectionDoesNotCount) {
  auto l = Started("portal");
  l.push.paused = true;
  l.push.failing_since = 1;
  l.pull.enabled = false;
  l.pull.failing_since = 1;
  EXPECT_EQ(ReadinessProbe({l}, 100000, 900).status, 200);
}

}  // namespace
}  // namespace sgsync::daemon
