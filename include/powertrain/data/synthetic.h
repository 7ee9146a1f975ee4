#pragma once
// Generated datasets with learnable class structure, for tests and quick runs
// without downloads. Both are deterministic functions of their options and seed.
#include "powertrain/data/dataset.h"
#include "powertrain/data/load.h"

namespace powertrain::data {

/// "synthetic-images": each class is a fixed arrangement of three Gaussian blobs
/// (a colour per blob when there are 3 channels); every sample jitters the
/// blobs' positions and brightness, adds a random distractor blob and pixel
/// noise. x float32 [N, C, S, S], y int64 [N]. Options: num_classes (10),
/// input_channels (1), image_size (28), train_samples, eval_samples, noise, seed.
Dataset make_synthetic_images(const DatasetOptions& options);

/// "synthetic-sensors": each class gives every channel its own frequency,
/// amplitude and phase; every sample shifts the signal in time, jitters
/// frequency and amplitude, adds an offset per channel and noise. x float32
/// [N, C, L], y int64 [N]. Options: num_classes (6), input_channels (6),
/// length (128), train_samples, eval_samples, noise, seed.
Dataset make_synthetic_sensors(const DatasetOptions& options);

}  // namespace powertrain::data
