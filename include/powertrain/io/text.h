#pragma once
// Text from users (study names, task names, a program's messages) on a
// terminal: control characters would move the cursor, recolour or retitle
// the terminal, or hide what came before.
#include <string>
#include <string_view>

namespace powertrain::io {

/// `text` with every control character (C0, DEL, C1; tabs and newlines
/// included) shown as an escape such as "\x1b"; other bytes unchanged.
std::string printable(std::string_view text);

}  // namespace powertrain::io
