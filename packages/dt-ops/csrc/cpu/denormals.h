// Flushing denormal floats to zero (x86 MXCSR flush-to-zero and denormals-are-zero) on every thread
// that runs CPU work: the calling thread and each thread of the team of parallel_for (torch's OpenMP
// team when dt_ops shares it). torch.set_flush_denormal sets only the calling thread; OpenMP workers
// started before keep computing with denormals, at a fraction of the speed.
#pragma once
#include <cstdint>

#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define DT_HAS_MXCSR 1
#endif

#include "cpu/parallel.h"

namespace dt::cpu {

// Returns false where the CPU has no such mode (nothing changed).
inline bool set_denormals_flushed(bool flushed, int threads) {
#if defined(DT_HAS_MXCSR)
  constexpr unsigned kFlushToZero = 1u << 15, kDenormalsAreZero = 1u << 6;
  auto set = [flushed](int64_t, int64_t) {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(flushed ? csr | kFlushToZero | kDenormalsAreZero : csr & ~(kFlushToZero | kDenormalsAreZero));
  };
  set(0, 1);
  parallel_for(threads, threads, 1, set);  // one item per thread of the team
  return true;
#else
  (void)flushed;
  (void)threads;
  return false;
#endif
}

}  // namespace dt::cpu
