"""PixelPlexus: train, batch-run and serve image GAN models on Ray."""

__version__ = "0.1.0"
