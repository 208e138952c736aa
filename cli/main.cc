// sgsyncctl: the operator's command line for sgsync.
#include <CLI/CLI.hpp>

#include "cli/evaluate.h"

#ifndef SGSYNC_VERSION
#define SGSYNC_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App app{"sgsyncctl: operate sgsync, the SecureGRID federation sync service"};
  app.set_version_flag("--version", std::string("sgsyncctl ") + SGSYNC_VERSION);
  app.require_subcommand(1);

  sgsync::cli::EvaluateArgs eval;
  CLI::App* evaluate = app.add_subcommand(
      "evaluate", "Run the sharing policy offline: what would cross the link, what will arrive, and why");
  evaluate->add_option("--direction", eval.direction, "push (member -> peer) or pull (peer -> member)")
      ->required()
      ->check(CLI::IsMember({"push", "pull"}));
  evaluate->add_option("--link", eval.link_path, "the link as JSON (shared/conformance/case2link.py format)")
      ->required();
  evaluate
      ->add_option("--event", eval.event_path,
                   "the event as JSON ({\"Event\": ...}, or null for a pull the peer does not serve)")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports usage errors by exception; exit code 2 is the usage convention of sgsyncctl.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (evaluate->parsed()) return sgsync::cli::RunEvaluate(eval);
  return 2;
}
