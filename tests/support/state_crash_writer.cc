// tests/support/state_crash_writer.cc: the child of StateCrashTest. Writes ledger + work-queue
// transactions (RecordAndEnqueue) to the database named on the command line, numbering the events
// from START, and prints each number after its transaction committed, until it is killed.
//
// usage: state_crash_writer DB START
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "state/store.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  auto store = sgsync::state::StateStore::Open(argv[1]);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.error().ToString().c_str());
    return 1;
  }
  auto link = (*store)->RegisterLink("portal", "crash-test");
  if (!link.ok()) return 1;
  for (long i = std::atol(argv[2]);; ++i) {
    sgsync::state::LedgerEntry e;
    e.uuid = "event-" + std::to_string(i);
    e.local_timestamp = i;
    e.local_hash = std::string(64, 'a');
    e.decision = sgsync::state::LedgerDecision::kSend;
    e.decision_json = R"({"reasons":[{"rule":"push.attribute.downgrade","path":"Event.Attribute[0]"}]})";
    auto id = (*store)->RecordAndEnqueue(link->id, e, sgsync::Direction::kPush, i);
    if (!id.ok()) {
      std::fprintf(stderr, "%s\n", id.error().ToString().c_str());
      return 1;
    }
    std::string line = std::to_string(i) + "\n";
    if (::write(1, line.data(), line.size()) < 0) return 1;
  }
}
