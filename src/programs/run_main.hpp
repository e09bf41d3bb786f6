// The one place where what a program throws becomes its exit code and its line on stderr:
//   moe::UserError        -> "<program>: <message>", exit 2 (bad input: options, config, data)
//   std::bad_alloc        -> "<program>: out of memory (...)", exit 1
//   other std::exception  -> "<program>: internal error: <what>", exit 1
// Every program's main is one call of run_main or run_mpi_main.
#pragma once

#include <functional>

#include "parallel/runtime.hpp"

namespace moe {

// For programs without MPI or Kokkos.
int run_main(const char* program, const std::function<int()>& body);

// Starts the Runtime (MPI, then Kokkos; argv without --help, which is the program's) around body,
// so that errors are reported while MPI is still up. A UserError is the same on every rank (each
// checks the same input), so rank 0 alone prints it and every rank exits 2. Any other error may be
// on one rank only, whose partners could wait for it forever in a collective: that rank prints it
// and, when there are several ranks, ends the job with MPI_Abort.
int run_mpi_main(const char* program, int& argc, char**& argv,
                 const std::function<int(const Runtime&)>& body);

}  // namespace moe
