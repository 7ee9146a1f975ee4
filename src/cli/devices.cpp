// `powertrain devices`: every energy source, found or not, and how to fix the missing ones.
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "powertrain/energy/registry.h"

namespace powertrain::cli {

void add_devices_command(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("devices", "List every energy source, found or not, with its devices");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON instead of a table");
  cmd->callback([&ctx, json] {
    const auto probe = energy::probe_sources({});
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& s : probe.statuses) {
        nlohmann::json ch = nlohmann::json::array();
        for (const auto& c : s.channels)
          ch.push_back({{"id", c.id},
                        {"device", c.device},
                        {"component", energy::to_string(c.component)},
                        {"method", energy::to_string(c.method)},
                        {"in_total", c.in_total},
                        {"update_period_s", c.update_period_s}});
        out.push_back({{"source", s.source},
                       {"description", s.description},
                       {"available", s.available},
                       {"reason", s.reason},
                       {"fix", s.fix},
                       {"channels", ch}});
      }
      std::puts(out.dump(2).c_str());
      ctx.exit_code = 0;
      return;
    }
    bool measured = false, estimated = false;
    for (const auto& s : probe.statuses) {
      fmt::print("{:<9} {}\n", s.source, s.available ? "available" : "unavailable");
      if (!s.description.empty()) fmt::print("          {}\n", s.description);
      for (const auto& c : s.channels) {
        fmt::print("          - {:<28} {:<6} {:<10}{}  {}\n", c.id, energy::to_string(c.component),
                   energy::to_string(c.method), c.in_total ? "" : " (part of another channel)", c.device);
        (c.method == energy::Method::estimated ? estimated : measured) = true;
      }
      if (!s.available) {
        fmt::print("          why: {}\n", s.reason);
        if (!s.fix.empty()) fmt::print("          fix: {}\n", s.fix);
      }
    }
    if (!measured && estimated)
      fmt::print("\nNo energy counter or power sensor is readable here: every figure powertrain reports on this machine "
                 "is an estimate, and is labeled 'estimated'.\n");
    else if (estimated)
      fmt::print("\nSome components are estimated (labeled 'estimated'); the rest are measured.\n");
    ctx.exit_code = 0;
  });
}

}  // namespace powertrain::cli
