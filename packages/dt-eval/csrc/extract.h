// Reading pycocotools-style annotation dicts into an AnnSet (holds the GIL).
#pragma once

#include <nanobind/nanobind.h>

#include "core.h"

namespace dt_eval {

struct ExtractSpec {
  int iou_type = kBbox;
  bool is_dt = false;
  const char* side = "cocoGt";  // named in error messages
  std::vector<int64_t> img_h, img_w;  // per evaluated image, -1 when unknown (filled by extract)
  int64_t num_kpts = 0;
};

// Annotations of the images img_ids (a list, in evaluation order) from a COCO object's imgToAnns
// dict, in its order; imgs (COCO.imgs, or None) gives image sizes for polygons; cat_index maps
// category ids to evaluation positions (annotations of other categories are skipped).
AnnSet extract(nanobind::handle img_ids, nanobind::handle img_to_anns, nanobind::handle imgs,
               nanobind::handle cat_index, const ExtractSpec& spec);

}  // namespace dt_eval
