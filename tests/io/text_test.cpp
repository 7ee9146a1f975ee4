#include <gtest/gtest.h>

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
