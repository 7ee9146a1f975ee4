#pragma once
// The command line and environment of the user's training program for one
// run: {placeholders} in its arguments, POWERTRAIN_* variables in its
// environment (docs/external.md lists both).
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "powertrain/run/records.h"

namespace powertrain::external {

/// Every placeholder a command may hold, in documentation order.
const std::vector<std::string>& placeholder_names();

/// The placeholders' values for a run: {batch_size}, {learning_rate}, {seed},
/// {max_epochs}, {device}, {threads}, {tasks}, {init_encoder},
/// {freeze_encoder} ("true"/"false"), {checkpoint}, {encoder_checkpoint}
/// (empty when there is no checkpoint), {resume_from}, {save_state} (empty
/// unless the run is a segment), {start_epoch} (the first epoch the program
/// trains: `start_epoch`, 1 unless it continues a paused run), {data_dir},
/// {optimizer}, {momentum}, {weight_decay}, {subset}, {python}
/// (python_interpreter()), and for distributed programs {nproc_per_node},
/// {nnodes}, {master_port} (master_port()) and {rdzv_endpoint}
/// (rendezvous_host():{master_port}).
std::map<std::string, std::string> placeholder_values(const run::RunConfig& config, int start_epoch = 1);

/// The port of a distributed program's rendezvous: $POWERTRAIN_MASTER_PORT;
/// else, in a Slurm job spanning several nodes, one derived from the job id
/// (the same on every node); else a port free on this host, chosen once per
/// powertrain process.
int master_port(int nnodes);

/// The host of the rendezvous: $POWERTRAIN_RDZV_HOST; else, over several
/// nodes in Slurm, the node that launched the step (SLURM_LAUNCH_NODE_IPADDR);
/// else localhost.
std::string rendezvous_host(int nnodes);

/// The Python that {python} names: $POWERTRAIN_PYTHON, else the Python whose
/// torch powertrain was built against (when it still exists), else "python3".
std::string python_interpreter();

/// `text` with every {name} replaced; "{{" and "}}" are literal braces.
/// Throws ConfigError naming an unknown placeholder or an unmatched brace.
std::string expand(std::string_view text, const std::map<std::string, std::string>& values);

/// Checks a command before anything runs: at least a program, known
/// placeholders only, balanced braces, variable names of the environment
/// without '='. Throws ConfigError.
void validate(const run::Command& command);

/// The program's arguments for a run (every argument expanded); start_epoch
/// as for placeholder_values (run::RunControl::first_epoch()). A distributed
/// command (command.nproc_per_node > 0) comes wrapped in its launcher:
/// `<python> -m torch.distributed.run --nnodes N --nproc_per_node P
/// --standalone` (several nodes: c10d rendezvous at {rdzv_endpoint}) before
/// the script (a command that is not `python script` gets --no-python), or
/// `srun --nodes N --ntasks-per-node P`.
std::vector<std::string> expand_argv(const run::RunConfig& config, int start_epoch = 1);

/// The variables powertrain adds to the program's environment for a run:
/// POWERTRAIN_PROTOCOL, POWERTRAIN_BATCH_SIZE and the other settings (the
/// socket and run id are added when the run starts), then command.env
/// (expanded; it may override). Of a segment's settings only those that are
/// set: POWERTRAIN_RESUME_FROM and POWERTRAIN_START_EPOCH when
/// config.resume_from is, POWERTRAIN_SAVE_STATE when config.save_state is.
std::vector<std::pair<std::string, std::string>> program_environment(const run::RunConfig& config,
                                                                     int start_epoch = 1);

/// The command as one line for messages: "python3 train.py --lr {learning_rate}".
std::string display(const run::Command& command);

}  // namespace powertrain::external
