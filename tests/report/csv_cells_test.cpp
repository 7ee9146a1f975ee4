// The report's CSV tables: text cells cannot start a spreadsheet formula
// (issue 12, item 14); numeric cells keep their sign.
#include <gtest/gtest.h>

#include "powertrain/report/html.h"

namespace powertrain::report {
namespace {

TEST(ReportCsvCells, FormulaLikeTextIsNeutralised) {
  HtmlTable t;
  t.name = "t";
  t.header = {"task", "delta", "note"};
  t.rows.push_back({Cell("=1+1"), Cell::number("-2.5"), Cell("-")});
  t.rows.push_back({Cell("-rm"), Cell::number("+3"), Cell("@x")});
  EXPECT_EQ(to_csv(t), "task,delta,note\r\n'=1+1,-2.5,-\r\n'-rm,+3,'@x\r\n");
}

}  // namespace
}  // namespace powertrain::report
