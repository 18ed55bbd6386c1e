"""Batch enhance and colorize with Ray Data: list → read → decode → model actors → encode → write, with a manifest."""
