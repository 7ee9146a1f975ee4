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
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace powertrain::external {

struct ChildSpec {
  std::vector<std::string> argv;  ///< argv[0] is looked up on PATH
  std::string workdir;            ///< empty: the current directory
  /// Added to (or replacing in) the current environment.
  std::vector<std::pair<std::string, std::string>> env;
};

class Child {
 public:
  /// Starts the program. Throws WorkloadError when it cannot be started (not
  /// found, not executable, bad working directory), with the reason.
  explicit Child(const ChildSpec& spec);
  /// Kills the process group (SIGKILL) if the child still runs, and reaps it.
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  /// Read ends of the child's stdout and stderr (non-blocking; -1 once closed).
  int stdout_fd() const { return out_fd_; }
  int stderr_fd() const { return err_fd_; }
  void close_stdout();
  void close_stderr();

  /// The wait status once the child has exited (reaped once, then remembered).
  std::optional<int> poll_exit();
  bool exited() const { return status_.has_value(); }
  /// Sends `sig` to the child's process group (ignored once it is gone).
  void signal_group(int sig);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::optional<int> status_;
  pid_t guardian_ = -1;
  int guardian_fd_ = -1;
  std::string token_;  ///< "POWERTRAIN_CHILD_TOKEN=<value>" in the program's environment
  std::string cgroup_procs_;  ///< cgroup.procs of powertrain's own run cgroup, or empty
  void start_guardian();
};

/// "exited with status 3", "was killed by signal 9 (Killed)".
std::string describe_exit(int wait_status);
/// True when the child exited normally with status 0.
bool exited_cleanly(int wait_status);

}  // namespace powertrain::external
