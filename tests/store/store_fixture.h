#pragma once
// The fixture of the store's unit tests: a fresh database in a folder of its own.
#include <gtest/gtest.h>

#include "powertrain/store/store.h"
#include "temp_dir.h"

namespace powertrain::testing {

/// A new results.db in a temporary folder, synchronous=NORMAL (fast; the
/// durability tests open their own stores).
class StoreFixture : public ::testing::Test {
 protected:
  TempDir dir;
  store::Store store = store::Store::open(dir / "results.db", {.durability = store::Durability::normal});
};

}  // namespace powertrain::testing
