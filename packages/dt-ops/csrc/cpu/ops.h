// CPU kernels over raw, C-contiguous buffers. Outputs are allocated (and zeroed where noted) by the
// caller; `threads` is the number of threads to use.
#pragma once
#include <cstdint>

#include "common/deform_geometry.h"

namespace dt::cpu {

// Greedy NMS. Writes the kept indices (decreasing score, ties by lower index) to keep; returns their
// count. With idxs (may be null) boxes only suppress boxes of the same class.
template <typename T>
int64_t nms(const T* boxes, const T* scores, const int64_t* idxs, int64_t n, double iou_threshold,
            int64_t* keep, int threads);
// Greedy sweep over a suppression bit matrix [n, ceil(n / 64)] of score-sorted boxes (bit j of row i:
// box i suppresses box j). Writes kept positions to keep; returns their count.
int64_t nms_sweep(const uint64_t* mask, int64_t n, int64_t* keep);
template <typename T>
void box_iou(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, int threads);

template <typename T>
void roi_align_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                       const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                       double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated, T* output,
                       int threads);
// roi_align_forward (not rotated) of a channels-last input [batch, height, width, channels]; output as
// roi_align_forward's, [num_rois, channels, pooled_h, pooled_w].
template <typename T>
void roi_align_forward_nhwc(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                            const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                            double spatial_scale, int64_t sampling_ratio, bool aligned, T* output, int threads);
// roi_align_backward (not rotated) into a channels-last grad_input [batch, height, width, channels],
// which must be zeroed.
template <typename T>
void roi_align_backward_nhwc(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                             int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                             double spatial_scale, int64_t sampling_ratio, bool aligned, T* grad_input,
                             int threads);
// grad_input must be zeroed.
template <typename T>
void roi_align_backward(const T* grad_output, int64_t batch, int64_t channels, int64_t height,
                        int64_t width, const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w,
                        double spatial_scale, int64_t sampling_ratio, bool aligned, bool rotated,
                        T* grad_input, int threads);

template <typename T>
void roi_pool_forward(const T* input, int64_t batch, int64_t channels, int64_t height, int64_t width,
                      const T* rois, int64_t num_rois, int64_t pooled_h, int64_t pooled_w, double spatial_scale,
                      T* output, int64_t* argmax, int threads);
// grad_input must be zeroed.
template <typename T>
void roi_pool_backward(const T* grad_output, const int64_t* argmax, const T* rois, int64_t num_rois,
                       int64_t channels, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
                       T* grad_input, int threads);

template <typename T>
void box_iou_rotated(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out, int threads);
template <typename T>
int64_t nms_rotated(const T* boxes, const T* scores, const int64_t* idxs, int64_t n, double iou_threshold,
                    int64_t* keep, int threads);

using dt::DeformGeometry;

// columns: [B, C * kh * kw, Ho * Wo]. mask may be null (DCNv1).
template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformGeometry& g, T* columns,
                   int threads);
// grad_input must be zeroed.
template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask, const DeformGeometry& g,
                   T* grad_input, int threads);
// grad_mask may be null (DCNv1); both outputs are fully overwritten.
template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformGeometry& g, T* grad_offset, T* grad_mask, int threads);

}  // namespace dt::cpu
