"""Weights files shipped with the package; each ``NAME.safetensors`` here is the bundled model ``NAME``.

See ``pixelplexus.references`` for how names resolve and ``docs/models.md`` for each file's model card.
"""
