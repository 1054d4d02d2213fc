// Shapes and convolution parameters of a deformable convolution, shared by CPU and CUDA kernels.
#pragma once
#include <cstdint>

namespace dt {

struct DeformGeometry {
  int64_t batch, channels, height, width;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t offset_groups, out_h, out_w;
};

}  // namespace dt
