"""Content-weighted image compression (Li et al., CVPR 2018): one package for the method.

- `model`: the Keras model (encoder, binarizer, importance map, decoder, rate loss).
- `coding`: the checkerboard bit contexts and range coding of the kept bits (.cwic v2).
- `codec`: the registry codec `cwic` (image <-> .cwic file).
- `training`: context-table fitting and the coding/ablation reports.
- `contexts`: the context-family study behind the README's table.

Submodules are imported on use, so `import tfcomp.cwic` loads no TensorFlow.
"""
