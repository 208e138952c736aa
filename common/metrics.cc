#include "common/metrics.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace sgsync {

namespace {

// Seconds: MISP answers in 0.08 s (any request) to a few seconds (a 100k-attribute add).
constexpr double kBuckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string WithLabel(const std::string& labels, const std::string& extra) {
  if (labels.empty()) return "{" + extra + "}";
  return labels.substr(0, labels.size() - 1) + "," + extra + "}";
}

}  // namespace

std::string Metrics::LabelText(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\' || c == '"') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += '"';
  }
  return out + "}";
}

Metrics::Metrics(std::span<const MetricFamily* const> families, bool strict) : strict_(strict) {
  for (const MetricFamily* f : families) {
    Family& family = families_[std::string(f->name)];
    family.type = f->type;
    family.help = std::string(f->help);
    family.labels = std::string(f->labels);
  }
}

Metrics::Family& Metrics::Checked(const MetricFamily& family, MetricType used_as, const Labels& labels) {
  auto it = families_.find(family.name);
  if (it == families_.end()) {
    if (strict_)
      throw std::logic_error("metric " + std::string(family.name) + " is not in the metrics table");
    it = families_.emplace(std::string(family.name), Family{used_as, "", std::string(family.labels), {}, {}})
             .first;
  }
  if (strict_) {
    std::string names;
    for (const auto& [name, value] : labels) names += (names.empty() ? "" : " ") + name;
    if (it->second.type != used_as)
      throw std::logic_error("metric " + std::string(family.name) + " is used as another type than declared");
    if (names != it->second.labels)
      throw std::logic_error("metric " + std::string(family.name) + " has labels \"" + it->second.labels +
                             "\", a sample gave \"" + names + "\"");
  }
  return it->second;
}

void Metrics::Add(const MetricFamily& family, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  Checked(family, MetricType::kCounter, labels).values[LabelText(labels)] += value;
}

void Metrics::Set(const MetricFamily& family, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  Checked(family, MetricType::kGauge, labels).values[LabelText(labels)] = value;
}

void Metrics::Observe(const MetricFamily& family, const Labels& labels, double seconds) {
  std::lock_guard lock(mu_);
  Histogram& h = Checked(family, MetricType::kHistogram, labels).histograms[LabelText(labels)];
  if (h.counts.empty()) h.counts.assign(std::size(kBuckets) + 1, 0);
  std::size_t i = 0;
  while (i < std::size(kBuckets) && seconds > kBuckets[i]) ++i;
  h.counts[i] += 1;
  h.sum += seconds;
  h.count += 1;
}

double Metrics::Value(const MetricFamily& family, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto f = families_.find(family.name);
  if (f == families_.end()) return 0;
  auto v = f->second.values.find(LabelText(labels));
  return v == f->second.values.end() ? 0 : v->second;
}

std::string Metrics::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + " " +
           (f.type == MetricType::kCounter ? "counter"
            : f.type == MetricType::kGauge ? "gauge"
                                           : "histogram") +
           "\n";
    for (const auto& [labels, v] : f.values) out += name + labels + " " + Number(v) + "\n";
    for (const auto& [labels, h] : f.histograms) {
      double cumulative = 0;
      for (std::size_t i = 0; i <= std::size(kBuckets); ++i) {
        cumulative += h.counts[i];
        std::string le = i < std::size(kBuckets) ? Number(kBuckets[i]) : "+Inf";
        out += name + "_bucket" + WithLabel(labels, "le=\"" + le + "\"") + " " + Number(cumulative) + "\n";
      }
      out += name + "_sum" + labels + " " + Number(h.sum) + "\n";
      out += name + "_count" + labels + " " + Number(h.count) + "\n";
    }
  }
  return out;
}

}  // namespace sgsync
