// cli/evaluate.h: `sgsyncctl evaluate`, the sharing policy run offline on a link and an event file.
#pragma once

#include <string>

namespace sgsync::cli {

struct EvaluateArgs {
  std::string direction;   // push | pull
  std::string link_path;   // link.json (tests/data/conformance/case2link.py format)
  std::string event_path;  // {"Event": {...}} or null
};

// Prints the decision as one JSON object on stdout. Returns the process exit code: 0 when a decision
// was made (send or skip), 2 for unusable input (the message on stderr names the file and place).
int RunEvaluate(const EvaluateArgs& args);

}  // namespace sgsync::cli
