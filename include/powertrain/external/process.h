#pragma once
// A child process in its own process group, with its output on pipes, that
// dies with powertrain: its process group is killed when this object goes
// away, and when powertrain dies (kill -9 included) a guardian process kills
// it; PR_SET_PDEATHSIG kills the program itself as a second line. What the
// program starts outside its group (setsid, a double fork) is killed too:
// powertrain becomes a child subreaper, so such a process comes to it when its
// parent exits, and every process the program starts carries a token in its
// environment (POWERTRAIN_CHILD_TOKEN) by which it is found; after a kill -9
// of powertrain only the token (and the group) remain to find it by.
//
// A command run in the foreground, as `powertrain measure` runs it, is not
// contained: it keeps powertrain's standard input and output and its process
// group (a terminal's Ctrl-C reaches both), its signal dispositions, and
// outlives a powertrain killed with -9, as it would under a shell. Either kind
// may be held: it is started at once but runs its program only on release(),
// so that meters started in between see its first instruction.
//
// Either kind may be started inside a cgroup v2 that powertrain is not in
// (ChildSpec::cgroup: clone3 with CLONE_INTO_CGROUP, Linux 5.7), which then
// holds the program and everything it starts; where the kernel refuses that,
// the child is forked where powertrain is, after ChildSpec::cgroup_refused.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace powertrain::external {

struct ChildSpec {
  std::vector<std::string> argv;  ///< argv[0] is looked up on PATH (of the child's environment)
  /// The executable to run with `argv` (argv[0] then only names it); empty:
  /// argv[0] looked up on PATH.
  std::string program;
  std::string workdir;            ///< empty: the current directory
  /// Added to (or replacing in) the current environment.
  std::vector<std::pair<std::string, std::string>> env;
  /// Contained (see above): its own process group, output on pipes, standard
  /// input from /dev/null, killed with everything it started. false: a
  /// foreground command with powertrain's own group, input and output.
  bool contained = true;
  /// Runs its program only once release() is called.
  bool held = false;
  /// A contained child carries the token in its environment (POWERTRAIN_CHILD_TOKEN);
  /// false for a tool whose environment travels on (sbatch exports it to the
  /// jobs it submits, which must not be taken for the tool's processes).
  bool token = true;
  /// A cgroup v2 folder to start the child in, that powertrain is not in and
  /// that holds nothing else: the child is cloned straight into it, and a
  /// contained child's end kills whatever is left in it. Empty: where
  /// powertrain is.
  std::string cgroup;
  /// Called with the reason when the child cannot be started inside `cgroup`
  /// (no clone3, no CLONE_INTO_CGROUP, a seccomp filter, no permission; or
  /// POWERTRAIN_NO_CLONE3=1 in the environment), just before it is forked
  /// where powertrain is: e.g. to move powertrain into the cgroup first.
  std::function<void(const std::string& why)> cgroup_refused;
};

class Child {
 public:
  /// Starts the program. Throws WorkloadError when it cannot be started (not
  /// found, not executable, bad working directory), with the reason.
  explicit Child(const ChildSpec& spec);
  /// Kills the process group (SIGKILL; a child not contained: the process) if
  /// the child still runs, and reaps it.
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  /// Whether it was started inside ChildSpec::cgroup (else cgroup_refused said why).
  bool in_cgroup() const { return in_cgroup_; }
  /// A held child: lets it run its program, and returns once it does. Throws
  /// WorkloadError (the child then has exited) when the program cannot be
  /// run, as the constructor does for a child not held. Nothing once released.
  void release();

  /// Read ends of the child's stdout and stderr (non-blocking; -1 once closed,
  /// and for a child not contained).
  int stdout_fd() const { return out_fd_; }
  int stderr_fd() const { return err_fd_; }
  void close_stdout();
  void close_stderr();

  /// The wait status once the child has exited (reaped once, then remembered).
  std::optional<int> poll_exit();
  bool exited() const { return status_.has_value(); }
  /// Sends `sig` to the child's process group (ignored once it is gone); to
  /// the child alone when it is not contained (its group is powertrain's).
  void signal_group(int sig);

 private:
  pid_t pid_ = -1;
  bool contained_ = true;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int gate_fd_ = -1;    ///< a held child's gate: closed, it runs its program
  int status_fd_ = -1;  ///< says why exec failed; closes without a byte when it succeeds
  std::string program_;  ///< for the messages
  std::string workdir_;
  std::optional<int> status_;
  pid_t guardian_ = -1;
  int guardian_fd_ = -1;
  std::string token_;  ///< "POWERTRAIN_CHILD_TOKEN=<value>" in the program's environment
  std::string cgroup_procs_;  ///< cgroup.procs of the run cgroup the child is in, or empty
  std::string cgroup_kill_;   ///< its cgroup.kill where the child was started inside it (powertrain outside)
  bool in_cgroup_ = false;
  void start_guardian();
  void wait_for_exec();
};

/// A program run to its end (run_to_end): how it ended and what it printed.
struct Finished {
  int wait_status = 0;
  std::string out;         ///< its standard output
  std::string err;         ///< its standard error
  bool timed_out = false;  ///< it ran past the time given and was killed (its whole group)
};

/// Runs `spec` (contained) to its end, reading its output as it comes, and
/// kills it after `timeout_s` seconds (0: never). What it left holding its
/// output open is given a second after it exits, then killed with its group.
/// Throws WorkloadError when it cannot be started (not found, not executable).
Finished run_to_end(const ChildSpec& spec, double timeout_s = 0);

/// "exited with status 3", "was killed by signal 9 (Killed)".
std::string describe_exit(int wait_status);
/// True when the child exited normally with status 0.
bool exited_cleanly(int wait_status);

}  // namespace powertrain::external
