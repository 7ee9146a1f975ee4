#pragma once
// Successive halving decided asynchronously (ASHA: Li et al., "A System for
// Massively Parallel Hyperparameter Tuning", MLSys 2020), for segments that
// run side by side, such as Slurm array tasks (docs/search.md, "On a Slurm
// cluster"). The same ranking, target and Zeus rule as search::decide(); only
// when a rung is ranked, and how many it keeps before it is complete, differ.
// Pure logic: no torch, no store.
#include <vector>

#include "powertrain/search/search.h"

namespace powertrain::search {

/// The same search decided asynchronously (ASHA, Li et al. 2020), for
/// segments that run side by side (a Slurm cluster): a rung does not wait for
/// all its members. A finished member goes on to the next rung as soon as it
/// ranks in the top floor(finished / eta) of the rung's finished members (by
/// the same ranking, target and Zeus rule as decide()); once a rung and every
/// rung before it have all their results, the top ceil(members / eta) go on,
/// decide()'s own rule. A promotion is never taken back. `next` holds every
/// segment that may start now, the deepest rung's first, then new setups in
/// sample order: the caller starts as many as it has free slots.
Decision decide_asynchronous(const Settings& s, const std::vector<Setup>& sampled,
                             const std::vector<Observed>& observed, double spent_j);

/// Where a rung stands, for `powertrain status`.
struct RungSummary {
  int rung = 0;       ///< its index
  int end_epoch = 0;  ///< its epoch budget
  int setups = 0;     ///< setups with a segment at this rung (or beyond)
  int running = 0;    ///< its segments running now
  int waiting = 0;    ///< its segments planned and not running (queued, or to run again)
  int finished = 0;   ///< its segments that have ended (or whose setup went on)
  int promoted = 0;   ///< its setups with a segment at the next rung
};
/// One entry per rung from the setups' records.
std::vector<RungSummary> rung_summary(const Settings& s, const std::vector<Observed>& observed);

}  // namespace powertrain::search
