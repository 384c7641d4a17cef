"""Canonical ops needed by frontends beyond Paddle (ONNX): added as they are needed."""
