"""Run an exported model the way a deployment does: ``python -I -S fresh_process_run.py SITE MODEL
FORMAT IMAGES OUT`` with only ``SITE`` (torch, dt-ops and their dependencies) on ``sys.path``; FORMAT
``exported-program``, ``torchscript`` or ``aot-inductor`` (an AOTInductor package, fed contiguous
images as its JSON says)."""

import sys

site, model_file, format, images_file, out_file = sys.argv[1:6]
sys.path.insert(0, site)
for forbidden in ("dt_models", "dt_data", "dt_engine", "dt_export", "dt_structures"):
    try:
        __import__(forbidden)
    except ModuleNotFoundError:
        continue
    sys.exit(f"{forbidden} is importable in the fresh process")

import torch  # noqa: E402

import dt_ops  # noqa: E402, F401  (registers torch.ops.dt.*)

if format == "aot-inductor":
    from torch._inductor import aoti_load_package

    package = aoti_load_package(model_file)

    def model(image):
        return package(image.contiguous())
elif format == "exported-program":
    model = torch.export.load(model_file).module()
else:
    model = torch.jit.load(model_file)
with torch.no_grad():
    outputs = [tuple(model(image)) for image in torch.load(images_file, weights_only=True)]
torch.save(outputs, out_file)
