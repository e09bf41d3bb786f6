#include "programs/run_main.hpp"

#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "util/user_error.hpp"

namespace moe {

namespace {

struct Report {
  int exit_code = 1;
  bool user_error = false;
  std::string line;
};

// What an escaped exception means for the user: its one line and the exit code.
Report classify(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const UserError& e) {
    return {2, true, e.what()};
  } catch (const std::bad_alloc& e) {
    return {1, false,
            std::string("out of memory (") + e.what() +
                "): the configuration needs more memory than this process could get"};
  } catch (const std::exception& e) {
    return {1, false, std::string("internal error: ") + e.what()};
  } catch (...) {
    return {1, false, "internal error: an unknown exception"};
  }
}

void print(const char* program, const std::string& rank_prefix, const std::string& line) {
  std::string text = line;
  for (char& ch : text)
    if (ch == '\n' || ch == '\r') ch = ' ';
  std::fprintf(stderr, "%s: %s%s\n", program, rank_prefix.c_str(), text.c_str());
  std::fflush(stderr);
}

}  // namespace

int run_main(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (...) {
    const Report r = classify(std::current_exception());
    print(program, "", r.line);
    return r.exit_code;
  }
}

int run_mpi_main(const char* program, int& argc, char**& argv,
                 const std::function<int(const Runtime&)>& body) {
  // Kokkos 3.4 answers a plain --help with a page of its own options: --help is the program's
  // (CLI11's), so Kokkos sees the arguments without it.
  std::vector<char*> runtime_args;
  for (int i = 0; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") != 0 && std::strcmp(argv[i], "-h") != 0)
      runtime_args.push_back(argv[i]);
  int runtime_argc = int(runtime_args.size());
  runtime_args.push_back(nullptr);
  char** runtime_argv = runtime_args.data();
  const Runtime rt(runtime_argc, runtime_argv);
  try {
    return body(rt);
  } catch (...) {
    const Report r = classify(std::current_exception());
    if (r.user_error) {
      if (rt.rank() == 0) print(program, "", r.line);
      return r.exit_code;
    }
    const bool several = rt.size() > 1;
    print(program, several ? "rank " + std::to_string(rt.rank()) + ": " : "", r.line);
    if (several) MPI_Abort(MPI_COMM_WORLD, r.exit_code);
    return r.exit_code;
  }
}

}  // namespace moe
