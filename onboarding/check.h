// onboarding/check.h: how one onboarding check is written, and what one MISP of a link answered
// about itself (private to onboarding/: checks.cc, side_checks.cc, canary.cc).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "misp/api.h"
#include "onboarding/onboarding.h"
#include "portal-connector/misp_client.h"
#include "sync/policy/link.h"

namespace sgsync::onboarding::detail {

using connector::MispClient;

// One check being written: picks the language, then hands the result to the sink.
class Check {
 public:
  Check(const Sink& sink, Lang lang, std::string id, std::string link, const char* en, const char* ja)
      : sink_(sink), lang_(lang) {
    r_.id = std::move(id);
    r_.link = std::move(link);
    r_.title = lang == Lang::kJa ? ja : en;
  }
  // Text in the report's language.
  std::string T(const std::string& en, const std::string& ja) const { return lang_ == Lang::kJa ? ja : en; }
  void Pass(const std::string& found) { Done(Outcome::kPass, found, ""); }
  void Warn(const std::string& found, const std::string& remedy) { Done(Outcome::kWarn, found, remedy); }
  void FailWith(const std::string& found, const std::string& remedy) { Done(Outcome::kFail, found, remedy); }
  void Skip(const std::string& found) { Done(Outcome::kSkip, found, ""); }
  Outcome outcome() const { return r_.outcome; }

 private:
  void Done(Outcome o, const std::string& found, const std::string& remedy) {
    r_.outcome = o;
    r_.found = found;
    r_.remedy = remedy;
    sink_(r_);
  }
  const Sink& sink_;
  Lang lang_;
  CheckResult r_;
};

// What one MISP of a link answered about itself.
struct Side {
  std::string name;  // "member" | "portal"
  std::unique_ptr<MispClient> client;
  std::optional<misp::ServerVersion> version;
  std::optional<misp::UserInfo> me;
};

// Each MISP of a link: does it answer, is its certificate valid, is the key right, is its clock.
void CheckReachAndTls(const Sink& sink, const CheckOptions& o, const std::string& link, Side& side,
                      const config::MispEndpointConfig& e);
void CheckKey(const Sink& sink, const CheckOptions& o, const std::string& link, Side& side);
void CheckClock(const Sink& sink, const CheckOptions& o, const std::string& link, Side& side);
// The canary: an event of its own tag, visible to the two organisations only, created on one side,
// moved by sgsync's policy and client, read back on the other, then removed where the keys allow.
void Canary(const Sink& sink, const CheckOptions& o, const config::LinkConfig& lc, Side& member, Side& portal,
            const policy::Link& plink);

}  // namespace sgsync::onboarding::detail
