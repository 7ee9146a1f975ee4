#pragma once
// PAMAP2 Protocol recordings cut into labelled sliding windows.
#include <filesystem>
#include <string>
#include <vector>

#include "powertrain/data/dataset.h"
#include "powertrain/data/load.h"

namespace powertrain::data {

/// One of the 12 protocol activities.
struct Pamap2Activity {
  int id;            ///< activityID in the .dat files
  std::string name;  ///< "lying", ..., "rope jumping"
};

/// The 12 protocol activities in class order (ids 1..7, 12, 13, 16, 17, 24).
const std::vector<Pamap2Activity>& pamap2_activities();

/// Every selectable channel name: "heart_rate", then for hand, chest, ankle:
/// temp, acc16_{x,y,z}, acc6_{x,y,z}, gyro_{x,y,z}, mag_{x,y,z}.
/// (The orientation columns are documented as invalid and are not offered.)
const std::vector<std::string>& pamap2_channel_names();

/// Expands channel specs (names, IMUs, IMU_sensor, sensor groups) into channel
/// names in canonical order without duplicates. Empty specs: the default 18.
/// Throws ConfigError for an unknown spec, listing the valid ones.
std::vector<std::string> resolve_pamap2_channels(const std::vector<std::string>& specs);

/// Loads Protocol/subject1NN.dat for every subject in the splits. Rows of
/// transient activity 0 and of unselected activities are dropped; windows of
/// options.window samples every options.stride samples never span two
/// activities, a time gap or a NaN run longer than options.max_fill. x float32
/// [N, channels, window], normalized with the training split's per-channel
/// mean/std; y int64 [N]. Throws DataError naming the file and line.
Dataset load_pamap2(const DatasetOptions& options);

}  // namespace powertrain::data
