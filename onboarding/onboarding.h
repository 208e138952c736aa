// onboarding/onboarding.h: the checks that prove a member's installation ready to join SecureGRID
// (docs/onboarding.md), and the report the secretariat files.
//
// Each check has a stable id, a title, an outcome (PASS, WARN, FAIL, SKIP), what it found and the
// remedy, in English or Japanese. RunMemberChecks runs the member-side checks of a configuration
// (it contacts both MISPs, writes nothing) and hands each result over as it completes; RunProbe is
// the secretariat's look at a member's MISP from outside. The renderers give a terminal table,
// the JSON report (schema docs/onboarding.schema.json, versioned) and Markdown.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/config.h"

namespace sgsync::onboarding {

enum class Outcome { kPass, kWarn, kFail, kSkip };
std::string_view OutcomeName(Outcome o);  // "PASS", "WARN", "FAIL", "SKIP"

enum class Lang { kEn, kJa };

struct CheckResult {
  std::string id;    // stable: "portal.sync_user"
  std::string link;  // the link it is about; "" for the installation as a whole
  std::string title;
  Outcome outcome = Outcome::kSkip;
  std::string found;   // what was found, with the values
  std::string remedy;  // what to do; "" when nothing is to be done
};

using Sink = std::function<void(const CheckResult&)>;

struct CheckOptions {
  Lang lang = Lang::kEn;
  std::int64_t max_clock_skew_seconds = 60;
  std::int64_t certificate_warn_days = 30;
  // --canary: a recognisable test event sent both ways, read back, then removed where the keys
  // allow; what could not be removed is named (the only checks that write).
  bool canary = false;
};

// The member-side checks for the configuration at `config_path` (read here: its own check comes
// first, and nothing else runs when it fails).
void RunMemberChecks(const std::string& config_path, const CheckOptions& options, const Sink& sink);

// The secretariat's checks on a member's MISP: reachable, TLS, the key valid, its role
// sync-capable, its organisation, its version against `latest_version` ("2.5.1").
struct ProbeTarget {
  std::string url;
  std::string key_file;
  std::string ca_file;
  std::string latest_version = "2.5.1";
  bool insecure_http = false;
};
void RunProbe(const ProbeTarget& target, const CheckOptions& options, const Sink& sink);

// One result as the terminal table shows it (printed as each check completes).
std::string RenderRow(const CheckResult& result);
// "12 passed, 1 warned, 0 failed, 0 skipped" (or in Japanese).
std::string RenderSummary(const std::vector<CheckResult>& results, Lang lang);
// Renderings of a finished list of results.
std::string RenderTable(const std::vector<CheckResult>& results, Lang lang);
std::string RenderJson(const std::vector<CheckResult>& results,
                       const std::string& kind);  // kind: "check" | "probe"
std::string RenderMarkdown(const std::vector<CheckResult>& results, Lang lang, const std::string& kind);

// 0 when nothing FAILed, 1 otherwise (2 is the CLI's for usage errors).
int ExitCode(const std::vector<CheckResult>& results);

}  // namespace sgsync::onboarding
