// Per image x category evaluation: IoU / OKS matrices and pycocotools' greedy matching.
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "core.h"

namespace dt_eval {
namespace {

// numpy's pairwise summation of a contiguous float64 array (np.sum), reproduced for bit-exact OKS.
double numpy_sum(const double* a, int64_t n) {
  if (n < 8) {
    double r = 0.;
    for (int64_t i = 0; i < n; ++i) r += a[i];
    return r;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_sum(a, n2) + numpy_sum(a + n2, n - n2);
}

// maskApi.c bbIou: o[d * G + g] for XYWH boxes; crowd gt use the detection's area as union.
void box_iou(const AnnSet& dt, const int32_t* di, int64_t D, const AnnSet& gt, const int32_t* gi, int64_t G,
             const double* dboxes, const double* gboxes, double* o) {
  for (int64_t g = 0; g < G; ++g) {
    const double* Gb = gboxes + 4 * static_cast<int64_t>(gi[g]);
    double ga = Gb[2] * Gb[3];
    bool crowd = gt.iscrowd[gi[g]] != 0;
    for (int64_t d = 0; d < D; ++d) {
      const double* Db = dboxes + 4 * static_cast<int64_t>(di[d]);
      double da = Db[2] * Db[3];
      double& out = o[d * G + g];
      out = 0;
      double w = std::fmin(Db[2] + Db[0], Gb[2] + Gb[0]) - std::fmax(Db[0], Gb[0]);
      if (w <= 0) continue;
      double h = std::fmin(Db[3] + Db[1], Gb[3] + Gb[1]) - std::fmax(Db[1], Gb[1]);
      if (h <= 0) continue;
      double i = w * h;
      double u = crowd ? da : da + ga - i;
      out = i / u;
    }
  }
  (void)dt;
}

// maskApi.c rleIou on boxes that overlap.
void mask_iou(const AnnSet& dt, const int32_t* di, int64_t D, const AnnSet& gt, const int32_t* gi, int64_t G,
              double* o) {
  box_iou(dt, di, D, gt, gi, G, dt.rle_bbox.data(), gt.rle_bbox.data(), o);
  for (int64_t g = 0; g < G; ++g) {
    const Rle& B = gt.rle[gi[g]];
    bool crowd = gt.iscrowd[gi[g]] != 0;
    for (int64_t d = 0; d < D; ++d) {
      double& out = o[d * G + g];
      if (!(out > 0)) continue;
      const Rle& A = dt.rle[di[d]];
      if (A.h != B.h || A.w != B.w) {
        out = -1;
        continue;
      }
      size_t ka = A.cnts.size(), kb = B.cnts.size(), a = 1, b = 1;
      uint32_t ca = A.cnts[0], cb = B.cnts[0], ct = 1, inter = 0, uni = 0;
      bool va = false, vb = false;
      while (ct > 0) {
        uint32_t c = std::min(ca, cb);
        if (va || vb) {
          uni += c;
          if (va && vb) inter += c;
        }
        ct = 0;
        ca -= c;
        if (!ca && a < ka) {
          ca = A.cnts[a++];
          va = !va;
        }
        ct += ca;
        cb -= c;
        if (!cb && b < kb) {
          cb = B.cnts[b++];
          vb = !vb;
        }
        ct += cb;
      }
      if (inter == 0)
        uni = 1;
      else if (crowd)
        uni = dt.rle_area[di[d]];
      out = static_cast<double>(inter) / static_cast<double>(uni);
    }
  }
}

// cocoeval.computeOks exponents e = d^2 / vars / (area + eps) / 2 of one cell, in (g, d, keypoint)
// order; only visible keypoints when the gt has any. Returns the number of terms (out may be null).
int64_t oks_exponents(const AnnSet& dt, const int32_t* di, int64_t D, const AnnSet& gt, const int32_t* gi,
                      int64_t G, const std::vector<double>& sigmas, double* out) {
  const int64_t k = static_cast<int64_t>(sigmas.size());
  const double eps = std::numeric_limits<double>::epsilon();
  int64_t n = 0;
  for (int64_t g = 0; g < G; ++g) {
    const double* kg = gt.kpts.data() + 3 * k * gi[g];
    int64_t k1 = 0;
    for (int64_t j = 0; j < k; ++j) k1 += kg[3 * j + 2] > 0;
    if (!out) {
      n += D * (k1 > 0 ? k1 : k);
      continue;
    }
    const double* bb = gt.bbox.data() + 4 * static_cast<int64_t>(gi[g]);
    double x0 = bb[0] - bb[2], x1 = bb[0] + bb[2] * 2;
    double y0 = bb[1] - bb[3], y1 = bb[1] + bb[3] * 2;
    double area_eps = gt.area[gi[g]] + eps;
    for (int64_t d = 0; d < D; ++d) {
      const double* kd = dt.kpts.data() + 3 * k * di[d];
      for (int64_t j = 0; j < k; ++j) {
        double xd = kd[3 * j], yd = kd[3 * j + 1], dx, dy;
        if (k1 > 0) {
          if (!(kg[3 * j + 2] > 0)) continue;
          dx = xd - kg[3 * j];
          dy = yd - kg[3 * j + 1];
        } else {
          double a1 = x0 - xd, a2 = xd - x1, b1 = y0 - yd, b2 = yd - y1;
          dx = (a1 > 0 ? a1 : 0.0) + (a2 > 0 ? a2 : 0.0);
          dy = (b1 > 0 ? b1 : 0.0) + (b2 > 0 ? b2 : 0.0);
        }
        double s2 = sigmas[j] * 2;
        out[n++] = (dx * dx + dy * dy) / (s2 * s2) / area_eps / 2;
      }
    }
  }
  return n;
}

// OKS o[d * G + g] from the exp(-e) terms of one cell (same order as oks_exponents).
void oks_from_terms(const int32_t* gi, int64_t G, int64_t D, const AnnSet& gt, int64_t k, const double* ex,
                    double* o) {
  for (int64_t g = 0; g < G; ++g) {
    const double* kg = gt.kpts.data() + 3 * k * gi[g];
    int64_t k1 = 0;
    for (int64_t j = 0; j < k; ++j) k1 += kg[3 * j + 2] > 0;
    const int64_t n = k1 > 0 ? k1 : k;
    for (int64_t d = 0; d < D; ++d) {
      o[d * G + g] = numpy_sum(ex, n) / static_cast<double>(n);
      ex += n;
    }
  }
}

// Stable ordering by descending score with NaN last (numpy's mergesort of -score).
inline bool score_before(double a, double b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

// Stable counting sort of annotation indices by key in [0, nkeys); offsets[nkeys + 1].
void group_by(const std::vector<int64_t>& key, int64_t nkeys, std::vector<int64_t>& offsets,
              std::vector<int32_t>& order) {
  offsets.assign(nkeys + 1, 0);
  for (int64_t k : key) ++offsets[k + 1];
  for (int64_t c = 0; c < nkeys; ++c) offsets[c + 1] += offsets[c];
  order.resize(key.size());
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (size_t i = 0; i < key.size(); ++i) order[fill[key[i]]++] = static_cast<int32_t>(i);
}

// Group annotations into cells (image x category, or image only without categories); within a
// cell the order is category position, then annotation order, as pycocotools concatenates them.
void cells_of(const AnnSet& s, const EvalParams& p, int64_t cat_positions, std::vector<int64_t>& offsets,
              std::vector<int32_t>& order) {
  std::vector<int64_t> key(s.n);
  if (p.use_cats) {
    for (int64_t i = 0; i < s.n; ++i) key[i] = static_cast<int64_t>(s.img[i]) * p.num_cats + s.cat[i];
    group_by(key, p.num_images * p.num_cats, offsets, order);
    return;
  }
  for (int64_t i = 0; i < s.n; ++i) key[i] = static_cast<int64_t>(s.img[i]) * cat_positions + s.cat[i];
  std::vector<int64_t> fine_offsets;
  group_by(key, p.num_images * cat_positions, fine_offsets, order);
  offsets.assign(p.num_images + 1, 0);
  for (int64_t i = 0; i <= p.num_images; ++i) offsets[i] = fine_offsets[i * cat_positions];
}

struct Cells {
  std::vector<int64_t> goff, doff;
  std::vector<int32_t> gorder, dorder;
};

Cells make_cells(const AnnSet& gt, const AnnSet& dt, const EvalParams& p) {
  int64_t cat_positions = 1;
  for (int32_t c : gt.cat) cat_positions = std::max<int64_t>(cat_positions, c + 1);
  for (int32_t c : dt.cat) cat_positions = std::max<int64_t>(cat_positions, c + 1);
  Cells cells;
  cells_of(gt, p, cat_positions, cells.goff, cells.gorder);
  cells_of(dt, p, cat_positions, cells.doff, cells.dorder);
  return cells;
}

// Detections of cell c sorted by score (stable), written to out; returns the kept count.
int64_t sorted_dets(const AnnSet& dt, const Cells& cells, int64_t c, int64_t max_det, std::vector<int32_t>& out) {
  out.assign(cells.dorder.begin() + cells.doff[c], cells.dorder.begin() + cells.doff[c + 1]);
  std::stable_sort(out.begin(), out.end(),
                   [&](int32_t a, int32_t b) { return score_before(dt.score[a], dt.score[b]); });
  return std::min<int64_t>(static_cast<int64_t>(out.size()), max_det);
}

}  // namespace

void oks_terms(AnnSet& gt, AnnSet& dt, const EvalParams& p, int num_threads, std::vector<double>& terms,
               std::vector<int64_t>& offsets) {
  const int64_t ncells = p.num_images * p.num_cats;
  Cells cells = make_cells(gt, dt, p);
  offsets.assign(ncells + 1, 0);
  std::vector<int64_t> counts(ncells, 0);
  auto run = [&](bool fill) {
    parallel_for(ncells, 64, num_threads, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> ds;
      for (int64_t c = begin; c < end; ++c) {
        const int64_t G = cells.goff[c + 1] - cells.goff[c];
        if (G == 0 || !p.use_cats) continue;
        const int64_t D = sorted_dets(dt, cells, c, p.max_det, ds);
        if (D == 0) continue;
        const int32_t* gi = cells.gorder.data() + cells.goff[c];
        if (fill)
          oks_exponents(dt, ds.data(), D, gt, gi, G, p.sigmas, terms.data() + offsets[c]);
        else
          counts[c] = oks_exponents(dt, ds.data(), D, gt, gi, G, p.sigmas, nullptr);
      }
    });
  };
  run(false);
  for (int64_t c = 0; c < ncells; ++c) offsets[c + 1] = offsets[c] + counts[c];
  terms.assign(offsets[ncells], 0.0);
  run(true);
}

EvalResult evaluate(AnnSet& gt, AnnSet& dt, const EvalParams& p, int num_threads) {
  const int64_t T = static_cast<int64_t>(p.iou_thrs.size());
  const int64_t A = static_cast<int64_t>(p.area_lo.size());
  const int64_t cells = p.num_images * p.num_cats;
  if (p.iou_type == kSegm) {
    for (AnnSet* s : {&gt, &dt}) {
      materialize_rles(*s, num_threads);
      for (int64_t i = 0; i < s->n; ++i)
        if (!s->rle_errors[i].empty())
          throw std::invalid_argument(s->side + " annotation id=" + std::to_string(s->id[i]) +
                                      ": malformed 'segmentation': " + s->rle_errors[i]);
    }
  }
  if (p.iou_type == kKeypoints && p.use_cats && !p.oks_exp)
    throw std::invalid_argument("keypoint evaluation needs the exp(-e) OKS terms");
  const Cells cl = make_cells(gt, dt, p);
  const std::vector<int64_t>& goff = cl.goff;
  const std::vector<int64_t>& doff = cl.doff;
  const std::vector<int32_t>& gorder = cl.gorder;

  EvalResult r;
  r.num_images = p.num_images;
  r.num_cats = p.num_cats;
  r.num_areas = A;
  r.num_thrs = T;
  r.dt_offsets.assign(cells + 1, 0);
  for (int64_t c = 0; c < cells; ++c)
    r.dt_offsets[c + 1] = r.dt_offsets[c] + std::min<int64_t>(doff[c + 1] - doff[c], p.max_det);
  const int64_t nkept = r.dt_offsets[cells];
  const int64_t ngt = goff[cells];
  r.dt_index.resize(nkept);
  r.dt_score.resize(nkept);
  r.codes.assign(A * nkept * T, 0);
  r.npig.assign(cells * A, 0);
  if (p.detail) {
    r.gt_offsets = goff;
    r.gt_index = gorder;
    r.gt_order.assign(A * ngt, 0);
    r.gt_ignore.assign(A * ngt, 0);
    r.match.assign(A * nkept * T, -1);
    r.iou_offsets.assign(cells + 1, 0);
    for (int64_t c = 0; c < cells; ++c) {
      int64_t D = r.dt_offsets[c + 1] - r.dt_offsets[c], G = goff[c + 1] - goff[c];
      bool has = (p.iou_type == kKeypoints) ? (D > 0 && G > 0 && p.use_cats) : (D > 0 && G > 0);
      r.iou_offsets[c + 1] = r.iou_offsets[c] + (has ? D * G : 0);
    }
    r.ious.resize(r.iou_offsets[cells]);
  }

  parallel_for(cells, 64, num_threads, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> dsorted, gsorted;
    std::vector<double> iou;
    std::vector<uint8_t> gig, dig_area;
    std::vector<int64_t> gtm;
    for (int64_t c = begin; c < end; ++c) {
      const int32_t* gi = gorder.data() + goff[c];
      const int64_t G = goff[c + 1] - goff[c];
      const int64_t D0 = doff[c + 1] - doff[c];
      if (G == 0 && D0 == 0) continue;
      const int64_t D = sorted_dets(dt, cl, c, p.max_det, dsorted);
      const int64_t k0 = r.dt_offsets[c];
      for (int64_t d = 0; d < D; ++d) {
        r.dt_index[k0 + d] = dsorted[d];
        r.dt_score[k0 + d] = dt.score[dsorted[d]];
      }
      const int32_t* di = dsorted.data();
      bool has_iou = D > 0 && G > 0 && (p.iou_type != kKeypoints || p.use_cats);
      iou.assign(has_iou ? D * G : 0, 0.0);
      if (has_iou) {
        if (p.iou_type == kBbox)
          box_iou(dt, di, D, gt, gi, G, dt.bbox.data(), gt.bbox.data(), iou.data());
        else if (p.iou_type == kSegm)
          mask_iou(dt, di, D, gt, gi, G, iou.data());
        else
          oks_from_terms(gi, G, D, gt, static_cast<int64_t>(p.sigmas.size()), p.oks_exp + p.oks_offsets[c],
                         iou.data());
        if (p.detail) std::copy(iou.begin(), iou.end(), r.ious.begin() + r.iou_offsets[c]);
      }
      dig_area.resize(D);
      gig.resize(G);
      gsorted.resize(G);
      gtm.resize(G);
      for (int64_t a = 0; a < A; ++a) {
        const double lo = p.area_lo[a], hi = p.area_hi[a];
        int32_t npig = 0;
        for (int64_t g = 0; g < G; ++g) {
          double ar = gt.area[gi[g]];
          gig[g] = gt.ignore[gi[g]] || ar < lo || ar > hi;
          npig += gig[g] == 0;
        }
        r.npig[c * A + a] = npig;
        // Stable: non-ignored ground truths first.
        int64_t pos = 0;
        for (int64_t g = 0; g < G; ++g)
          if (!gig[g]) gsorted[pos++] = static_cast<int32_t>(g);
        for (int64_t g = 0; g < G; ++g)
          if (gig[g]) gsorted[pos++] = static_cast<int32_t>(g);
        for (int64_t d = 0; d < D; ++d) {
          double ar = dt.area[di[d]];
          dig_area[d] = ar < lo || ar > hi;
        }
        for (int64_t t = 0; t < T; ++t) {
          std::fill(gtm.begin(), gtm.end(), 0);
          const double thr = std::min(p.iou_thrs[t], 1 - 1e-10);
          for (int64_t d = 0; d < D; ++d) {
            int64_t m = -1;
            if (has_iou) {
              double best = thr;
              const double* row = iou.data() + d * G;
              for (int64_t s = 0; s < G; ++s) {
                int32_t g = gsorted[s];
                if (gtm[s] > 0 && !gt.iscrowd[gi[g]]) continue;
                if (m > -1 && gig[gsorted[m]] == 0 && gig[g] == 1) break;
                if (row[g] < best) continue;
                best = row[g];
                m = s;
              }
            }
            bool matched = false, ignored = false;
            if (m != -1) {
              int32_t g = gsorted[m];
              matched = gt.id[gi[g]] != 0;
              ignored = gig[g] != 0;
              gtm[m] = dt.id[di[d]];
            }
            if (!matched && dig_area[d]) ignored = true;
            const int64_t slot = (a * nkept + k0 + d) * T + t;
            r.codes[slot] = ignored ? 2 : (matched ? 1 : 0);
            if (p.detail) r.match[slot] = m == -1 ? -1 : gsorted[m];
          }
        }
        if (p.detail) {
          for (int64_t s = 0; s < G; ++s) {
            r.gt_order[a * ngt + goff[c] + s] = gsorted[s];
            r.gt_ignore[a * ngt + goff[c] + s] = gig[gsorted[s]];
          }
        }
      }
    }
  });
  return r;
}

}  // namespace dt_eval
