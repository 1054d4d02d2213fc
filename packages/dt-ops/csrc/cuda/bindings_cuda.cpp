// Python bindings of the CUDA kernels: the same names as the CPU functions with a `_cuda` suffix, and
// the current CUDA stream (an integer from torch.cuda.current_stream().cuda_stream) as last argument.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <cstdint>
#include <optional>

#include "binding_utils.h"
#include "cuda/ops.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using dt::bindings::deform_geometry;
using dt::bindings::require;

template <typename T, typename... Extra>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cuda, Extra...>;
template <typename T, typename... Extra>
using Out = nb::ndarray<T, nb::c_contig, nb::device::cuda, Extra...>;

void* as_stream(uintptr_t stream) { return reinterpret_cast<void*>(stream); }

template <typename T>
void bind_dtype(nb::module_& m) {
  using Vec = In<int64_t, nb::ndim<1>>;
  using Map4 = In<T, nb::ndim<4>>;
  using OutMap4 = Out<T, nb::ndim<4>>;
  const auto release = nb::call_guard<nb::gil_scoped_release>();

  m.def(
      "nms_mask_cuda",
      [](In<T, nb::shape<-1, 4>> boxes, std::optional<Vec> idxs, double thr, Out<int64_t, nb::ndim<2>> mask,
         uintptr_t stream) {
        const size_t n = boxes.shape(0);
        require(mask.shape(0) == n && mask.shape(1) == (n + 63) / 64 && (!idxs || idxs->shape(0) == n),
                "nms_mask: shape mismatch");
        dt::cuda::nms_mask<T>(boxes.data(), idxs ? idxs->data() : nullptr, n, thr, mask.data(), as_stream(stream));
      },
      "boxes"_a.noconvert(), "idxs"_a.noconvert().none(), "iou_threshold"_a, "mask"_a.noconvert(), "stream"_a,
      release);
  m.def(
      "nms_rotated_mask_cuda",
      [](In<T, nb::shape<-1, 5>> boxes, std::optional<Vec> idxs, double thr, Out<int64_t, nb::ndim<2>> mask,
         uintptr_t stream) {
        const size_t n = boxes.shape(0);
        require(mask.shape(0) == n && mask.shape(1) == (n + 63) / 64 && (!idxs || idxs->shape(0) == n),
                "nms_rotated_mask: shape mismatch");
        dt::cuda::nms_rotated_mask<T>(boxes.data(), idxs ? idxs->data() : nullptr, n, thr, mask.data(),
                                      as_stream(stream));
      },
      "boxes"_a.noconvert(), "idxs"_a.noconvert().none(), "iou_threshold"_a, "mask"_a.noconvert(), "stream"_a,
      release);
  m.def(
      "box_iou_cuda",
      [](In<T, nb::shape<-1, 4>> a, In<T, nb::shape<-1, 4>> b, Out<T, nb::ndim<2>> out, uintptr_t stream) {
        require(out.shape(0) == a.shape(0) && out.shape(1) == b.shape(0), "box_iou: output shape mismatch");
        dt::cuda::box_iou<T>(a.data(), a.shape(0), b.data(), b.shape(0), out.data(), as_stream(stream));
      },
      "boxes1"_a.noconvert(), "boxes2"_a.noconvert(), "out"_a.noconvert(), "stream"_a, release);
  m.def(
      "box_iou_rotated_cuda",
      [](In<T, nb::shape<-1, 5>> a, In<T, nb::shape<-1, 5>> b, Out<T, nb::ndim<2>> out, uintptr_t stream) {
        require(out.shape(0) == a.shape(0) && out.shape(1) == b.shape(0), "box_iou_rotated: output shape mismatch");
        dt::cuda::box_iou_rotated<T>(a.data(), a.shape(0), b.data(), b.shape(0), out.data(), as_stream(stream));
      },
      "boxes1"_a.noconvert(), "boxes2"_a.noconvert(), "out"_a.noconvert(), "stream"_a, release);

  auto fwd = [](Map4 input, const T* rois, size_t num_rois, double scale, int64_t ratio, bool aligned, bool rotated,
                OutMap4 output, uintptr_t stream) {
    require(output.shape(0) == num_rois && output.shape(1) == input.shape(1), "roi_align: output shape mismatch");
    dt::cuda::roi_align_forward<T>(input.data(), input.shape(0), input.shape(1), input.shape(2), input.shape(3), rois,
                                   num_rois, output.shape(2), output.shape(3), scale, ratio, aligned, rotated,
                                   output.data(), as_stream(stream));
  };
  auto bwd = [](Map4 grad, const T* rois, size_t num_rois, double scale, int64_t ratio, bool aligned, bool rotated,
                OutMap4 grad_input, uintptr_t stream) {
    require(grad.shape(0) == num_rois && grad.shape(1) == grad_input.shape(1), "roi_align_backward: shape mismatch");
    dt::cuda::roi_align_backward<T>(grad.data(), grad_input.shape(0), grad_input.shape(1), grad_input.shape(2),
                                    grad_input.shape(3), rois, num_rois, grad.shape(2), grad.shape(3), scale, ratio,
                                    aligned, rotated, grad_input.data(), as_stream(stream));
  };
  m.def(
      "roi_align_forward_cuda",
      [fwd](Map4 input, In<T, nb::shape<-1, 5>> rois, double scale, int64_t ratio, bool aligned, OutMap4 output,
            uintptr_t stream) { fwd(input, rois.data(), rois.shape(0), scale, ratio, aligned, false, output, stream); },
      "input"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a, "aligned"_a,
      "output"_a.noconvert(), "stream"_a, release);
  m.def(
      "roi_align_backward_cuda",
      [bwd](Map4 grad, In<T, nb::shape<-1, 5>> rois, double scale, int64_t ratio, bool aligned, OutMap4 grad_input,
            uintptr_t stream) { bwd(grad, rois.data(), rois.shape(0), scale, ratio, aligned, false, grad_input, stream); },
      "grad_output"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a, "aligned"_a,
      "grad_input"_a.noconvert(), "stream"_a, release);
  m.def(
      "roi_align_rotated_forward_cuda",
      [fwd](Map4 input, In<T, nb::shape<-1, 6>> rois, double scale, int64_t ratio, OutMap4 output, uintptr_t stream) {
        fwd(input, rois.data(), rois.shape(0), scale, ratio, true, true, output, stream);
      },
      "input"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a, "output"_a.noconvert(),
      "stream"_a, release);
  m.def(
      "roi_align_rotated_backward_cuda",
      [bwd](Map4 grad, In<T, nb::shape<-1, 6>> rois, double scale, int64_t ratio, OutMap4 grad_input,
            uintptr_t stream) { bwd(grad, rois.data(), rois.shape(0), scale, ratio, true, true, grad_input, stream); },
      "grad_output"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "sampling_ratio"_a,
      "grad_input"_a.noconvert(), "stream"_a, release);

  m.def(
      "roi_pool_forward_cuda",
      [](Map4 input, In<T, nb::shape<-1, 5>> rois, double scale, OutMap4 output, Out<int64_t, nb::ndim<4>> argmax,
         uintptr_t stream) {
        require(output.shape(0) == rois.shape(0) && output.shape(1) == input.shape(1), "roi_pool: shape mismatch");
        dt::cuda::roi_pool_forward<T>(input.data(), input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                      rois.data(), rois.shape(0), output.shape(2), output.shape(3), scale,
                                      output.data(), argmax.data(), as_stream(stream));
      },
      "input"_a.noconvert(), "rois"_a.noconvert(), "spatial_scale"_a, "output"_a.noconvert(),
      "argmax"_a.noconvert(), "stream"_a, release);
  m.def(
      "roi_pool_backward_cuda",
      [](Map4 grad, In<int64_t, nb::ndim<4>> argmax, In<T, nb::shape<-1, 5>> rois, OutMap4 grad_input,
         uintptr_t stream) {
        require(grad.shape(0) == rois.shape(0) && grad.shape(1) == grad_input.shape(1), "roi_pool_backward: shape");
        dt::cuda::roi_pool_backward<T>(grad.data(), argmax.data(), rois.data(), rois.shape(0), grad_input.shape(1),
                                       grad_input.shape(2), grad_input.shape(3), grad.shape(2), grad.shape(3),
                                       grad_input.data(), as_stream(stream));
      },
      "grad_output"_a.noconvert(), "argmax"_a.noconvert(), "rois"_a.noconvert(), "grad_input"_a.noconvert(),
      "stream"_a, release);

  m.def(
      "deform_im2col_cuda",
      [](Map4 input, Map4 offset, std::optional<Map4> mask, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
         int64_t pw, int64_t dh, int64_t dw, Out<T, nb::ndim<3>> columns, uintptr_t stream) {
        const auto g = deform_geometry(input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                       offset.shape(1), offset.shape(2), offset.shape(3), kh, kw, sh, sw, ph, pw, dh,
                                       dw);
        require(columns.size() == static_cast<size_t>(g.batch * g.channels * kh * kw * g.out_h * g.out_w),
                "deform_im2col: columns shape mismatch");
        dt::cuda::deform_im2col<T>(input.data(), offset.data(), mask ? mask->data() : nullptr, g, columns.data(),
                                   as_stream(stream));
      },
      "input"_a.noconvert(), "offset"_a.noconvert(), "mask"_a.noconvert().none(), "kernel_h"_a, "kernel_w"_a,
      "stride_h"_a, "stride_w"_a, "pad_h"_a, "pad_w"_a, "dilation_h"_a, "dilation_w"_a, "columns"_a.noconvert(),
      "stream"_a, release);
  m.def(
      "deform_col2im_cuda",
      [](In<T, nb::ndim<3>> grad_columns, Map4 offset, std::optional<Map4> mask, int64_t kh, int64_t kw, int64_t sh,
         int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, OutMap4 grad_input, uintptr_t stream) {
        const auto g = deform_geometry(grad_input.shape(0), grad_input.shape(1), grad_input.shape(2),
                                       grad_input.shape(3), offset.shape(1), offset.shape(2), offset.shape(3), kh, kw,
                                       sh, sw, ph, pw, dh, dw);
        require(grad_columns.size() == static_cast<size_t>(g.batch * g.channels * kh * kw * g.out_h * g.out_w),
                "deform_col2im: columns shape mismatch");
        dt::cuda::deform_col2im<T>(grad_columns.data(), offset.data(), mask ? mask->data() : nullptr, g,
                                   grad_input.data(), as_stream(stream));
      },
      "grad_columns"_a.noconvert(), "offset"_a.noconvert(), "mask"_a.noconvert().none(), "kernel_h"_a,
      "kernel_w"_a, "stride_h"_a, "stride_w"_a, "pad_h"_a, "pad_w"_a, "dilation_h"_a, "dilation_w"_a,
      "grad_input"_a.noconvert(), "stream"_a, release);
  m.def(
      "deform_col2im_coord_cuda",
      [](In<T, nb::ndim<3>> grad_columns, Map4 input, Map4 offset, std::optional<Map4> mask, int64_t kh, int64_t kw,
         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, OutMap4 grad_offset,
         std::optional<OutMap4> grad_mask, uintptr_t stream) {
        const auto g = deform_geometry(input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                       offset.shape(1), offset.shape(2), offset.shape(3), kh, kw, sh, sw, ph, pw, dh,
                                       dw);
        require(grad_columns.size() == static_cast<size_t>(g.batch * g.channels * kh * kw * g.out_h * g.out_w) &&
                    grad_offset.size() == offset.size() && (!grad_mask || (mask && grad_mask->size() == mask->size())),
                "deform_col2im_coord: shape mismatch");
        dt::cuda::deform_col2im_coord<T>(grad_columns.data(), input.data(), offset.data(),
                                         mask ? mask->data() : nullptr, g, grad_offset.data(),
                                         grad_mask ? grad_mask->data() : nullptr, as_stream(stream));
      },
      "grad_columns"_a.noconvert(), "input"_a.noconvert(), "offset"_a.noconvert(), "mask"_a.noconvert().none(),
      "kernel_h"_a, "kernel_w"_a, "stride_h"_a, "stride_w"_a, "pad_h"_a, "pad_w"_a, "dilation_h"_a,
      "dilation_w"_a, "grad_offset"_a.noconvert(), "grad_mask"_a.noconvert().none(), "stream"_a, release);
}

}  // namespace

void register_cuda(nb::module_& m) {
  bind_dtype<float>(m);
  bind_dtype<double>(m);
}
