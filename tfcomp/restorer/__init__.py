"""JPEG artifact removal CNN (conv units of 3x3 / 1x1 / PReLU) with the blind quality gate.

- `model`: the 313,066-parameter network, identity init, the quality gate, weight loading.
- `restore`: restoring a decoded image (tiled, exact with the gate).

Submodules are imported on use, so `import tfcomp.restorer` loads no TensorFlow.
"""
