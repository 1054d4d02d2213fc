// Precision/recall accumulation over images, as cocoeval.accumulate computes it.
#include <cmath>
#include <limits>

#include "core.h"

namespace dt_eval {

void accumulate(const EvalResult& ev, const AccumulateArgs& args, double* precision, double* recall,
                double* scores, int num_threads) {
  const int64_t T = args.T, R = args.R, K = args.K, A = args.A, M = args.M;
  const int64_t A0 = ev.num_areas, T0 = ev.num_thrs, Kc = ev.num_cats;
  const int64_t nkept = ev.dt_offsets.empty() ? 0 : ev.dt_offsets.back();
  const double eps = std::numeric_limits<double>::epsilon();
  const int64_t nk = static_cast<int64_t>(args.k_list.size());

  parallel_for(nk, 1, num_threads, [&](int64_t begin, int64_t end) {
    struct Entry {
      double score;
      int64_t rank;  // position of the detection within its image (score order)
      int64_t pos;   // index into EvalResult's kept detections
    };
    std::vector<Entry> entries;
    std::vector<double> rc, pr, sc;
    std::vector<int64_t> kept;
    for (int64_t k = begin; k < end; ++k) {
      const int64_t k0 = args.k_list[k];
      entries.clear();
      for (int64_t i : args.i_list) {
        const int64_t cell = i * Kc + k0;
        for (int64_t j = ev.dt_offsets[cell]; j < ev.dt_offsets[cell + 1]; ++j)
          entries.push_back({ev.dt_score[j], j - ev.dt_offsets[cell], j});
      }
      std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        if (std::isnan(a.score)) return false;
        if (std::isnan(b.score)) return true;
        return a.score > b.score;
      });
      for (int64_t a = 0; a < static_cast<int64_t>(args.a_list.size()); ++a) {
        const int64_t a0 = args.a_list[a];
        int64_t npig = 0;
        for (int64_t i : args.i_list) npig += ev.npig[(i * Kc + k0) * A0 + a0];
        if (npig == 0) continue;
        for (int64_t m = 0; m < static_cast<int64_t>(args.m_list.size()); ++m) {
          const int64_t max_det = args.m_list[m];
          kept.clear();
          for (const Entry& e : entries)
            if (e.rank < max_det) kept.push_back(e.pos);
          const int64_t nd = static_cast<int64_t>(kept.size());
          rc.resize(nd);
          pr.resize(nd);
          sc.resize(nd);
          {
            int64_t j = 0;
            for (const Entry& e : entries)
              if (e.rank < max_det) sc[j++] = e.score;
          }
          for (int64_t t = 0; t < T0 && t < T; ++t) {
            int64_t tp = 0, fp = 0;
            for (int64_t j = 0; j < nd; ++j) {
              uint8_t code = ev.codes[(a0 * nkept + kept[j]) * T0 + t];
              tp += code == 1;
              fp += code == 0;
              double tpd = static_cast<double>(tp), fpd = static_cast<double>(fp);
              rc[j] = tpd / static_cast<double>(npig);
              pr[j] = tpd / (fpd + tpd + eps);
            }
            recall[((t * K + k) * A + a) * M + m] = nd ? rc[nd - 1] : 0;
            for (int64_t j = nd - 1; j > 0; --j)
              if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
            for (int64_t ri = 0; ri < R; ++ri) {
              // searchsorted(rc, thr, side='left'); thresholds are increasing in practice, but search the
              // whole range so any order works.
              const double thr = args.rec_thrs[ri];
              int64_t pi = std::lower_bound(rc.begin(), rc.end(), thr) - rc.begin();
              const int64_t out = (((t * R + ri) * K + k) * A + a) * M + m;
              if (pi < nd) {
                precision[out] = pr[pi];
                scores[out] = sc[pi];
              } else {
                // pycocotools stops filling at the first threshold beyond the last recall.
                for (int64_t rj = ri; rj < R; ++rj) {
                  const int64_t o2 = (((t * R + rj) * K + k) * A + a) * M + m;
                  precision[o2] = 0;
                  scores[o2] = 0;
                }
                break;
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace dt_eval
