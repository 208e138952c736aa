#include "cli/onboarding.h"

#include <cstdio>
#include <vector>

#include "onboarding/onboarding.h"

namespace sgsync::cli {
namespace {

int Report(const OnboardingArgs& args, const char* kind,
           const std::function<void(const onboarding::CheckOptions&, const onboarding::Sink&)>& run) {
  onboarding::CheckOptions options;
  options.lang = args.lang == "ja" ? onboarding::Lang::kJa : onboarding::Lang::kEn;
  options.canary = args.canary;
  std::vector<onboarding::CheckResult> results;
  const bool streaming = !args.json && !args.markdown;
  run(options, [&](const onboarding::CheckResult& r) {
    results.push_back(r);
    if (streaming) {
      std::fputs(onboarding::RenderRow(r).c_str(), stdout);
      std::fflush(stdout);
    }
  });
  if (args.json) {
    std::fputs(onboarding::RenderJson(results, kind).c_str(), stdout);
  } else if (args.markdown) {
    std::fputs(onboarding::RenderMarkdown(results, options.lang, kind).c_str(), stdout);
  } else {
    std::fputs((onboarding::RenderSummary(results, options.lang) + "\n").c_str(), stdout);
  }
  return onboarding::ExitCode(results);
}

}  // namespace

int RunOnboardingCheck(const OnboardingArgs& args) {
  int call = 0;
  int rc = Report(args, "check", [&](const onboarding::CheckOptions& o, const onboarding::Sink& sink) {
    if (!args.config.empty()) return onboarding::RunMemberChecks(args.config, o, sink);
    // Through the running daemon: its configuration, each result as the daemon sends it.
    call = StreamOnboarding(
        *args.admin, o.lang == onboarding::Lang::kJa ? "ja" : "en", o.canary, [&](const OnboardingRow& row) {
          onboarding::CheckResult r{row.id,    row.link,  row.title, onboarding::Outcome::kSkip,
                                    row.found, row.remedy};
          for (auto o2 : {onboarding::Outcome::kPass, onboarding::Outcome::kWarn, onboarding::Outcome::kFail})
            if (onboarding::OutcomeName(o2) == row.outcome) r.outcome = o2;
          sink(r);
        });
  });
  return call != 0 ? call : rc;
}

int RunOnboardingProbe(const OnboardingArgs& args) {
  onboarding::ProbeTarget target{args.url, args.key_file, args.ca_file, args.latest, args.insecure_http};
  return Report(args, "probe", [&](const onboarding::CheckOptions& o, const onboarding::Sink& sink) {
    onboarding::RunProbe(target, o, sink);
  });
}

}  // namespace sgsync::cli
