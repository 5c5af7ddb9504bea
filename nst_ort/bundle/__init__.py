"""Bundles: everything one run needs, as files an embedded ONNX Runtime can run.

- write.py: make_bundle() writes one (its backend's files via WRITERS, initial.png, bundle.json);
- graph.py: the ort-graph bundle, the default (the gradient graph at a fixed size, its inputs' values);
- training.py: the ort-training bundle (training and optimizer models, a checkpoint with the run's values);
- driver.py: the reference driver, standalone (`python nst_ort/bundle/driver.py DIR -o OUT.png`).
"""

from nst_ort.bundle.write import BundleInfo, make_bundle

__all__ = ["BundleInfo", "make_bundle"]
