"""Content-weighted image compression (Li et al., CVPR 2018): one package for the method.

- `model`: the Keras model (encoder, binarizer, importance map, decoder, rate loss) and, with
  its context tables attached, the codec itself: `compress` / `decompress` tf.functions.
- `graph`: what those run in the graph: tiles, contexts, range coding, the .cwic v3 file.
- `coding`: the checkerboard bit contexts and range coding in numpy (the reference the graph
  is tested against; table fitting and the context study use it).
- `codec`: the registry codec `cwic` (image <-> .cwic file, through the model's graph).
- `export`: the self-contained SavedModel (compress / decompress) and the float networks for
  TFLite / ONNX.
- `training`: context-table fitting and the coding/ablation reports.
- `contexts`: the context-family study behind the README's table.

Submodules are imported on use, so `import tfcomp.cwic` loads no TensorFlow.
"""
