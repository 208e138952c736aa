// state/schema.h: the state database's schema as a list of forward-only migrations.
//
// Version N of the schema is migrations 1..N applied in order; each runs in its own transaction and
// records itself in `schema_version`. A database whose version is newer than this build knows is
// refused, naming both versions (docs/state.md describes every table).
#pragma once

#include "common/result.h"
#include "sqlite/sqlite.h"

namespace sgsync::state {

// The store's SQL runs on the generic SQLite layer (sqlite/sqlite.h).
using sqlite::Database;
using sqlite::OpenOptions;
using sqlite::ScopedStatement;
using sqlite::Statement;
using sqlite::Transaction;

// The newest schema version this build writes.
int CurrentSchemaVersion();

// The version recorded in the database (0 for a new, empty file).
Result<int> ReadSchemaVersion(Database& db);

// Applies the migrations after the database's version up to `target` (default: current).
// Fails with kVersionMismatch when the database is newer than `target`.
Status Migrate(Database& db, int target = -1);

}  // namespace sgsync::state
