// Portability macros shared by the CPU (.cpp) and CUDA (.cu) kernels.
#pragma once

#if defined(__CUDACC__)
#define DT_HD __host__ __device__ __forceinline__
#else
#define DT_HD inline
#endif

#include <cmath>
#include <cstdint>

namespace dt {

template <typename T>
DT_HD T dt_max(T a, T b) { return a < b ? b : a; }

template <typename T>
DT_HD T dt_min(T a, T b) { return b < a ? b : a; }

}  // namespace dt
