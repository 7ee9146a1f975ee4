// Text from users made safe inside an HTML page.
#include <gtest/gtest.h>

#include "powertrain/io/html.h"

namespace powertrain::io {
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

}  // namespace
}  // namespace powertrain::io
