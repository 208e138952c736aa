// cli/onboarding.h: `sgsyncctl onboarding check` and `sgsyncctl onboarding probe` (docs/onboarding.md).
#pragma once

#include <string>

#include "cli/admin.h"

namespace sgsync::cli {

struct OnboardingArgs {
  std::string config;          // check: the configuration file to check without a daemon; "" asks the daemon
  AdminArgs* admin = nullptr;  // how to reach the daemon (--socket ...)
  std::string url, key_file, ca_file, latest = "2.5.1";  // probe
  bool insecure_http = false;
  std::string lang = "en";
  bool json = false;
  bool markdown = false;
  bool canary = false;  // check: the round trip with a test event (writes, then removes)
};

// Prints each result as it completes (table), or the whole report (--json, --markdown); returns
// 0 when nothing failed, 1 on a FAIL.
int RunOnboardingCheck(const OnboardingArgs& args);
int RunOnboardingProbe(const OnboardingArgs& args);

}  // namespace sgsync::cli
