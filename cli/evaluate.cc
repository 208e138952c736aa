#include "cli/evaluate.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "misp/event.h"
#include "sync/policy/policy.h"

namespace sgsync::cli {
namespace {

Result<std::string> Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kIo, "cannot read the file", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Unusable(const Error& e) {
  std::fprintf(stderr, "sgsyncctl evaluate: %s\n", e.ToString().c_str());
  return 2;
}

}  // namespace

int RunEvaluate(const EvaluateArgs& args) {
  Direction direction;
  if (args.direction == "push") {
    direction = Direction::kPush;
  } else if (args.direction == "pull") {
    direction = Direction::kPull;
  } else {
    return Unusable(Fail(ErrorCode::kInvalidArgument,
                         "expected push or pull, found \"" + args.direction + "\"", "--direction"));
  }
  auto link_text = Slurp(args.link_path);
  if (!link_text.ok()) return Unusable(link_text.error());
  auto link_json = misp::ParseJson(*link_text);
  if (!link_json.ok()) return Unusable(link_json.error().Within(args.link_path));
  auto link = policy::ParseLink(*link_json);
  if (!link.ok()) return Unusable(link.error().Within(args.link_path));

  auto event_text = Slurp(args.event_path);
  if (!event_text.ok()) return Unusable(event_text.error());
  auto event_json = misp::ParseJson(*event_text);
  if (!event_json.ok()) return Unusable(event_json.error().Within(args.event_path));
  std::optional<misp::EventDocument> doc;
  if (!event_json->is_null()) {
    misp::DecodeOptions options;
    auto parsed = misp::EventDocument::FromJson(std::move(*event_json), options);
    if (!parsed.ok()) return Unusable(parsed.error().Within(args.event_path));
    doc.emplace(std::move(*parsed));
  } else if (direction == Direction::kPush) {
    return Unusable(Fail(ErrorCode::kInvalidArgument, "a push needs an event, found null", args.event_path));
  }
  policy::Decision d = policy::Evaluate(direction, doc ? &doc->event_json() : nullptr, *link);
  std::printf("%s\n", boost::json::serialize(d.ToJson()).c_str());
  return 0;
}

}  // namespace sgsync::cli
