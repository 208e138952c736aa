// state/rows.h: how the store's rows are written and read (private to state/: store.cc,
// queue.cc, records.cc). Every text stored here is a stable name; Side, CursorKind and WorkState
// are converted at this boundary only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "state/schema.h"
#include "state/store.h"

namespace sgsync::state::rows {

const char* KindName(CursorKind k);
const char* SideName(Side s);
Side SideFrom(const std::string& s);
WorkState StateFrom(const std::string& s);
std::string NewGenerationId();
Status WriteLedger(Database& db, std::int64_t link_id, const LedgerEntry& e, std::int64_t now);
std::optional<std::int64_t> OptInt(Statement& s, int col);
std::optional<std::string> OptText(Statement& s, int col);
// The columns ReadWork expects, in order.
extern const char* const kWorkColumns;
WorkItem ReadWork(Statement& s);
Status EnsureCursor(Database& db, std::int64_t link_id, Direction d, CursorKind k, std::int64_t now);
Status ExpectOneRow(Database& db, std::string_view what, std::int64_t id);

}  // namespace sgsync::state::rows
