// The progress lines of a run: what a program did not report is not shown.
#include <gtest/gtest.h>

#include <stdio.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "powertrain/run/progress.h"

namespace pr = powertrain::run;

namespace {

std::string epoch_line(const pr::EpochRecord& e) {
  char* buf = nullptr;
  std::size_t size = 0;
  FILE* out = ::open_memstream(&buf, &size);
  {
    pr::ProgressPrinter printer(out, false, "t");
    printer.on_epoch(e);
  }
  std::fclose(out);
  std::string text(buf, size);
  std::free(buf);
  return text;
}

pr::EpochRecord epoch() {
  pr::EpochRecord e;
  e.epoch = 2;
  e.duration_s = 1.5;
  e.energy_j = 30.0;
  e.method = "estimated";
  e.val_metric = 0.8125;
  return e;
}

}  // namespace

TEST(ProgressPrinter, AnEpochWithEveryValueShowsThemAll) {
  auto e = epoch();
  e.samples_per_s = 1200;
  e.train_loss = 0.5;
  e.val_loss = 0.25;
  const auto line = epoch_line(e);
  EXPECT_NE(line.find("1200 samples/s"), std::string::npos) << line;
  EXPECT_NE(line.find("loss 0.5000"), std::string::npos) << line;
  EXPECT_NE(line.find("val loss 0.2500"), std::string::npos) << line;
  EXPECT_NE(line.find("val metric 0.8125"), std::string::npos) << line;
}

TEST(ProgressPrinter, ValuesAProgramDidNotSendAreLeftOut) {
  auto e = epoch();  // no samples, no losses: a program that sent only its metric
  e.train_loss = std::nan("");
  e.val_loss = std::nan("");
  const auto line = epoch_line(e);
  EXPECT_EQ(line.find("samples/s"), std::string::npos) << line;
  EXPECT_EQ(line.find("loss"), std::string::npos) << line;
  EXPECT_EQ(line.find("nan"), std::string::npos) << line;
  EXPECT_NE(line.find("30.0 J"), std::string::npos) << line;
  EXPECT_NE(line.find("val metric 0.8125"), std::string::npos) << line;
}
