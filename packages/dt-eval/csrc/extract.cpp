// Reading annotation dicts (as pycocotools' COCO holds them) into flat arrays, with errors that
// name the offending annotation.
#include "extract.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace nb = nanobind;

namespace dt_eval {
namespace {

// Borrowed item of a dict, or nullptr.
PyObject* item(PyObject* dict, const char* key) { return PyDict_GetItemString(dict, key); }

std::string repr(PyObject* o) {
  if (!o) return "<missing>";
  PyObject* r = PyObject_Repr(o);
  if (!r) {
    PyErr_Clear();
    return "<unprintable>";
  }
  Py_ssize_t len = 0;
  const char* s = PyUnicode_AsUTF8AndSize(r, &len);
  std::string out = s ? std::string(s, len) : "<unprintable>";
  Py_DECREF(r);
  if (!s) PyErr_Clear();
  if (out.size() > 80) out = out.substr(0, 77) + "...";
  return out;
}

class Reader {
 public:
  Reader(const ExtractSpec& spec, PyObject* ann, int64_t index) : spec_(spec), ann_(ann), index_(index) {}

  [[noreturn]] void fail(const std::string& what) const {
    std::string msg = std::string(spec_.side) + " annotation";
    PyObject* id = item(ann_, "id");
    msg += id ? " id=" + repr(id) : " without 'id' (position " + std::to_string(index_) + ")";
    PyObject* img = item(ann_, "image_id");
    if (img) msg += " (image_id=" + repr(img) + ")";
    throw std::invalid_argument(msg + ": " + what);
  }

  PyObject* required(const char* key) const {
    PyObject* o = item(ann_, key);
    if (!o) fail(std::string("missing '") + key + "'");
    return o;
  }

  double number(PyObject* o, const char* what) const {
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      fail(std::string(what) + " must be a number, got " + repr(o));
    }
    return v;
  }

  int64_t integer(PyObject* o, const char* what) const {
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      double d = PyFloat_AsDouble(o);
      if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        fail(std::string(what) + " must be an integer, got " + repr(o));
      }
      return static_cast<int64_t>(d);
    }
    return v;
  }

  bool truthy(PyObject* o) const {
    int t = PyObject_IsTrue(o);
    if (t < 0) {
      PyErr_Clear();
      fail("'iscrowd' has no truth value: " + repr(o));
    }
    return t != 0;
  }

  // A sequence of numbers appended to out; returns its length.
  int64_t numbers(PyObject* seq, const char* what, std::vector<double>& out) const {
    if (PyUnicode_Check(seq) || PyBytes_Check(seq) || PyDict_Check(seq))
      fail(std::string(what) + " must be a list of numbers, got " + repr(seq));
    if (PyList_Check(seq)) {  // fast path
      Py_ssize_t n = PyList_Size(seq);
      for (Py_ssize_t i = 0; i < n; ++i) {
        double v = PyFloat_AsDouble(PyList_GetItem(seq, i));
        if (v == -1.0 && PyErr_Occurred()) {
          PyErr_Clear();
          fail(std::string(what) + " must contain only numbers, got " + repr(seq));
        }
        out.push_back(v);
      }
      return n;
    }
    PyObject* fast = PySequence_Fast(seq, "");
    if (!fast) {
      PyErr_Clear();
      fail(std::string(what) + " must be a list of numbers, got " + repr(seq));
    }
    Py_ssize_t n = PySequence_Size(fast);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* x = PySequence_GetItem(fast, i);
      double v = PyFloat_AsDouble(x);
      Py_DECREF(x);
      if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_DECREF(fast);
        fail(std::string(what) + " must contain only numbers, got " + repr(seq));
      }
      out.push_back(v);
    }
    Py_DECREF(fast);
    return n;
  }

 private:
  const ExtractSpec& spec_;
  PyObject* ann_;
  int64_t index_;
};

void read_segmentation(const Reader& rd, PyObject* segm, int64_t img, const ExtractSpec& spec, AnnSet& s) {
  if (PyList_Check(segm)) {
    Py_ssize_t n = PyList_Size(segm);
    if (n == 0) rd.fail("'segmentation' is an empty list of polygons");
    PyObject* first = PyList_GetItem(segm, 0);
    Py_ssize_t first_len = PySequence_Check(first) ? PySequence_Size(first) : -1;
    if (first_len < 0) {
      PyErr_Clear();
      rd.fail("'segmentation' must be a list of polygons (lists of x, y coordinates), got " + repr(segm));
    }
    // pycocotools reads a list whose first entry has 4 numbers as boxes, more as polygons.
    if (first_len < 4) rd.fail("polygon in 'segmentation' has fewer than 4 coordinates: " + repr(first));
    uint8_t kind = first_len == 4 ? kBoxes : kPolygons;
    if (img < 0 || spec.img_h[img] < 0) rd.fail("polygon 'segmentation' needs the image's height and width");
    s.segm_kind.push_back(kind);
    s.segm_h.push_back(static_cast<uint64_t>(spec.img_h[img]));
    s.segm_w.push_back(static_cast<uint64_t>(spec.img_w[img]));
    s.src_begin.push_back(static_cast<int64_t>(s.poly_offsets.size()) - 1);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* poly = PyList_GetItem(segm, i);
      int64_t len = rd.numbers(poly, "polygon in 'segmentation'", s.coords);
      if (kind == kBoxes && len != 4) rd.fail("box in 'segmentation' must have 4 numbers: " + repr(poly));
      if (kind == kPolygons && len < 2) rd.fail("polygon in 'segmentation' is empty: " + repr(poly));
      // Rasterization works on 5x upsampled int coordinates: keep them finite and in int range.
      for (auto it = s.coords.end() - len; it != s.coords.end(); ++it)
        if (!(std::fabs(*it) < 1e8)) rd.fail("polygon in 'segmentation' has a non-finite or huge coordinate");
      s.poly_offsets.push_back(static_cast<int64_t>(s.coords.size()));
    }
    s.src_end.push_back(static_cast<int64_t>(s.poly_offsets.size()) - 1);
    return;
  }
  if (!PyDict_Check(segm)) rd.fail("'segmentation' must be polygons or an RLE dict, got " + repr(segm));
  PyObject* counts = item(segm, "counts");
  PyObject* size = item(segm, "size");
  if (!counts || !size) rd.fail("RLE 'segmentation' needs 'counts' and 'size', got " + repr(segm));
  std::vector<double> hw;
  if (rd.numbers(size, "RLE 'size'", hw) != 2 || hw[0] < 0 || hw[1] < 0)
    rd.fail("RLE 'size' must be [height, width], got " + repr(size));
  s.segm_h.push_back(static_cast<uint64_t>(hw[0]));
  s.segm_w.push_back(static_cast<uint64_t>(hw[1]));
  if (PyUnicode_Check(counts) || PyBytes_Check(counts)) {
    const char* data = nullptr;
    Py_ssize_t len = 0;
    if (PyUnicode_Check(counts)) {
      data = PyUnicode_AsUTF8AndSize(counts, &len);
    } else {
      char* buf = nullptr;
      if (PyBytes_AsStringAndSize(counts, &buf, &len) == 0) data = buf;
    }
    if (!data) {
      PyErr_Clear();
      rd.fail("RLE 'counts' could not be read");
    }
    for (Py_ssize_t i = 0; i < len && data[i]; ++i)
      if (data[i] < 48 || data[i] > 111)
        rd.fail("compressed RLE 'counts' has a character outside '0'..'o': " + repr(counts));
    s.segm_kind.push_back(kCompressed);
    s.src_begin.push_back(static_cast<int64_t>(s.chars.size()));
    s.chars.append(data, static_cast<size_t>(len));
    s.src_end.push_back(static_cast<int64_t>(s.chars.size()));
    return;
  }
  std::vector<double> counts_d;
  rd.numbers(counts, "RLE 'counts'", counts_d);
  s.segm_kind.push_back(kUncompressed);
  s.src_begin.push_back(static_cast<int64_t>(s.counts_src.size()));
  for (double c : counts_d) {
    if (c < 0 || c != std::floor(c)) rd.fail("RLE 'counts' must be non-negative integers: " + repr(counts));
    s.counts_src.push_back(static_cast<uint32_t>(c));
  }
  s.src_end.push_back(static_cast<int64_t>(s.counts_src.size()));
}

}  // namespace

namespace {

// One annotation dict into the flat arrays (image and category positions already known).
void read_annotation(const Reader& rd, PyObject* ann, int64_t img, int64_t cat, const ExtractSpec& spec, AnnSet& s,
                   std::vector<double>& buf) {
  s.img.push_back(static_cast<int32_t>(img));
  s.cat.push_back(static_cast<int32_t>(cat));
  s.id.push_back(rd.integer(rd.required("id"), "'id'"));
  s.area.push_back(rd.number(rd.required("area"), "'area'"));
  if (spec.is_dt) {
    s.score.push_back(rd.number(rd.required("score"), "'score'"));
    s.iscrowd.push_back(0);
  } else {
    PyObject* crowd = item(ann, "iscrowd");
    bool c = crowd && rd.truthy(crowd);
    s.iscrowd.push_back(c);
    bool ignore = c;
    if (spec.iou_type == kKeypoints) {
      PyObject* nk = rd.required("num_keypoints");
      ignore = rd.number(nk, "'num_keypoints'") == 0 || ignore;
    }
    s.ignore.push_back(ignore);
  }
  if (spec.iou_type == kBbox || (spec.iou_type == kKeypoints && !spec.is_dt)) {
    PyObject* bb = rd.required("bbox");
    buf.clear();
    if (rd.numbers(bb, "'bbox'", buf) != 4) rd.fail("'bbox' must have 4 numbers [x, y, w, h], got " + repr(bb));
    s.bbox.insert(s.bbox.end(), buf.begin(), buf.end());
  } else {
    s.bbox.insert(s.bbox.end(), 4, 0.0);
  }
  if (spec.iou_type == kKeypoints) {
    PyObject* kp = rd.required("keypoints");
    buf.clear();
    int64_t len = rd.numbers(kp, "'keypoints'", buf);
    if (len != 3 * spec.num_kpts)
      rd.fail("'keypoints' must have " + std::to_string(3 * spec.num_kpts) +
              " numbers (x, y, v per keypoint, as many as kpt_oks_sigmas), got " + std::to_string(len));
    s.kpts.insert(s.kpts.end(), buf.begin(), buf.end());
  }
  if (spec.iou_type == kSegm) read_segmentation(rd, rd.required("segmentation"), img, spec, s);
}

// Height and width of every evaluated image from the COCO ``imgs`` dict (-1 when unknown).
void image_sizes(PyObject* ids, PyObject* imgs, std::vector<int64_t>& h, std::vector<int64_t>& w) {
  const Py_ssize_t n = PyList_Size(ids);
  h.assign(n, -1);
  w.assign(n, -1);
  if (!imgs || !PyDict_Check(imgs)) return;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* img = PyDict_GetItemWithError(imgs, PyList_GetItem(ids, i));
    if (!img || !PyDict_Check(img)) {
      PyErr_Clear();
      continue;
    }
    PyObject* hh = PyDict_GetItemString(img, "height");
    PyObject* ww = PyDict_GetItemString(img, "width");
    if (!hh || !ww) continue;
    long long hv = PyLong_AsLongLong(hh), wv = PyLong_AsLongLong(ww);
    if (PyErr_Occurred()) {
      PyErr_Clear();
      continue;
    }
    if (hv < 0 || wv < 0) continue;
    h[i] = hv;
    w[i] = wv;
  }
}

}  // namespace

AnnSet extract(nb::handle img_ids, nb::handle img_to_anns, nb::handle imgs, nb::handle cat_index,
               const ExtractSpec& in_spec) {
  PyObject* ids = img_ids.ptr();
  PyObject* index = img_to_anns.ptr();
  if (!PyList_Check(ids)) throw std::invalid_argument("img_ids must be a list");
  if (!PyDict_Check(index)) throw std::invalid_argument("imgToAnns must be a dict of annotation lists");
  ExtractSpec spec = in_spec;
  if (spec.iou_type == kSegm) image_sizes(ids, imgs.is_none() ? nullptr : imgs.ptr(), spec.img_h, spec.img_w);
  PyObject* cats = cat_index.ptr();
  AnnSet s;
  s.side = spec.side;
  s.num_kpts = static_cast<int32_t>(spec.num_kpts);
  std::vector<double> buf;
  const Py_ssize_t num_images = PyList_Size(ids);
  int64_t idx = -1;  // position among all annotations read, for messages about entries without an id
  for (Py_ssize_t img = 0; img < num_images; ++img) {
    PyObject* anns = PyDict_GetItemWithError(index, PyList_GetItem(ids, img));
    if (!anns) {
      if (PyErr_Occurred()) {
        PyErr_Clear();
        throw std::invalid_argument("image ids must be hashable");
      }
      continue;
    }
    PyObject* fast = PySequence_Fast(anns, "imgToAnns values must be lists of annotation dicts");
    if (!fast) {
      PyErr_Clear();
      throw std::invalid_argument(std::string(spec.side) + ": imgToAnns values must be lists of annotation dicts");
    }
    const Py_ssize_t n = PySequence_Size(fast);
    for (Py_ssize_t j = 0; j < n; ++j) {
      ++idx;
      PyObject* ann = PySequence_GetItem(fast, j);
      Py_DECREF(ann);  // still owned by the list
      if (!PyDict_Check(ann)) {
        Py_DECREF(fast);
        throw std::invalid_argument(std::string(spec.side) + " annotation #" + std::to_string(idx) +
                                    " is not a dict: " + repr(ann));
      }
      Reader rd(spec, ann, idx);
      PyObject* cat_pos = PyDict_GetItemWithError(cats, rd.required("category_id"));
      if (!cat_pos) {
        if (PyErr_Occurred()) {
          PyErr_Clear();
          rd.fail("'category_id' is not hashable");
        }
        continue;
      }
      read_annotation(rd, ann, img, PyLong_AsLongLong(cat_pos), spec, s, buf);
    }
    Py_DECREF(fast);
  }
  s.n = static_cast<int64_t>(s.img.size());
  return s;
}

}  // namespace dt_eval
