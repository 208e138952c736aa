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
  return Report(args, "check", [&](const onboarding::CheckOptions& o, const onboarding::Sink& sink) {
    onboarding::RunMemberChecks(args.config, o, sink);
  });
}

int RunOnboardingProbe(const OnboardingArgs& args) {
  onboarding::ProbeTarget target{args.url, args.key_file, args.ca_file, args.latest, args.insecure_http};
  return Report(args, "probe", [&](const onboarding::CheckOptions& o, const onboarding::Sink& sink) {
    onboarding::RunProbe(target, o, sink);
  });
}

}  // namespace sgsync::cli
