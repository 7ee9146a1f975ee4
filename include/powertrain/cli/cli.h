#pragma once
namespace powertrain::cli {
/// `powertrain`: runs the commands that train nothing (no LibTorch is loaded)
/// and hands those that train over to `powertrain-train` beside it, which
/// replaces this process; returns the process exit code.
int run_cli(int argc, char** argv);
/// `powertrain-train`: runs every command, those that train included.
int run_training_cli(int argc, char** argv);
}  // namespace powertrain::cli
