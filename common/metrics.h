// common/metrics.h: counters, gauges and latency histograms, rendered in Prometheus' text format
// (version 0.0.4) for sgsyncd's /metrics endpoint.
//
// Families are declared in a table (name, type, help, label names; sgsyncd's is
// common/metric_families.h) and samples are addressed by a family of that table and label values,
// so no code names a metric by a string of its own. Label values are escaped on output, so an event uuid or a
// URL path cannot break the format (sgsync does not put uuids in labels anyway: cardinality stays bounded by
// links, directions, endpoints, statuses and reasons). Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sgsync {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric family as Prometheus shows it: its name, type and help, and the names of the labels
// every sample carries, in order, separated by spaces ("link direction outcome").
struct MetricFamily {
  std::string_view name;
  MetricType type;
  std::string_view help;
  std::string_view labels;
};

class Metrics {
 public:
  // A registry of `families` (sgsyncd's: metric::kFamilies). A sample of a family that is not in
  // the table, of the wrong type, or with other label names than declared is a programming error:
  // with `strict` (the tests, and sgsyncd under SGSYNC_STRICT_METRICS=1 as the end-to-end tests run
  // it) it throws std::logic_error naming the family; otherwise it is recorded as given, so a slip
  // costs an odd-looking sample, never the daemon.
  explicit Metrics(std::span<const MetricFamily* const> families, bool strict = false);

  void Add(const MetricFamily& family, const Labels& labels, double value = 1);    // counter
  void Set(const MetricFamily& family, const Labels& labels, double value);        // gauge
  void Observe(const MetricFamily& family, const Labels& labels, double seconds);  // histogram
  // The current value of a counter or gauge sample (0 when absent); for tests and the admin API.
  double Value(const MetricFamily& family, const Labels& labels) const;
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<double> counts;  // per bucket, not cumulative
    double sum = 0;
    double count = 0;
  };
  struct Family {
    MetricType type = MetricType::kCounter;
    std::string help;
    std::string labels;
    std::map<std::string, double> values;  // rendered label set -> value
    std::map<std::string, Histogram> histograms;
  };
  static std::string LabelText(const Labels& labels);
  // The family's samples; checks `family` and `labels` against the table first (see strict).
  Family& Checked(const MetricFamily& family, MetricType used_as, const Labels& labels);

  const bool strict_;
  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace sgsync
