// Base64, data URIs and page rendering.
#include <gtest/gtest.h>

#include "powertrain/report/html.h"
#include "powertrain/report/page.h"

namespace powertrain::report {
namespace {

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
