#include "powertrain/models/model.h"

#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "powertrain/error.h"

namespace powertrain::models {

ModelImpl::ModelImpl(std::string name, InputSpec spec, ModelOptions options,
                     std::shared_ptr<EncoderImpl> enc, TaskHeads h)
    : name_(std::move(name)), spec_(std::move(spec)), options_(options) {
  encoder = register_module("encoder", std::move(enc));
  heads = register_module("heads", std::move(h));
}

torch::Tensor ModelImpl::forward(const torch::Tensor& x) { return heads->forward(encoder->forward(x)); }

void ModelImpl::freeze_encoder(bool frozen) {
  for (auto& p : encoder->parameters()) p.requires_grad_(!frozen);
  encoder_frozen_ = frozen;
  encoder->train(frozen ? false : is_training());
}

std::vector<torch::Tensor> ModelImpl::trainable_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& p : parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

void ModelImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (encoder_frozen_) encoder->train(false);
}

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{"image-cnn", "sensor-cnn"};
  return names;
}

Model make_model(const std::string& name, const InputSpec& spec, const ModelOptions& options) {
  if (options.dropout < 0.0 || options.dropout >= 1.0) throw ConfigError("model dropout must be in [0, 1)");
  if (options.head_hidden < 0) throw ConfigError("head hidden units must be >= 0");
  if (spec.outputs < 1) throw ConfigError("a model needs at least one output (class or task)");
  if (!spec.multi_label && spec.outputs < 2) throw ConfigError("a single-label model needs at least 2 classes");

  ConvEncoderOptions enc;
  enc.width = options.width;
  enc.max_width = options.max_width;
  enc.depth = options.depth;
  enc.global_pool = options.global_pool;
  std::shared_ptr<EncoderImpl> encoder;
  if (name == "image-cnn") {
    if (spec.sample_shape.size() != 3)
      throw ConfigError(fmt::format("image-cnn needs samples of shape [C, H, W], got [{}]",
                                    fmt::join(spec.sample_shape, ", ")));
    enc.in_channels = spec.sample_shape[0];
    enc.extent = {spec.sample_shape[1], spec.sample_shape[2]};
    enc.kernel_size = options.kernel_size > 0 ? options.kernel_size : 3;
    encoder = std::make_shared<ImageEncoderImpl>(enc);
  } else if (name == "sensor-cnn") {
    if (spec.sample_shape.size() != 2)
      throw ConfigError(fmt::format("sensor-cnn needs samples of shape [channels, length], got [{}]",
                                    fmt::join(spec.sample_shape, ", ")));
    enc.in_channels = spec.sample_shape[0];
    enc.extent = {spec.sample_shape[1]};
    enc.kernel_size = options.kernel_size > 0 ? options.kernel_size : 5;
    encoder = std::make_shared<SensorEncoderImpl>(enc);
  } else {
    throw ConfigError(fmt::format("unknown model '{}' (known: {})", name, fmt::join(model_names(), ", ")));
  }

  TaskHeadsOptions ho;
  ho.in_features = encoder->out_features();
  ho.tasks = spec.multi_label ? spec.outputs : 1;
  ho.outputs = spec.multi_label ? 1 : spec.outputs;
  ho.hidden = options.head_hidden;
  ho.dropout = options.dropout;
  return Model(name, spec, options, std::move(encoder), TaskHeads(ho));
}

namespace {

// Mirrors torch::nn::Module::save, but writes compact copies: a parameter that
// is a view into a larger buffer (the trainer's flat optimizer storage) would
// otherwise drag the whole buffer into the file.
void write_module(torch::serialize::OutputArchive& archive, const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    archive.write(p.key(), p.value().detach().clone(), /*is_buffer=*/false);
  for (const auto& b : module.named_buffers(/*recurse=*/false))
    archive.write(b.key(), b.value().detach().clone(), /*is_buffer=*/true);
  for (const auto& c : module.named_children()) {
    if (!c.value()->is_serializable()) continue;
    torch::serialize::OutputArchive child(archive.compilation_unit());
    write_module(child, *c.value());
    archive.write(c.key(), child);
  }
}

// Mirrors torch::nn::Module::load, but checks shapes (torch's reader would
// silently swap in a tensor of another shape) and copies into the existing
// tensors instead of replacing their storage.
void read_module(torch::serialize::InputArchive& archive, torch::nn::Module& module, const std::string& prefix,
                 const std::filesystem::path& path) {
  auto read_into = [&](const std::string& key, torch::Tensor& target) {
    torch::Tensor t;
    if (!archive.try_read(key, t))
      throw ConfigError(fmt::format("{}: no tensor '{}{}': the checkpoint is of another architecture",
                                    path.string(), prefix, key));
    if (t.sizes() != target.sizes())
      throw ConfigError(fmt::format("{}: tensor '{}{}' has shape [{}] in the file, [{}] in the model", path.string(),
                                    prefix, key, fmt::join(t.sizes(), ", "), fmt::join(target.sizes(), ", ")));
    torch::NoGradGuard no_grad;
    target.copy_(t);
  };
  for (auto& p : module.named_parameters(/*recurse=*/false)) read_into(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/false)) read_into(b.key(), b.value());
  for (const auto& c : module.named_children()) {
    if (!c.value()->is_serializable()) continue;
    torch::serialize::InputArchive child;
    if (!archive.try_read(c.key(), child))
      throw ConfigError(fmt::format("{}: no module '{}{}': the checkpoint is of another architecture",
                                    path.string(), prefix, c.key()));
    read_module(child, *c.value(), prefix + c.key() + ".", path);
  }
}

}  // namespace

void save_module(const torch::nn::Module& module, const std::filesystem::path& path) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  try {
    torch::serialize::OutputArchive archive;
    write_module(archive, module);
    archive.save_to(path.string());
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("cannot write checkpoint {}: {}", path.string(), e.what_without_backtrace()));
  }
}

void load_module(torch::nn::Module& module, const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) throw IoError(fmt::format("no checkpoint file {}", path.string()));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string(), torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("cannot read checkpoint {}: {}", path.string(), e.what_without_backtrace()));
  }
  read_module(archive, module, "", path);
}

std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace powertrain::models
