// Helpers shared by the CPU and CUDA bindings.
#pragma once
#include <nanobind/nanobind.h>

#include <cstddef>
#include <cstdint>

#include "common/deform_geometry.h"

namespace dt::bindings {

namespace nb = nanobind;

inline void require(bool ok, const char* message) {
  if (!ok) throw nb::value_error(message);
}

inline dt::DeformGeometry deform_geometry(size_t batch, size_t channels, size_t height, size_t width,
                                        size_t offset_channels, size_t out_h, size_t out_w, int64_t kernel_h,
                                        int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                        int64_t pad_w, int64_t dilation_h, int64_t dilation_w) {
  dt::DeformGeometry g{};
  g.batch = batch, g.channels = channels, g.height = height, g.width = width;
  g.kernel_h = kernel_h, g.kernel_w = kernel_w, g.stride_h = stride_h, g.stride_w = stride_w;
  g.pad_h = pad_h, g.pad_w = pad_w, g.dilation_h = dilation_h, g.dilation_w = dilation_w;
  g.out_h = out_h, g.out_w = out_w;
  require(kernel_h > 0 && kernel_w > 0 && offset_channels % (2 * kernel_h * kernel_w) == 0,
          "offset channels must be a multiple of 2 * kernel_h * kernel_w");
  g.offset_groups = offset_channels / (2 * kernel_h * kernel_w);
  require(g.offset_groups > 0 && g.channels % g.offset_groups == 0, "channels must divide into offset groups");
  return g;
}

}  // namespace dt::bindings
