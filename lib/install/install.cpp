// run_install: the node install of `ipoib install`, one step per option.
#include "ipoib/install/install.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"
#include "ipoib/base/strings.h"
#include "ipoib/etcd/client.h"
#include "lib/install/files.h"

extern char** environ;

namespace ipoib::install {
namespace {

using detail::lstat_path;

constexpr mode_t kBinaryMode = 0755;
constexpr mode_t kTextMode = 0644;
constexpr mode_t kFlatFileMode = 0600;  // it may name credentials (etcd key and user)
constexpr mode_t kDirMode = 0755;

// Carried by every ipoib build (lib/doctor keeps it in the executable). A file that has it is an
// ipoib build of some version, hence ours to replace or remove.
constexpr std::string_view kBinaryMarker = "ipoib-cni-binary-marker:v1";

std::string octal(mode_t mode) {
  char buf[8];
  (void)std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
  return buf;
}

// "a/b", built in one allocation.
std::string join(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(a.size() + 1 + b.size());
  out.append(a).append("/").append(b);
  return out;
}

bool mode_is(const struct stat& st, mode_t mode) { return (st.st_mode & 07777) == mode; }

class Installer {
 public:
  Installer(const Options& opts, std::ostream& out) : o_(opts), out_(out) {}

  Status run() {
    IPOIB_TRY(open_root());
    if (o_.dry_run) {
      say("dry run: nothing will be changed");
    }
    // First: a refusal to replace a different flat file leaves everything else unchanged too.
    if (o_.store || (o_.flat_file_only && o_.uninstall)) {
      IPOIB_TRY(do_flat_file());
    }
    if (!o_.flat_file_only) {
      IPOIB_TRY(open_source());
      IPOIB_TRY(o_.uninstall ? uninstall_binary() : install_binary());
      if (o_.conf) {
        IPOIB_TRY(do_conf());
      }
      if (o_.fix_memlock) {
        IPOIB_TRY(do_memlock());
      }
    }
    return ok_status();
  }

 private:
  void say(std::string_view line) { out_ << "install: " << line << "\n"; }

  [[nodiscard]] std::string under(std::string_view absolute) const {
    return root_ == "/" ? std::string(absolute) : root_ + std::string(absolute);
  }
  [[nodiscard]] std::string dest_bin() const { return under(o_.bin_dir); }

  Status open_root() {
    char resolved[PATH_MAX];
    if (::realpath(o_.root.c_str(), resolved) == nullptr) {
      return errno_error(ErrorCode::kIoFailure, "--root " + o_.root);
    }
    const auto st = lstat_path(resolved);
    if (!st || !S_ISDIR(st->st_mode)) {
      return Error(ErrorCode::kIoFailure, "--root " + o_.root + " is not a directory");
    }
    root_ = resolved;
    return ok_status();
  }

  Status open_source() {
    source_ = Fd(::open(o_.source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!source_.valid() || ::fstat(source_.get(), &source_st_) != 0) {
      return errno_error(ErrorCode::kIoFailure, "open the binary to install " + o_.source);
    }
    if (!S_ISREG(source_st_.st_mode) || (source_st_.st_mode & 0111) == 0) {
      return Error(ErrorCode::kIoFailure, o_.source + " is not an executable file");
    }
    // The name the user knows, not /proc/self/exe.
    char resolved[PATH_MAX];
    const ssize_t n = ::readlink(o_.source.c_str(), resolved, sizeof resolved - 1);
    source_name_ = n > 0 ? std::string(resolved, static_cast<std::size_t>(n)) : o_.source;
    return ok_status();
  }

  // Ours: the same inode as `also` (the installed ipoib, for its whereabouts link) or as the
  // binary being installed, the same bytes, or an ELF file carrying the project's marker.
  Result<bool> is_ours(const std::string& path, const std::string& also = {}) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return false;
    }
    if (detail::same_inode(st, source_st_)) {
      return true;
    }
    struct stat other {};
    if (!also.empty() && ::stat(also.c_str(), &other) == 0 && detail::same_inode(st, other)) {
      return true;
    }
    IPOIB_TRY_ASSIGN(bool same, detail::same_bytes(path, source_));
    if (same) {
      return true;
    }
    return detail::elf_with_marker(path, kBinaryMarker);
  }

  // Copies `src` to `dest` with `mode` unless it already has those bytes and that mode. Returns
  // whether it changed (or, under dry_run, would change) the file.
  Result<bool> install_file(const Fd& src, const struct stat& src_st, const std::string& src_name,
                            const std::string& dest, mode_t mode) {
    if (const auto st = lstat_path(dest); st && S_ISREG(st->st_mode) && mode_is(*st, mode)) {
      bool same = detail::same_inode(*st, src_st);
      if (!same) {
        IPOIB_TRY_ASSIGN(same, detail::same_bytes(dest, src));
      }
      if (same) {
        say("up to date: " + dest);
        return false;
      }
    }
    if (o_.dry_run) {
      say("would install " + src_name + " -> " + dest + " (mode " + octal(mode) +
          ", atomic rename)");
      return true;
    }
    IPOIB_TRY(detail::make_dirs(detail::dir_name(dest), kDirMode));
    IPOIB_TRY(detail::atomic_copy(src, dest, mode));
    say("installed " + dest);
    return true;
  }

  // Writes `text` to `dest` with `mode` unless it already holds it. Returns whether it changed
  // (or, under dry_run, would change) the file.
  Result<bool> write_text(const std::string& dest, std::string_view text, mode_t mode) {
    if (const auto st = lstat_path(dest); st && S_ISREG(st->st_mode) && mode_is(*st, mode)) {
      IPOIB_TRY_ASSIGN(bool same, detail::holds_text(dest, text));
      if (same) {
        say("up to date: " + dest);
        return false;
      }
    }
    if (o_.dry_run) {
      std::string shown;
      for (std::string_view line : split(text, '\n')) {
        if (!line.empty()) {
          shown += "\n    " + std::string(line);
        }
      }
      say("would write " + dest + " (mode " + octal(mode) + "):" + shown);
      return true;
    }
    IPOIB_TRY(detail::make_dirs(detail::dir_name(dest), kDirMode));
    IPOIB_TRY(detail::atomic_write(text, dest, mode));
    say("wrote " + dest);
    return true;
  }

  Status remove(const std::string& path) {
    if (!lstat_path(path)) {
      say("absent: " + path);
      return ok_status();
    }
    if (o_.dry_run) {
      say("would remove " + path);
      return ok_status();
    }
    IPOIB_TRY(detail::remove_file(path));
    say("removed " + path);
    return ok_status();
  }

  // Removes `path` when `ours` (or --force), else says why it stays.
  Status remove_if_ours(const std::string& path, bool ours, std::string_view why_kept) {
    if (!lstat_path(path)) {
      say("absent: " + path);
      return ok_status();
    }
    if (ours || o_.force) {
      return remove(path);
    }
    say("kept " + path + ": " + std::string(why_kept) + " (use --force to remove it)");
    return ok_status();
  }

  // --- the binary and its whereabouts name ------------------------------------------------
  Status install_binary() {
    const std::string ipoib = dest_bin() + "/ipoib";
    const std::string w = dest_bin() + "/whereabouts";
    if (lstat_path(ipoib)) {
      IPOIB_TRY_ASSIGN(bool ours, is_ours(ipoib));
      if (!ours) {
        say("replacing " + ipoib + ", which is not an ipoib-cni build (Mellanox's ipoib-cni?)");
      }
    }
    // Decided before ipoib is replaced: a link to the old ipoib is ours.
    bool link_whereabouts = false;
    if (o_.whereabouts) {
      bool ours = !lstat_path(w);
      if (!ours) {
        IPOIB_TRY_ASSIGN(ours, is_ours(w, ipoib));
      }
      if (!ours && !o_.force) {
        return Error(ErrorCode::kIoFailure,
                     w + " exists and is a different binary (the upstream whereabouts?): not "
                         "replacing it without --force");
      }
      if (!ours) {
        say("replacing " + w + ", which is not ours (--force)");
      }
      link_whereabouts = true;
    } else {
      // Installed earlier with --whereabouts: keep it the same version.
      struct stat a {};
      struct stat b {};
      link_whereabouts =
          ::stat(w.c_str(), &a) == 0 && ::stat(ipoib.c_str(), &b) == 0 && detail::same_inode(a, b);
    }
    IPOIB_TRY_ASSIGN(const bool replaced,
                     install_file(source_, source_st_, source_name_, ipoib, kBinaryMode));
    if (link_whereabouts) {
      IPOIB_TRY(link_whereabouts_name(ipoib, w, replaced));
    }
    return ok_status();
  }

  // `ipoib_replaced`: ipoib was just (or, under dry_run, would be) replaced by a new inode.
  Status link_whereabouts_name(const std::string& ipoib, const std::string& w,
                               bool ipoib_replaced) {
    struct stat a {};
    struct stat b {};
    const bool linked =
        ::stat(w.c_str(), &a) == 0 && ::stat(ipoib.c_str(), &b) == 0 && detail::same_inode(a, b);
    if (linked && !(o_.dry_run && ipoib_replaced)) {
      say("up to date: " + w);
      return ok_status();
    }
    if (o_.dry_run) {
      say("would link " + w + " -> " + ipoib + " (hard link, atomic rename)");
      return ok_status();
    }
    if (detail::atomic_link(ipoib, w).ok()) {
      say("installed " + w + " (hard link to ipoib)");
      return ok_status();
    }
    // A filesystem without hard links: a copy, which is ours by its bytes.
    IPOIB_TRY_ASSIGN(const bool copied,
                     install_file(source_, source_st_, source_name_, w, kBinaryMode));
    (void)copied;
    return ok_status();
  }

  Status uninstall_binary() {
    const std::string ipoib = dest_bin() + "/ipoib";
    const std::string w = dest_bin() + "/whereabouts";
    if (lstat_path(w)) {
      IPOIB_TRY_ASSIGN(bool ours, is_ours(w, ipoib));
      if (ours || o_.force) {
        IPOIB_TRY(remove(w));
      } else if (o_.whereabouts) {
        say("kept " + w + ": it is not ours (use --force to remove it)");
      }
    }
    bool ours = false;
    if (lstat_path(ipoib)) {
      IPOIB_TRY_ASSIGN(ours, is_ours(ipoib));
    }
    return remove_if_ours(ipoib, ours, "it is not an ipoib-cni build");
  }

  // --- example configurations -------------------------------------------------------------
  static bool is_example(std::string_view name) {
    for (std::string_view ext : {".yaml", ".conf", ".conflist", ".json"}) {
      if (name.size() > ext.size() && name.substr(name.size() - ext.size()) == ext) {
        return true;
      }
    }
    return false;
  }

  // Every example file below `dir`, as paths relative to `base`, sorted.
  static Status collect(const std::string& base, const std::string& rel,
                        std::vector<std::string>& out) {
    const std::string dir = join(base, rel);
    IPOIB_TRY_ASSIGN(
        std::optional<std::vector<std::string>> names,
        list_directory_if_exists(AT_FDCWD, dir, ErrorCode::kIoFailure, FollowSymlinks::kYes));
    if (!names) {
      return ok_status();  // no examples there
    }
    for (const std::string& name : *names) {
      const auto st = lstat_path(join(dir, name));
      if (st && S_ISDIR(st->st_mode)) {
        IPOIB_TRY(collect(base, join(rel, name), out));
      } else if (st && S_ISREG(st->st_mode) && is_example(name)) {
        out.push_back(join(rel, name));
      }
    }
    return ok_status();
  }

  Status do_conf() {
    if (o_.conf_src.empty()) {
      return Error(ErrorCode::kInvalidEnvironment,
                   "--conf needs --conf-src DIR (the directory holding nad/ and cni/)");
    }
    const auto src_st = lstat_path(o_.conf_src);
    if (!o_.uninstall && (!src_st || !S_ISDIR(src_st->st_mode))) {
      return Error(ErrorCode::kIoFailure, "configuration sources " + o_.conf_src + " not found");
    }
    const std::string dest = under(o_.conf_dir);
    std::vector<std::string> files;
    for (const char* sub : {"nad", "cni"}) {
      IPOIB_TRY(collect(o_.conf_src, sub, files));
    }
    for (const std::string& rel : files) {
      const std::string from = join(o_.conf_src, rel);
      const std::string to = join(dest, rel);
      if (o_.uninstall) {
        Fd fd(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
        bool same = false;
        if (fd.valid() && lstat_path(to)) {
          const auto held = detail::same_bytes(to, fd);
          same = held.ok() && *held;
        }
        IPOIB_TRY(remove_if_ours(to, same, "it differs from " + from));
        continue;
      }
      Fd fd(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
      struct stat st {};
      if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
        return errno_error(ErrorCode::kIoFailure, "open " + from);
      }
      IPOIB_TRY_ASSIGN(const bool copied, install_file(fd, st, from, to, kTextMode));
      (void)copied;
    }
    if (o_.uninstall && !o_.dry_run) {
      for (const std::string& d : {dest + "/nad", dest + "/cni", dest}) {
        ::rmdir(d.c_str());  // only when empty; what is left there is not ours
      }
    }
    return ok_status();
  }

  // --- memlock for the container runtimes ---------------------------------------------------
  Status do_memlock() {
    std::vector<Runtime> changed;
    for (Runtime r : o_.runtimes) {
      const std::string f = under("/etc/systemd/system/" + std::string(unit_of(r)) + ".d/" +
                                  std::string(kMemlockDropinName));
      if (o_.uninstall) {
        bool ours = false;
        if (lstat_path(f)) {
          IPOIB_TRY_ASSIGN(ours, detail::holds_text(f, memlock_dropin_text()));
        }
        IPOIB_TRY(remove_if_ours(f, ours, "it is not the drop-in this command writes"));
        if (!o_.dry_run) {
          ::rmdir(detail::dir_name(f).c_str());  // only when empty
        }
        continue;
      }
      IPOIB_TRY_ASSIGN(bool did, write_text(f, memlock_dropin_text(), kTextMode));
      if (did) {
        changed.push_back(r);
      }
    }
    IPOIB_TRY(reload_systemd());
    if (o_.uninstall) {
      return ok_status();
    }
    if (changed.empty()) {
      say("memlock drop-ins already in place");
      return ok_status();
    }
    say("the runtimes keep their old limit until restarted; this command never restarts them.");
    say("When convenient (running containers of that runtime may be affected), run:");
    for (Runtime r : changed) {
      say("    systemctl restart " + std::string(unit_of(r)));
    }
    say("docker: containers get the limit with dockerd --default-ulimit memlock=-1:-1 (or");
    say("    \"default-ulimits\" in /etc/docker/daemon.json); CRI-O: default_ulimits = "
        "[\"memlock=-1:-1\"]");
    say("    in crio.conf is the per-container equivalent. Then check the node with: ipoib doctor");
    return ok_status();
  }

  // `systemctl daemon-reload`, only on the real root with systemd running.
  Status reload_systemd() {
    const auto run_dir = lstat_path("/run/systemd/system");
    if (root_ != "/" || !run_dir || !S_ISDIR(run_dir->st_mode)) {
      say("not reloading systemd (--root given or systemd not running)");
      return ok_status();
    }
    if (o_.dry_run) {
      say("would run: systemctl daemon-reload");
      return ok_status();
    }
    char arg0[] = "systemctl";
    char arg1[] = "daemon-reload";
    char* argv[] = {arg0, arg1, nullptr};
    pid_t pid = 0;
    const int err = ::posix_spawnp(&pid, "systemctl", nullptr, nullptr, argv, environ);
    if (err != 0) {
      say("not reloading systemd: systemctl: " + errno_string(err));
      return ok_status();
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Error(ErrorCode::kIoFailure, "systemctl daemon-reload failed");
    }
    say("ran systemctl daemon-reload");
    return ok_status();
  }

  // --- the flat file that names the cluster store -------------------------------------------
  struct TlsCopy {
    std::string from;  // in the Secret's directory
    std::string to;    // under root
  };

  // Fills the etcd_*_file keys of `spec` with the node paths of the Secret's files that exist.
  Result<std::vector<TlsCopy>> plan_tls(StoreSpec& spec) const {
    std::vector<TlsCopy> copies;
    if (o_.etcd_tls_dir.empty()) {
      return copies;
    }
    struct SecretFile {
      const char* name;
      std::string* key;
      bool secret;  // held to the client's 0600 rule before it is copied
    };
    const SecretFile files[] = {{"ca.crt", &spec.etcd_ca_file, false},
                                {"tls.crt", &spec.etcd_cert_file, false},
                                {"tls.key", &spec.etcd_key_file, true},
                                {"password", &spec.etcd_password_file, true}};
    for (const auto& [name, key, secret] : files) {
      const std::string from = join(o_.etcd_tls_dir, name);
      struct stat st {};
      if (::stat(from.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        continue;  // Secret volumes hold symlinks to the files: stat follows them
      }
      if (secret && !o_.uninstall) {
        // The plugin would read the node's 0600 copy either way; a Secret that others can read
        // is exposed on the node (kubelet's volume directory), so it is refused here, by the
        // rule the etcd client applies to what it reads.
        const auto held = etcd::read_private_file(from, name);
        if (!held.ok()) {
          return Error(ErrorCode::kIoFailure,
                       "--etcd-tls-dir: " + held.error().msg() +
                           " (a Secret volume: set its defaultMode: 0600, or 0400)");
        }
      }
      if (!key->empty()) {
        return Error(ErrorCode::kIoFailure, "--etcd-tls-dir " + o_.etcd_tls_dir + " holds " + name +
                                                " and an option names that file too");
      }
      *key = join(kEtcdTlsHostDir, name);
      copies.push_back({from, under(*key)});
    }
    if (copies.empty() || spec.etcd_cert_file.empty() != spec.etcd_key_file.empty()) {
      return Error(ErrorCode::kIoFailure,
                   "--etcd-tls-dir " + o_.etcd_tls_dir +
                       ": needs tls.crt and tls.key together, or ca.crt, or password");
    }
    if (!spec.etcd_password_file.empty() && spec.etcd_username.empty()) {
      return Error(ErrorCode::kIoFailure, "--etcd-tls-dir " + o_.etcd_tls_dir +
                                              ": holds a password: --etcd-username names its user");
    }
    return copies;
  }

  Status do_flat_file() {
    const std::string f = under(o_.flat_file);
    StoreSpec spec = o_.store ? *o_.store : StoreSpec{};
    IPOIB_TRY_ASSIGN(const std::vector<TlsCopy> tls, plan_tls(spec));
    const std::string text = o_.store ? flat_file_text(spec) : std::string();
    bool same = false;
    if (lstat_path(f) && o_.store) {
      auto held = detail::holds_text(f, text);
      same = held.ok() && *held;
    }
    if (!o_.uninstall && lstat_path(f) && !same) {
      if (!o_.force) {
        return Error(ErrorCode::kIoFailure,
                     f + " exists and names a different store: not replacing it without "
                         "--force (--force --dry-run shows the new text)");
      }
      say("replacing " + f + ", which names a different store (--force)");
    }
    for (const TlsCopy& c : tls) {
      Fd fd(::open(c.from.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
      struct stat st {};
      if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
        return errno_error(ErrorCode::kIoFailure, "open " + c.from);
      }
      if (o_.uninstall) {
        bool ours = false;
        if (lstat_path(c.to)) {
          const auto held = detail::same_bytes(c.to, fd);
          ours = held.ok() && *held;
        }
        IPOIB_TRY(remove_if_ours(c.to, ours, "it differs from " + c.from));
        continue;
      }
      // The node's copy follows the Secret (certificate rotation): replaced when it differs.
      IPOIB_TRY_ASSIGN(const bool copied, install_file(fd, st, c.from, c.to, kFlatFileMode));
      (void)copied;
    }
    if (o_.uninstall) {
      if (!tls.empty() && !o_.dry_run) {
        ::rmdir(under(kEtcdTlsHostDir).c_str());  // only when empty
      }
      return remove_if_ours(f, same, "it is not what these store options write");
    }
    IPOIB_TRY_ASSIGN(bool changed, write_text(f, text, kFlatFileMode));
    (void)changed;
    return ok_status();
  }

  const Options& o_;
  std::ostream& out_;
  std::string root_;
  Fd source_;
  struct stat source_st_ {};
  std::string source_name_;
};

}  // namespace

Status run_install(const Options& opts, std::ostream& out) { return Installer(opts, out).run(); }

}  // namespace ipoib::install
