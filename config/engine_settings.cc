#include "config/engine_settings.h"

#include <cstdio>
#include <ctime>
#include <optional>
#include <string>

#include "config/config.h"
#include "misp/api.h"

namespace sgsync::config {

namespace {

using Options = engine::EngineOptions;

// "2026-09-01" (midnight UTC) or "2026-09-01T12:30:00Z", as epoch seconds; nullopt for anything
// else, an impossible date included (the fields must survive a round trip through timegm).
std::optional<std::int64_t> ParseUtcDate(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  char tail = 0;
  int n = 0;
  if (text.size() == 10) {
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return std::nullopt;
  } else if (text.size() == 20) {
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &tail) != 7 ||
        tail != 'Z')
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const std::time_t t = ::timegm(&tm);
  std::tm back{};
  if (::gmtime_r(&t, &back) == nullptr || back.tm_year != y - 1900 || back.tm_mon != mo - 1 ||
      back.tm_mday != d || back.tm_hour != h || back.tm_min != mi || back.tm_sec != sec)
    return std::nullopt;
  return static_cast<std::int64_t>(t);
}

std::string UtcText(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const EngineSetting kEngineSettings[] = {
    {"overlap_seconds",
     [](TableReader& r, std::string_view k, Options& o) {
       return r.Integer(k, &o.overlap_seconds, 0, 7 * 86400);
     },
     [](const Options& o) { return json::value(o.overlap_seconds); }},
    {"conflict_policy",
     [](TableReader& r, std::string_view k, Options& o) -> Status {
       std::string text(engine::ConflictPolicyName(o.conflict_policy));
       SGSYNC_TRY_STATUS(r.String(k, &text));
       auto v = engine::ParseConflictPolicy(text);
       if (!v) {
         return r.ErrorAt(
             r.Node(k), k,
             "expected prefer-newer, prefer-portal, prefer-local or manual, found \"" + text + "\"");
       }
       o.conflict_policy = *v;
       return {};
     },
     [](const Options& o) { return json::value(engine::ConflictPolicyName(o.conflict_policy)); }},
    {"on_partial_write",
     [](TableReader& r, std::string_view k, Options& o) -> Status {
       std::string text(engine::PartialWriteName(o.on_partial_write));
       SGSYNC_TRY_STATUS(r.String(k, &text));
       auto v = engine::ParsePartialWrite(text);
       if (!v)
         return r.ErrorAt(r.Node(k), k, "expected accept, retry or dead_letter, found \"" + text + "\"");
       o.on_partial_write = *v;
       return {};
     },
     [](const Options& o) { return json::value(engine::PartialWriteName(o.on_partial_write)); }},
    {"initial_sync_since",
     [](TableReader& r, std::string_view k, Options& o) -> Status {
       std::string text = o.initial_sync_since > 0 ? UtcText(o.initial_sync_since) : "";
       SGSYNC_TRY_STATUS(r.String(k, &text));
       if (text.empty()) {
         o.initial_sync_since = 0;
         return {};
       }
       auto t = ParseUtcDate(text);
       if (!t) {
         return r.ErrorAt(
             r.Node(k), k,
             "expected a date (\"2026-09-01\") or a UTC time (\"2026-09-01T00:00:00Z\"), found \"" + text +
                 "\"");
       }
       o.initial_sync_since = *t;
       return {};
     },
     [](const Options& o) {
       return json::value(o.initial_sync_since > 0 ? UtcText(o.initial_sync_since) : std::string());
     }},
    {"initial_sync_days",
     [](TableReader& r, std::string_view k, Options& o) {
       return r.Integer(k, &o.initial_sync_days, 0, 36500);
     },
     [](const Options& o) { return json::value(o.initial_sync_days); }},
    {"batch_memory_mb",
     [](TableReader& r, std::string_view k, Options& o) { return r.Integer(k, &o.batch_memory_mb, 0, 65536); },
     [](const Options& o) { return json::value(o.batch_memory_mb); }},
    {"tombstones", [](TableReader& r, std::string_view k, Options& o) { return r.Bool(k, &o.tombstones); },
     [](const Options& o) { return json::value(o.tombstones); }},
    {"sightings", [](TableReader& r, std::string_view k, Options& o) { return r.Bool(k, &o.sightings); },
     [](const Options& o) { return json::value(o.sightings); }},
    {"proposals", [](TableReader& r, std::string_view k, Options& o) { return r.Bool(k, &o.proposals); },
     [](const Options& o) { return json::value(o.proposals); }},
    {"analyst_data",
     [](TableReader& r, std::string_view k, Options& o) { return r.Bool(k, &o.analyst_data); },
     [](const Options& o) { return json::value(o.analyst_data); }},
    {"galaxy_clusters",
     [](TableReader& r, std::string_view k, Options& o) { return r.Bool(k, &o.galaxy_clusters); },
     [](const Options& o) { return json::value(o.galaxy_clusters); }},
    {"other_channels_interval_seconds",
     [](TableReader& r, std::string_view k, Options& o) {
       return r.Integer(k, &o.other_channels_interval_seconds, 0, 7 * 86400);
     },
     [](const Options& o) { return json::value(o.other_channels_interval_seconds); }},
    {"sightings_policy",
     [](TableReader& r, std::string_view k, Options& o) {
       return r.Integer(k, &o.sightings_policy.policy, 0, 3);
     },
     [](const Options& o) { return json::value(o.sightings_policy.policy); }},
    {"sightings_anonymise",
     [](TableReader& r, std::string_view k, Options& o) { return r.Bool(k, &o.sightings_policy.anonymise); },
     [](const Options& o) { return json::value(o.sightings_policy.anonymise); }},
    {"sightings_anonymise_as",
     [](TableReader& r, std::string_view k, Options& o) -> Status {
       std::string uuid;
       SGSYNC_TRY_STATUS(r.String(k, &uuid));
       if (!uuid.empty() && !misp::IsUuid(uuid))
         return r.ErrorAt(r.Node(k), k, "expected an organisation uuid, found \"" + uuid + "\"");
       o.sightings_policy.anonymise_as = policy::OrgRef{uuid, ""};
       return {};
     },
     [](const Options& o) { return json::value(o.sightings_policy.anonymise_as.uuid); }},
};

}  // namespace

std::span<const EngineSetting> EngineSettings() { return kEngineSettings; }

std::string DescribeSyncWindow(const engine::EngineOptions& o) {
  std::string out;
  for (const EngineSetting& s : kEngineSettings) {
    const bool set = (s.key == "initial_sync_since" && o.initial_sync_since > 0) ||
                     (s.key == "initial_sync_days" && o.initial_sync_days > 0);
    if (!set) continue;
    json::value v = s.show(o);
    out += (out.empty() ? "" : ", ") + std::string(s.key) + " = " +
           (v.is_string() ? std::string(v.as_string()) : json::serialize(v));
  }
  return out;
}

}  // namespace sgsync::config
