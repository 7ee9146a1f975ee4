#pragma once
// What the store's aggregates (studies.h, claims.h, runs.h, imports.h,
// measurements.h) have in common: each is a view of its Store's one
// connection. A Store is all of them at once (store.h); code that needs only
// one aggregate takes it by reference (e.g. `store::Runs&`) and is handed a Store.
namespace powertrain::store {

namespace detail {
struct Db;  // the shared connection (src/store/db.h)
}  // namespace detail

/// The base of every aggregate. Only a Store makes aggregates (as its bases),
/// so an aggregate lives exactly as long as its Store and is never copied.
class Aggregate {
 protected:
  explicit Aggregate(detail::Db* db) : db_(db) {}
  Aggregate(const Aggregate&) = delete;
  Aggregate& operator=(const Aggregate&) = delete;
  Aggregate(Aggregate&&) noexcept = default;
  Aggregate& operator=(Aggregate&&) noexcept = default;
  ~Aggregate() = default;

  detail::Db& db() const { return *db_; }

 private:
  detail::Db* db_;
};

}  // namespace powertrain::store
