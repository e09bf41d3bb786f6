// Temporary device storage for kernels that work in two passes (partial sums, then their
// total): one grow-only array per (scalar type, tag), kept across calls so that a training step
// allocates nothing, and freed by Kokkos::finalize. Kernels are issued from one host thread.
#pragma once

#include "common.hpp"

namespace moe {

enum class WorkspaceTag { LayernormPartials, Ones };

// At least n elements of the (Real, Tag) workspace; contents are whatever the last user left,
// unless *fresh (when given) is set: then the array was just allocated, uninitialised.
template <class Real, WorkspaceTag Tag>
View1<Real> workspace(Index n, bool* fresh = nullptr) {
  if (fresh) *fresh = false;
  static Buffer<Real>* buf = nullptr;
  if (!buf) {
    buf = new Buffer<Real>();
    Kokkos::push_finalize_hook([] {
      delete buf;
      buf = nullptr;
    });
  }
  if (Index(buf->extent(0)) < n) {
    *buf = Buffer<Real>();  // free the old array before allocating the larger one
    *buf = Buffer<Real>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "moe::workspace"), n);
    if (fresh) *fresh = true;
  }
  return View1<Real>(buf->data(), n);
}

}  // namespace moe
