#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "powertrain/error.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/kind.h"
#include "powertrain/study/spec.h"
#include "temp_dir.h"

namespace ps = powertrain::study;
using powertrain::ConfigError;

namespace {

std::string error_of(const std::string& text, std::optional<std::string> kind = "grid") {
  try {
    ps::parse_spec(text, "spec.toml", kind);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Spec, DefaultsOfAnEmptyGridSpec) {
  const auto s = ps::parse_spec("", "dir/my-grid.toml", "grid");
  EXPECT_EQ(s.name, "my-grid");
  EXPECT_EQ(s.kind, "grid");
  EXPECT_EQ(s.seeds, std::vector<std::uint64_t>{0});
  EXPECT_EQ(s.data_seed, 0u);
  EXPECT_EQ(s.batch_sizes, (std::vector<std::int64_t>{16, 64, 256, 512}));
  EXPECT_EQ(s.learning_rates, (std::vector<double>{1e-4, 1e-3, 1e-2, 1e-1}));
  // The default grid spans at least 32x in batch size and 1000x in learning rate.
  EXPECT_GE(s.batch_sizes.back() / s.batch_sizes.front(), 32);
  EXPECT_GE(s.learning_rates.back() / s.learning_rates.front(), 999.0);
  EXPECT_EQ(s.base.dataset, "fashion-mnist");
  EXPECT_EQ(s.base.model, "image-cnn");
  EXPECT_EQ(s.base.optimizer, "sgd");
  EXPECT_EQ(s.base.max_epochs, 20);
  EXPECT_EQ(s.base.patience, 3);
  EXPECT_DOUBLE_EQ(s.base.min_delta, 1e-3);
  EXPECT_FALSE(s.base.target_metric.has_value());
  EXPECT_EQ(s.base.device, "cpu");
  EXPECT_EQ(s.base.threads, 0);
  EXPECT_EQ(s.execution.cooldown_s, 0.0);
  EXPECT_EQ(s.execution.warmup_s, 0.0);
  EXPECT_EQ(s.execution.warmup_load, "auto");
  EXPECT_EQ(s.execution.interval_ms, 100);
}

TEST(Spec, ReadsEveryTable) {
  const auto s = ps::parse_spec(R"(
name = "g"
kind = "grid"
repeats = 3
data_seed = 7
[workload]
dataset = "synthetic-images"
model = "image-cnn"
subset = 0.5
[workload.data]
max_samples = 300
image_size = 16
normalize = true
val_subjects = [105, 106]
[training]
optimizer = "adam"
momentum = 0.5
max_epochs = 4
patience = 2
min_delta = 0
target_metric = 0.8
device = "cpu"
threads = 2
[grid]
batch_sizes = [32, 8]
learning_rates = [0.1, 1]
[execution]
cooldown_s = 1.5
warmup_s = 2
warmup_load = "cpu"
interval_ms = 50
)",
                                "x.toml");
  EXPECT_EQ(s.name, "g");
  EXPECT_EQ(s.seeds, (std::vector<std::uint64_t>{0, 1, 2}));
  EXPECT_EQ(s.data_seed, 7u);
  EXPECT_EQ(s.base.dataset, "synthetic-images");
  EXPECT_DOUBLE_EQ(s.base.subset, 0.5);
  // Data options come back as text, sorted by key; arrays joined with commas.
  const std::vector<std::pair<std::string, std::string>> data{
      {"image_size", "16"}, {"max_samples", "300"}, {"normalize", "true"}, {"val_subjects", "105,106"}};
  EXPECT_EQ(s.base.data_options, data);
  EXPECT_EQ(s.base.optimizer, "adam");
  EXPECT_EQ(s.base.max_epochs, 4);
  EXPECT_EQ(s.base.patience, 2);
  EXPECT_EQ(s.base.min_delta, 0.0);
  ASSERT_TRUE(s.base.target_metric.has_value());
  EXPECT_DOUBLE_EQ(*s.base.target_metric, 0.8);
  EXPECT_EQ(s.base.threads, 2);
  EXPECT_EQ(s.batch_sizes, (std::vector<std::int64_t>{32, 8}));
  EXPECT_EQ(s.learning_rates, (std::vector<double>{0.1, 1.0}));  // integers accepted as numbers
  EXPECT_DOUBLE_EQ(s.execution.cooldown_s, 1.5);
  EXPECT_DOUBLE_EQ(s.execution.warmup_s, 2.0);
  EXPECT_EQ(s.execution.warmup_load, "cpu");
  EXPECT_EQ(s.execution.interval_ms, 50);
}

TEST(Spec, UnknownKeyNamesTheKeyAndItsLine) {
  EXPECT_EQ(error_of("name = \"a\"\n\n[training]\nmax_epochs = 3\nmax_epoch = 4\n").rfind("spec.toml:5: unknown key 'training.max_epoch'", 0), 0u)
      << error_of("name = \"a\"\n\n[training]\nmax_epochs = 3\nmax_epoch = 4\n");
  EXPECT_NE(error_of("[training]\nmax_epoch = 4\n").find("max_epochs"), std::string::npos) << "lists the valid keys";
  EXPECT_EQ(error_of("colour = 1\n").rfind("spec.toml:1: unknown key 'colour'", 0), 0u) << error_of("colour = 1\n");
  EXPECT_EQ(error_of("\n[grid]\nbatch_size = [1]\n").rfind("spec.toml:3: unknown key 'grid.batch_size'", 0), 0u);
  EXPECT_EQ(error_of("[workload.data]\nmax_sample = 3\n").rfind("spec.toml:2: unknown data option 'workload.data.max_sample'", 0), 0u)
      << error_of("[workload.data]\nmax_sample = 3\n");
  EXPECT_EQ(error_of("[weird]\nx = 1\n").rfind("spec.toml:1: unknown key 'weird'", 0), 0u) << error_of("[weird]\nx = 1\n");
}

TEST(Spec, KeysOfAnotherKindAreRefusedWithTheirLine) {
  // A grid sweeps learning rate and batch size: [training] must not set them.
  const auto e = error_of("[training]\nlearning_rate = 0.1\n");
  EXPECT_EQ(e.rfind("spec.toml:2: key 'training.learning_rate' is not used here", 0), 0u) << e;
  const auto e2 = error_of("\n\n[multitask]\ntasks = [\"a\", \"b\"]\n");
  EXPECT_EQ(e2.rfind("spec.toml:3: key 'multitask' is not used here (a grid study)", 0), 0u) << e2;
}

TEST(Spec, WrongTypeNamesTheKeyTheTypesAndTheLine) {
  const auto e = error_of("[training]\n\nmax_epochs = \"ten\"\n");
  EXPECT_EQ(e, "spec.toml:3: 'training.max_epochs' must be an integer, got string");
  const auto e2 = error_of("[grid]\nbatch_sizes = [16, 32.5]\n");
  EXPECT_EQ(e2.rfind("spec.toml:2: 'grid.batch_sizes' must be an array of integers", 0), 0u) << e2;
  const auto e3 = error_of("seeds = 3\n");
  EXPECT_EQ(e3, "spec.toml:1: 'seeds' must be an array, got integer");
  const auto e4 = error_of("workload = 3\n");
  EXPECT_EQ(e4, "spec.toml:1: 'workload' must be a table, got integer");
  const auto e5 = error_of("[training]\nmin_delta = true\n");
  EXPECT_EQ(e5, "spec.toml:2: 'training.min_delta' must be a number, got boolean");
}

TEST(Spec, ValuesOutOfRange) {
  EXPECT_EQ(error_of("[training]\nmax_epochs = 0\n"), "spec.toml:2: 'training.max_epochs' must be between 1 and 100000, got 0");
  EXPECT_EQ(error_of("[grid]\nlearning_rates = [0.1, -1]\n"), "spec.toml:2: 'grid.learning_rates' must be positive and at most 1000000");
  EXPECT_EQ(error_of("[grid]\nbatch_sizes = [16, 16]\n"), "spec.toml:2: 'grid.batch_sizes' lists a value twice");
  EXPECT_EQ(error_of("seeds = [1]\nrepeats = 2\n"), "spec.toml:2: give either 'seeds' or 'repeats', not both");
  EXPECT_EQ(error_of("[training]\noptimizer = \"rmsprop\"\n"), "spec.toml:2: 'training.optimizer' must be sgd or adam, got 'rmsprop'");
  EXPECT_EQ(error_of("[execution]\ninterval_ms = 1\n"), "spec.toml:2: 'execution.interval_ms' must be between 10 and 60000");
}

TEST(Spec, TomlSyntaxErrorsGiveFileAndLine) {
  const auto e = error_of("name = \"a\"\n[training\n");
  EXPECT_EQ(e.rfind("spec.toml:2:", 0), 0u) << e;
}

TEST(Spec, KindMustMatchTheCommand) {
  EXPECT_EQ(error_of("kind = \"pretrain\"\n"), "spec.toml:1: this is a pretrain study; this command runs grid studies");
  EXPECT_EQ(error_of("kind = \"other\"\n"), "spec.toml:1: 'kind' must be grid, pretrain, multitask or search, got 'other'");
  EXPECT_EQ(error_of("", std::nullopt), "spec.toml: 'kind' is missing (grid, pretrain, multitask or search)");
}

TEST(Spec, PretrainSpec) {
  const auto s = ps::parse_spec(R"(
kind = "pretrain"
[training]
batch_size = 32
learning_rate = 0.05
[pretrain]
source = { classes = [0, 1, "Pullover"] }
steps = [ { classes = [5, 6] }, { classes = ["Bag", "Sneaker"], name = "bags" } ]
variants = ["frozen", "scratch"]
)",
                                "p.toml", "pretrain");
  EXPECT_EQ(s.kind, "pretrain");
  EXPECT_EQ(s.base.batch_size, 32);
  EXPECT_DOUBLE_EQ(s.base.learning_rate, 0.05);
  const auto& pt = ps::settings_of<ps::PretrainSettings>(s);
  EXPECT_EQ(pt.source.classes, (std::vector<std::string>{"0", "1", "Pullover"}));
  EXPECT_EQ(pt.source.name, "classes 0,1,Pullover");
  ASSERT_EQ(pt.steps.size(), 2u);
  EXPECT_EQ(pt.steps[0].name, "classes 5,6");
  EXPECT_EQ(pt.steps[1].name, "bags");
  EXPECT_EQ(pt.variants, (std::vector<std::string>{"scratch", "frozen"}));  // canonical order
  // Each kind keeps its own settings: a pretraining spec holds no tasks of a multitask study.
  EXPECT_THROW(ps::settings_of<ps::MultitaskSettings>(s), powertrain::ConfigError);

  const auto e = error_of("kind = \"pretrain\"\n[pretrain]\nsource = {classes=[0]}\nsteps = [{classes=[1], colour=2}]\n", std::nullopt);
  EXPECT_EQ(e.rfind("spec.toml:4: unknown key 'pretrain.steps[0].colour'", 0), 0u) << e;
  const auto e2 = error_of("kind = \"pretrain\"\n[pretrain]\nsource = {classes=[0]}\n", std::nullopt);
  EXPECT_EQ(e2.rfind("spec.toml:2: 'pretrain.steps' needs at least one downstream task", 0), 0u) << e2;
}

TEST(Spec, MultitaskSpec) {
  const auto s = ps::parse_spec("kind = \"multitask\"\n[multitask]\ntasks = [\"top\", \"footwear\", \"bag\"]\n", "m.toml");
  EXPECT_EQ(s.kind, "multitask");
  EXPECT_EQ(ps::settings_of<ps::MultitaskSettings>(s).tasks, (std::vector<std::string>{"top", "footwear", "bag"}));
  EXPECT_EQ(error_of("kind = \"multitask\"\n[multitask]\ntasks = [\"top\"]\n", std::nullopt),
            "spec.toml:3: 'multitask.tasks' needs at least two tasks");
}

TEST(Spec, LoadSpecReadsAFile) {
  powertrain::testing::TempDir dir;
  powertrain::testing::write_file(dir / "quick.toml", "[training]\nmax_epochs = 2\n");
  const auto s = ps::load_spec(dir / "quick.toml", "grid");
  EXPECT_EQ(s.name, "quick");
  EXPECT_EQ(s.base.max_epochs, 2);
  EXPECT_EQ(s.text, "[training]\nmax_epochs = 2\n");
  EXPECT_THROW(ps::load_spec(dir / "missing.toml", "grid"), powertrain::IoError);
}

TEST(Spec, EveryDocumentedKeyIsListed) {
  const auto& keys = ps::spec_keys();
  EXPECT_GT(keys.size(), 25u);
  for (const auto& k : keys) {
    EXPECT_FALSE(k.type.empty()) << k.key;
    EXPECT_FALSE(k.default_value.empty()) << k.key;
  }
}

TEST(Spec, ExampleSpecsParse) {
  const char* src = POWERTRAIN_TEST_SOURCE_DIR;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(src) / "examples")) {
    if (e.path().extension() != ".toml") continue;
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW({
      const auto s = ps::load_spec(e.path());
      // A search plans its segments as results come in: it has setups instead.
      if (s.kind == "search") EXPECT_FALSE(ps::search_setups(s).empty());
      else EXPECT_FALSE(ps::plan_trials(s).empty());
    });
    ++n;
  }
  EXPECT_GE(n, 6);
}

TEST(SpecLimits, AnAbsurdPlanIsRefusedBeforeAnythingIsPlanned) {
  // 1000 x 1000 learning rates and batch sizes: a million trials.
  std::string bs, lr;
  for (int i = 1; i <= 1000; ++i) {
    bs += (i > 1 ? ", " : "") + std::to_string(i);
    lr += (i > 1 ? ", " : "") + std::to_string(i) + "e-6";
  }
  const std::string text = "kind = \"grid\"\n[grid]\nbatch_sizes = [" + bs + "]\nlearning_rates = [" + lr + "]\n";
  try {
    (void)ps::parse_spec(text, "huge.toml");
    FAIL() << "accepted a million trials";
  } catch (const powertrain::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("plans 1000000 trials, more than execution.max_trials = 10000"),
              std::string::npos)
        << e.what();
  }
  // Asked for explicitly, it is accepted (and counted without planning).
  const auto ok = ps::parse_spec(text + "[execution]\nmax_trials = 1000000\n", "huge.toml");
  EXPECT_EQ(ps::planned_trial_count(ok), 1000000);
}

// --- search specs -------------------------------------------------------------

TEST(SearchSpec, RangesAreLogUniformLearningRatesAndPowersOfTwo) {
  const auto s = ps::parse_spec(R"(
name = "s"
kind = "search"
[training]
max_epochs = 9
target_metric = 0.8
[search]
batch_size_range = [12, 128]
learning_rate_range = [0.0001, 1.0]
setups = 400
seed = 3
eta = 3
beta = 1.5
energy_tie = 0.1
budget_j = 5000
)",
                                "s.toml");
  EXPECT_EQ(s.kind, "search");
  EXPECT_EQ(s.name, "s");
  // [12, 128]: the powers of two inside it.
  EXPECT_EQ(s.search_space.batch_sizes, (std::vector<std::int64_t>{16, 32, 64, 128}));
  EXPECT_FALSE(s.search_space.finite());
  EXPECT_DOUBLE_EQ(s.search_space.lr_min, 1e-4);
  EXPECT_DOUBLE_EQ(s.search_space.lr_max, 1.0);
  EXPECT_EQ(s.search.setups, 400) << "a range is not a finite space: setups is not capped";
  EXPECT_EQ(s.search.seed, 3u);
  EXPECT_DOUBLE_EQ(s.search.beta, 1.5);
  EXPECT_DOUBLE_EQ(s.search.energy_tie, 0.1);
  ASSERT_TRUE(s.search.budget_j.has_value());
  EXPECT_DOUBLE_EQ(*s.search.budget_j, 5000.0);
  // The convergence rule and the last rung come from [training].
  EXPECT_EQ(s.search.rule.max_epochs, 9);
  EXPECT_EQ(s.search.rule.target_metric, std::optional<double>(0.8));
  EXPECT_EQ(powertrain::search::rungs(s.search), (std::vector<int>{1, 3, 9}));

  const auto setups = ps::search_setups(s);
  ASSERT_EQ(setups.size(), 400u);
  EXPECT_EQ(setups, ps::search_setups(s)) << "the seed fixes the setups";
  // Log-uniform over four decades: about a quarter per decade (uniform would
  // put nearly all of them in the last one).
  int per_decade[4] = {0, 0, 0, 0};
  std::set<std::int64_t> batches;
  for (const auto& x : setups) {
    ASSERT_GE(x.learning_rate, 1e-4);
    ASSERT_LE(x.learning_rate, 1.0);
    const int decade = std::min(3, static_cast<int>(std::floor(std::log10(x.learning_rate) + 4.0)));
    ++per_decade[decade];
    batches.insert(x.batch_size);
  }
  for (int d = 0; d < 4; ++d) {
    EXPECT_GT(per_decade[d], 60) << "decade " << d;
    EXPECT_LT(per_decade[d], 140) << "decade " << d;
  }
  EXPECT_EQ(batches, (std::set<std::int64_t>{16, 32, 64, 128}));
  // Three significant digits: 0.000123, 0.0456, 0.789.
  for (const auto& x : setups) {
    const double scaled = x.learning_rate / std::pow(10.0, std::floor(std::log10(x.learning_rate)) - 2);
    EXPECT_NEAR(scaled, std::round(scaled), 1e-6) << x.learning_rate;
  }
}

TEST(SearchSpec, AGridSpecSearchedIsASearchOverItsListsNamedWithSearch) {
  const std::string grid = R"(
name = "g"
kind = "grid"
[training]
max_epochs = 8
[grid]
batch_sizes = [16, 64]
learning_rates = [0.1, 0.01, 0.001]
[search]
min_epochs = 2
eta = 2
seed = 5
)";
  const auto s = ps::parse_spec(grid, "g.toml", "search");
  EXPECT_EQ(s.kind, "search");
  EXPECT_EQ(s.name, "g-search") << "beside the grid study in one database";
  EXPECT_EQ(s.search_space.batch_sizes, (std::vector<std::int64_t>{16, 64}));
  EXPECT_EQ(s.search_space.learning_rates, (std::vector<double>{0.1, 0.01, 0.001}));
  EXPECT_TRUE(s.search_space.finite());
  EXPECT_EQ(s.search.setups, 6) << "at most the grid's size";
  EXPECT_EQ(s.search.min_epochs, 2);
  EXPECT_EQ(powertrain::search::rungs(s.search), (std::vector<int>{2, 4, 8}));
  // Every setup of the grid once.
  auto setups = ps::search_setups(s);
  std::set<std::pair<std::int64_t, double>> seen;
  for (const auto& x : setups) seen.insert({x.batch_size, x.learning_rate});
  EXPECT_EQ(seen.size(), 6u);
  // The same text run as a grid keeps its [search] table and is a grid.
  const auto g = ps::parse_spec(grid, "g.toml", "grid");
  EXPECT_EQ(g.kind, "grid");
  EXPECT_EQ(g.name, "g");
  EXPECT_EQ(ps::plan_trials(g).size(), 6u);
}

TEST(SearchSpec, ErrorsNameTheKeyAndItsLine) {
  // A grid's space is its lists: [search] may only say how to search them.
  EXPECT_EQ(error_of("kind = \"grid\"\n[search]\nbatch_sizes = [16]\n", "search"),
            "spec.toml:3: 'search.batch_sizes': a grid spec's search space is its [grid] lists; give kind = \"search\" "
            "to search another space");
  EXPECT_EQ(error_of("kind = \"grid\"\n[search]\nlearning_rate_range = [0.001, 0.1]\n", "search").rfind(
                "spec.toml:3: 'search.learning_rate_range': a grid spec's search space", 0),
            0u);
  // A list and a range of one dimension.
  const std::string both_lr =
      "kind = \"search\"\n[search]\nbatch_sizes = [16]\nlearning_rates = [0.1]\nlearning_rate_range = [0.001, 0.1]\n";
  EXPECT_EQ(error_of(both_lr, "search"),
            "spec.toml:5: give either 'search.learning_rates' or 'search.learning_rate_range', not both");
  const std::string both_bs =
      "kind = \"search\"\n[search]\nbatch_sizes = [16]\nbatch_size_range = [16, 64]\nlearning_rates = [0.1]\n";
  EXPECT_EQ(error_of(both_bs, "search"),
            "spec.toml:4: give either 'search.batch_sizes' or 'search.batch_size_range', not both");
  // A search without its space.
  EXPECT_EQ(error_of("kind = \"search\"\n", "search"),
            "spec.toml: a search needs a [search] table with its space (batch_sizes, learning_rates or "
            "learning_rate_range)");
  EXPECT_EQ(error_of("kind = \"search\"\n[search]\nbatch_sizes = [16]\n", "search"),
            "spec.toml: 'search.learning_rates' (or learning_rate_range) is missing");
  // One seed: a search trains each setup once.
  EXPECT_EQ(error_of("kind = \"search\"\nseeds = [0, 1]\n[search]\nbatch_sizes = [16]\nlearning_rates = [0.1]\n",
                     "search"),
            "spec.toml:2: a search trains each setup once: give one seed");
  EXPECT_EQ(error_of("kind = \"grid\"\nseeds = [0, 1]\n", "search"),
            "spec.toml: a search trains each setup once: the grid's seeds list must hold one seed");
  // Out of range, and a search spec given to another command.
  EXPECT_EQ(error_of("kind = \"search\"\n[search]\nbatch_sizes = [16]\nlearning_rates = [0.1]\neta = 1\n",
                     "search"),
            "spec.toml:5: 'search.eta' must be more than 1 (each rung keeps 1/eta of the setups)");
  EXPECT_EQ(error_of("kind = \"search\"\n[search]\nbatch_sizes = [16]\nlearning_rates = [0.1]\nenergy_tie = 2\n",
                     "search"),
            "spec.toml:5: 'search.energy_tie' must be between 0 and 1");
  EXPECT_EQ(error_of("kind = \"search\"\n"), "spec.toml:1: this is a search study; this command runs grid studies");
}

// Issue 26: processes per node and nodes per trial of a distributed command.
TEST(Spec, DistributedWorkloadKeys) {
  const auto s = ps::parse_spec(R"(
[workload]
command = ["{python}", "ddp.py"]
nproc_per_node = 2
nnodes = 2
launcher = "srun"
)", "spec.toml", "grid");
  EXPECT_EQ(s.base.command.nproc_per_node, 2);
  EXPECT_EQ(s.base.command.nnodes, 2);
  EXPECT_EQ(s.base.command.launcher, "srun");
  const auto plain = ps::parse_spec("[workload]\ncommand = [\"p\"]\n", "spec.toml", "grid");
  EXPECT_FALSE(plain.base.command.distributed());
  // A trial's key says how it was started; one-process keys stay what they were.
  EXPECT_NE(ps::plan_trials(s).front().spec.key.find("\"nproc_per_node\":2"), std::string::npos);
  EXPECT_EQ(ps::plan_trials(plain).front().spec.key.find("nproc_per_node"), std::string::npos);

  EXPECT_EQ(error_of("[workload]\ncommand = [\"p\"]\nnproc_per_node = 2000\n"),
            "spec.toml:3: 'workload.nproc_per_node' must be between 0 (one process) and 1024, got 2000");
  // 0 is one process, as the command line's --nproc-per-node 0 (the table's one range; the spec refused it before).
  EXPECT_FALSE(ps::parse_spec("[workload]\ncommand = [\"p\"]\nnproc_per_node = 0\n", "spec.toml", "grid")
                   .base.command.distributed());
  EXPECT_NE(error_of("[workload]\ncommand = [\"p\"]\nnnodes = 2\n").find("go with 'workload.nproc_per_node'"), std::string::npos);
  EXPECT_NE(error_of("[workload]\ncommand = [\"p\"]\nnproc_per_node = 2\nlauncher = \"mpirun\"\n").find("'workload.launcher' must be torchrun or srun, got 'mpirun'"), std::string::npos);
  EXPECT_NE(error_of("[workload]\nnproc_per_node = 2\n").find("goes with 'workload.command'"), std::string::npos);
  EXPECT_NE(error_of("[workload]\ncommand = [\"p\"]\nnproc_per_node = 2\nnnodes = 2\n").find("needs launcher = \"srun\""),
            std::string::npos);
}
