#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "powertrain/error.h"
#include "powertrain/models/model.h"
#include "temp_dir.h"

namespace pm = powertrain::models;
using powertrain::ConfigError;
using powertrain::IoError;

namespace {

pm::InputSpec image_spec(std::int64_t c, std::int64_t s, std::int64_t outputs, bool multi = false) {
  return {{c, s, s}, multi, outputs};
}

bool same_values(const torch::nn::Module& a, const torch::nn::Module& b) {
  auto pa = a.named_parameters();
  auto pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (const auto& p : pa)
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  for (const auto& bu : a.named_buffers())
    if (!torch::equal(bu.value(), b.named_buffers()[bu.key()])) return false;
  return true;
}

}  // namespace

TEST(ImageCnn, LogitShapeAndFeatures) {
  torch::manual_seed(0);
  auto m = pm::make_model("image-cnn", image_spec(1, 28, 10));
  EXPECT_EQ(m->encoder->out_features(), 128 * 3 * 3);  // 28 -> 14 -> 7 -> 3
  auto y = m->forward(torch::randn({4, 1, 28, 28}));
  EXPECT_EQ(y.sizes(), (std::vector<std::int64_t>{4, 10}));
  EXPECT_EQ(m->heads->options().tasks, 1);
  EXPECT_EQ(m->heads->options().outputs, 10);
}

TEST(ImageCnn, WidthDepthAndGlobalPool) {
  torch::manual_seed(0);
  pm::ModelOptions o;
  o.width = 8;
  o.depth = 4;
  o.max_width = 32;
  o.global_pool = true;
  auto m = pm::make_model("image-cnn", image_spec(3, 32, 5), o);
  EXPECT_EQ(m->encoder->out_features(), 32);  // 8, 16, 32, 32
  EXPECT_EQ(m->forward(torch::randn({2, 3, 32, 32})).sizes(), (std::vector<std::int64_t>{2, 5}));
}

TEST(ImageCnn, TinyImagesStopPooling) {
  torch::manual_seed(0);
  pm::ModelOptions o;
  o.depth = 4;
  auto m = pm::make_model("image-cnn", image_spec(1, 4, 3), o);  // 4 -> 2 -> 1 -> 1 -> 1
  EXPECT_EQ(m->forward(torch::randn({2, 1, 4, 4})).sizes(), (std::vector<std::int64_t>{2, 3}));
}

TEST(ImageCnn, MultiLabelHeads) {
  torch::manual_seed(0);
  auto m = pm::make_model("image-cnn", image_spec(3, 16, 7, /*multi=*/true));
  EXPECT_EQ(m->heads->options().tasks, 7);
  EXPECT_EQ(m->heads->options().outputs, 1);
  EXPECT_EQ(m->forward(torch::randn({3, 3, 16, 16})).sizes(), (std::vector<std::int64_t>{3, 7}));
}

TEST(SensorCnn, LogitShapeAnyLength) {
  torch::manual_seed(0);
  auto m = pm::make_model("sensor-cnn", {{6, 128}, false, 6});
  EXPECT_EQ(m->encoder->out_features(), 128);
  m->eval();
  EXPECT_EQ(m->forward(torch::randn({5, 6, 128})).sizes(), (std::vector<std::int64_t>{5, 6}));
  // Global average pooling: the same model takes other lengths.
  EXPECT_EQ(m->forward(torch::randn({5, 6, 100})).sizes(), (std::vector<std::int64_t>{5, 6}));
}

TEST(SensorCnn, MultiLabel) {
  torch::manual_seed(0);
  pm::ModelOptions o;
  o.head_hidden = 8;
  auto m = pm::make_model("sensor-cnn", {{3, 50}, true, 4}, o);
  EXPECT_EQ(m->forward(torch::randn({2, 3, 50})).sizes(), (std::vector<std::int64_t>{2, 4}));
}

TEST(Factory, RejectsBadInput) {
  EXPECT_THROW(pm::make_model("resnet", image_spec(1, 28, 10)), ConfigError);
  EXPECT_THROW(pm::make_model("image-cnn", {{6, 128}, false, 6}), ConfigError);
  EXPECT_THROW(pm::make_model("sensor-cnn", image_spec(1, 28, 10)), ConfigError);
  EXPECT_THROW(pm::make_model("image-cnn", image_spec(1, 28, 1)), ConfigError);  // one class
  pm::ModelOptions o;
  o.dropout = 1.0;
  EXPECT_THROW(pm::make_model("image-cnn", image_spec(1, 28, 10), o), ConfigError);
  o = {};
  o.kernel_size = 4;
  EXPECT_THROW(pm::make_model("image-cnn", image_spec(1, 28, 10), o), ConfigError);
  EXPECT_EQ(pm::model_names().size(), 2u);
}

TEST(TaskHeads, HeadsAreIndependent) {
  torch::manual_seed(0);
  pm::TaskHeadsOptions o;
  o.in_features = 5;
  o.tasks = 3;
  o.outputs = 2;
  o.hidden = 4;
  pm::TaskHeads heads(o);
  auto out = heads->forward(torch::randn({6, 5}));
  ASSERT_EQ(out.sizes(), (std::vector<std::int64_t>{6, 6}));
  // Gradient of head 1's outputs reaches head 1's parameters only.
  out.narrow(1, 2, 2).sum().backward();
  auto hw = heads->hidden_weight.grad().view({3, 4, 5});
  auto w = heads->weight.grad();
  EXPECT_EQ(hw[0].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(hw[2].abs().sum().item<double>(), 0.0);
  EXPECT_GT(hw[1].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(w[0].abs().sum().item<double>(), 0.0);
  EXPECT_GT(w[1].abs().sum().item<double>(), 0.0);
}

TEST(TaskHeads, StackedHeadsEqualSeparateLinears) {
  torch::manual_seed(0);
  pm::TaskHeadsOptions o;
  o.in_features = 5;
  o.tasks = 3;
  o.outputs = 1;
  o.hidden = 4;
  pm::TaskHeads heads(o);
  heads->eval();
  auto x = torch::randn({7, 5});
  auto out = heads->forward(x);
  for (int k = 0; k < 3; ++k) {
    auto h = torch::relu(torch::linear(x, heads->hidden_weight.narrow(0, 4 * k, 4), heads->hidden_bias.narrow(0, 4 * k, 4)));
    auto yk = torch::linear(h, heads->weight[k], heads->bias.narrow(0, k, 1));
    EXPECT_TRUE(torch::allclose(yk.squeeze(1), out.select(1, k), 1e-5, 1e-6)) << "task " << k;
  }
}

TEST(Serialization, ModelRoundTrip) {
  powertrain::testing::TempDir dir;
  torch::manual_seed(1);
  auto a = pm::make_model("image-cnn", image_spec(1, 12, 4));
  a->train();
  a->forward(torch::randn({8, 1, 12, 12}));  // moves BN running statistics
  torch::manual_seed(2);
  auto b = pm::make_model("image-cnn", image_spec(1, 12, 4));
  ASSERT_FALSE(same_values(*a, *b));
  pm::save_model(*a, dir / "sub/model.pt");
  pm::load_model(*b, dir / "sub/model.pt");
  EXPECT_TRUE(same_values(*a, *b));
  a->eval();
  b->eval();
  auto x = torch::randn({3, 1, 12, 12});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));

  // Plain torch::load reads the same file.
  torch::manual_seed(3);
  auto c = pm::make_model("image-cnn", image_spec(1, 12, 4));
  torch::load(c, (dir / "sub/model.pt").string());
  EXPECT_TRUE(same_values(*a, *c));
}

TEST(Serialization, EncoderRoundTrip) {
  powertrain::testing::TempDir dir;
  torch::manual_seed(1);
  auto a = pm::make_model("sensor-cnn", {{4, 32}, false, 3});
  torch::manual_seed(2);
  // Same encoder, different heads (multi-label, 5 tasks).
  auto b = pm::make_model("sensor-cnn", {{4, 32}, true, 5});
  pm::save_encoder(*a, dir / "enc.pt");
  pm::load_encoder(*b, dir / "enc.pt");
  EXPECT_TRUE(same_values(*a->encoder, *b->encoder));
  a->eval();
  b->eval();
  auto x = torch::randn({2, 4, 32});
  EXPECT_TRUE(torch::equal(a->encoder->forward(x), b->encoder->forward(x)));
}

TEST(Serialization, MismatchAndMissing) {
  powertrain::testing::TempDir dir;
  auto a = pm::make_model("image-cnn", image_spec(1, 12, 4));
  pm::save_model(*a, dir / "a.pt");
  pm::ModelOptions wide;
  wide.width = 16;
  auto b = pm::make_model("image-cnn", image_spec(1, 12, 4), wide);
  EXPECT_THROW(pm::load_model(*b, dir / "a.pt"), ConfigError);
  auto s = pm::make_model("sensor-cnn", {{4, 32}, false, 3});
  EXPECT_THROW(pm::load_encoder(*s, dir / "a.pt"), ConfigError);
  EXPECT_THROW(pm::load_model(*a, dir / "missing.pt"), IoError);
  powertrain::testing::write_file(dir / "junk.pt", "not a checkpoint");
  EXPECT_THROW(pm::load_model(*a, dir / "junk.pt"), IoError);
}

TEST(Freeze, FrozenEncoderDoesNotChange) {
  torch::manual_seed(0);
  auto m = pm::make_model("image-cnn", image_spec(1, 12, 3));
  m->freeze_encoder();
  EXPECT_TRUE(m->encoder_frozen());
  const auto trainable = m->trainable_parameters();
  EXPECT_EQ(trainable.size(), m->heads->parameters().size());
  std::vector<torch::Tensor> before;
  for (const auto& p : m->encoder->parameters()) before.push_back(p.detach().clone());
  for (const auto& b : m->encoder->buffers()) before.push_back(b.detach().clone());

  m->train();
  EXPECT_FALSE(m->encoder->is_training());  // BN statistics stay fixed
  EXPECT_TRUE(m->heads->is_training());
  torch::optim::SGD opt(trainable, torch::optim::SGDOptions(0.1).momentum(0.9));
  auto x = torch::randn({16, 1, 12, 12});
  auto y = torch::randint(0, 3, {16});
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    torch::cross_entropy_loss(m->forward(x), y).backward();
    opt.step();
  }
  std::size_t i = 0;
  for (const auto& p : m->encoder->parameters()) EXPECT_TRUE(torch::equal(p, before[i++]));
  for (const auto& b : m->encoder->buffers()) EXPECT_TRUE(torch::equal(b, before[i++]));

  m->freeze_encoder(false);
  EXPECT_TRUE(m->encoder->is_training());
  EXPECT_EQ(m->trainable_parameters().size(), m->parameters().size());
}

TEST(Model, ParameterCount) {
  pm::ModelOptions o;
  o.width = 4;
  o.depth = 1;
  auto m = pm::make_model("sensor-cnn", {{2, 8}, false, 3}, o);
  // conv 4*2*5, bn 4+4, head 3*4+3
  EXPECT_EQ(pm::parameter_count(*m), 40 + 8 + 15);
}

// --- Fast paths: the same function as the plain one ----------------------------

namespace {

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double diff = (a - b).abs().max().item<double>();
  const double scale = std::max(1.0, b.abs().max().item<double>());
  EXPECT_LE(diff, tol * scale) << what << ": max difference " << diff;
}

}  // namespace

// The channels-last layout computes the same model: outputs, gradients and
// batch-norm statistics agree with the default layout, in training and eval.
TEST(ChannelsLast, SameFunctionForBothEncoders) {
  struct Case {
    std::string model;
    pm::InputSpec spec;
  };
  for (const auto& c : {Case{"image-cnn", image_spec(3, 16, 5)}, Case{"image-cnn", image_spec(1, 16, 5)},
                        Case{"sensor-cnn", {{6, 40}, false, 4}}}) {
    for (std::int64_t batch : {1, 5}) {
      torch::manual_seed(7);
      pm::ModelOptions o;
      o.dropout = 0.0;
      auto a = pm::make_model(c.model, c.spec, o);
      torch::manual_seed(7);
      auto b = pm::make_model(c.model, c.spec, o);
      b->encoder->set_channels_last(true);
      ASSERT_TRUE(b->encoder->channels_last());
      ASSERT_TRUE(same_values(*a, *b));
      auto shape = c.spec.sample_shape;
      shape.insert(shape.begin(), batch);
      const auto x = torch::randn(shape);
      const std::string what = fmt::format("{} batch {}", c.model, batch);
      const auto ya = a->forward(x);
      const auto yb = b->forward(x);
      expect_close(yb, ya, 1e-5, what + " training output");
      ya.square().sum().backward();
      yb.square().sum().backward();
      auto pa = a->named_parameters();
      for (const auto& p : b->named_parameters())
        expect_close(p.value().grad(), pa[p.key()].grad(), 1e-4, what + " gradient of " + p.key());
      for (const auto& bu : b->named_buffers())
        expect_close(bu.value(), a->named_buffers()[bu.key()], 1e-5, what + " buffer " + bu.key());
      a->eval();
      b->eval();
      expect_close(b->forward(x), a->forward(x), 1e-5, what + " eval output");
    }
  }
}

// A kernel over one input channel (Fashion-MNIST's first conv) is contiguous in
// both layouts; its strides must still say channels-last, or convolution runs
// the first block, the largest, in NCHW.
TEST(ChannelsLast, EveryKernelSuggestsChannelsLastEvenOverOneChannel) {
  auto m = pm::make_model("image-cnn", image_spec(1, 28, 10));
  m->encoder->set_channels_last(true);
  int convs = 0;
  for (const auto& p : m->encoder->named_parameters())
    if (p.value().dim() == 4) {
      ++convs;
      EXPECT_EQ(p.value().suggest_memory_format(), at::MemoryFormat::ChannelsLast) << p.key();
    }
  EXPECT_EQ(convs, 3);
  m->encoder->set_channels_last(false);
  for (const auto& p : m->encoder->named_parameters())
    if (p.value().dim() == 4) EXPECT_EQ(p.value().suggest_memory_format(), at::MemoryFormat::Contiguous) << p.key();
}

TEST(ChannelsLast, CheckpointsLoadAcrossLayouts) {
  powertrain::testing::TempDir dir;
  torch::manual_seed(8);
  auto a = pm::make_model("sensor-cnn", {{6, 32}, false, 3});
  a->encoder->set_channels_last(true);
  pm::save_model(*a, dir / "m.pt");
  auto b = pm::make_model("sensor-cnn", {{6, 32}, false, 3});
  pm::load_model(*b, dir / "m.pt");
  EXPECT_TRUE(same_values(*a, *b));
  a->eval();
  b->eval();
  const auto x = torch::randn({2, 6, 32});
  EXPECT_TRUE(torch::allclose(a->forward(x), b->forward(x), 1e-5, 1e-6));
}
