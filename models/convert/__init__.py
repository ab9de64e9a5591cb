"""ONNX to RKNN conversion (rknn-toolkit2), self-checked in its simulator before anything is
written."""
