// A dependency-free parallel_for: on torch's own OpenMP team when dt_ops found it loaded, else on
// std::threads.
//
// Why not link OpenMP: torch wheels bundle their own OpenMP runtime; a second one (libgomp/libomp)
// linked into this extension would oversubscribe cores and can crash when both initialise, and it would
// tie the wheel to one toolchain's runtime. Instead dt_ops, at import, looks up the runtime torch loaded
// and hands its entry points to use_openmp_runtime (GOMP_parallel is the ABI that libgomp, Intel's
// libiomp5 and LLVM's libomp all export). Reusing torch's team matters: a std::thread started right
// after a torch op waits up to milliseconds for its core, where OpenMP's worker still spin-waits.
// Without the runtime, threads are started per call (tens of microseconds) and only when the work is
// large enough (`min_per_thread` items per thread), so there is no global pool that could deadlock
// after fork() (DataLoader workers). The thread count is passed in from Python
// (torch.get_num_threads()), so torch.set_num_threads() governs these kernels too.
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace dt {

// The threads worth starting for a kernel of `work` inner steps (bilinear taps, box pairs, ...): one
// below 2^21 steps. Measured in a Mask R-CNN: a thread started right after a torch op waits up to
// milliseconds for its core, where OpenMP's worker still spin-waits, so a 0.2 ms ROIAlign of a few
// boxes took 2-4 ms with two threads; serially it takes its 0.2 ms.
inline int threads_for_work(int64_t work, int num_threads) {
  constexpr int64_t kSerialWork = int64_t(1) << 21;
  return work < kSerialWork ? 1 : num_threads;
}

// The OpenMP runtime torch loaded, or null entries: std::threads are used instead.
struct OpenMPRuntime {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned) = nullptr;  // GOMP_parallel
  int (*thread_num)() = nullptr;                                           // omp_get_thread_num
  int (*num_threads)() = nullptr;                                          // omp_get_num_threads
};
inline OpenMPRuntime openmp_runtime;

inline void use_openmp_runtime(void* parallel, void* thread_num, void* num_threads) {
  openmp_runtime.parallel = reinterpret_cast<void (*)(void (*)(void*), void*, unsigned, unsigned)>(parallel);
  openmp_runtime.thread_num = reinterpret_cast<int (*)()>(thread_num);
  openmp_runtime.num_threads = reinterpret_cast<int (*)()>(num_threads);
}

template <typename Fn>
struct OpenMPTask {
  int64_t n;
  const Fn* fn;
  std::vector<std::exception_ptr>* errors;  // one per requested thread; the team may be smaller
};

// Runs on every thread of the OpenMP team: its contiguous chunk of [0, n).
template <typename Fn>
void run_openmp_chunk(void* data) {
  const auto* task = static_cast<const OpenMPTask<Fn>*>(data);
  const int64_t thread = openmp_runtime.thread_num(), team = openmp_runtime.num_threads();
  const int64_t chunk = (task->n + team - 1) / team;
  const int64_t begin = thread * chunk, end = std::min(task->n, begin + chunk);
  if (begin >= end) return;
  try {
    (*task->fn)(begin, end);
  } catch (...) {
    (*task->errors)[thread] = std::current_exception();
  }
}

// Calls fn(begin, end) on disjoint contiguous chunks covering [0, n), from up to num_threads threads.
template <typename Fn>
void parallel_for(int64_t n, int num_threads, int64_t min_per_thread, const Fn& fn) {
  if (n <= 0) return;
  const int64_t by_work = std::max<int64_t>(1, n / std::max<int64_t>(1, min_per_thread));
  const int threads = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), by_work));
  if (threads <= 1) {
    fn(int64_t(0), n);
    return;
  }
  std::vector<std::exception_ptr> errors(threads);
  if (openmp_runtime.parallel != nullptr) {
    const OpenMPTask<Fn> task{n, &fn, &errors};
    openmp_runtime.parallel(&run_openmp_chunk<Fn>, const_cast<OpenMPTask<Fn>*>(&task), threads, 0);
    for (auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
    return;
  }
  const int64_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) {
    const int64_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    workers.emplace_back([&fn, &errors, t, begin, end] {
      try {
        fn(begin, end);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  try {
    fn(int64_t(0), std::min(n, chunk));
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& w : workers) w.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace dt
