// Escaping, base64, tables and page rendering.
#include <gtest/gtest.h>

#include "powertrain/report/html.h"
#include "powertrain/report/page.h"

namespace powertrain::report {
namespace {

TEST(HtmlEscape, EscapesMarkupAndQuotes) {
  EXPECT_EQ(html_escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;");
  EXPECT_EQ(html_escape("plain text"), "plain text");
}

TEST(HtmlEscape, KeepsUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(html_escape("CO₂e ± 5 µJ"), "CO₂e ± 5 µJ");
  EXPECT_EQ(html_escape(std::string("a\xff" "b")), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(html_escape(std::string("\xC0\xAF")), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(html_escape(std::string("x\x01y\nz")), "x y\nz");
}

TEST(Base64, MatchesRfc4648Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\x00\x10", 3)), "/wAQ");
  EXPECT_EQ(data_uri("image/png", "foo"), "data:image/png;base64,Zm9v");
}

TEST(Table, HtmlEscapesEveryCellAndCsvQuotes) {
  HtmlTable t;
  t.name = "t";
  t.caption = "a <b>";
  t.header = {"name", "energy (J)"};
  t.rows.push_back({Cell("<i>x</i>"), Cell::number("12.5", "best")});
  t.rows.push_back({Cell("a, \"b\""), Cell::number("3")});
  const auto html = to_html(t);
  EXPECT_NE(html.find("&lt;i&gt;x&lt;/i&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_NE(html.find("<caption>a &lt;b&gt;</caption>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num best\">12.5</td>"), std::string::npos);
  EXPECT_EQ(to_csv(t), "name,energy (J)\r\n<i>x</i>,12.5\r\n\"a, \"\"b\"\"\",3\r\n");
}

TEST(Page, RendersSelfContainedMarkup) {
  Page p;
  p.title = "Report <1>";
  p.subtitle = "db & more";
  Section s;
  s.id = "s1";
  s.title = "Study \"x\"";
  s.kind = "grid study";
  Figure f;
  f.name = "fig";
  f.title = "Fig <t>";
  f.caption = "cap";
  s.blocks.push_back(Block::of(f));
  Figure g;
  g.name = "missing";
  s.blocks.push_back(Block::of(g));
  p.sections.push_back(s);
  const auto html = render_html(p, {{"fig", DrawnFigure{"<svg xmlns='http://www.w3.org/2000/svg'/>", ""}},
                                    {"missing", DrawnFigure{"", "gnuplot <not> found"}}});
  EXPECT_NE(html.find("<title>Report &lt;1&gt;</title>"), std::string::npos);
  EXPECT_NE(html.find("src=\"data:image/svg+xml;base64,"), std::string::npos);
  EXPECT_NE(html.find("Figure not drawn: gnuplot &lt;not&gt; found"), std::string::npos);
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("Study \"x\""), std::string::npos);
}

}  // namespace
}  // namespace powertrain::report
