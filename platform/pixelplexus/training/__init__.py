"""Distributed GAN training: Ray Train glue around the one loop, checkpoints and MLflow logging."""
