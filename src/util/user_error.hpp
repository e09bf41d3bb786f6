// The one exception type for mistakes in the user's input: options, config and study files,
// data, output paths. what() is one line naming the input and what is allowed; every program
// maps it to that line on stderr and exit code 2 in one place (programs/run_main.hpp).
// Anything else that escapes a program (std::bad_alloc, an internal error) exits with 1.
#pragma once

#include <stdexcept>
#include <string>

namespace moe {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(one_line(message)) {}

 private:
  // Text quoted from the input (a file name, a TOML string) must not break the one line.
  static std::string one_line(std::string message) {
    for (char& ch : message)
      if (ch == '\n' || ch == '\r') ch = ' ';
    return message;
  }
};

}  // namespace moe
