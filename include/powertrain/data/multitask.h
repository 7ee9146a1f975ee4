#pragma once
// Binary tasks derived from a single-label dataset: one-vs-rest classes and
// coarser groups of classes, for the multitask study.
#include <cstdint>
#include <string>
#include <vector>

#include "powertrain/data/dataset.h"

namespace powertrain::data {

/// A binary task: positive when the sample's class is one of `classes`.
struct TaskSpec {
  std::string name;
  std::vector<std::int64_t> classes;  ///< class indices of the single-label dataset
};

/// Named groups known for a dataset. fashion-mnist: top {T-shirt/top, Pullover,
/// Coat, Shirt}, footwear {Sandal, Sneaker, Ankle boot}, legwear {Trouser},
/// dress {Dress}, bag {Bag}, long_sleeves {Pullover, Coat}. pamap2: static
/// {lying, sitting, standing}, locomotion {walking, running, Nordic walking,
/// ascending stairs, descending stairs}, household {vacuum cleaning, ironing},
/// sport {running, cycling, rope jumping}. With a class subset (PAMAP2
/// activities) a group keeps the classes present and is left out when none is.
std::vector<TaskSpec> builtin_task_groups(const Dataset& dataset);

/// Turns task specs into TaskSpecs for `dataset` (single_label). A spec is one of:
///  - a builtin group name ("top", "footwear");
///  - "class_K" (index) or "class_<name>" ("class_sneaker"): one-vs-rest;
///  - "one_vs_rest": class_0 .. class_{n-1};
///  - "NAME=A+B+...": a custom group of class names or indices ("warm=Pullover+Coat").
/// Class names match case-insensitively with '_' and '-' read as spaces.
/// Throws ConfigError for an unknown spec or class, listing what is valid.
std::vector<TaskSpec> resolve_tasks(const Dataset& dataset, const std::vector<std::string>& specs);

/// The multi-label dataset: y float32 [N, K] with y[n][k] = 1 when sample n's
/// class is in task k; x shared with the input (no copy); labels = task names.
/// Throws ConfigError when `dataset` is not single_label or a class is out of range.
Dataset to_multitask(const Dataset& dataset, const std::vector<TaskSpec>& tasks);

/// resolve_tasks then to_multitask.
Dataset to_multitask(const Dataset& dataset, const std::vector<std::string>& specs);

}  // namespace powertrain::data
