// dt-eval native core: COCO evaluation over flat arrays, bit-exact with pycocotools.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace dt_eval {

enum IouType : int { kBbox = 0, kSegm = 1, kKeypoints = 2 };

// Source form of one segmentation, before it is turned into RLE counts.
enum SegmKind : uint8_t { kPolygons = 0, kBoxes = 1, kUncompressed = 2, kCompressed = 3 };

// Run-length encoding in pycocotools' convention: column-major, counts alternate 0-runs and 1-runs.
struct Rle {
  uint64_t h = 0, w = 0;
  std::vector<uint32_t> cnts;
};

// Annotations of one side (ground truth or detections), flattened.
struct AnnSet {
  int64_t n = 0;
  std::string side;  // 'cocoGt' or 'cocoDt', for error messages
  std::vector<int32_t> img;      // index into the evaluated image list
  std::vector<int32_t> cat;      // index into the evaluated category list
  std::vector<int64_t> id;       // annotation id
  std::vector<double> area;      // 'area' field
  std::vector<uint8_t> iscrowd;  // int(iscrowd) != 0
  std::vector<uint8_t> ignore;   // ground truth: pycocotools' 'ignore' flag
  std::vector<double> score;     // detections: 'score'
  std::vector<double> bbox;      // [n, 4] XYWH
  int32_t num_kpts = 0;
  std::vector<double> kpts;      // [n, 3 * num_kpts]
  // Segmentation sources. src_begin/src_end index poly_offsets (polygons, boxes),
  // counts_src (uncompressed RLE) or chars (compressed RLE) depending on segm_kind.
  std::vector<uint8_t> segm_kind;
  std::vector<uint64_t> segm_h, segm_w;
  std::vector<int64_t> src_begin, src_end;
  std::vector<int64_t> poly_offsets{0};  // polygon p is coords[poly_offsets[p], poly_offsets[p + 1])
  std::vector<double> coords;
  std::vector<uint32_t> counts_src;
  std::string chars;
  // Materialized masks (segm): RLE, its bounding box [n, 4] and area.
  std::vector<Rle> rle;
  std::vector<double> rle_bbox;
  std::vector<uint32_t> rle_area;
  bool rle_ready = false;
  std::vector<std::string> rle_errors;  // per annotation: empty when the mask was decoded fine
};

struct EvalParams {
  int iou_type = kBbox;
  bool use_cats = true;
  int64_t num_images = 0;
  int64_t num_cats = 0;  // categories evaluated separately (1 when use_cats is false)
  std::vector<double> iou_thrs;
  std::vector<double> area_lo, area_hi;
  int64_t max_det = 100;
  std::vector<double> sigmas;
  bool detail = false;  // keep matches, gt order and IoU matrices for evalImgs / ious
  // Keypoints: exp(-e) of every OKS term, computed by numpy so that rounding equals pycocotools'
  // (numpy's vectorized exp is not libm's). Laid out per cell as oks_terms() returns them.
  const double* oks_exp = nullptr;
  const int64_t* oks_offsets = nullptr;
};

// OKS exponents e of every (gt, dt, keypoint) term, per cell; offsets[cells + 1].
void oks_terms(AnnSet& gt, AnnSet& dt, const EvalParams& p, int num_threads, std::vector<double>& terms,
               std::vector<int64_t>& offsets);

// Output of evaluate(): per evaluated cell (image x category) the kept detections, sorted by score.
struct EvalResult {
  int64_t num_images = 0, num_cats = 0, num_areas = 0, num_thrs = 0;
  std::vector<int64_t> dt_offsets;  // [cells + 1] into dt_index
  std::vector<int32_t> dt_index;    // detection indices, score-sorted, truncated to max_det
  std::vector<double> dt_score;     // scores of dt_index
  // codes[(a * Nkept + j) * T + t]: 0 false positive, 1 true positive, 2 ignored
  std::vector<uint8_t> codes;
  std::vector<int32_t> npig;        // [cells, A] number of non-ignored ground truths
  // Detail (evalImgs / ious).
  std::vector<int64_t> gt_offsets;  // [cells + 1] into gt_index
  std::vector<int32_t> gt_index;    // ground-truth indices of each cell, in evaluation order
  std::vector<int32_t> gt_order;    // [A, Ngt] per area: positions (within the cell) sorted by ignore
  std::vector<uint8_t> gt_ignore;   // [A, Ngt] _ignore flag of gt_order's entries
  std::vector<int32_t> match;       // [A, Nkept, T] matched position in the cell's gt list, -1 none
  std::vector<int64_t> iou_offsets; // [cells + 1] into ious
  std::vector<double> ious;         // per cell [D, G] row-major (gt in original order)
};

// Run fn(begin, end) over [0, n) in chunks on up to num_threads threads.
inline void parallel_for(int64_t n, int64_t grain, int num_threads,
                         const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int64_t chunks = (n + grain - 1) / grain;
  int threads = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), chunks));
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (;;) {
      int64_t c = next.fetch_add(1);
      if (c >= chunks) return;
      int64_t b = c * grain;
      fn(b, std::min(n, b + grain));
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

// rle.cpp
void rle_from_poly(const double* xy, int64_t k, uint64_t h, uint64_t w, Rle& out);
void rle_from_box(const double* bb, uint64_t h, uint64_t w, Rle& out);
bool rle_from_string(const char* s, int64_t len, uint64_t h, uint64_t w, Rle& out);
void rle_merge_union(const std::vector<Rle>& parts, Rle& out);
uint32_t rle_area(const Rle& r);
void rle_bbox(const Rle& r, double* bb);
void materialize_rles(AnnSet& s, int num_threads);

// evaluate.cpp
EvalResult evaluate(AnnSet& gt, AnnSet& dt, const EvalParams& p, int num_threads);

// accumulate.cpp
struct AccumulateArgs {
  std::vector<int64_t> k_list, a_list, m_list, i_list;  // as pycocotools builds them
  std::vector<double> rec_thrs;
  int64_t T = 0, R = 0, K = 0, A = 0, M = 0;
};
void accumulate(const EvalResult& ev, const AccumulateArgs& args, double* precision, double* recall,
                double* scores, int num_threads);

}  // namespace dt_eval
