// Renderings of an onboarding report: a table for a terminal, JSON (docs/onboarding.schema.json),
// Markdown for the secretariat.
#include <array>
#include <boost/json.hpp>
#include <ctime>

#include "onboarding/onboarding.h"

#ifndef SGSYNC_VERSION
#define SGSYNC_VERSION "0.1.0"
#endif

namespace sgsync::onboarding {
namespace {

std::string Now() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::array<int, 4> Count(const std::vector<CheckResult>& results) {
  std::array<int, 4> n{};
  for (const auto& r : results) ++n[static_cast<int>(r.outcome)];
  return n;
}

std::string Summary(const std::vector<CheckResult>& results, Lang lang) {
  auto n = Count(results);
  if (lang == Lang::kJa)
    return "合格 " + std::to_string(n[0]) + "、警告 " + std::to_string(n[1]) + "、不合格 " +
           std::to_string(n[2]) + "、省略 " + std::to_string(n[3]);
  return std::to_string(n[0]) + " passed, " + std::to_string(n[1]) + " warned, " + std::to_string(n[2]) +
         " failed, " + std::to_string(n[3]) + " skipped";
}

}  // namespace

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kPass:
      return "PASS";
    case Outcome::kWarn:
      return "WARN";
    case Outcome::kFail:
      return "FAIL";
    case Outcome::kSkip:
      return "SKIP";
  }
  return "SKIP";
}

std::string RenderRow(const CheckResult& r) {
  std::string out = std::string(OutcomeName(r.outcome)) + "  " + r.id +
                    (r.link.empty() ? "" : " [" + r.link + "]") + "  " + r.title + "\n      " + r.found +
                    "\n";
  if (!r.remedy.empty()) out += "      -> " + r.remedy + "\n";
  return out;
}

std::string RenderSummary(const std::vector<CheckResult>& results, Lang lang) {
  return Summary(results, lang);
}

std::string RenderTable(const std::vector<CheckResult>& results, Lang lang) {
  std::string out;
  for (const auto& r : results) out += RenderRow(r);
  return out + Summary(results, lang) + "\n";
}

std::string RenderJson(const std::vector<CheckResult>& results, const std::string& kind) {
  boost::json::array rows;
  for (const auto& r : results) {
    rows.push_back(boost::json::object{{"id", r.id},
                                       {"link", r.link},
                                       {"title", r.title},
                                       {"outcome", std::string(OutcomeName(r.outcome))},
                                       {"found", r.found},
                                       {"remedy", r.remedy}});
  }
  auto n = Count(results);
  boost::json::object report{
      {"schema", "sgsync-onboarding/1"},
      {"kind", kind},
      {"sgsync_version", SGSYNC_VERSION},
      {"generated_at", Now()},
      {"results", std::move(rows)},
      {"summary", boost::json::object{{"pass", n[0]}, {"warn", n[1]}, {"fail", n[2]}, {"skip", n[3]}}},
      {"ready", n[2] == 0}};
  return boost::json::serialize(report) + "\n";
}

std::string RenderMarkdown(const std::vector<CheckResult>& results, Lang lang, const std::string& kind) {
  const bool ja = lang == Lang::kJa;
  std::string out =
      std::string("# ") +
      (kind == "probe" ? (ja ? "sgsync 外部確認レポート" : "sgsync probe report")
                       : (ja ? "sgsync オンボーディング確認レポート" : "sgsync onboarding report")) +
      "\n\n" + (ja ? "作成: " : "Generated: ") + Now() + " (sgsync " + SGSYNC_VERSION + ")\n\n" +
      (ja ? "結果: " : "Result: ") + Summary(results, lang) + "\n\n";
  out += ja ? "| 結果 | 検査 | リンク | 内容 | 対処 |\n|---|---|---|---|---|\n"
            : "| outcome | check | link | found | remedy |\n|---|---|---|---|---|\n";
  auto cell = [](std::string s) {
    for (std::size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
    return s;
  };
  for (const auto& r : results) {
    out += "| " + std::string(OutcomeName(r.outcome)) + " | `" + r.id + "` " + cell(r.title) + " | " +
           r.link + " | " + cell(r.found) + " | " + cell(r.remedy) + " |\n";
  }
  return out;
}

int ExitCode(const std::vector<CheckResult>& results) {
  for (const auto& r : results)
    if (r.outcome == Outcome::kFail) return 1;
  return 0;
}

}  // namespace sgsync::onboarding
