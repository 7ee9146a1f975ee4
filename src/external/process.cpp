#include "powertrain/external/process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include <fmt/format.h>

#include "powertrain/error.h"

extern char** environ;

namespace powertrain::external {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

Child::Child(const ChildSpec& spec) {
  if (spec.argv.empty()) throw WorkloadError("no program to run");
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls (the parent has other threads).
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::map<std::string, std::string> env_map;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env_map[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : spec.env) env_map[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env_map) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  // execvpe with PATH of the child's environment.
  const char* workdir = spec.workdir.empty() ? nullptr : spec.workdir.c_str();

  int out[2], err[2], status_pipe[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw WorkloadError(fmt::format("cannot make a pipe: {}", std::strerror(errno)));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]);
    throw WorkloadError(fmt::format("cannot make a pipe: {}", std::strerror(errno)));
  }
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
    throw WorkloadError(fmt::format("cannot make a pipe: {}", std::strerror(errno)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1], status_pipe[0], status_pipe[1]}) ::close(fd);
    throw WorkloadError(fmt::format("cannot start a process: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    // The child. Its own process group, so that powertrain can signal every
    // process it starts, and death with the parent.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    // Default signal handling and an empty mask, whatever the parent had.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    int e = 0;
    if (workdir && ::chdir(workdir) != 0) {
      e = errno;
      const char tag = 'd';
      (void)!::write(status_pipe[1], &tag, 1);
      (void)!::write(status_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    e = errno;
    const char tag = 'x';
    (void)!::write(status_pipe[1], &tag, 1);
    (void)!::write(status_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from here: no race with the first signal
  pid_ = pid;
  ::close(out[1]);
  ::close(err[1]);
  ::close(status_pipe[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  // exec succeeded when the status pipe closes without a byte.
  char tag = 0;
  int e = 0;
  ssize_t n;
  do n = ::read(status_pipe[0], &tag, 1);
  while (n < 0 && errno == EINTR);
  if (n == 1) (void)!::read(status_pipe[0], &e, sizeof e);
  ::close(status_pipe[0]);
  ::fcntl(out_fd_, F_SETFL, ::fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, ::fcntl(err_fd_, F_GETFL) | O_NONBLOCK);
  if (n != 1) start_guardian();
  if (n == 1) {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    status_ = st;
    close_fd(out_fd_);
    close_fd(err_fd_);
    if (tag == 'd')
      throw WorkloadError(fmt::format("cannot enter the working directory {}: {}", spec.workdir, std::strerror(e)));
    throw WorkloadError(fmt::format("cannot run {}: {}", spec.argv.front(), std::strerror(e)));
  }
}

// The guardian: a forked copy of powertrain that only waits for the end of a
// pipe whose write end powertrain holds. The pipe ends when powertrain exits
// for any reason, kill -9 included; the guardian then kills the program's
// whole process group (grandchildren such as data-loader workers too, which
// PR_SET_PDEATHSIG does not reach) and exits.
void Child::start_guardian() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return;  // best effort: PR_SET_PDEATHSIG still covers the program
  const pid_t group = pid_;
  const pid_t g = ::fork();
  if (g < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return;
  }
  if (g == 0) {
    ::close(p[1]);
    char c;
    ssize_t n;
    do n = ::read(p[0], &c, 1);
    while (n < 0 && errno == EINTR);
    ::kill(-group, SIGKILL);
    ::_exit(0);
  }
  ::close(p[0]);
  guardian_ = g;
  guardian_fd_ = p[1];
}

Child::~Child() {
  if (pid_ > 0 && !status_) {
    ::kill(-pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  } else if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);  // what is left of its group (the leader has exited)
  }
  close_fd(out_fd_);
  close_fd(err_fd_);
  if (guardian_ > 0) {
    close_fd(guardian_fd_);  // the guardian wakes up, finds the group gone, exits
    int st = 0;
    while (::waitpid(guardian_, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

void Child::close_stdout() { close_fd(out_fd_); }
void Child::close_stderr() { close_fd(err_fd_); }

std::optional<int> Child::poll_exit() {
  if (status_ || pid_ <= 0) return status_;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) status_ = st;
  return status_;
}

void Child::signal_group(int sig) {
  if (pid_ <= 0) return;
  // The group may outlive its leader (e.g. a DataLoader worker): signal it
  // even after the leader exited, and ignore "no such process".
  ::kill(-pid_, sig);
}

std::string describe_exit(int st) {
  if (WIFEXITED(st)) return fmt::format("exited with status {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("was killed by signal {} ({})", WTERMSIG(st), ::strsignal(WTERMSIG(st)));
  return fmt::format("ended with wait status {}", st);
}

bool exited_cleanly(int st) { return WIFEXITED(st) && WEXITSTATUS(st) == 0; }

}  // namespace powertrain::external
