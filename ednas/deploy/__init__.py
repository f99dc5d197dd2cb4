"""Deployment: fused ONNX export, ONNX Runtime checks, fixed-point quantization."""
