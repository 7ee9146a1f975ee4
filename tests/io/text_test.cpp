#include <gtest/gtest.h>

#include <cmath>

#include "powertrain/io/text.h"

namespace pio = powertrain::io;

TEST(Printable, ControlCharactersAreShownNotSent) {
  EXPECT_EQ(pio::printable("grid-quick"), "grid-quick");
  EXPECT_EQ(pio::printable("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");  // UTF-8 text stays
  EXPECT_EQ(pio::printable("a\x1b[2Jb"), "a\\x1b[2Jb");                            // clear screen
  EXPECT_EQ(pio::printable("x\ry\nz\t"), "x\\x0dy\\x0az\\x09");
  EXPECT_EQ(pio::printable("\x7f"), "\\x7f");
  EXPECT_EQ(pio::printable("c1 \xc2\x9b" "31m"), "c1 \\u009b31m");  // CSI as a C1 control
}

// Issue 24: a program's message cut inside a character, or its stderr in
// Latin-1, made `results --json` fail for the whole database.
TEST(Utf8, InvalidBytesBecomeReplacementCharactersValidTextStays) {
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(pio::valid_utf8("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80");
  EXPECT_EQ(pio::valid_utf8("caf\xe9"), "caf" + fffd);            // Latin-1
  EXPECT_EQ(pio::valid_utf8("\xe2\x9c"), fffd + fffd);            // cut character
  EXPECT_EQ(pio::valid_utf8("\xc0\xaf"), fffd + fffd);            // overlong '/'
  EXPECT_EQ(pio::valid_utf8("\xed\xa0\x80"), fffd + fffd + fffd);  // a surrogate
  EXPECT_EQ(pio::valid_utf8("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
  EXPECT_EQ(pio::valid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(Utf8, APrefixNeverEndsInsideACharacter) {
  const std::string s = "ab\xe2\x9c\x93" "cd";  // a, b, U+2713 (3 bytes), c, d
  EXPECT_EQ(pio::utf8_prefix(s, 2), "ab");
  EXPECT_EQ(pio::utf8_prefix(s, 3), "ab");
  EXPECT_EQ(pio::utf8_prefix(s, 4), "ab");
  EXPECT_EQ(pio::utf8_prefix(s, 5), "ab\xe2\x9c\x93");
  EXPECT_EQ(pio::utf8_prefix(s, 100), s);
  EXPECT_EQ(pio::utf8_prefix("", 3), "");
}

// Issue 24: a metric of 1e308 printed as 309 digits.
TEST(Number, HugeValuesInScientificNotationOrdinaryOnesFixed) {
  EXPECT_EQ(pio::number(0.91234567), "0.9123");
  EXPECT_EQ(pio::number(-12.5, 2), "-12.50");
  EXPECT_EQ(pio::number(1e308), "1.0000e+308");
  EXPECT_EQ(pio::number(-3e12, 1), "-3.0e+12");
  EXPECT_EQ(pio::number(std::nan("")), "nan");
  EXPECT_LT(pio::number(1.7e308).size(), 20u);
}
