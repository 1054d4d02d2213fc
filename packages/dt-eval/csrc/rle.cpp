// Run-length-encoded masks, rounding and tie behaviour identical to pycocotools' maskApi.c
// (rasterization by 5x upsampling along polygon edges, LEB128-like strings, union merge,
// bounding boxes that skip empty foreground runs).
#include <cmath>
#include <cstdlib>
#include <string>

#include "core.h"

namespace dt_eval {

void rle_from_poly(const double* xy, int64_t k, uint64_t h, uint64_t w, Rle& out) {
  // Scratch buffers reused across calls on the same thread.
  thread_local std::vector<int> x, y;
  thread_local std::vector<uint32_t> a;
  const double scale = 5;
  x.resize(k + 1);
  y.resize(k + 1);
  for (int64_t j = 0; j < k; ++j) x[j] = static_cast<int>(scale * xy[j * 2 + 0] + .5);
  x[k] = x[0];
  for (int64_t j = 0; j < k; ++j) y[j] = static_cast<int>(scale * xy[j * 2 + 1] + .5);
  y[k] = y[0];
  a.clear();
  const double wmax = static_cast<double>(w - 1), hd = static_cast<double>(h);
  // Walk the dense boundary points of every edge (upsampled grid) in order; wherever consecutive points
  // change column, record the crossing of the pixel column centre, downsampled to the image grid.
  // This is maskApi.c's two passes (dense points u, v, then crossings) fused into one.
  bool first = true;
  int pu = 0, pv = 0;
  auto visit = [&](int cu, int cv) {
    if (!first && cu != pu) {
      double xd = static_cast<double>(cu < pu ? cu : cu - 1);
      xd = (xd + .5) / scale - .5;
      if (std::floor(xd) == xd && xd >= 0 && xd <= wmax) {
        double yd = static_cast<double>(cv < pv ? cv : pv);
        yd = (yd + .5) / scale - .5;
        if (yd < 0)
          yd = 0;
        else if (yd > hd)
          yd = hd;
        yd = std::ceil(yd);
        a.push_back(static_cast<uint32_t>(static_cast<int>(xd) * static_cast<int>(h) + static_cast<int>(yd)));
      }
    }
    first = false;
    pu = cu;
    pv = cv;
  };
  for (int64_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    double s = dx >= dy ? static_cast<double>(ye - ys) / dx : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      for (int d = 0; d <= dx; ++d) {
        int t = flip ? dx - d : d;
        visit(t + xs, static_cast<int>(ys + s * t + .5));
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        int t = flip ? dy - d : d;
        visit(static_cast<int>(xs + s * t + .5), t + ys);
      }
    }
  }
  // Run lengths between the sorted crossing points (maskApi.c's rle encoding of y-boundary points).
  a.push_back(static_cast<uint32_t>(h * w));
  std::sort(a.begin(), a.end());
  uint32_t prev = 0;
  for (auto& val : a) {
    uint32_t t = val;
    val -= prev;
    prev = t;
  }
  out.h = h;
  out.w = w;
  out.cnts.clear();
  size_t j = 0;
  out.cnts.push_back(a[j++]);
  while (j < a.size()) {
    if (a[j] > 0) {
      out.cnts.push_back(a[j++]);
    } else {
      ++j;
      if (j < a.size()) out.cnts.back() += a[j++];
    }
  }
}

void rle_from_box(const double* bb, uint64_t h, uint64_t w, Rle& out) {
  double xs = bb[0], xe = xs + bb[2];
  double ys = bb[1], ye = ys + bb[3];
  const double xy[8] = {xs, ys, xs, ye, xe, ye, xe, ys};
  rle_from_poly(xy, 4, h, w, out);
}

bool rle_from_string(const char* s, int64_t len, uint64_t h, uint64_t w, Rle& out) {
  out.h = h;
  out.w = w;
  out.cnts.clear();
  int64_t p = 0;
  while (p < len && s[p]) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= len || !s[p]) return false;  // a count cut short
      int c = static_cast<signed char>(s[p] - 48);
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= static_cast<int64_t>(-1) << (5 * k);
    }
    size_t m = out.cnts.size();
    if (m > 2) x += static_cast<int64_t>(out.cnts[m - 2]);
    out.cnts.push_back(static_cast<uint32_t>(x));
  }
  return true;
}

void rle_merge_union(const std::vector<Rle>& parts, Rle& out) {
  if (parts.empty()) {
    out = Rle();
    return;
  }
  uint64_t h = parts[0].h, w = parts[0].w;
  if (parts.size() == 1) {
    out = parts[0];
    return;
  }
  std::vector<uint32_t> cnts(parts[0].cnts), merged;
  for (size_t i = 1; i < parts.size(); ++i) {
    const Rle& B = parts[i];
    if (B.h != h || B.w != w) {
      h = w = 0;
      cnts.clear();
      break;
    }
    const std::vector<uint32_t>& A = cnts;
    merged.clear();
    uint32_t ca = A.empty() ? 0 : A[0], cb = B.cnts.empty() ? 0 : B.cnts[0];
    bool v = false, va = false, vb = false;
    size_t a = 1, b = 1;
    uint32_t cc = 0, ct = 1;
    while (ct > 0) {
      uint32_t c = std::min(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && a < A.size()) {
        ca = A[a++];
        va = !va;
      }
      ct += ca;
      cb -= c;
      if (!cb && b < B.cnts.size()) {
        cb = B.cnts[b++];
        vb = !vb;
      }
      ct += cb;
      bool vp = v;
      v = va || vb;
      if (v != vp || ct == 0) {
        merged.push_back(cc);
        cc = 0;
      }
    }
    cnts.swap(merged);
  }
  out.h = h;
  out.w = w;
  out.cnts = std::move(cnts);
}

uint32_t rle_area(const Rle& r) {
  uint32_t a = 0;
  for (size_t j = 1; j < r.cnts.size(); j += 2) a += r.cnts[j];
  return a;
}

void rle_bbox(const Rle& r, double* bb) {
  uint32_t h = static_cast<uint32_t>(r.h), w = static_cast<uint32_t>(r.w);
  size_t m = (r.cnts.size() / 2) * 2;
  uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0;
  if (m == 0 || h == 0) {
    bb[0] = bb[1] = bb[2] = bb[3] = 0;
    return;
  }
  for (size_t j = 0; j < m; ++j) {
    uint32_t start = cc;
    cc += r.cnts[j];
    if (j % 2 == 0 || r.cnts[j] == 0) continue;
    uint32_t y_start = start % h, x_start = (start - y_start) / h;
    uint32_t y_end = (cc - 1) % h, x_end = (cc - 1 - y_end) / h;
    xs = std::min(xs, x_start);
    xe = std::max(xe, x_end);
    if (x_start < x_end) {
      ys = 0;
      ye = h - 1;
    } else {
      ys = std::min(ys, y_start);
      ye = std::max(ye, y_end);
    }
  }
  bb[0] = xs;
  bb[2] = static_cast<uint32_t>(xe - xs + 1);
  bb[1] = ys;
  bb[3] = static_cast<uint32_t>(ye - ys + 1);
}

void materialize_rles(AnnSet& s, int num_threads) {
  if (s.rle_ready) return;
  s.rle.assign(s.n, Rle());
  s.rle_bbox.assign(s.n * 4, 0.0);
  s.rle_area.assign(s.n, 0);
  s.rle_errors.assign(s.n, std::string());
  parallel_for(s.n, 256, num_threads, [&](int64_t begin, int64_t end) {
    std::vector<Rle> parts;
    for (int64_t i = begin; i < end; ++i) {
      Rle& out = s.rle[i];
      uint64_t h = s.segm_h[i], w = s.segm_w[i];
      switch (s.segm_kind[i]) {
        case kPolygons:
        case kBoxes: {
          int64_t np = s.src_end[i] - s.src_begin[i];
          parts.resize(np);
          for (int64_t q = 0; q < np; ++q) {
            int64_t p = s.src_begin[i] + q;
            const double* xy = s.coords.data() + s.poly_offsets[p];
            int64_t len = s.poly_offsets[p + 1] - s.poly_offsets[p];
            if (s.segm_kind[i] == kBoxes)
              rle_from_box(xy, h, w, parts[q]);
            else
              rle_from_poly(xy, len / 2, h, w, parts[q]);
          }
          rle_merge_union(parts, out);
          break;
        }
        case kUncompressed:
          out.h = h;
          out.w = w;
          out.cnts.assign(s.counts_src.begin() + s.src_begin[i], s.counts_src.begin() + s.src_end[i]);
          break;
        case kCompressed:
          if (!rle_from_string(s.chars.data() + s.src_begin[i], s.src_end[i] - s.src_begin[i], h, w, out))
            s.rle_errors[i] = "compressed RLE 'counts' string is truncated";
          break;
      }
      if (s.rle_errors[i].empty() && !out.cnts.empty()) {
        uint64_t total = 0;
        for (uint32_t c : out.cnts) total += c;
        if (total != out.h * out.w)
          s.rle_errors[i] = "RLE counts sum to " + std::to_string(total) + " but size is " +
                            std::to_string(out.h) + "x" + std::to_string(out.w);
      }
      rle_bbox(out, s.rle_bbox.data() + 4 * i);
      s.rle_area[i] = rle_area(out);
    }
  });
  s.rle_ready = true;
}

}  // namespace dt_eval
