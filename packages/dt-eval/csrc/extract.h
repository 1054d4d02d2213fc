// Reading pycocotools-style annotation dicts into an AnnSet (holds the GIL).
#pragma once

#include <nanobind/nanobind.h>

#include "core.h"

namespace dt_eval {

struct ExtractSpec {
  int iou_type = kBbox;
  bool is_dt = false;
  const char* side = "cocoGt";  // named in error messages
  std::vector<int64_t> img_h, img_w;  // per evaluated image, -1 when unknown
  int64_t num_kpts = 0;
};

// anns: list of annotation dicts; img_index / cat_index: dicts mapping ids to evaluation positions
// (annotations whose image or category is absent are skipped).
AnnSet extract(nanobind::handle anns, nanobind::handle img_index, nanobind::handle cat_index,
               const ExtractSpec& spec);

}  // namespace dt_eval
