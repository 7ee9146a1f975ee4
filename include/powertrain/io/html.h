#pragma once
// Text from users (names, messages, commands) inside an HTML page.
#include <string>
#include <string_view>

namespace powertrain::io {

/// `s` safe as HTML text and as a double-quoted attribute value: & < > " '
/// become entities; invalid UTF-8 bytes become U+FFFD and control characters
/// other than tab and newline become spaces.
std::string html_escape(std::string_view s);

}  // namespace powertrain::io
