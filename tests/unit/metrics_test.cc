// common/metrics and the connector's route naming: what Prometheus reads.
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "common/metric_families.h"
#include "portal-connector/transport.h"
#include "tests/support/files.h"

namespace sgsync {
namespace {

constexpr MetricFamily kCounter{"sgsync_events_total", MetricType::kCounter, "Events handled.",
                                "link outcome"};
constexpr MetricFamily kGauge{"g", MetricType::kGauge, "", "l"};
constexpr MetricFamily kHistogram{"h", MetricType::kHistogram, "", "route"};
constexpr const MetricFamily* kTable[] = {&kCounter, &kGauge, &kHistogram};

TEST(MetricsTest, CountersRenderWithHelpTypeAndLabels) {
  Metrics m(std::span(kTable, 1));
  m.Add(kCounter, {{"link", "portal"}, {"outcome", "sent"}});
  m.Add(kCounter, {{"link", "portal"}, {"outcome", "sent"}}, 2);
  EXPECT_EQ(m.Render(),
            "# HELP sgsync_events_total Events handled.\n"
            "# TYPE sgsync_events_total counter\n"
            "sgsync_events_total{link=\"portal\",outcome=\"sent\"} 3\n");
  EXPECT_EQ(m.Value(kCounter, {{"link", "portal"}, {"outcome", "sent"}}), 3);
}

TEST(MetricsTest, EveryDeclaredFamilyIsShownBeforeItsFirstSample) {
  Metrics m(kTable);
  EXPECT_EQ(m.Render(),
            "# TYPE g gauge\n"
            "# TYPE h histogram\n"
            "# HELP sgsync_events_total Events handled.\n"
            "# TYPE sgsync_events_total counter\n");
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics m(std::span(kTable + 1, 1));
  m.Set(kGauge, {{"l", "a\"b\\c\nd"}}, 1);
  EXPECT_EQ(m.Render(), "# TYPE g gauge\ng{l=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Metrics m(kTable);
  m.Observe(kHistogram, {{"route", "/events/index"}}, 0.07);
  m.Observe(kHistogram, {{"route", "/events/index"}}, 0.3);
  std::string text = m.Render();
  EXPECT_NE(text.find("h_bucket{route=\"/events/index\",le=\"0.050000000000000003\"} 0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("h_bucket{route=\"/events/index\",le=\"0.10000000000000001\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("h_bucket{route=\"/events/index\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("h_count{route=\"/events/index\"} 2\n"), std::string::npos);
}

TEST(MetricsTest, AStrictRegistryRefusesAFamilyOutsideItsTableOtherLabelsAndAnotherType) {
  Metrics m(kTable, /*strict=*/true);
  constexpr MetricFamily kUndeclared{"sgsync_undeclared_total", MetricType::kCounter, "", "link"};
  EXPECT_THROW(m.Add(kUndeclared, {{"link", "portal"}}), std::logic_error);
  EXPECT_THROW(m.Add(kCounter, {{"link", "portal"}}), std::logic_error) << "a label missing";
  EXPECT_THROW(m.Add(kCounter, {{"outcome", "sent"}, {"link", "portal"}}), std::logic_error)
      << "out of order";
  EXPECT_THROW(m.Set(kCounter, {{"link", "portal"}, {"outcome", "sent"}}, 1), std::logic_error)
      << "a counter set";
  EXPECT_NO_THROW(m.Add(kCounter, {{"link", "portal"}, {"outcome", "sent"}}));
}

TEST(MetricsTest, ALenientRegistryRecordsWhatItIsGiven) {
  Metrics m(kTable);
  constexpr MetricFamily kUndeclared{"sgsync_undeclared_total", MetricType::kCounter, "", "link"};
  m.Add(kUndeclared, {{"link", "portal"}});
  EXPECT_EQ(m.Value(kUndeclared, {{"link", "portal"}}), 1);
}

TEST(MetricsTest, SgsyncdsTableDeclaresEachFamilyOnceWithHelpAndLabels) {
  std::set<std::string_view> names;
  for (const MetricFamily* f : metric::kFamilies) {
    EXPECT_TRUE(names.insert(f->name).second) << f->name << " twice";
    EXPECT_EQ(f->name.rfind("sgsync_", 0), 0u) << f->name;
    EXPECT_FALSE(f->help.empty()) << f->name;
    EXPECT_FALSE(f->labels.empty()) << f->name;
  }
}

TEST(MetricsTest, EverySgsyncMetricTheDocumentationListsIsInTheTable) {
  std::string ops =
      sgsync::testing::ReadFile(std::filesystem::path(SGSYNC_SOURCE_DIR) / "docs/operations.md");
  for (const MetricFamily* f : metric::kFamilies)
    EXPECT_NE(ops.find("`" + std::string(f->name) + "`"), std::string::npos)
        << f->name << " is not documented";
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
