#include "powertrain/external/process.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "powertrain/energy/scope.h"
#include "powertrain/error.h"

extern char** environ;

namespace powertrain::external {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// --- containment ---------------------------------------------------------------
//
// What a program starts may leave its process group (setsid, a double fork):
// killing the group does not reach it. Three nets catch it:
// - powertrain is a child subreaper (PR_SET_CHILD_SUBREAPER): a descendant
//   whose parent exits becomes powertrain's child instead of init's, so at the
//   end of the run every process that left powertrain's own process group and
//   has powertrain as its parent is the program's and is killed and reaped;
// - every process the program starts inherits a token in its environment
//   (kTokenVariable), by which it is found anywhere under /proc;
// - the program's process group, as before.
// The guardian uses the last two after powertrain dies (kill -9), and, where
// powertrain made a cgroup of its own for the run (energy::own_run_cgroup(),
// which nothing else shares), every process left in it: a descendant that
// left the group and dropped its environment too is still in the cgroup.
// A child started inside a cgroup powertrain is not in (ChildSpec::cgroup)
// has that cgroup to itself: whatever is left in it is killed at every end,
// orderly or not.
//
// Everything below runs in the forked guardian too, a copy of a
// multi-threaded process: system calls and stack buffers only, no allocation.

constexpr const char* kTokenVariable = "POWERTRAIN_CHILD_TOKEN";

// A decimal number from text; -1 when it is not one.
long parse_number(const char* s, const char* end) {
  long v = 0;
  if (s == end) return -1;
  for (; s != end; ++s) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

// "/proc/<pid>/<leaf>" into buf.
void proc_path(char* buf, std::size_t size, long pid, const char* leaf) {
  char digits[24];
  int n = 0;
  do digits[n++] = static_cast<char>('0' + pid % 10);
  while ((pid /= 10) > 0 && n < 23);
  std::size_t at = 0;
  for (const char* p = "/proc/"; *p && at + 1 < size; ++p) buf[at++] = *p;
  while (n > 0 && at + 1 < size) buf[at++] = digits[--n];
  if (at + 1 < size) buf[at++] = '/';
  for (const char* p = leaf; *p && at + 1 < size; ++p) buf[at++] = *p;
  buf[at] = '\0';
}

struct ProcStat {
  char state = '?';
  long ppid = -1, pgrp = -1;
};

// /proc/<pid>/stat: "pid (comm) S ppid pgrp ..."; comm may hold anything, so
// the fields are read after its last ')'.
bool read_stat(long pid, ProcStat& st) {
  char path[64], buf[512];
  proc_path(path, sizeof path, pid, "stat");
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* p = nullptr;
  for (ssize_t i = n - 1; i >= 0; --i)
    if (buf[i] == ')') {
      p = buf + i + 1;
      break;
    }
  if (!p) return false;
  const char* fields[3] = {};  // state, ppid, pgrp
  const char* ends[3] = {};
  for (int f = 0; f < 3; ++f) {
    while (*p == ' ') ++p;
    fields[f] = p;
    while (*p && *p != ' ') ++p;
    ends[f] = p;
  }
  st.state = *fields[0];
  st.ppid = parse_number(fields[1], ends[1]);
  st.pgrp = parse_number(fields[2], ends[2]);
  return st.ppid >= 0 && st.pgrp >= 0;
}

// Whether /proc/<pid>/environ holds the entry `entry` ("NAME=value").
bool environ_has(long pid, const char* entry, std::size_t len) {
  char path[64], buf[4096];
  proc_path(path, sizeof path, pid, "environ");
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t pos = 0;  // bytes of `entry` matched at the start of this variable
  bool miss = false;
  bool found = false;
  for (ssize_t n; !found && (n = ::read(fd, buf, sizeof buf)) > 0;) {
    for (ssize_t i = 0; i < n; ++i) {
      const char c = buf[i];
      if (c == '\0') {
        if (!miss && pos == len) {
          found = true;
          break;
        }
        pos = 0;
        miss = false;
      } else if (!miss && pos < len && c == entry[pos]) {
        ++pos;
      } else {
        miss = true;
      }
    }
  }
  ::close(fd);
  return found;
}

struct LinuxDirent64 {
  std::uint64_t d_ino;
  std::int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

// Kills every process listed in `procs` (the cgroup.procs file of a cgroup
// that holds this run alone) but this one, in rounds until none is left (at
// most about a second). `kill_file`, where not empty, is the cgroup's
// cgroup.kill (Linux 5.14), written first where it exists: the kernel kills
// the whole cgroup at once, processes forked meanwhile included; only for a
// cgroup this process is not in. No allocation: it runs in the forked guardian.
void kill_cgroup(const char* procs, const char* kill_file = nullptr) {
  if (procs == nullptr || *procs == '\0') return;
  if (kill_file != nullptr && *kill_file != '\0') {
    const int fd = ::open(kill_file, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!::write(fd, "1", 1);
      ::close(fd);
    }
  }
  const pid_t self = ::getpid();
  for (int round = 0; round < 200; ++round) {
    const int fd = ::open(procs, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    bool left = false;
    long pid = -1;
    const auto take = [&] {
      if (pid > 0 && pid != self) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
        left = true;
      }
      pid = -1;
    };
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] >= '0' && buf[i] <= '9') pid = (pid < 0 ? 0 : pid * 10) + (buf[i] - '0');
        else take();
      }
    }
    take();
    ::close(fd);
    if (!left) return;
    const timespec pause{0, 5'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

// Kills what is left of a program: its process group `group`, the processes
// whose environment holds `token` ("NAME=value"), and, when `orphans` (this
// process is their subreaper), its own children that left its own process
// group. Its own children among them are reaped. Rounds until none is left
// (each kill may orphan more), at most about a second.
void sweep(pid_t group, const char* token, std::size_t token_len, bool orphans, const pid_t* keep = nullptr,
           std::size_t keep_n = 0) {
  const pid_t self = ::getpid();
  const pid_t own_group = ::getpgrp();
  for (int round = 0; round < 200; ++round) {
    const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    bool left = false;
    alignas(8) char buf[8192];
    for (long n; (n = ::syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0;) {
      for (long off = 0; off < n;) {
        const auto* d = reinterpret_cast<const LinuxDirent64*>(buf + off);
        off += d->d_reclen;
        const char* name = d->d_name;
        const char* end = name;
        while (*end) ++end;
        const long pid = parse_number(name, end);
        if (pid <= 0 || pid == self || std::find(keep, keep + keep_n, static_cast<pid_t>(pid)) != keep + keep_n)
          continue;
        ProcStat st;
        if (!read_stat(pid, st)) continue;
        const bool mine = st.ppid == self;
        const bool ours = (group > 0 && st.pgrp == group) || (orphans && mine && st.pgrp != own_group) ||
                          (token_len > 0 && st.state != 'Z' && environ_has(pid, token, token_len));
        if (!ours) continue;
        if (st.state != 'Z') {
          ::kill(static_cast<pid_t>(pid), SIGKILL);
          left = true;
        }
        if (mine) {
          int status = 0;
          if (::waitpid(static_cast<pid_t>(pid), &status, WNOHANG) == 0) left = true;
        }
      }
    }
    ::close(dir);
    if (!left) return;
    const timespec pause{0, 5'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

// The programs and guardians of the Child objects alive in this process:
// never taken for orphans of another's run.
std::mutex live_mutex;
std::set<pid_t> live_pids;

void set_live(pid_t pid, bool live) {
  if (pid <= 0) return;
  std::lock_guard<std::mutex> lock(live_mutex);
  if (live) live_pids.insert(pid);
  else live_pids.erase(pid);
}

std::vector<pid_t> live_except(pid_t a, pid_t b) {
  std::lock_guard<std::mutex> lock(live_mutex);
  std::vector<pid_t> out;
  for (pid_t p : live_pids)
    if (p != a && p != b) out.push_back(p);
  return out;
}

// Starts a copy of this process inside the cgroup v2 folder `dir`, as fork()
// does (0 in the copy), without moving this process: clone3 with
// CLONE_INTO_CGROUP (Linux 5.7; glibc has no wrapper). -1, with `why`, where
// it is refused: the caller forks instead. The copy runs only what a forked
// child may (async-signal-safe system calls) until it execs; no fork handlers
// ran for it, so glibc's thread descriptor there still names the parent's
// thread.
pid_t fork_into_cgroup(const std::string& dir, std::string& why) {
  const char* off = std::getenv("POWERTRAIN_NO_CLONE3");
  if (off != nullptr && *off != '\0' && std::string_view(off) != "0") {
    why = "POWERTRAIN_NO_CLONE3 is set";
    return -1;
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    why = fmt::format("cannot open {}: {}", dir, std::strerror(errno));
    return -1;
  }
  clone_args args{};
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<std::uint64_t>(fd);
  const long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) return 0;  // the copy: the descriptor closes when it execs
  const int e = errno;
  ::close(fd);
  if (pid < 0) {
    // ENOSYS (no clone3), E2BIG or EINVAL (a kernel before CLONE_INTO_CGROUP),
    // EPERM (a seccomp filter), EACCES, EBUSY, EOPNOTSUPP (the cgroup).
    why = fmt::format("clone3 into {} refused: {}", dir, std::strerror(e));
    return -1;
  }
  return static_cast<pid_t>(pid);
}

std::string new_token() {
  static std::atomic<unsigned> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return fmt::format("{}-{}-{:x}", ::getpid(), counter++, static_cast<unsigned long long>(now));
}

}  // namespace

Child::Child(const ChildSpec& spec)
    : contained_(spec.contained), program_(spec.argv.empty() ? "" : spec.argv.front()), workdir_(spec.workdir) {
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
  if (contained_ && spec.token) {
    // Every process the program starts carries this: found by it, wherever it went.
    token_ = fmt::format("{}={}", kTokenVariable, new_token());
    env_map[kTokenVariable] = token_.substr(token_.find('=') + 1);
  }
  // Descendants whose parent exits come to powertrain rather than to init.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env_map) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  // execve of the program given, else execvpe with PATH of the child's environment.
  const char* program = spec.program.empty() ? nullptr : spec.program.c_str();
  const char* workdir = spec.workdir.empty() ? nullptr : spec.workdir.c_str();

  // Pipes: the program's output (contained), why exec failed, the gate (held).
  int out[2] = {-1, -1}, err[2] = {-1, -1}, status_pipe[2] = {-1, -1}, gate[2] = {-1, -1};
  const auto close_all = [&] {
    for (int* p : {out, err, status_pipe, gate})
      for (int k = 0; k < 2; ++k)
        if (p[k] >= 0) ::close(p[k]);
  };
  for (int* p : {out, err, status_pipe, gate}) {
    if ((p == out || p == err) && !contained_) continue;
    if (p == gate && !spec.held) continue;
    if (::pipe2(p, O_CLOEXEC) != 0) {
      const int e = errno;
      close_all();
      throw WorkloadError(fmt::format("cannot make a pipe: {}", std::strerror(e)));
    }
  }
  // Output buffered here must not come after the program's.
  std::fflush(nullptr);
  const pid_t parent = ::getpid();
  // Inside the cgroup asked for, else (refused, or none asked for) where powertrain is.
  std::string refused;
  pid_t pid = spec.cgroup.empty() ? -1 : fork_into_cgroup(spec.cgroup, refused);
  if (pid < 0) {
    if (!spec.cgroup.empty() && spec.cgroup_refused) {
      try {
        spec.cgroup_refused(refused);
      } catch (...) {
        close_all();
        throw;
      }
    }
    pid = ::fork();
  }
  if (pid < 0) {
    const int e = errno;
    close_all();
    throw WorkloadError(fmt::format("cannot start a process: {}", std::strerror(e)));
  }
  if (pid == 0) {
    if (contained_) {
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
    }
    if (gate[0] >= 0) {
      // Held: runs its program when the parent closes the gate.
      ::close(gate[1]);
      char c;
      while (::read(gate[0], &c, 1) < 0 && errno == EINTR) {
      }
    }
    int e = 0;
    if (workdir && ::chdir(workdir) != 0) {
      e = errno;
      const char tag = 'd';
      (void)!::write(status_pipe[1], &tag, 1);
      (void)!::write(status_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    if (program) ::execve(program, argv.data(), envp.data());
    else ::execvpe(argv[0], argv.data(), envp.data());
    e = errno;
    const char tag = 'x';
    (void)!::write(status_pipe[1], &tag, 1);
    (void)!::write(status_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  if (contained_) ::setpgid(pid, pid);  // also from here: no race with the first signal
  pid_ = pid;
  in_cgroup_ = !spec.cgroup.empty() && refused.empty();
  if (in_cgroup_) {
    cgroup_procs_ = spec.cgroup + "/cgroup.procs";
    cgroup_kill_ = spec.cgroup + "/cgroup.kill";
  }
  set_live(pid_, true);
  for (int fd : {out[1], err[1], status_pipe[1], gate[0]})
    if (fd >= 0) ::close(fd);
  out_fd_ = out[0];
  err_fd_ = err[0];
  status_fd_ = status_pipe[0];
  gate_fd_ = gate[1];
  for (int fd : {out_fd_, err_fd_})
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (gate_fd_ < 0) wait_for_exec();
  if (contained_) start_guardian();
}

void Child::release() {
  if (gate_fd_ < 0) return;
  close_fd(gate_fd_);
  wait_for_exec();
}

// exec succeeded when the status pipe closes without a byte; otherwise the
// child has exited: it is reaped and the reason thrown.
void Child::wait_for_exec() {
  char tag = 0;
  int e = 0;
  ssize_t n;
  do n = ::read(status_fd_, &tag, 1);
  while (n < 0 && errno == EINTR);
  if (n == 1) (void)!::read(status_fd_, &e, sizeof e);
  close_fd(status_fd_);
  if (n != 1) return;
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  status_ = st;
  set_live(pid_, false);
  close_fd(out_fd_);
  close_fd(err_fd_);
  if (tag == 'd')
    throw WorkloadError(fmt::format("cannot enter the working directory {}: {}", workdir_, std::strerror(e)));
  throw WorkloadError(fmt::format("cannot run {}: {}", program_, std::strerror(e)));
}

// The guardian: a forked copy of powertrain that only waits for the end of a
// pipe whose write end powertrain holds. The pipe ends when powertrain exits
// for any reason, kill -9 included; the guardian then kills the program's
// whole process group (grandchildren such as data-loader workers too, which
// PR_SET_PDEATHSIG does not reach) and exits.
void Child::start_guardian() {
  if (cgroup_procs_.empty())
    if (const auto dir = energy::own_run_cgroup(); !dir.empty()) cgroup_procs_ = (dir / "cgroup.procs").string();
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return;  // best effort: PR_SET_PDEATHSIG still covers the program
  const pid_t group = pid_;
  const pid_t g = ::fork();
  if (g < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return;
  }
  const char* token = token_.c_str();
  const std::size_t token_len = token_.size();
  const char* procs = cgroup_procs_.c_str();
  const char* kill_file = cgroup_kill_.c_str();
  const bool alone = in_cgroup_;
  if (g == 0) {
    ::close(p[1]);
    // A held child's gate (and what says whether it ran) are the parent's alone:
    // open here, the gate would never close.
    if (gate_fd_ >= 0) ::close(gate_fd_);
    if (status_fd_ >= 0) ::close(status_fd_);
    char c = 0;
    ssize_t n;
    do n = ::read(p[0], &c, 1);
    while (n < 0 && errno == EINTR);
    ::kill(-group, SIGKILL);
    // What left the group but carries the program's token goes too.
    sweep(group, token, token_len, false);
    // End of file without the byte the destructor writes: powertrain died.
    // Then everything in its own cgroup goes, whatever it dropped. (At an
    // orderly end powertrain itself is in that cgroup, alive: not then.) A
    // cgroup the child was started in holds the program alone: at every end.
    if (n == 0 || alone) kill_cgroup(procs, alone ? kill_file : nullptr);
    ::_exit(0);
  }
  ::close(p[0]);
  guardian_ = g;
  guardian_fd_ = p[1];
  set_live(guardian_, true);
}

Child::~Child() {
  if (!contained_) {
    // A foreground command: itself alone (what it started is its own affair, as under a shell).
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    set_live(pid_, false);
    close_fd(gate_fd_);  // after the kill: a held child never runs its program
    close_fd(status_fd_);
    return;
  }
  if (pid_ > 0 && !status_) {
    ::kill(-pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  } else if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);  // what is left of its group (the leader has exited)
  }
  close_fd(gate_fd_);
  close_fd(status_fd_);
  // The cgroup it was started in holds the program alone (powertrain is not
  // in it): everything left there goes, whatever group or environment it
  // took; the sweep below reaps what comes to powertrain.
  if (in_cgroup_) kill_cgroup(cgroup_procs_.c_str(), cgroup_kill_.c_str());
  // Nothing the program started outlives the run: what left its group too.
  if (pid_ > 0) {
    auto keep = live_except(pid_, guardian_);
    if (guardian_ > 0) keep.push_back(guardian_);
    sweep(pid_, token_.c_str(), token_.size(), true, keep.data(), keep.size());
  }
  set_live(pid_, false);
  set_live(guardian_, false);
  close_fd(out_fd_);
  close_fd(err_fd_);
  if (guardian_ > 0) {
    if (guardian_fd_ >= 0) {  // an orderly end: one byte, then the guardian finds the group gone and exits
      const char done = 'e';
      while (::write(guardian_fd_, &done, 1) < 0 && errno == EINTR) {
      }
    }
    close_fd(guardian_fd_);
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
  if (!contained_) {
    if (!status_) ::kill(pid_, sig);
    return;
  }
  // The group may outlive its leader (e.g. a DataLoader worker): signal it
  // even after the leader exited, and ignore "no such process".
  ::kill(-pid_, sig);
}

Finished run_to_end(const ChildSpec& spec, double timeout_s) {
  ChildSpec contained = spec;
  contained.contained = true;
  contained.held = false;
  Child child(contained);
  Finished f;
  using Clock = std::chrono::steady_clock;
  const auto deadline = timeout_s > 0 ? Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                           std::chrono::duration<double>(timeout_s))
                                      : Clock::time_point::max();
  std::optional<Clock::time_point> exited_at;
  const auto drain = [&](int fd, std::string& into, bool out) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        into.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) out ? child.close_stdout() : child.close_stderr();
      return;
    }
  };
  for (;;) {
    pollfd fds[2];
    nfds_t n = 0;
    for (int fd : {child.stdout_fd(), child.stderr_fd()})
      if (fd >= 0) fds[n++] = pollfd{fd, POLLIN, 0};
    if (n > 0) ::poll(fds, n, 20);
    if (child.stdout_fd() >= 0) drain(child.stdout_fd(), f.out, true);
    if (child.stderr_fd() >= 0) drain(child.stderr_fd(), f.err, false);
    const bool open = child.stdout_fd() >= 0 || child.stderr_fd() >= 0;
    if (child.poll_exit() && !exited_at) exited_at = Clock::now();
    if (exited_at && (!open || Clock::now() - *exited_at > std::chrono::seconds(1))) break;
    if (!exited_at && Clock::now() > deadline) {
      child.signal_group(SIGKILL);
      f.timed_out = true;
      while (!child.poll_exit()) ::poll(nullptr, 0, 5);
      break;
    }
    if (n == 0) ::poll(nullptr, 0, 5);
  }
  f.wait_status = *child.poll_exit();
  return f;  // ~Child: what is left of its group, and what it started elsewhere, is killed
}

std::string describe_exit(int st) {
  if (WIFEXITED(st)) return fmt::format("exited with status {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("was killed by signal {} ({})", WTERMSIG(st), ::strsignal(WTERMSIG(st)));
  return fmt::format("ended with wait status {}", st);
}

bool exited_cleanly(int st) { return WIFEXITED(st) && WEXITSTATUS(st) == 0; }

}  // namespace powertrain::external
