"""Learning to hide residual (Lee et al., BMVC 2021): one package for the method.

- `model`: encoder E and decoder D around a real codec (strategies 1 and 2).
- `jpeg_sim`: the differentiable libjpeg-like JPEG used for strategy 1 and the rate proxy.
- `codec`: the registry codecs `hiding-jpeg` and `hiding-bpg` (the files are plain JPEG/BPG).

Submodules are imported on use, so `import tfcomp.hiding` loads no TensorFlow.
"""
