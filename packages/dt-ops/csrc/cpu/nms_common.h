// Greedy non-maximum suppression shared by the axis-aligned and rotated variants.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cpu/parallel.h"

namespace dt::cpu {

// Indices sorted by decreasing score, ties by lower index, NaN first (torch.sort(descending, stable)).
template <typename T>
std::vector<int64_t> score_order(const T* scores, int64_t n) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [scores](int64_t a, int64_t b) {
    const T sa = scores[a], sb = scores[b];
    if (std::isnan(sa)) return !std::isnan(sb);
    if (std::isnan(sb)) return false;
    return sa > sb;
  });
  return order;
}

// Greedy NMS over positions [0, n) of boxes sorted by score. suppress(i, lo, hi, removed) marks the
// positions j in [lo, hi) that box i suppresses. Within a block of positions the greedy runs
// serially; the kept boxes of a block then suppress all later positions in parallel.
template <typename Suppress>
void greedy_nms_sorted(int64_t n, const Suppress& suppress, uint8_t* removed, uint8_t* kept, int threads) {
  constexpr int64_t kBlock = 256;
  std::vector<int64_t> block_kept;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = std::min(n, b0 + kBlock);
    block_kept.clear();
    for (int64_t i = b0; i < b1; ++i) {
      if (removed[i]) continue;
      kept[i] = 1;
      block_kept.push_back(i);
      suppress(i, i + 1, b1, removed);
    }
    if (b1 == n || block_kept.empty()) continue;
    const int64_t min_rows = std::max<int64_t>(1, 16384 / static_cast<int64_t>(block_kept.size()));
    parallel_for(n - b1, threads, min_rows, [&](int64_t lo, int64_t hi) {
      for (const int64_t i : block_kept) suppress(i, b1 + lo, b1 + hi, removed);
    });
  }
}

// Runs NMS per class: order is split (stably) into runs of equal idxs, which are processed in
// parallel. make_suppress(begin) returns the suppress functor for the run starting at `begin` of the
// class-grouped order (positions are relative to the run). Writes the kept original indices in
// decreasing score order to keep and returns their count.
template <typename T, typename MakeSuppress>
int64_t nms_driver(const T* scores, const int64_t* idxs, int64_t n, int64_t* keep, int threads,
                   const MakeSuppress& make_suppress_for) {
  const std::vector<int64_t> order = score_order(scores, n);
  std::vector<int64_t> grouped = order;
  if (idxs != nullptr) {
    std::stable_sort(grouped.begin(), grouped.end(), [idxs](int64_t a, int64_t b) { return idxs[a] < idxs[b]; });
  }
  std::vector<int64_t> starts{0};
  for (int64_t p = 1; p < n; ++p) {
    if (idxs != nullptr && idxs[grouped[p]] != idxs[grouped[p - 1]]) starts.push_back(p);
  }
  starts.push_back(n);
  const int64_t runs = static_cast<int64_t>(starts.size()) - 1;
  std::vector<uint8_t> removed(n, 0), kept_pos(n, 0);
  auto suppress_all = make_suppress_for(grouped);
  if (runs == 1) {
    greedy_nms_sorted(n, suppress_all.at(0), removed.data(), kept_pos.data(), threads);
  } else {
    std::atomic<int64_t> next{0};
    parallel_for(runs, threads, 4, [&](int64_t, int64_t) {
      for (int64_t r = next++; r < runs; r = next++) {
        const int64_t b = starts[r], e = starts[r + 1];
        greedy_nms_sorted(e - b, suppress_all.at(b), removed.data() + b, kept_pos.data() + b, 1);
      }
    });
  }
  std::vector<uint8_t> kept_box(n, 0);
  for (int64_t p = 0; p < n; ++p) {
    if (kept_pos[p]) kept_box[grouped[p]] = 1;
  }
  int64_t count = 0;
  for (const int64_t i : order) {
    if (kept_box[i]) keep[count++] = i;
  }
  return count;
}

}  // namespace dt::cpu
