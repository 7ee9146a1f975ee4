// CSV text cells that a spreadsheet would run as formulas (issue 12, item 14).
#include <gtest/gtest.h>

#include "powertrain/io/csv.h"
#include "powertrain/study/tables.h"

namespace powertrain::study {
namespace {

TEST(CsvCells, TextThatLooksLikeAFormulaIsNeutralisedNumbersKeepTheirSign) {
  ResultTable t;
  t.name = "trials";
  t.columns = {{"task", "task"}, {"message", "message"}, {"delta", "delta"}, {"status", "status"}};
  t.rows.push_back({{store::Value(std::string("=HYPERLINK(\"http://x\")"))}, {store::Value(std::string("@SUM(A1)"))},
                    {store::Value(-0.5)}, {store::Value(std::string("-"))}});
  t.rows.push_back({{store::Value(std::string("+1"))}, {store::Value(std::string("-cmd"))}, {store::Value(std::int64_t{-3})},
                    {store::Value(std::string("ok"))}});
  const auto csv = to_csv(t);
  EXPECT_EQ(csv, "task,message,delta,status\n"
                 "\"'=HYPERLINK(\"\"http://x\"\")\",'@SUM(A1),-0.5,-\n"
                 "'+1,'-cmd,-3,ok\n");
  EXPECT_EQ(io::csv_text_cell("\tx"), "'\tx");
  EXPECT_EQ(io::csv_text_cell(""), "");
}

}  // namespace
}  // namespace powertrain::study
