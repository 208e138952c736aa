// cli/admin.h: sgsyncctl's admin subcommands, each one call of the admin API over gRPC
// (docs/admin-api.md has every subcommand with an example).
//
// Exit codes: 0 ok; 1 the answer shows something failing (a failed run, dead letters, open
// conflicts, failures listed); 2 usage (CLI11) or an argument the daemon refused; 3 the daemon is
// unreachable (the message names the socket).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace sgsync::cli {

struct AdminArgs {
  std::string command;  // status, sync, pause, resume, events, explain, conflicts, resolve, failures,
                        // retry, drop, audit, config, reload, backup
  std::string socket;   // the admin socket (unix path) or, with --tls-*, HOST:PORT
  std::string tls_ca, tls_cert, tls_key;  // mTLS to a TCP listener
  bool json = false;
  std::string link;
  std::string direction;  // push | pull | "" (both)
  bool full = false;
  bool wait = false;
  std::string uuid;
  std::int64_t id = 0;
  std::string resolution;
  std::string state, decision;
  std::int64_t since = 0;
  int limit = 100;
  std::string page_token;
  bool all = false;           // conflicts: include resolved
  bool dead_only = false;     // failures
  std::string path;           // backup
  std::int64_t after_id = 0;  // audit: the next page
  std::string format;         // audit: "" (a table, or --json) or "jsonl" (every page, a line per entry)
};

int RunAdmin(const AdminArgs& args);

// One onboarding result as the daemon streams it.
struct OnboardingRow {
  std::string id, link, title, outcome, found, remedy;
};
// The daemon's CheckOnboarding call: `each` gets every result as it arrives. Returns 0, or the
// admin exit code of a failed call (3: the daemon is unreachable).
int StreamOnboarding(const AdminArgs& args, const std::string& lang, bool canary,
                     const std::function<void(const OnboardingRow&)>& each);

}  // namespace sgsync::cli
