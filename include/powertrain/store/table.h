#pragma once
// The store's values and query results are the one table model's
// (table/table.h): a query gives a table::Table whose columns are named as
// SQLite returned them.
#include "powertrain/table/table.h"

namespace powertrain::store {

/// One SQLite value: NULL, INTEGER, REAL, or TEXT (BLOBs come back as TEXT bytes).
using Value = table::Value;
using table::to_text;

}  // namespace powertrain::store
