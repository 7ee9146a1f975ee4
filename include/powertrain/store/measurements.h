#pragma once
// The measurements aggregate: commands measured by `powertrain measure`.
// Part of a Store (store.h).
#include <cstdint>
#include <vector>

#include "powertrain/store/aggregate.h"
#include "powertrain/store/records.h"

namespace powertrain::store {

/// Measured commands. Every method throws StoreError with one line.
class Measurements : protected Aggregate {
 public:
  /// Stores a measured command; returns its id. Throws StoreError on a duplicate uuid.
  std::int64_t add_measurement(const MeasurementRecord& m);
  /// Every stored measurement, oldest first.
  std::vector<MeasurementRecord> list_measurements() const;

 protected:
  explicit Measurements(detail::Db* db) : Aggregate(db) {}
};

}  // namespace powertrain::store
