// CUDA kernel launchers over raw device buffers. Declared without CUDA types so the (host-compiled)
// bindings can call them; `stream` is a cudaStream_t. Outputs are allocated (and zeroed where
// noted) by the caller with torch on the same device.
#pragma once
#include <cstdint>

#include "common/deform_geometry.h"

namespace dt::cuda {

// Suppression bit matrix [n, ceil(n / 64)] of boxes sorted by decreasing score; bit j of row i is set
// when box i suppresses box j (j > i, same class when idxs is not null).
template <typename T>
void nms_mask(const T* boxes, const int64_t* idxs, int64_t n, double iou_threshold, int64_t* mask, void* stream);
template <typename T>
void nms_rotated_mask(const T* boxes, const int64_t* idxs, int64_t n, double iou_threshold, int64_t* mask,
                      void* stream);
template <typename T>
void box_iou(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, void* stream);
template <typename T>
void box_iou_rotated(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, void* stream);

template <typename T>
void roi_align_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                       const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                       double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated, T* output,
                       void* stream);
// grad_input must be zeroed.
template <typename T>
void roi_align_backward(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                        int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                        double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated,
                        T* grad_input, void* stream);

template <typename T>
void roi_pool_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                      const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w, double spatial_scale,
                      T* output, int64_t* argmax, void* stream);
// grad_input must be zeroed.
template <typename T>
void roi_pool_backward(const T* grad_output, const int64_t* argmax, const T* rois, int64_t num_rois,
                       int64_t channels, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
                       T* grad_input, void* stream);

using dt::DeformGeometry;

template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformGeometry& g, T* columns,
                   void* stream);
// grad_input must be zeroed.
template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask, const DeformGeometry& g,
                   T* grad_input, void* stream);
template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformGeometry& g, T* grad_offset, T* grad_mask, void* stream);

}  // namespace dt::cuda
