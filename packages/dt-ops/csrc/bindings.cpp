// Python bindings of the CPU kernels (module dt_ops._C). Tensors arrive as DLPack arrays; outputs are
// allocated by torch in Python and must be passed exactly as allocated (.noconvert()), so nanobind
// never substitutes a converted temporary. Argument checking with readable messages happens in Python;
// the checks here only protect memory safety.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <optional>
#include <string>

#include "binding_utils.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "cpu/denormals.h"
#include "cpu/winograd.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using dt::bindings::deform_geometry;
using dt::bindings::require;

template <typename T, typename... Extra>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu, Extra...>;
template <typename T, typename... Extra>
using Out = nb::ndarray<T, nb::c_contig, nb::device::cpu, Extra...>;

template <typename T>
void bind_dtype(nb::module_& m) {
  using Boxes4 = In<T, nb::shape<-1, 4>>;
  using Boxes5 = In<T, nb::shape<-1, 5>>;
  using Rois6 = In<T, nb::shape<-1, 6>>;
  using Vec = In<T, nb::ndim<1>>;
  using Idx = In<int64_t, nb::ndim<1>>;
  using Keep = Out<int64_t, nb::ndim<1>>;
  using Map4 = In<T, nb::ndim<4>>;
  using OutMap4 = Out<T, nb::ndim<4>>;
  const auto release = nb::call_guard<nb::gil_scoped_release>();

  m.def(
      "nms",
      [](Boxes4 boxes, Vec scores, std::optional<Idx> idxs, double iou_threshold, Keep keep, int threads) {
        const size_t n = boxes.shape(0);
        require(scores.shape(0) == n && keep.shape(0) == n && (!idxs || idxs->shape(0) == n), "nms: size mismatch");
        return dt::cpu::nms<T>(boxes.data(), scores.data(), idxs ? idxs->data() : nullptr, n, iou_threshold,
                               keep.data(), threads);
      },
      "boxes"_a.noconvert(), "scores"_a.noconvert(), "idxs"_a.noconvert().none(), "iou_threshold"_a,
      "keep"_a.noconvert(), "threads"_a, release);

  m.def(
      "nms_rotated",
      [](Boxes5 boxes, Vec scores, std::optional<Idx> idxs, double iou_threshold, Keep keep, int threads) {
        const size_t n = boxes.shape(0);
        require(scores.shape(0) == n && keep.shape(0) == n && (!idxs || idxs->shape(0) == n),
                "nms_rotated: size mismatch");
        return dt::cpu::nms_rotated<T>(boxes.data(), scores.data(), idxs ? idxs->data() : nullptr, n,
                                       iou_threshold, keep.data(), threads);
      },
      "boxes"_a.noconvert(), "scores"_a.noconvert(), "idxs"_a.noconvert().none(), "iou_threshold"_a,
      "keep"_a.noconvert(), "threads"_a, release);

  m.def(
      "box_iou",
      [](Boxes4 a, Boxes4 b, Out<T, nb::ndim<2>> out, int threads) {
        require(out.shape(0) == a.shape(0) && out.shape(1) == b.shape(0), "box_iou: output shape mismatch");
        dt::cpu::box_iou<T>(a.data(), a.shape(0), b.data(), b.shape(0), out.data(), threads);
      },
      "boxes1"_a.noconvert(), "boxes2"_a.noconvert(), "out"_a.noconvert(), "threads"_a, release);

  m.def(
      "box_iou_rotated",
      [](Boxes5 a, Boxes5 b, Out<T, nb::ndim<2>> out, int threads) {
        require(out.shape(0) == a.shape(0) && out.shape(1) == b.shape(0), "box_iou_rotated: output shape mismatch");
        dt::cpu::box_iou_rotated<T>(a.data(), a.shape(0), b.data(), b.shape(0), out.data(), threads);
      },
      "boxes1"_a.noconvert(), "boxes2"_a.noconvert(), "out"_a.noconvert(), "threads"_a, release);

  auto roi_align_fwd = [](Map4 input, const T* rois, size_t num_rois, double spatial_scale, int64_t sampling_ratio,
                          bool aligned, bool rotated, OutMap4 output, int threads) {
    require(output.shape(0) == num_rois && output.shape(1) == input.shape(1), "roi_align: output shape mismatch");
    require(input.shape(2) * input.shape(3) < (size_t(1) << 31), "roi_align: feature planes must be < 2^31 elements");
    dt::cpu::roi_align_forward<T>(input.data(), input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                  rois, num_rois, output.shape(2), output.shape(3), spatial_scale,
                                  sampling_ratio, aligned, rotated, output.data(), threads);
  };
  auto roi_align_bwd = [](Map4 grad_output, const T* rois, size_t num_rois, double spatial_scale,
                          int64_t sampling_ratio, bool aligned, bool rotated, OutMap4 grad_input, int threads) {
    require(grad_output.shape(0) == num_rois && grad_output.shape(1) == grad_input.shape(1),
            "roi_align_backward: shape mismatch");
    require(grad_input.shape(2) * grad_input.shape(3) < (size_t(1) << 31),
            "roi_align: feature planes must be < 2^31 elements");
    dt::cpu::roi_align_backward<T>(grad_output.data(), grad_input.shape(0), grad_input.shape(1),
                                   grad_input.shape(2), grad_input.shape(3), rois, num_rois, grad_output.shape(2),
                                   grad_output.shape(3), spatial_scale, sampling_ratio, aligned, rotated,
                                   grad_input.data(), threads);
  };
  m.def(
      "roi_align_forward",
      [roi_align_fwd](Map4 input, In<T, nb::shape<-1, 5>> rois, double spatial_scale, int64_t sampling_ratio,
                      bool aligned, OutMap4 output, int threads) {
        roi_align_fwd(input, rois.data(), rois.shape(0), spatial_scale, sampling_ratio, aligned, false, output,
                      threads);
      },
      "input"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a, "aligned"_a,
      "output"_a.noconvert(), "threads"_a, release);
  m.def(
      "roi_align_forward_nhwc",
      [](Map4 input, In<T, nb::shape<-1, 5>> rois, double spatial_scale, int64_t sampling_ratio, bool aligned,
         OutMap4 output, int threads) {
        // input: [batch, height, width, channels]
        require(output.shape(0) == rois.shape(0) && output.shape(1) == input.shape(3),
                "roi_align: output shape mismatch");
        require(input.shape(1) * input.shape(2) < (size_t(1) << 31), "roi_align: feature planes must be < 2^31 elements");
        dt::cpu::roi_align_forward_nhwc<T>(input.data(), input.shape(0), input.shape(3), input.shape(1),
                                           input.shape(2), rois.data(), rois.shape(0), output.shape(2),
                                           output.shape(3), spatial_scale, sampling_ratio, aligned, output.data(),
                                           threads);
      },
      "input"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a, "aligned"_a,
      "output"_a.noconvert(), "threads"_a, release);
  m.def(
      "roi_align_backward_nhwc",
      [](Map4 grad_output, In<T, nb::shape<-1, 5>> rois, double spatial_scale, int64_t sampling_ratio,
         bool aligned, OutMap4 grad_input, int threads) {
        // grad_input: [batch, height, width, channels]
        require(grad_output.shape(0) == rois.shape(0) && grad_output.shape(1) == grad_input.shape(3),
                "roi_align_backward: shape mismatch");
        require(grad_input.shape(1) * grad_input.shape(2) < (size_t(1) << 31),
                "roi_align: feature planes must be < 2^31 elements");
        dt::cpu::roi_align_backward_nhwc<T>(grad_output.data(), grad_input.shape(0), grad_input.shape(3),
                                            grad_input.shape(1), grad_input.shape(2), rois.data(), rois.shape(0),
                                            grad_output.shape(2), grad_output.shape(3), spatial_scale,
                                            sampling_ratio, aligned, grad_input.data(), threads);
      },
      "grad_output"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a, "aligned"_a,
      "grad_input"_a.noconvert(), "threads"_a, release);
  m.def(
      "roi_align_backward",
      [roi_align_bwd](Map4 grad_output, In<T, nb::shape<-1, 5>> rois, double spatial_scale,
                      int64_t sampling_ratio, bool aligned, OutMap4 grad_input, int threads) {
        roi_align_bwd(grad_output, rois.data(), rois.shape(0), spatial_scale, sampling_ratio, aligned, false,
                      grad_input, threads);
      },
      "grad_output"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a, "aligned"_a,
      "grad_input"_a.noconvert(), "threads"_a, release);
  m.def(
      "roi_align_rotated_forward",
      [roi_align_fwd](Map4 input, Rois6 rois, double spatial_scale, int64_t sampling_ratio, OutMap4 output,
                      int threads) {
        roi_align_fwd(input, rois.data(), rois.shape(0), spatial_scale, sampling_ratio, true, true, output,
                      threads);
      },
      "input"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a,
      "output"_a.noconvert(), "threads"_a, release);
  m.def(
      "roi_align_rotated_backward",
      [roi_align_bwd](Map4 grad_output, Rois6 rois, double spatial_scale, int64_t sampling_ratio,
                      OutMap4 grad_input, int threads) {
        roi_align_bwd(grad_output, rois.data(), rois.shape(0), spatial_scale, sampling_ratio, true, true,
                      grad_input, threads);
      },
      "grad_output"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a,
      "grad_input"_a.noconvert(), "threads"_a, release);

  m.def(
      "roi_pool_forward",
      [](Map4 input, In<T, nb::shape<-1, 5>> rois, double spatial_scale, OutMap4 output,
         Out<int64_t, nb::ndim<4>> argmax, int threads) {
        require(output.shape(0) == rois.shape(0) && output.shape(1) == input.shape(1), "roi_pool: shape mismatch");
        dt::cpu::roi_pool_forward<T>(input.data(), input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                     rois.data(), rois.shape(0), output.shape(2), output.shape(3), spatial_scale,
                                     output.data(), argmax.data(), threads);
      },
      "input"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "output"_a.noconvert(),
      "argmax"_a.noconvert(), "threads"_a, release);
  m.def(
      "roi_pool_backward",
      [](Map4 grad_output, In<int64_t, nb::ndim<4>> argmax, In<T, nb::shape<-1, 5>> rois, OutMap4 grad_input,
         int threads) {
        require(grad_output.shape(0) == rois.shape(0) && grad_output.shape(1) == grad_input.shape(1),
                "roi_pool_backward: shape mismatch");
        dt::cpu::roi_pool_backward<T>(grad_output.data(), argmax.data(), rois.data(), rois.shape(0),
                                      grad_input.shape(1), grad_input.shape(2), grad_input.shape(3),
                                      grad_output.shape(2), grad_output.shape(3), grad_input.data(), threads);
      },
      "grad_output"_a.noconvert(), "argmax"_a.noconvert(), "rois"_a.noconvert(), "grad_input"_a.noconvert(),
      "threads"_a, release);

  m.def(
      "deform_im2col",
      [](Map4 input, Map4 offset, std::optional<Map4> mask, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
         int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
         Out<T, nb::ndim<3>> columns, int threads) {
        const auto g = deform_geometry(input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                          offset.shape(1), offset.shape(2), offset.shape(3), kernel_h, kernel_w,
                                          stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w);
        require(columns.shape(0) == g.batch && columns.shape(1) == g.channels * kernel_h * kernel_w &&
                    columns.shape(2) == g.out_h * g.out_w,
                "deform_im2col: columns shape mismatch");
        dt::cpu::deform_im2col<T>(input.data(), offset.data(), mask ? mask->data() : nullptr, g, columns.data(),
                                  threads);
      },
      "input"_a.noconvert(), "offset"_a.noconvert(), "mask"_a.noconvert().none(), "kernel_h"_a, "kernel_w"_a,
      "stride_h"_a, "stride_w"_a, "pad_h"_a, "pad_w"_a, "dilation_h"_a, "dilation_w"_a, "columns"_a.noconvert(),
      "threads"_a, release);
  m.def(
      "deform_col2im",
      [](In<T, nb::ndim<3>> grad_columns, Map4 offset, std::optional<Map4> mask, int64_t kernel_h,
         int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
         int64_t dilation_w, OutMap4 grad_input, int threads) {
        const auto g = deform_geometry(grad_input.shape(0), grad_input.shape(1), grad_input.shape(2),
                                          grad_input.shape(3), offset.shape(1), offset.shape(2), offset.shape(3),
                                          kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                          dilation_w);
        require(grad_columns.shape(0) == g.batch && grad_columns.shape(1) == g.channels * kernel_h * kernel_w &&
                    grad_columns.shape(2) == g.out_h * g.out_w,
                "deform_col2im: columns shape mismatch");
        dt::cpu::deform_col2im<T>(grad_columns.data(), offset.data(), mask ? mask->data() : nullptr, g,
                                  grad_input.data(), threads);
      },
      "grad_columns"_a.noconvert(), "offset"_a.noconvert(), "mask"_a.noconvert().none(), "kernel_h"_a,
      "kernel_w"_a, "stride_h"_a, "stride_w"_a, "pad_h"_a, "pad_w"_a, "dilation_h"_a, "dilation_w"_a,
      "grad_input"_a.noconvert(), "threads"_a, release);
  m.def(
      "deform_col2im_coord",
      [](In<T, nb::ndim<3>> grad_columns, Map4 input, Map4 offset, std::optional<Map4> mask, int64_t kernel_h,
         int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
         int64_t dilation_w, OutMap4 grad_offset, std::optional<OutMap4> grad_mask, int threads) {
        const auto g = deform_geometry(input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                          offset.shape(1), offset.shape(2), offset.shape(3), kernel_h, kernel_w,
                                          stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w);
        require(grad_columns.shape(0) == g.batch && grad_columns.shape(1) == g.channels * kernel_h * kernel_w &&
                    grad_columns.shape(2) == g.out_h * g.out_w && grad_offset.size() == offset.size() &&
                    (!grad_mask || (mask && grad_mask->size() == mask->size())),
                "deform_col2im_coord: shape mismatch");
        dt::cpu::deform_col2im_coord<T>(grad_columns.data(), input.data(), offset.data(),
                                        mask ? mask->data() : nullptr, g, grad_offset.data(),
                                        grad_mask ? grad_mask->data() : nullptr, threads);
      },
      "grad_columns"_a.noconvert(), "input"_a.noconvert(), "offset"_a.noconvert(), "mask"_a.noconvert().none(),
      "kernel_h"_a, "kernel_w"_a, "stride_h"_a, "stride_w"_a, "pad_h"_a, "pad_w"_a, "dilation_h"_a,
      "dilation_w"_a, "grad_offset"_a.noconvert(), "grad_mask"_a.noconvert().none(), "threads"_a, release);
}

}  // namespace

#ifdef DT_OPS_WITH_CUDA
void register_cuda(nb::module_& m);
#endif

NB_MODULE(_C, m) {
  m.doc() = "dt-ops native kernels (C++; CUDA when built with DT_OPS_CUDA). Use dt_ops, not this module.";
  m.def(
      "nms_sweep",
      [](In<int64_t, nb::ndim<2>> mask, Out<int64_t, nb::ndim<1>> keep, int /*threads*/) {
        const size_t n = mask.shape(0);
        require(mask.shape(1) == (n + 63) / 64 && keep.shape(0) == n, "nms_sweep: shape mismatch");
        return dt::cpu::nms_sweep(reinterpret_cast<const uint64_t*>(mask.data()), n, keep.data());
      },
      "mask"_a.noconvert(), "keep"_a.noconvert(), "threads"_a, nb::call_guard<nb::gil_scoped_release>());
  bind_dtype<float>(m);
  bind_dtype<double>(m);
  m.def(
      "use_openmp_runtime",
      [](uintptr_t parallel, uintptr_t thread_num, uintptr_t num_threads) {
        require(parallel != 0 && thread_num != 0 && num_threads != 0, "use_openmp_runtime: null entry point");
        dt::use_openmp_runtime(reinterpret_cast<void*>(parallel), reinterpret_cast<void*>(thread_num),
                               reinterpret_cast<void*>(num_threads));
      },
      "parallel"_a, "thread_num"_a, "num_threads"_a);
  m.def(
      "set_denormals_flushed",
      [](bool flushed, int threads) { return dt::cpu::set_denormals_flushed(flushed, threads); }, "flushed"_a,
      "threads"_a);
  m.def(
      "winograd_isa", [](int cap) { return static_cast<int>(dt::cpu::winograd_isa(dt::cpu::WinogradIsa(cap))); },
      "cap"_a);
  m.def(
      "conv3x3_winograd",
      [](In<float, nb::ndim<4>> x, In<float, nb::ndim<4>> packed, std::optional<In<float, nb::ndim<1>>> bias,
         bool relu, Out<float, nb::ndim<4>> y, int isa, int threads) {
        const size_t k = y.shape(3);
        require(packed.shape(0) == 36 && packed.shape(1) == (k + 15) / 16 && packed.shape(2) == x.shape(3) &&
                    packed.shape(3) == 16,
                "conv3x3_winograd: packed weight shape mismatch");
        require(y.shape(0) == x.shape(0) && y.shape(1) == x.shape(1) && y.shape(2) == x.shape(2),
                "conv3x3_winograd: output shape mismatch");
        require(!bias || bias->shape(0) == k, "conv3x3_winograd: bias size mismatch");
        require(isa >= 0 && isa <= static_cast<int>(dt::cpu::winograd_isa(dt::cpu::WinogradIsa::avx512)),
                "conv3x3_winograd: instruction set not available on this CPU");
        dt::cpu::conv3x3_winograd(x.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3), packed.data(), k,
                                  bias ? bias->data() : nullptr, relu, y.data(), threads,
                                  dt::cpu::WinogradIsa(isa));
      },
      "x"_a.noconvert(), "packed"_a.noconvert(), "bias"_a.noconvert().none(), "relu"_a, "y"_a.noconvert(),
      "isa"_a, "threads"_a, nb::call_guard<nb::gil_scoped_release>());
#ifdef DT_OPS_WITH_CUDA
  m.attr("has_cuda") = true;
  register_cuda(m);
#else
  m.attr("has_cuda") = false;
#endif
}
