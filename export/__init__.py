"""The torch-based exporter: writes one self-describing ONNX file (VGG, Grams, losses)."""
