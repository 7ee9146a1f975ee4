#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "powertrain/error.h"
#include "powertrain/external/protocol.h"

namespace px = powertrain::external;
using powertrain::WorkloadError;

TEST(Protocol, ParsesEveryEvent) {
  auto e = px::parse_event(R"({"event":"hello","protocol":1,"framework":"torch 2.15.0","pid":12})");
  EXPECT_EQ(e.kind, px::EventKind::hello);
  EXPECT_EQ(e.framework, "torch 2.15.0");
  e = px::parse_event(R"({"event":"epoch_start","epoch":3,"mono_ns":123456789})");
  EXPECT_EQ(e.kind, px::EventKind::epoch_start);
  EXPECT_EQ(e.epoch, 3);
  EXPECT_EQ(e.mono_ns, 123456789);
  EXPECT_TRUE(px::parse_event(R"({"event":"phase","phase":"eval"})").eval_phase);
  EXPECT_FALSE(px::parse_event(R"({"event":"phase","phase":"train"})").eval_phase);
  e = px::parse_event(R"({"event":"progress","step":5,"steps":50,"loss":0.7})");
  EXPECT_EQ(e.progress.step, 5);
  EXPECT_DOUBLE_EQ(e.progress.running_loss, 0.7);
  e = px::parse_event(
      R"({"event":"epoch_end","epoch":2,"val_metric":0.91,"val_loss":null,"samples":60000,"val_task_metrics":[0.9,null]})");
  EXPECT_EQ(e.kind, px::EventKind::epoch_end);
  EXPECT_DOUBLE_EQ(e.metrics.val_metric, 0.91);
  EXPECT_TRUE(std::isnan(e.metrics.val_loss));
  EXPECT_TRUE(std::isnan(e.metrics.train_loss));
  EXPECT_EQ(e.metrics.samples, 60000);
  ASSERT_EQ(e.metrics.val_task_metrics.size(), 2u);
  EXPECT_TRUE(std::isnan(e.metrics.val_task_metrics[1]));
  e = px::parse_event(R"({"event":"test","metric":0.9,"task_metrics":[0.8,1.0]})");
  EXPECT_DOUBLE_EQ(e.test_metric, 0.9);
  EXPECT_EQ(e.test_task_metrics.size(), 2u);
  EXPECT_EQ(px::parse_event(R"({"event":"checkpoint","path":"/x.pt","kind":"encoder"})").checkpoint_kind, "encoder");
  EXPECT_EQ(px::parse_event(R"({"event":"end"})").kind, px::EventKind::end);
}

TEST(Protocol, NonFiniteNumbersComeAsStringsAndNullIsNaN) {
  auto e = px::parse_event(R"({"event":"progress","step":1,"steps":2,"loss":"nan"})");
  EXPECT_TRUE(std::isnan(e.progress.running_loss));
  e = px::parse_event(R"({"event":"epoch_end","epoch":1,"val_metric":null,"val_loss":"inf","train_loss":"-inf"})");
  EXPECT_TRUE(std::isnan(e.metrics.val_metric));
  EXPECT_TRUE(std::isinf(e.metrics.val_loss) && e.metrics.val_loss > 0);
  EXPECT_TRUE(std::isinf(e.metrics.train_loss) && e.metrics.train_loss < 0);
  EXPECT_THROW(px::parse_event(R"({"event":"epoch_end","epoch":1,"val_metric":"high"})"), WorkloadError);
}

TEST(Protocol, MalformedLinesAreWorkloadErrorsThatQuoteTheLine) {
  for (const char* bad : {"not json", "[1,2]", R"({"epoch":1})", R"({"event":"epoch_start"})",
                          R"({"event":"epoch_start","epoch":"one"})", R"({"event":"epoch_end","epoch":1})",
                          R"({"event":"phase","phase":"test"})",
                          R"({"event":"teleport"})", R"({"event":"hello","protocol":2})",
                          R"({"event":"test"})", R"({"event":"checkpoint"})",
                          R"({"event":"epoch_end","epoch":1,"val_metric":0.5,"val_task_metrics":"x"})"}) {
    try {
      (void)px::parse_event(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const WorkloadError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("malformed event", 0), 0u) << e.what();
    }
  }
}

TEST(Protocol, LongLinesAreShortenedInMessages) {
  const std::string line(5000, 'x');
  try {
    (void)px::parse_event(line);
    FAIL();
  } catch (const WorkloadError& e) {
    EXPECT_LT(std::string(e.what()).size(), 300u);
  }
}

TEST(Protocol, ReplyIsOneJsonLine) {
  powertrain::run::EpochVerdict v;
  v.stop = true;
  v.best = false;
  v.reason = "no validation gain above 0.01 for 2 epochs";
  const auto r = px::epoch_reply(4, v);
  EXPECT_EQ(r.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(r);
  EXPECT_EQ(j["reply"], "epoch_end");
  EXPECT_EQ(j["epoch"], 4);
  EXPECT_EQ(j["action"], "stop");
  EXPECT_EQ(j["best"], false);
  EXPECT_EQ(j["reason"], v.reason);
}

// --- issue 24: careless and hostile events ----------------------------------------

std::string error_of(std::string_view line) {
  try {
    (void)px::parse_event(line);
  } catch (const WorkloadError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Protocol, EpochNumbersBeyondAnIntAreRefusedNotWrapped) {
  // 2^32 + 1 was read as epoch 1.
  EXPECT_NE(error_of(R"({"event":"epoch_start","epoch":4294967297})").find("out"), std::string::npos);
  EXPECT_NE(error_of(R"({"event":"epoch_end","epoch":4294967297,"val_metric":0.5})").find("out"), std::string::npos);
  EXPECT_NE(error_of(R"({"event":"epoch_start","epoch":18446744073709551615})").find("malformed"), std::string::npos);
}

TEST(Protocol, SampleCountsAreNeverNegativeOrHuge) {
  for (const char* bad : {R"({"event":"epoch_end","epoch":1,"val_metric":0.5,"samples":-1000})",
                          R"({"event":"epoch_end","epoch":1,"val_metric":0.5,"samples":10000000000000000000})",
                          R"({"event":"epoch_end","epoch":1,"val_metric":0.5,"samples":9223372036854775807})"})
    EXPECT_EQ(error_of(bad).rfind("malformed event", 0), 0u) << bad;
  EXPECT_EQ(px::parse_event(R"({"event":"epoch_end","epoch":1,"val_metric":0.5,"samples":0})").metrics.samples, 0);
}

TEST(Protocol, AQuotedLineIsValidUtf8AndANulDoesNotEndTheMessage) {
  // 119 bytes, then a 2-byte character that the 120-byte cut used to split.
  const std::string line = std::string(119, 'x') + "\xc3\xa9" + std::string(20, 'y');
  const auto cut = error_of(line);
  EXPECT_EQ(cut.find("\xc3"), std::string::npos) << "half a character";
  EXPECT_NE(cut.find("..."), std::string::npos);
  const auto latin1 = error_of("caf\xe9 is not json");
  EXPECT_NE(latin1.find("caf\xef\xbf\xbd"), std::string::npos) << latin1;
  const auto nul = error_of(std::string("{\"event\":\0\"hello\"} and after", 28));
  EXPECT_NE(nul.find("\\x00"), std::string::npos) << nul;
  EXPECT_NE(nul.find("and after"), std::string::npos) << nul;
  EXPECT_EQ(nul.find('\0'), std::string::npos);
}
