// config/toml_reader.h: reading one TOML table key by key, each error naming the file, the line and
// the key (private to config/).
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sgsync::config {

// Reads one TOML table, remembering which keys were asked for so that the rest are reported as
// unknown (a misspelt key must not silently fall back to a default).
class TableReader {
 public:
  TableReader(const toml::table& t, std::string file, std::string prefix)
      : t_(t), file_(std::move(file)), prefix_(std::move(prefix)) {}

  Error ErrorAt(const toml::node* n, std::string_view key, const std::string& what) const {
    int line =
        n != nullptr ? static_cast<int>(n->source().begin.line) : static_cast<int>(t_.source().begin.line);
    return Error{ErrorCode::kInvalidArgument,
                 file_ + ":" + std::to_string(line) + ": " + Key(key) + ": " + what, ""};
  }
  std::string Key(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }
  const std::string& file() const { return file_; }

  const toml::node* Node(std::string_view key) {
    known_.insert(std::string(key));
    return t_.get(key);
  }

  Status String(std::string_view key, std::string* out, bool required = false) {
    const toml::node* n = Node(key);
    if (n == nullptr) {
      if (required) return ErrorAt(nullptr, key, "missing (required)");
      return {};
    }
    if (!n->is_string()) return ErrorAt(n, key, std::string("expected a string, found ") + TypeName(*n));
    *out = n->as_string()->get();
    return {};
  }
  Status Bool(std::string_view key, bool* out) {
    const toml::node* n = Node(key);
    if (n == nullptr) return {};
    if (!n->is_boolean())
      return ErrorAt(n, key, std::string("expected true or false, found ") + TypeName(*n));
    *out = n->as_boolean()->get();
    return {};
  }
  template <typename Int>
  Status Integer(std::string_view key, Int* out, std::int64_t min, std::int64_t max) {
    const toml::node* n = Node(key);
    if (n == nullptr) return {};
    if (!n->is_integer()) return ErrorAt(n, key, std::string("expected an integer, found ") + TypeName(*n));
    std::int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      return ErrorAt(n, key,
                     "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", found " +
                         std::to_string(v));
    }
    *out = static_cast<Int>(v);
    return {};
  }
  Status StringList(std::string_view key, std::vector<std::string>* out) {
    const toml::node* n = Node(key);
    if (n == nullptr) return {};
    if (!n->is_array())
      return ErrorAt(n, key, std::string("expected a list of strings, found ") + TypeName(*n));
    out->clear();
    for (const auto& e : *n->as_array()) {
      if (!e.is_string()) return ErrorAt(&e, key, std::string("expected strings, found ") + TypeName(e));
      out->push_back(e.as_string()->get());
    }
    return {};
  }
  // A sub-table; nullptr when absent.
  Result<const toml::table*> Table(std::string_view key, bool required) {
    const toml::node* n = Node(key);
    if (n == nullptr) {
      if (required) return ErrorAt(nullptr, key, "missing (required table)");
      return static_cast<const toml::table*>(nullptr);
    }
    if (!n->is_table()) return ErrorAt(n, key, std::string("expected a table, found ") + TypeName(*n));
    return n->as_table();
  }

  Status NoUnknownKeys() const {
    for (const auto& [k, v] : t_) {
      if (!known_.count(std::string(k.str()))) return ErrorAt(&v, k.str(), "unknown key");
    }
    return {};
  }

  static const char* TypeName(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::string:
        return "a string";
      case toml::node_type::integer:
        return "an integer";
      case toml::node_type::floating_point:
        return "a number";
      case toml::node_type::boolean:
        return "a boolean";
      case toml::node_type::array:
        return "a list";
      case toml::node_type::table:
        return "a table";
      default:
        return "a date or time";
    }
  }

 private:
  const toml::table& t_;
  std::string file_;
  std::string prefix_;
  std::set<std::string> known_;
};

}  // namespace sgsync::config
