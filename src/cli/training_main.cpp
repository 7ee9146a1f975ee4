#include "powertrain/cli/cli.h"

int main(int argc, char** argv) { return powertrain::cli::run_training_cli(argc, argv); }
