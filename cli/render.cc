#include "cli/render.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <sstream>
#include <vector>

namespace sgsync::cli {

namespace {

// Columns padded to their widest cell; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const {
    std::vector<std::size_t> width;
    for (const auto& r : rows_) {
      if (width.size() < r.size()) width.resize(r.size(), 0);
      for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    std::string out;
    for (const auto& r : rows_) {
      std::string line;
      for (std::size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string DirectionName(v1::Direction d) {
  return d == v1::DIRECTION_PUSH ? "push" : d == v1::DIRECTION_PULL ? "pull" : "both";
}

std::string Num(std::int64_t n) { return std::to_string(n); }

std::string Short(const std::string& hash) { return hash.size() > 12 ? hash.substr(0, 12) : hash; }

}  // namespace

std::string FormatTime(std::int64_t seconds) {
  if (seconds <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

std::string RenderJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  o.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string RenderStatus(const v1::GetStatusResponse& r) {
  std::string out;
  if (r.state_db_bytes() > 0) out += "state database: " + Num(r.state_db_bytes()) + " bytes\n";
  for (const auto& l : r.links()) {
    out += "link " + l.link() + "  (member's MISP " +
           (l.local_misp_version().empty() ? "?" : l.local_misp_version()) + ", Portal " +
           (l.remote_misp_version().empty() ? "?" : l.remote_misp_version()) + ", open conflicts " +
           Num(l.open_conflicts()) + ")\n";
    if (l.sync_window_start() > 0) {
      out += "  sync window: events changed since " + FormatTime(l.sync_window_start()) + " (" +
             l.sync_window() + ")\n";
    }
    if (!l.local_key_fingerprint().empty() || !l.remote_key_fingerprint().empty()) {
      out += "  keys: member's MISP " + l.local_key_fingerprint() + ", Portal " + l.remote_key_fingerprint() +
             " (loaded " + FormatTime(l.keys_loaded_at()) + ")\n";
    }
    Table t({"DIRECTION", "STATE", "LAST RUN", "OUTCOME", "CURSOR", "SENT", "RECEIVED", "FAILED", "QUEUE",
             "DEAD"});
    for (const auto& d : l.directions()) {
      t.Add({DirectionName(d.direction()), d.state(), FormatTime(d.last_run_finished_at()),
             d.last_run_outcome().empty() ? "-" : d.last_run_outcome(), FormatTime(d.cursor_timestamp()),
             Num(d.sent()), Num(d.received()), Num(d.failed()), Num(d.queue_depth()), Num(d.dead_letters())});
    }
    out += t.Render();
    for (const auto& d : l.directions()) {
      if (d.state() == "paused" && !d.paused_by().empty())
        out += "  " + DirectionName(d.direction()) + " paused by " + d.paused_by() + " at " +
               FormatTime(d.paused_at()) + "\n";
    }
    for (const auto& d : l.directions()) {
      std::map<std::string, std::int64_t> skipped(d.skipped_by_reason().begin(), d.skipped_by_reason().end());
      for (const auto& [rule, n] : skipped) {
        out +=
            "  " + DirectionName(d.direction()) + " skipped in the last run: " + Num(n) + " x " + rule + "\n";
      }
    }
  }
  return out;
}

std::string RenderEvents(const v1::ListEventsResponse& r) {
  Table t({"LINK", "UUID", "ORIGIN", "DECISION", "STATE", "LOCAL TS", "PORTAL TS", "UPDATED"});
  for (const auto& e : r.events()) {
    t.Add({e.link(), e.uuid(), e.origin(), e.decision(), e.state(),
           e.local_timestamp() ? Num(e.local_timestamp()) : "-",
           e.remote_timestamp() ? Num(e.remote_timestamp()) : "-", FormatTime(e.updated_at())});
  }
  std::string out = t.Render();
  if (!r.next_page_token().empty()) out += "more: --page-token '" + r.next_page_token() + "'\n";
  return out;
}

namespace {

void RenderDecision(const char* title, const v1::Decision& d, std::string& out) {
  out += std::string(title) + ": " + (d.send() ? "send" : "not sent") +
         (d.decided_at() ? "  (" + FormatTime(d.decided_at()) + ")" : "") + "\n";
  for (int i = 0; i < d.reasons_size(); ++i) {
    const auto& r = d.reasons(i);
    bool last = i + 1 == d.reasons_size() && d.warnings_size() == 0;
    std::string change = r.to().empty() && r.from().empty() ? "" : "  " + r.from() + " -> " + r.to();
    out += std::string(last ? "└─ " : "├─ ") + r.action() + " " + r.path() + change + "  [" + r.rule() +
           (r.spec().empty() ? "" : ", spec " + r.spec()) + "]\n";
    out += std::string(last ? "   " : "│  ") + r.detail() + "\n";
  }
  for (int i = 0; i < d.warnings_size(); ++i) {
    out += std::string(i + 1 == d.warnings_size() ? "└─ " : "├─ ") + "warning: " + d.warnings(i) + "\n";
  }
}

}  // namespace

std::string RenderExplain(const std::string& uuid, const v1::ExplainEventResponse& r) {
  std::string out = "event " + uuid + "\n";
  if (r.has_stored()) {
    RenderDecision("stored decision", r.stored(), out);
  } else {
    out += "stored decision: none\n";
  }
  if (r.has_fresh()) RenderDecision("under the current configuration", r.fresh(), out);
  if (r.differences_size() == 0) {
    out += "no difference\n";
  } else {
    out += "differences:\n";
    for (const auto& d : r.differences()) out += "  " + d + "\n";
  }
  return out;
}

std::string RenderConflicts(const v1::ListConflictsResponse& r) {
  Table t(
      {"ID", "LINK", "UUID", "LOCAL TS", "LOCAL HASH", "PORTAL TS", "PORTAL HASH", "DETECTED", "RESOLUTION"});
  for (const auto& c : r.conflicts()) {
    t.Add({Num(c.id()), c.link(), c.uuid(), Num(c.local_timestamp()), Short(c.local_hash()),
           Num(c.remote_timestamp()), Short(c.remote_hash()), FormatTime(c.detected_at()),
           c.resolution().empty() ? "open" : c.resolution()});
  }
  return t.Render();
}

std::string RenderFailures(const v1::ListFailuresResponse& r) {
  Table t({"ID", "LINK", "DIRECTION", "UUID", "VERSION", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"});
  for (const auto& f : r.failures()) {
    t.Add({Num(f.id()), f.link(), DirectionName(f.direction()), f.uuid(), Num(f.version()), f.state(),
           Num(f.attempts()), f.state() == "dead" ? "-" : FormatTime(f.next_attempt_at()), f.last_error()});
  }
  return t.Render();
}

std::string RenderAudit(const v1::ListAuditResponse& r) {
  Table t({"ID", "AT", "ACTOR", "ACTION", "TARGET", "RESULT"});
  for (const auto& e : r.entries())
    t.Add({Num(e.id()), FormatTime(e.at()), e.actor(), e.action(), e.target(), e.result()});
  std::string out = t.Render();
  if (r.next_after_id() != 0) out += "more: --after " + Num(r.next_after_id()) + "\n";
  return out;
}

std::string RenderPreview(const v1::PreviewRunResponse& r) {
  std::string out = r.link() + " " + DirectionName(r.direction()) + ": " + Num(r.listed()) +
                    " listed since the cursor, " + Num(r.changed()) + " to take up; of the " +
                    Num(r.events_size()) + " examined, " + Num(r.would_send()) + " would be sent\n";
  std::map<std::string, std::int64_t> rules(r.withheld_by_rule().begin(), r.withheld_by_rule().end());
  for (const auto& [rule, n] : rules) out += "  withheld: " + Num(n) + " x " + rule + "\n";
  if (r.events_size() == 0) return out;
  Table t({"UUID", "TIMESTAMP", "WOULD", "RULE"});
  for (const auto& e : r.events())
    t.Add({e.uuid(), FormatTime(e.timestamp()), e.send() ? "send" : "withhold", e.rule()});
  return out + t.Render();
}

std::string RenderAuditLine(const v1::AuditEntry& e) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(e, &out, o);
  return out + "\n";
}

std::string RenderProgress(const v1::SyncProgress& p, double elapsed, bool terminal, int width) {
  std::int64_t done = p.sent() + p.skipped() + p.failed();
  std::string counts = "listed " + Num(p.listed()) + ", sent " + Num(p.sent()) + ", skipped " +
                       Num(p.skipped()) + ", failed " + Num(p.failed());
  std::string head = p.link() + " " + DirectionName(p.direction());
  if (!terminal) {
    return head + ": " + counts + (p.total() ? " of " + Num(p.total()) : "") +
           (p.finished() ? " (" + p.outcome() + ")" : "") + "\n";
  }
  double fraction = p.total() > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(p.total()))
                                  : (p.finished() ? 1.0 : 0.0);
  int bar = std::max(10, width - 30);
  int filled = static_cast<int>(std::lround(fraction * bar));
  std::string eta = "-";
  if (p.finished()) {
    eta = "done";
  } else if (done > 0 && p.total() > done) {
    double left = elapsed / static_cast<double>(done) * static_cast<double>(p.total() - done);
    eta = Num(static_cast<std::int64_t>(std::ceil(left))) + "s";
  }
  char pct[8];
  std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(std::lround(fraction * 100)));
  return "\r" + head + " [" + std::string(static_cast<std::size_t>(filled), '#') +
         std::string(static_cast<std::size_t>(bar - filled), '.') + "] " + pct + " " + Num(done) + "/" +
         Num(p.total()) + " ETA " + eta + "  " + counts + "\x1b[K" + (p.finished() ? "\n" : "");
}

}  // namespace sgsync::cli
