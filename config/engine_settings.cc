#include "config/engine_settings.h"

#include "misp/api.h"

namespace sgsync::config {

namespace {

using Options = engine::EngineOptions;

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

}  // namespace sgsync::config
