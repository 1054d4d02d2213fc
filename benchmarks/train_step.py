"""dt-models training-step speed on CPU (torch at 2 threads): median of 5 timed steps after 2 warm-ups.

One step (forward, backward, SGD update) of a full-width model at batch 2 on 512x512 images (the
astronaut and its mirror) with 3 annotated objects each, per family (``_cases.py``): ``train_step``
(Mask R-CNN R50-FPN, boxes + polygons), ``keypoint_train_step`` (Keypoint R-CNN R50-FPN, boxes + 17
keypoints), ``cascade_train_step`` (Cascade Mask R-CNN R50-FPN, boxes + polygons), ``c4_train_step``
(Faster R-CNN R50-C4, boxes), ``retinanet_train_step`` (RetinaNet R50-FPN, boxes),
``fcos_train_step`` (FCOS R50-FPN, boxes) and ``panoptic_train_step`` (Panoptic FPN R50, boxes +
polygons + a ``sem_seg`` map: 4 bands of stuff classes, the objects as the things class 0, an
unlabeled frame). The models are detectron2's zoo configs (frozen BN, freeze_at=2; FCOS: dt's
``FCOSConfig``, detectron2's LazyConfig ``fcos_R_50_FPN_1x``), with random weights whose frozen-BN
statistics are set to their inputs' per-channel mean and variance in one forward pass. Each case runs
in a spawned process so the peak memory (max RSS) is the step's own. Prints JSON with the last step's
losses.

    python benchmarks/train_step.py [--cases train_step,keypoint_train_step,...] [--runs 5] [--warmup 2]
        [--ablation]
"""

from __future__ import annotations

from _cases import TRAINING_CASES
from inference import main

if __name__ == "__main__":
    main("train_step", TRAINING_CASES, __doc__)
