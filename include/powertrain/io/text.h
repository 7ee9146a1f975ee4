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

/// `text` as valid UTF-8: every byte that does not belong to a well-formed
/// sequence (a cut character, Latin-1, an overlong form, a surrogate) becomes
/// U+FFFD; valid text comes back unchanged.
std::string valid_utf8(std::string_view text);

/// A metric or a loss for a console line: `decimals` decimals for ordinary
/// magnitudes, scientific notation from 1e9 up (a metric of 1e308 is not
/// 309 digits); "nan", "inf" as they are.
std::string number(double v, int decimals = 4);

/// The longest prefix of `text` of at most `max_bytes` bytes that does not
/// end inside a UTF-8 character.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

}  // namespace powertrain::io
