// cli/render.h: how sgsyncctl shows the admin API's answers: human tables (the default) or JSON
// (--json, protobuf's JSON mapping with the .proto field names, for scripts). Pure functions of
// the answer, so their output is pinned by golden files (tests/golden/).
#pragma once

#include <cstdint>
#include <string>

#include "sgsync/admin/v1/admin.pb.h"

namespace sgsync::cli {

namespace v1 = sgsync::admin::v1;

// "2026-11-27 10:00:00Z", or "-" for 0.
std::string FormatTime(std::int64_t seconds);

std::string RenderJson(const google::protobuf::Message& m);

std::string RenderStatus(const v1::GetStatusResponse& r);
std::string RenderEvents(const v1::ListEventsResponse& r);
// The decision as a tree: the verdict, then each rule that removed, downgraded or kept what.
std::string RenderExplain(const std::string& uuid, const v1::ExplainEventResponse& r);
std::string RenderConflicts(const v1::ListConflictsResponse& r);
std::string RenderFailures(const v1::ListFailuresResponse& r);
// The audit trail as a table, and one entry as a line of JSON (sgsyncctl audit --format jsonl, for
// a SIEM: the proto's field names, no whitespace).
std::string RenderAudit(const v1::ListAuditResponse& r);
// What the next run would send and withhold: counts, withheld by rule, then the events.
std::string RenderPreview(const v1::PreviewRunResponse& r);
std::string RenderAuditLine(const v1::AuditEntry& e);
// One progress line: on a terminal a bar with counts and an ETA (`width` columns), otherwise a plain
// line. `elapsed` is seconds since the run started.
std::string RenderProgress(const v1::SyncProgress& p, double elapsed, bool terminal, int width = 60);

}  // namespace sgsync::cli
