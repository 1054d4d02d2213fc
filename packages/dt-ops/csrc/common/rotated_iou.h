// IoU of rotated boxes (cx, cy, w, h, angle in degrees, counter-clockwise), detectron2's algorithm:
// clip the two rectangles (edge intersections + contained corners), order the points by a Graham
// scan and take the polygon area. Host and device share this code.
#pragma once
#include "common/macros.h"

namespace dt {

template <typename T>
struct Point {
  T x, y;
};

template <typename T>
DT_HD Point<T> operator+(Point<T> a, Point<T> b) { return {a.x + b.x, a.y + b.y}; }
template <typename T>
DT_HD Point<T> operator-(Point<T> a, Point<T> b) { return {a.x - b.x, a.y - b.y}; }
template <typename T>
DT_HD Point<T> scaled(Point<T> a, T s) { return {a.x * s, a.y * s}; }
template <typename T>
DT_HD T dot2(Point<T> a, Point<T> b) { return a.x * b.x + a.y * b.y; }
template <typename T>
DT_HD T cross2(Point<T> a, Point<T> b) { return a.x * b.y - b.x * a.y; }

template <typename T>
struct RotatedBox {
  T cx, cy, w, h, a;
};

template <typename T>
DT_HD void rotated_vertices(const RotatedBox<T>& b, Point<T>* pts) {
  const double theta = b.a * 0.01745329251;  // degrees to radians, as detectron2
  const T c = static_cast<T>(cos(theta)) * 0.5f;
  const T s = static_cast<T>(sin(theta)) * 0.5f;
  // Counter-clockwise in image coordinates (x right, y down).
  pts[0] = {b.cx + s * b.h + c * b.w, b.cy + c * b.h - s * b.w};
  pts[1] = {b.cx - s * b.h + c * b.w, b.cy - c * b.h - s * b.w};
  pts[2] = {T(2) * b.cx - pts[0].x, T(2) * b.cy - pts[0].y};
  pts[3] = {T(2) * b.cx - pts[1].x, T(2) * b.cy - pts[1].y};
}

// Corners of each rectangle inside the other plus edge-edge crossings; at most 24 points.
template <typename T>
DT_HD int rect_intersection_points(const Point<T>* p1, const Point<T>* p2, Point<T>* out) {
  const T eps = T(1e-5);
  Point<T> v1[4], v2[4];
  for (int i = 0; i < 4; ++i) {
    v1[i] = p1[(i + 1) % 4] - p1[i];
    v2[i] = p2[(i + 1) % 4] - p2[i];
  }
  int n = 0;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const T det = cross2(v2[j], v1[i]);
      if (fabs(det) <= 1e-14) continue;
      const Point<T> d = p2[j] - p1[i];
      const T t1 = cross2(v2[j], d) / det;
      const T t2 = cross2(v1[i], d) / det;
      if (t1 > -eps && t1 < T(1) + eps && t2 > -eps && t2 < T(1) + eps) out[n++] = p1[i] + scaled(v1[i], t1);
    }
  }
  for (int pass = 0; pass < 2; ++pass) {
    const Point<T>* inner = pass == 0 ? p1 : p2;
    const Point<T>* outer = pass == 0 ? p2 : p1;
    const Point<T> ab = outer[1] - outer[0];
    const Point<T> da = outer[0] - outer[3];
    const T ab_ab = dot2(ab, ab), ad_ad = dot2(da, da);
    for (int i = 0; i < 4; ++i) {
      const Point<T> ap = inner[i] - outer[0];
      const T ap_ab = dot2(ap, ab);
      const T ap_ad = -dot2(ap, da);
      if (ap_ab > -eps && ap_ad > -eps && ap_ab < ab_ab + eps && ap_ad < ad_ad + eps) out[n++] = inner[i];
    }
  }
  return n;
}

// Convex hull (Graham scan) of p[0..n), written to q relative to the lowest point; returns its size.
template <typename T>
DT_HD int convex_hull_graham(const Point<T>* p, int n, Point<T>* q) {
  int t = 0;
  for (int i = 1; i < n; ++i) {
    if (p[i].y < p[t].y || (p[i].y == p[t].y && p[i].x < p[t].x)) t = i;
  }
  const Point<T> start = p[t];
  for (int i = 0; i < n; ++i) q[i] = p[i] - start;
  const Point<T> tmp = q[0];
  q[0] = q[t];
  q[t] = tmp;
  // Sort q[1..n) by polar angle, nearer first on collinear points (insertion sort: n <= 24).
  for (int i = 2; i < n; ++i) {
    const Point<T> key = q[i];
    int j = i - 1;
    while (j >= 1) {
      const T c = cross2(key, q[j]);
      const bool before = fabs(c) < 1e-6 ? dot2(key, key) < dot2(q[j], q[j]) : c > 0;
      if (!before) break;
      q[j + 1] = q[j];
      --j;
    }
    q[j + 1] = key;
  }
  int k = 1;
  while (k < n && dot2(q[k], q[k]) <= 1e-8) ++k;
  if (k == n) return 1;
  q[1] = q[k];
  int m = 2;
  for (int i = k + 1; i < n; ++i) {
    while (m > 1) {
      const Point<T> a = q[i] - q[m - 2], b = q[m - 1] - q[m - 2];
      if (a.x * b.y >= b.x * a.y) --m;
      else break;
    }
    q[m++] = q[i];
  }
  return m;
}

template <typename T>
DT_HD T polygon_area(const Point<T>* q, int m) {
  if (m <= 2) return T(0);
  T area = T(0);
  for (int i = 1; i < m - 1; ++i) area += fabs(cross2(q[i] - q[0], q[i + 1] - q[0]));
  return area / T(2);
}

template <typename T>
DT_HD T rotated_boxes_intersection(const RotatedBox<T>& a, const RotatedBox<T>& b) {
  Point<T> pa[4], pb[4], pts[24], hull[24];
  rotated_vertices(a, pa);
  rotated_vertices(b, pb);
  const int n = rect_intersection_points(pa, pb, pts);
  if (n <= 2) return T(0);
  const int m = convex_hull_graham(pts, n, hull);
  return polygon_area(hull, m);
}

// IoU of two boxes given as 5 numbers; the centers are shifted to their midpoint for precision.
template <typename T>
DT_HD T rotated_iou(const T* b1, const T* b2) {
  const T sx = (b1[0] + b2[0]) / T(2.0), sy = (b1[1] + b2[1]) / T(2.0);
  const RotatedBox<T> a{b1[0] - sx, b1[1] - sy, b1[2], b1[3], b1[4]};
  const RotatedBox<T> b{b2[0] - sx, b2[1] - sy, b2[2], b2[3], b2[4]};
  const T area1 = a.w * a.h, area2 = b.w * b.h;
  if (area1 < T(1e-14) || area2 < T(1e-14)) return T(0);
  const T inter = rotated_boxes_intersection(a, b);
  return inter / (area1 + area2 - inter);
}

}  // namespace dt
