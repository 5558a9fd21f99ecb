"""JPD-SE (Duan et al., TIP 2022): semantic-aware post-processing on BPG, one package.

- `model`: generator, multi-scale PatchGAN, losses and the three-phase training model.
- `semantic`: Cityscapes frames, one-hot semantics + instance edges, side-info coding, .jpdse.
- `data`: BPG-decoded training frames (cached) as tf.data pipelines.
- `codec`: the registry codec `jpdse-bpg`.

Submodules are imported on use, so `import tfcomp.jpdse` loads no TensorFlow.
"""
