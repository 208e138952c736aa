// config/engine_settings.h: the link keys that set the engine's behaviour (private to config/).
#pragma once

#include <span>
#include <string_view>

#include "config/toml_reader.h"
#include "misp/json.h"
#include "sync/engine/options.h"

namespace sgsync::config {

namespace json = boost::json;

// Every link key that sets how the engine behaves, with how it is read (checked: each error names
// the file, the line and the key) and how GetConfig shows it. A new engine setting is its field in
// sync/engine/options.h, its entry here, and its line in docs/configuration.md.
struct EngineSetting {
  std::string_view key;
  Status (*read)(TableReader& r, std::string_view key, engine::EngineOptions& o);
  json::value (*show)(const engine::EngineOptions& o);
};

std::span<const EngineSetting> EngineSettings();

}  // namespace sgsync::config
