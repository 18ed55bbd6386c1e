"""Ray Serve: one application, an HTTP ingress and one model deployment per task."""
