// Text sources; see text_source.hpp.
#include "data/text_source.hpp"

#include <glob.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "config/config.hpp"

namespace moe {

namespace {

bool is_blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\f\v") == std::string::npos;
}

// A child process's output stream, closed (and the child reaped) on every path.
class Pipe {
 public:
  explicit Pipe(const char* command) : f_(::popen(command, "r")) {}
  ~Pipe() {
    if (f_) ::pclose(f_);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  std::FILE* get() const { return f_; }
  int close() {  // the child's exit status
    const int status = ::pclose(f_);
    f_ = nullptr;
    return status;
  }

 private:
  std::FILE* f_;
};

}  // namespace

std::vector<std::string> expand_data_path(const std::string& pattern) {
  std::vector<std::string> files;
  // glob(3) sorts its matches (no GLOB_NOSORT); a plain path without wildcards matches itself
  // only when it exists. The matches are freed on every path.
  struct Matches {
    glob_t g{};
    ~Matches() { ::globfree(&g); }
  } m;
  if (::glob(pattern.c_str(), 0, nullptr, &m.g) == 0)
    for (std::size_t i = 0; i < m.g.gl_pathc; ++i) files.emplace_back(m.g.gl_pathv[i]);
  if (files.empty())
    throw UserError("data.path = \"" + pattern +
                    "\" matches no file (allowed: a file or a glob(3) pattern of files)");
  for (const std::string& f : files) {
    struct stat st;
    if (::stat(f.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      throw UserError("data.path = \"" + pattern + "\": " + f + " is not a regular file");
  }
  return files;
}

std::string files_fingerprint(const std::vector<std::string>& files) {
  std::string out;
  for (const std::string& f : files) {
    struct stat st;
    if (::stat(f.c_str(), &st) != 0) throw UserError("data.path: cannot stat " + f);
    const long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    out += f + " " + std::to_string((long long)st.st_size) + " " + std::to_string(mtime_ns) + "\n";
  }
  return out;
}

std::vector<std::string> read_text_lines(const std::vector<std::string>& files) {
  std::vector<std::string> lines;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw UserError("data.path: cannot read " + f);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!is_blank(line)) lines.push_back(line);
    }
    if (in.bad()) throw UserError("data.path: error reading " + f);
  }
  return lines;
}

std::vector<std::string> kjv_lines() {
  // 2>/dev/null: a missing program shows up as no output, reported below as one line.
  Pipe p("bible -f \"Gen1:1-Rev22:21\" 2>/dev/null");
  if (!p.get()) throw UserError("data.source = \"kjv\": cannot run the bible program");
  std::string text;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p.get())) > 0) text.append(buf, n);
  const int status = p.close();
  if (status != 0 || text.empty())
    throw UserError(
        "data.source = \"kjv\" needs the `bible` program of the Debian package bible-kjv "
        "(scripts/setup.sh installs it)");
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    // "Ge1:1 In the beginning ...": the reference is the first word and contains a ':'.
    const std::size_t space = line.find(' ');
    if (space != std::string::npos && line.find(':') < space) line.erase(0, space + 1);
    if (!is_blank(line)) lines.push_back(line);
  }
  return lines;
}

}  // namespace moe
