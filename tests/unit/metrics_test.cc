// common/metrics and the connector's route naming: what Prometheus reads.
#include "common/metrics.h"

#include <gtest/gtest.h>

#include "portal-connector/transport.h"

namespace sgsync {
namespace {

TEST(MetricsTest, CountersRenderWithHelpTypeAndLabels) {
  Metrics m;
  m.Declare("sgsync_events_total", Metrics::Type::kCounter, "Events handled.");
  m.Add("sgsync_events_total", {{"link", "portal"}, {"outcome", "sent"}});
  m.Add("sgsync_events_total", {{"link", "portal"}, {"outcome", "sent"}}, 2);
  EXPECT_EQ(m.Render(),
            "# HELP sgsync_events_total Events handled.\n"
            "# TYPE sgsync_events_total counter\n"
            "sgsync_events_total{link=\"portal\",outcome=\"sent\"} 3\n");
  EXPECT_EQ(m.Value("sgsync_events_total", {{"link", "portal"}, {"outcome", "sent"}}), 3);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics m;
  m.Set("g", {{"l", "a\"b\\c\nd"}}, 1);
  EXPECT_EQ(m.Render(), "# TYPE g gauge\ng{l=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Metrics m;
  m.Observe("h", {{"route", "/events/index"}}, 0.07);
  m.Observe("h", {{"route", "/events/index"}}, 0.3);
  std::string text = m.Render();
  EXPECT_NE(text.find("h_bucket{route=\"/events/index\",le=\"0.050000000000000003\"} 0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("h_bucket{route=\"/events/index\",le=\"0.10000000000000001\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("h_bucket{route=\"/events/index\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("h_count{route=\"/events/index\"} 2\n"), std::string::npos);
}

TEST(MetricsTest, RouteOfDropsIdsUuidsAndNamedParameters) {
  EXPECT_EQ(connector::RouteOf("/events/view/5b7d1c2e-0000-4000-8000-000000000001/deleted[]:0/deleted[]:1"),
            "/events/view");
  EXPECT_EQ(connector::RouteOf("/events/index"), "/events/index");
  EXPECT_EQ(connector::RouteOf("/events/add/metadata:1"), "/events/add");
  EXPECT_EQ(connector::RouteOf("/servers/getVersion.json"), "/servers/getVersion");
  EXPECT_EQ(connector::RouteOf("/events/edit/42/metadata:1"), "/events/edit");
  EXPECT_EQ(connector::RouteOf("/sightings/bulkSaveSightings/5b7d1c2e-0000-4000-8000-000000000001"),
            "/sightings/bulkSaveSightings");
  EXPECT_EQ(connector::RouteOf("/users/view/me.json?x=1"), "/users/view");
}

}  // namespace
}  // namespace sgsync
