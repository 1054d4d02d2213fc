// Python bindings of the dt-eval core (module dt_eval._C). numpy in, numpy out; no torch.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <stdexcept>

#include "core.h"
#include "extract.h"

namespace nb = nanobind;
using namespace dt_eval;

namespace {

template <typename T>
using Array1 = nb::ndarray<nb::numpy, T, nb::ndim<1>>;
template <typename T>
using CArray = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Ranges = nb::ndarray<const double, nb::shape<-1, 2>, nb::c_contig, nb::device::cpu>;

template <typename T>
nb::ndarray<nb::numpy, T> to_numpy(std::vector<T> v, std::vector<size_t> shape = {}) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  if (shape.empty()) shape = {heap->size()};
  return nb::ndarray<nb::numpy, T>(heap->data(), shape.size(), shape.data(), owner);
}

template <typename T>
std::vector<T> to_vector(const CArray<T>& a) {
  return std::vector<T>(a.data(), a.data() + a.shape(0));
}

EvalParams make_params(int iou_type, bool use_cats, int64_t num_images, int64_t num_cats,
                       std::optional<CArray<double>> iou_thrs, std::optional<Ranges> area_rng, int64_t max_det,
                       const CArray<double>& sigmas, bool detail) {
  if (iou_type < kBbox || iou_type > kKeypoints) throw std::invalid_argument("iou_type must be 0, 1 or 2");
  if (max_det < 0) throw std::invalid_argument("maxDets must be non-negative");
  EvalParams p;
  p.iou_type = iou_type;
  p.use_cats = use_cats;
  p.num_images = num_images;
  p.num_cats = use_cats ? num_cats : 1;
  if (iou_thrs) p.iou_thrs = to_vector(*iou_thrs);
  if (area_rng)
    for (size_t a = 0; a < area_rng->shape(0); ++a) {
      p.area_lo.push_back((*area_rng)(a, 0));
      p.area_hi.push_back((*area_rng)(a, 1));
    }
  p.max_det = max_det;
  p.sigmas = to_vector(sigmas);
  p.detail = detail;
  return p;
}

void check_keypoints(const AnnSet& gt, const AnnSet& dt, const EvalParams& p) {
  if (static_cast<int64_t>(p.sigmas.size()) != gt.num_kpts || gt.num_kpts != dt.num_kpts)
    throw std::invalid_argument("kpt_oks_sigmas must have one value per keypoint");
}

int default_threads(int requested) {
  if (requested > 0) return requested;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace

NB_MODULE(_C, m) {
  m.doc() = "dt-eval native core: pycocotools-exact COCO evaluation over flat arrays";

  nb::class_<AnnSet>(m, "AnnSet")
      .def("__len__", [](const AnnSet& s) { return s.n; })
      .def_prop_ro("ids", [](const AnnSet& s) { return to_numpy(s.id); }, nb::rv_policy::automatic)
      .def_prop_ro("areas", [](const AnnSet& s) { return to_numpy(s.area); }, nb::rv_policy::automatic)
      .def_prop_ro("scores", [](const AnnSet& s) { return to_numpy(s.score); }, nb::rv_policy::automatic);

  nb::class_<EvalResult>(m, "EvalResult")
      .def_prop_ro("dt_offsets", [](const EvalResult& r) { return to_numpy(r.dt_offsets); }, nb::rv_policy::automatic)
      .def_prop_ro("dt_index", [](const EvalResult& r) { return to_numpy(r.dt_index); }, nb::rv_policy::automatic)
      .def_prop_ro("dt_score", [](const EvalResult& r) { return to_numpy(r.dt_score); }, nb::rv_policy::automatic)
      .def_prop_ro("codes", [](const EvalResult& r) {
        size_t nk = r.dt_offsets.empty() ? 0 : r.dt_offsets.back();
        return to_numpy(r.codes, {static_cast<size_t>(r.num_areas), nk, static_cast<size_t>(r.num_thrs)});
      }, nb::rv_policy::automatic)
      .def_prop_ro("npig", [](const EvalResult& r) { return to_numpy(r.npig); }, nb::rv_policy::automatic)
      .def_prop_ro("gt_offsets", [](const EvalResult& r) { return to_numpy(r.gt_offsets); }, nb::rv_policy::automatic)
      .def_prop_ro("gt_index", [](const EvalResult& r) { return to_numpy(r.gt_index); }, nb::rv_policy::automatic)
      .def_prop_ro("gt_order", [](const EvalResult& r) { return to_numpy(r.gt_order); }, nb::rv_policy::automatic)
      .def_prop_ro("gt_ignore", [](const EvalResult& r) { return to_numpy(r.gt_ignore); }, nb::rv_policy::automatic)
      .def_prop_ro("match", [](const EvalResult& r) { return to_numpy(r.match); }, nb::rv_policy::automatic)
      .def_prop_ro("iou_offsets", [](const EvalResult& r) { return to_numpy(r.iou_offsets); }, nb::rv_policy::automatic)
      .def_prop_ro("ious", [](const EvalResult& r) { return to_numpy(r.ious); }, nb::rv_policy::automatic);

  m.def(
      "extract",
      [](nb::handle img_ids, nb::handle img_to_anns, nb::handle imgs, nb::handle cat_index, int iou_type,
         bool is_dt, const std::string& side, int64_t num_kpts) {
        ExtractSpec spec;
        spec.iou_type = iou_type;
        spec.is_dt = is_dt;
        spec.side = side.c_str();
        spec.num_kpts = num_kpts;
        return extract(img_ids, img_to_anns, imgs, cat_index, spec);
      },
      nb::arg("img_ids"), nb::arg("img_to_anns"), nb::arg("imgs").none(), nb::arg("cat_index"),
      nb::arg("iou_type"), nb::arg("is_dt"), nb::arg("side"), nb::arg("num_kpts"),
      "Read the annotation dicts of img_ids (COCO.imgToAnns order) into flat arrays.");

  m.def(
      "oks_terms",
      [](AnnSet& gt, AnnSet& dt, int64_t num_images, int64_t num_cats, int64_t max_det, CArray<double> sigmas,
         int num_threads) {
        EvalParams p = make_params(kKeypoints, true, num_images, num_cats, {}, {}, max_det, sigmas, false);
        check_keypoints(gt, dt, p);
        std::vector<double> terms;
        std::vector<int64_t> offsets;
        {
          nb::gil_scoped_release release;
          oks_terms(gt, dt, p, default_threads(num_threads), terms, offsets);
        }
        return nb::make_tuple(to_numpy(std::move(terms)), to_numpy(std::move(offsets)));
      },
      nb::arg("gt"), nb::arg("dt"), nb::arg("num_images"), nb::arg("num_cats"), nb::arg("max_det"),
      nb::arg("sigmas"), nb::arg("num_threads") = 0,
      "OKS exponents e of every term and per-cell offsets; pass exp(-e) computed by numpy to evaluate().");

  m.def(
      "evaluate",
      [](AnnSet& gt, AnnSet& dt, int iou_type, bool use_cats, int64_t num_images, int64_t num_cats,
         CArray<double> iou_thrs, Ranges area_rng, int64_t max_det, CArray<double> sigmas, bool detail,
         std::optional<CArray<double>> oks_exp, std::optional<CArray<int64_t>> oks_offsets, int num_threads) {
        EvalParams p = make_params(iou_type, use_cats, num_images, num_cats, iou_thrs, area_rng, max_det, sigmas,
                                   detail);
        if (iou_type == kKeypoints) {
          check_keypoints(gt, dt, p);
          if (use_cats) {
            if (!oks_exp || !oks_offsets)
              throw std::invalid_argument("keypoint evaluation needs oks_exp and oks_offsets from oks_terms()");
            if (oks_offsets->shape(0) != static_cast<size_t>(p.num_images * p.num_cats + 1))
              throw std::invalid_argument("oks_offsets does not match the evaluated images and categories");
            const int64_t* off = oks_offsets->data();
            if (off[oks_offsets->shape(0) - 1] != static_cast<int64_t>(oks_exp->shape(0)))
              throw std::invalid_argument("oks_exp does not match oks_offsets");
            p.oks_exp = oks_exp->data();
            p.oks_offsets = off;
          }
        }
        nb::gil_scoped_release release;
        return evaluate(gt, dt, p, default_threads(num_threads));
      },
      nb::arg("gt"), nb::arg("dt"), nb::arg("iou_type"), nb::arg("use_cats"), nb::arg("num_images"),
      nb::arg("num_cats"), nb::arg("iou_thrs"), nb::arg("area_rng"), nb::arg("max_det"), nb::arg("sigmas"),
      nb::arg("detail"), nb::arg("oks_exp") = nb::none(), nb::arg("oks_offsets") = nb::none(),
      nb::arg("num_threads") = 0,
      "Per image x category IoU/OKS and greedy matching for every area range and IoU threshold.");

  m.def(
      "accumulate",
      [](const EvalResult& ev, std::vector<int64_t> k_list, std::vector<int64_t> a_list,
         std::vector<int64_t> m_list, std::vector<int64_t> i_list, CArray<double> rec_thrs, int64_t T,
         int64_t K, int64_t A, int64_t M, int num_threads) {
        AccumulateArgs args;
        args.k_list = std::move(k_list);
        args.a_list = std::move(a_list);
        args.m_list = std::move(m_list);
        args.i_list = std::move(i_list);
        args.rec_thrs = to_vector(rec_thrs);
        args.T = T;
        args.R = static_cast<int64_t>(args.rec_thrs.size());
        args.K = K;
        args.A = A;
        args.M = M;
        for (int64_t i : args.i_list)
          if (i < 0 || i >= ev.num_images) throw std::invalid_argument("image index out of range");
        for (int64_t k : args.k_list)
          if (k < 0 || k >= ev.num_cats) throw std::invalid_argument("category index out of range");
        for (int64_t a : args.a_list)
          if (a < 0 || a >= ev.num_areas) throw std::invalid_argument("area index out of range");
        const size_t R = args.rec_thrs.size();
        std::vector<double> precision(T * R * K * A * M, -1.0), scores(T * R * K * A * M, -1.0),
            recall(T * K * A * M, -1.0);
        {
          nb::gil_scoped_release release;
          accumulate(ev, args, precision.data(), recall.data(), scores.data(), default_threads(num_threads));
        }
        std::vector<size_t> pshape{size_t(T), R, size_t(K), size_t(A), size_t(M)};
        return nb::make_tuple(to_numpy(std::move(precision), pshape),
                              to_numpy(std::move(recall), {size_t(T), size_t(K), size_t(A), size_t(M)}),
                              to_numpy(std::move(scores), pshape));
      },
      nb::arg("ev"), nb::arg("k_list"), nb::arg("a_list"), nb::arg("m_list"), nb::arg("i_list"),
      nb::arg("rec_thrs"), nb::arg("T"), nb::arg("K"), nb::arg("A"), nb::arg("M"), nb::arg("num_threads") = 0,
      "Precision [T, R, K, A, M], recall [T, K, A, M] and scores [T, R, K, A, M], -1 where undefined.");

  m.def(
      "polygons_to_rle",
      [](std::vector<std::vector<double>> polygons, uint64_t h, uint64_t w) {
        std::vector<Rle> parts(polygons.size());
        for (size_t i = 0; i < polygons.size(); ++i) {
          if (polygons[i].size() < 2) throw std::invalid_argument("a polygon needs at least one point");
          rle_from_poly(polygons[i].data(), static_cast<int64_t>(polygons[i].size() / 2), h, w, parts[i]);
        }
        Rle out;
        rle_merge_union(parts, out);
        return to_numpy(std::move(out.cnts));
      },
      nb::arg("polygons"), nb::arg("h"), nb::arg("w"),
      "Uncompressed RLE counts (uint32) of the union of polygons, as pycocotools rasterizes them.");

  m.def(
      "rle_bbox",
      [](CArray<uint32_t> counts, uint64_t h, uint64_t w) {
        Rle r;
        r.h = h;
        r.w = w;
        r.cnts = to_vector(counts);
        std::vector<double> bb(4);
        rle_bbox(r, bb.data());
        return to_numpy(std::move(bb));
      },
      nb::arg("counts"), nb::arg("h"), nb::arg("w"), "XYWH bounding box of an uncompressed RLE.");
}
