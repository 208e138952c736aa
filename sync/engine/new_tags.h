// sync/engine/new_tags.h: one MISP's tags that sgsync knows it has written there, and the gate that
// a write naming any other tag goes through alone.
//
// MISP creates a tag inside the add that first names it, and two adds creating the same tag at once
// both insert it: the second fails on the tag's unique name (500 on MISP 2.5.1, bench/real_misp.py;
// misp-sim's TagRace). A write naming a tag not yet written to that MISP therefore goes alone, the
// others in parallel. The gate belongs to the MISP, not to a link: sgsyncd gives every link writing
// to one MISP the same gate (two links' first adds to one Portal raced before, 2026-12-05).
// Thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sgsync::engine {

class NewTagGate {
 public:
  // Held while a write naming `tags` goes out, when one of them is not known to have been written;
  // an empty lock when all are.
  std::unique_lock<std::mutex> Enter(const std::vector<std::string_view>& tags);
  // The write naming `tags` reached the MISP: they exist there now.
  void Written(const std::vector<std::string_view>& tags);

 private:
  bool AllKnown(const std::vector<std::string_view>& tags);

  std::mutex known_mu_;
  std::set<std::string, std::less<>> known_;  // guarded by known_mu_
  std::mutex alone_;
};

}  // namespace sgsync::engine
