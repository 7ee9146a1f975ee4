// The one table model printed every way: console, CSV of the values, CSV as
// shown, JSON and HTML, from the same Table.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "powertrain/io/csv.h"
#include "powertrain/table/print.h"

namespace powertrain::table {
namespace {

std::string console(const Table& t) {
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  print_console(f, t);
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

// Energies of two setups: a mean with its spread, one without, a text column.
Table energies() {
  Table t;
  t.name = "setups";
  t.title = "Setups";
  t.columns = {{"setup", "setup", 0}, {"energy_j", "energy J", 3, true}, {"epochs", "epochs", 0}};
  t.rows.push_back({Cell(Value(std::string("bs=16"))), Cell(Value(12.345), Value(0.5)), Cell(Value(std::int64_t{3}))});
  t.rows.push_back({Cell(Value(std::string("bs=64"))), Cell(Value(7.0)), Cell(Value())});
  t.notes.push_back("one seed for bs=64");
  return t;
}

TEST(TablePrint, OneTableFourWays) {
  const Table t = energies();
  EXPECT_EQ(console(t), "\nSetups\n"
                        "  setup energy J    epochs\n"
                        "  bs=16 12.3 ± 0.50 3\n"
                        "  bs=64 7.00        -\n"
                        "  one seed for bs=64\n");
  EXPECT_EQ(to_csv(t), "setup,energy_j,energy_j_sd,epochs\nbs=16,12.345,0.5,3\nbs=64,7,,\n");
  EXPECT_EQ(to_shown_csv(t), "setup,energy J,epochs\r\nbs=16,12.3 ± 0.50,3\r\nbs=64,7.00,-\r\n");
  const auto j = to_json(t);
  EXPECT_EQ(j["columns"], nlohmann::json({"setup", "energy_j", "energy_j_sd", "epochs"}));
  EXPECT_EQ(j["rows"][0]["energy_j"], 12.345);
  EXPECT_EQ(j["rows"][1]["energy_j_sd"], nullptr);
  EXPECT_EQ(j["rows"][1]["epochs"], nullptr);
  EXPECT_EQ(j["notes"][0], "one seed for bs=64");
  const auto html = to_html(t);
  EXPECT_NE(html.find("<caption>Setups</caption>"), std::string::npos);
  EXPECT_NE(html.find("<th>energy J</th>"), std::string::npos);
  EXPECT_NE(html.find("<td>bs=16</td><td class=\"num\">12.3 ± 0.50</td><td class=\"num\">3</td>"), std::string::npos);
  // A NULL cell has no type: it is shown "-" and aligned as text.
  EXPECT_NE(html.find("<td class=\"num\">7.00</td><td>-</td>"), std::string::npos);
}

TEST(TablePrint, VerticalTablesPrintHeaderValueLines) {
  Table t = energies();
  t.vertical = true;
  t.rows.resize(1);
  t.notes.clear();
  EXPECT_EQ(console(t), "\nSetups\n  setup     bs=16\n  energy J  12.3 ± 0.50\n  epochs    3\n");
  t.vertical = false;
  t.rows.clear();
  EXPECT_NE(console(t).find("(none)"), std::string::npos);
}

TEST(TablePrint, ShownTextIsWhatReadersSeeWhileCsvAndJsonKeepTheValue) {
  Table t;
  t.columns = {{"energy_j", "energy (kJ)", 3}};
  Cell c(Value(12345.0));
  c.shown = "≥ 12.3";
  c.align = Align::right;
  t.rows.push_back({c});
  EXPECT_EQ(cell_text(t.rows[0][0], t.columns[0]), "≥ 12.3");
  EXPECT_EQ(to_csv(t), "energy_j\n12345\n");
  EXPECT_EQ(to_json(t)["rows"][0]["energy_j"], 12345.0);
  EXPECT_EQ(to_shown_csv(t), "energy (kJ)\r\n≥ 12.3\r\n");
  EXPECT_NE(to_html(t).find("<td class=\"num\">≥ 12.3</td>"), std::string::npos);
}

TEST(TablePrint, HtmlEscapesEveryCellAndShownCsvQuotes) {
  Table t;
  t.name = "t";
  t.title = "a <b>";
  t.columns = headed({"name", "energy (J)"});
  t.rows.push_back({Cell("<i>x</i>"), Cell::number("12.5", "best")});
  t.rows.push_back({Cell("a, \"b\""), Cell::number("3")});
  t.rows.push_back({Cell(" padded"), Cell::number("4")});
  const auto html = to_html(t);
  EXPECT_NE(html.find("&lt;i&gt;x&lt;/i&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_NE(html.find("<caption>a &lt;b&gt;</caption>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num best\">12.5</td>"), std::string::npos);
  EXPECT_EQ(to_shown_csv(t), "name,energy (J)\r\n<i>x</i>,12.5\r\n\"a, \"\"b\"\"\",3\r\n\" padded\",4\r\n");
}

TEST(TablePrint, TextThatLooksLikeAFormulaIsNeutralisedNumbersKeepTheirSign) {
  Table t;
  t.name = "trials";
  t.columns = {{"task", "task"}, {"message", "message"}, {"delta", "delta"}, {"status", "status"}};
  t.rows.push_back({Cell(Value(std::string("=HYPERLINK(\"http://x\")"))), Cell(Value(std::string("@SUM(A1)"))),
                    Cell(Value(-0.5)), Cell(Value(std::string("-")))});
  t.rows.push_back({Cell(Value(std::string("+1"))), Cell(Value(std::string("-cmd"))), Cell(Value(std::int64_t{-3})),
                    Cell(Value(std::string("ok")))});
  EXPECT_EQ(to_csv(t), "task,message,delta,status\n"
                       "\"'=HYPERLINK(\"\"http://x\"\")\",'@SUM(A1),-0.5,-\n"
                       "'+1,'-cmd,-3,ok\n");
  // As shown: text cells the same way, cells that read as numbers keep their sign.
  Table shown;
  shown.columns = headed({"task", "delta", "note"});
  shown.rows.push_back({Cell("=1+1"), Cell::number("-2.5"), Cell("-")});
  shown.rows.push_back({Cell("-rm"), Cell::number("+3"), Cell("@x")});
  EXPECT_EQ(to_shown_csv(shown), "task,delta,note\r\n'=1+1,-2.5,-\r\n'-rm,+3,'@x\r\n");
  EXPECT_EQ(io::csv_text_cell("\tx"), "'\tx");
  EXPECT_EQ(io::csv_text_cell(""), "");
}

TEST(TablePrint, UserTextOnTheConsoleCannotMoveTheCursor) {
  Table t;
  t.columns = {{"study", "study", 0}};
  t.rows.push_back({Cell(Value(std::string("a\x1b[2Jb")))});
  EXPECT_EQ(cell_text(t.rows[0][0], t.columns[0]), "a\\x1b[2Jb");
}

TEST(TableModel, HeadedColumnsAreNamedInSnakeCase) {
  const auto cols = headed({"energy (J)", "batch size", "CO2e (g)", "own / machine", "±"});
  ASSERT_EQ(cols.size(), 5u);
  EXPECT_EQ(cols[0].name, "energy_j");
  EXPECT_EQ(cols[0].header, "energy (J)");
  EXPECT_EQ(cols[1].name, "batch_size");
  EXPECT_EQ(cols[2].name, "co2e_g");
  EXPECT_EQ(cols[3].name, "own_machine");
  EXPECT_EQ(cols[4].name, "column");
}

TEST(TableModel, ColumnsAreFoundByNameAndAMissingOneIsAnError) {
  const Table t = energies();
  EXPECT_EQ(t.column("epochs"), 2u);
  EXPECT_THROW(t.column("nope"), Error);
}

TEST(TableModel, RealsThatAreNotFiniteAreNull) {
  EXPECT_TRUE(std::holds_alternative<std::monostate>(real(std::nan(""))));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(real(INFINITY)));
  EXPECT_EQ(to_text(real(0.1)), "0.1");
  EXPECT_EQ(to_text(Value()), "");
}

TEST(TableModel, FieldListsBuildTheColumnsAndTheRows) {
  struct Row {
    int bs;
    double e;
  };
  const std::vector<Field<Row>> fields = {
      {{"batch_size", "batch", 0}, [](const Row& r) { return Cell(Value(std::int64_t{r.bs})); }},
      {{"energy_j", "J", 3}, [](const Row& r) { return Cell(real(r.e)); }}};
  const auto t = make_table("x", "X", fields, std::vector<Row>{{16, 1.5}, {64, 0.5}});
  ASSERT_EQ(t.columns.size(), 2u);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(to_csv(t), "batch_size,energy_j\n16,1.5\n64,0.5\n");
}

}  // namespace
}  // namespace powertrain::table
