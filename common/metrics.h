// common/metrics.h: counters, gauges and latency histograms, rendered in Prometheus' text format
// (version 0.0.4) for sgsyncd's /metrics endpoint.
//
// Families are declared once with their help text; samples are addressed by label values. Label
// values are escaped on output, so an event uuid or a URL path cannot break the format (sgsync
// does not put uuids in labels anyway: cardinality stays bounded by links, directions, endpoints,
// statuses and reasons). Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sgsync {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  void Declare(const std::string& name, Type type, const std::string& help);
  void Add(const std::string& name, const Labels& labels, double value = 1);    // counter
  void Set(const std::string& name, const Labels& labels, double value);        // gauge
  void Observe(const std::string& name, const Labels& labels, double seconds);  // histogram
  // The current value of a counter or gauge sample (0 when absent); for tests and the admin API.
  double Value(const std::string& name, const Labels& labels) const;
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<double> counts;  // per bucket, not cumulative
    double sum = 0;
    double count = 0;
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::map<std::string, double> values;  // rendered label set -> value
    std::map<std::string, Histogram> histograms;
  };
  static std::string LabelText(const Labels& labels);
  Family& FamilyFor(const std::string& name, Type type);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

}  // namespace sgsync
