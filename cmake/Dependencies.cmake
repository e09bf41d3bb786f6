# Finds every dependency and exposes each as one target the rest of the build links:
#   moe::kokkos  moe::mpi  moe::hdf5  moe::toml  moe::blas  (+ moe::cuda_libs when CUDA is on),
#   nlohmann_json::nlohmann_json  CLI11::CLI11
# Debian 12's packaged CMake configs for Kokkos (Trilinos 13.2) and TOML++ 3.3 export targets
# whose INTERFACE_INCLUDE_DIRECTORIES point at <prefix>/include while the headers live
# elsewhere (Kokkos: /usr/include/trilinos). This file is the one place that works around it:
# when the exported include dir does not exist we build the target from the package variables.

# --- Kokkos -------------------------------------------------------------------------------
find_package(Kokkos REQUIRED)
add_library(moe_kokkos INTERFACE)
add_library(moe::kokkos ALIAS moe_kokkos)
set(_moe_kokkos_ok FALSE)
if(TARGET Kokkos::kokkos)
  get_target_property(_kinc Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  set(_moe_kokkos_ok TRUE)
  if(NOT _kinc)  # Kokkos 4.x: the include dirs come with the linked component targets
    set(_kinc "")
  endif()
  foreach(_d IN LISTS _kinc)
    if(NOT _d MATCHES "^\\$<" AND NOT EXISTS "${_d}")
      set(_moe_kokkos_ok FALSE)
    endif()
  endforeach()
endif()
if(_moe_kokkos_ok)
  target_link_libraries(moe_kokkos INTERFACE Kokkos::kokkos)
else()
  # Debian's TriBITS export: include dir from Kokkos_INCLUDE_DIRS, plain library names.
  message(STATUS "moe-suite: Kokkos target include dir is broken; using Kokkos_INCLUDE_DIRS=${Kokkos_INCLUDE_DIRS}")
  target_include_directories(moe_kokkos SYSTEM INTERFACE ${Kokkos_INCLUDE_DIRS})
  target_link_libraries(moe_kokkos INTERFACE ${Kokkos_LIBRARIES} ${Kokkos_TPL_LIBRARIES})
endif()
set(MOE_KOKKOS_CUDA OFF)
if(Kokkos_ENABLE_CUDA OR Kokkos_DEVICES MATCHES "CUDA")
  set(MOE_KOKKOS_CUDA ON)
endif()
message(STATUS "moe-suite: Kokkos ${Kokkos_VERSION} (CUDA backend: ${MOE_KOKKOS_CUDA})")

# --- MPI (MPICH on Debian) -----------------------------------------------------------------
find_package(MPI REQUIRED COMPONENTS C)
add_library(moe_mpi INTERFACE)
add_library(moe::mpi ALIAS moe_mpi)
target_link_libraries(moe_mpi INTERFACE MPI::MPI_C)

# --- HDF5 (parallel build, C API) ----------------------------------------------------------
set(HDF5_PREFER_PARALLEL ON)
find_package(HDF5 REQUIRED COMPONENTS C)
add_library(moe_hdf5 INTERFACE)
add_library(moe::hdf5 ALIAS moe_hdf5)
target_include_directories(moe_hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_link_libraries(moe_hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)
target_compile_definitions(moe_hdf5 INTERFACE ${HDF5_C_DEFINITIONS} ${HDF5_DEFINITIONS})
message(STATUS "moe-suite: HDF5 ${HDF5_VERSION} (parallel: ${HDF5_IS_PARALLEL})")

# --- TOML++ (compiled library on Debian) ---------------------------------------------------
find_package(tomlplusplus QUIET)
find_path(MOE_TOML_INCLUDE toml++/toml.h REQUIRED)
find_library(MOE_TOML_LIB tomlplusplus)
add_library(moe_toml INTERFACE)
add_library(moe::toml ALIAS moe_toml)
target_include_directories(moe_toml SYSTEM INTERFACE ${MOE_TOML_INCLUDE})
if(MOE_TOML_LIB)
  target_link_libraries(moe_toml INTERFACE ${MOE_TOML_LIB})
  target_compile_definitions(moe_toml INTERFACE TOML_HEADER_ONLY=0)
endif()

# --- nlohmann-json (study index, every JSON) and CLI11 (command lines): header-only ---------
find_package(nlohmann_json 3.9 REQUIRED)
find_package(CLI11 2.1 REQUIRED)

# --- BLAS (CBLAS): OpenBLAS by default, or BLIS ----------------------------------------------
# The host gemm path calls CBLAS; MOE_BLAS picks the library (README, Performance: OpenBLAS was
# the faster on the development machine). Debian: libopenblas-dev, or libblis-dev.
set(MOE_BLAS "openblas" CACHE STRING "CBLAS library for the host gemm path: openblas or blis")
set_property(CACHE MOE_BLAS PROPERTY STRINGS openblas blis)
if(MOE_BLAS STREQUAL "openblas")
  find_path(MOE_OPENBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas-pthread openblas REQUIRED)
  find_library(MOE_OPENBLAS_LIB NAMES openblas blas REQUIRED)
  set(_moe_cblas_include ${MOE_OPENBLAS_INCLUDE})
  set(_moe_blas_lib ${MOE_OPENBLAS_LIB})
elseif(MOE_BLAS STREQUAL "blis")
  set(_moe_blis_dirs blis-openmp blis-pthread blis-serial blis)
  find_path(MOE_BLIS_INCLUDE cblas.h PATH_SUFFIXES ${_moe_blis_dirs} REQUIRED)
  find_library(MOE_BLIS_LIB NAMES blis PATH_SUFFIXES ${_moe_blis_dirs} REQUIRED)
  set(_moe_cblas_include ${MOE_BLIS_INCLUDE})
  set(_moe_blas_lib ${MOE_BLIS_LIB})
else()
  message(FATAL_ERROR "MOE_BLAS is '${MOE_BLAS}'; allowed: openblas, blis")
endif()
message(STATUS "moe-suite: BLAS ${MOE_BLAS} (${_moe_blas_lib})")
add_library(moe_blas INTERFACE)
add_library(moe::blas ALIAS moe_blas)
target_include_directories(moe_blas SYSTEM INTERFACE ${_moe_cblas_include})
target_link_libraries(moe_blas INTERFACE ${_moe_blas_lib})
target_compile_definitions(moe_blas INTERFACE MOE_BLAS_VENDOR="${MOE_BLAS}")

# --- CUDA libraries (optional: only with a CUDA-enabled Kokkos) ----------------------------
add_library(moe_cuda_libs INTERFACE)
add_library(moe::cuda_libs ALIAS moe_cuda_libs)
if(MOE_KOKKOS_CUDA AND MOE_ENABLE_CUBLAS)
  find_package(CUDAToolkit REQUIRED)
  target_link_libraries(moe_cuda_libs INTERFACE CUDA::cublas)
  target_compile_definitions(moe_cuda_libs INTERFACE MOE_HAVE_CUBLAS=1)
  set(_moe_nccl "off (MOE_ENABLE_NCCL=OFF)")
  if(MOE_ENABLE_NCCL)
    find_library(MOE_NCCL_LIB nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
    set(_moe_nccl "not found: the token exchange runs over MPI")
    if(MOE_NCCL_LIB)
      target_link_libraries(moe_cuda_libs INTERFACE ${MOE_NCCL_LIB})
      target_compile_definitions(moe_cuda_libs INTERFACE MOE_HAVE_NCCL=1)
      set(_moe_nccl "${MOE_NCCL_LIB}")
    endif()
  endif()
  message(STATUS "moe-suite: cuBLAS on, NCCL: ${_moe_nccl}")
endif()

# --- GoogleTest ----------------------------------------------------------------------------
if(MOE_ENABLE_TESTS)
  find_package(GTest REQUIRED)
endif()

# --- SentencePiece (tokenizers for text corpora; Debian libsentencepiece-dev) ---------------
# Debian ships no CMake config for it: headers in the include path, two plain libraries.
find_path(MOE_SPM_INCLUDE sentencepiece_processor.h REQUIRED)
find_path(MOE_SPM_TRAIN_INCLUDE sentencepiece_trainer.h REQUIRED)
find_library(MOE_SPM_LIB sentencepiece REQUIRED)
find_library(MOE_SPM_TRAIN_LIB sentencepiece_train REQUIRED)
add_library(moe_sentencepiece INTERFACE)
add_library(moe::sentencepiece ALIAS moe_sentencepiece)
target_include_directories(moe_sentencepiece SYSTEM INTERFACE ${MOE_SPM_INCLUDE}
                           ${MOE_SPM_TRAIN_INCLUDE})
target_link_libraries(moe_sentencepiece INTERFACE ${MOE_SPM_TRAIN_LIB} ${MOE_SPM_LIB})
message(STATUS "moe-suite: SentencePiece ${MOE_SPM_LIB}")
