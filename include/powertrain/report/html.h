#pragma once
// Pieces of the self-contained HTML page: escaping and data URIs. Tables are
// the one table model's (table/table.h), printed by table::to_html.
#include <string>
#include <string_view>

#include "powertrain/io/html.h"
#include "powertrain/table/table.h"

namespace powertrain::report {

using io::html_escape;
using table::Cell;

/// Standard base64 (RFC 4648, with padding).
std::string base64(std::string_view bytes);

/// "data:MIME;base64,..." for an <img src>.
std::string data_uri(std::string_view mime, std::string_view bytes);

}  // namespace powertrain::report
