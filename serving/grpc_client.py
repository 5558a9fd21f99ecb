#!/usr/bin/env python3
"""Restore an image through TF Serving's gRPC PredictionService (`tfcomp serve` or
tensorflow_model_server), with the official tensorflow-serving-api stubs.

    python serving/grpc_client.py photo.jpg -o restored.png [--model restorer-blind]
        [--target 127.0.0.1:8500] [--version N] [--status]

Sends the file's bytes to the `restore_bytes` signature (input `image_bytes`, DT_STRING [1])
and writes the PNG of output `restored_bytes`. --status prints GetModelStatus first.
"""

import argparse
import os
import sys
import tempfile

import grpc
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2


def string_tensor(values):
    """A DT_STRING [N] TensorProto (what tf.make_tensor_proto builds, without running TF)."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=list(values),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]))


def restore_bytes(channel, model, data, version=None, timeout=300):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = "restore_bytes"
    if version:
        req.model_spec.version.value = version
    req.inputs["image_bytes"].CopyFrom(string_tensor([data]))
    resp = stub.Predict(req, timeout=timeout)
    return resp.outputs["restored_bytes"].string_val[0], resp.model_spec.version.value


def model_status(channel, model, timeout=30):
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = model
    return stub.GetModelStatus(req, timeout=timeout)


def write_atomic(path, data):
    """Writes via a temp file + rename: never a partial output file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".restored.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="PNG or JPEG file")
    p.add_argument("-o", "--output", required=True, help="restored PNG to write")
    p.add_argument("--target", default="127.0.0.1:8500", help="gRPC host:port")
    p.add_argument("--model", default="restorer-blind")
    p.add_argument("--version", type=int, help="model version (default: the latest served)")
    p.add_argument("--status", action="store_true", help="print the model's status first")
    args = p.parse_args(argv)
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    try:
        with open(args.input, "rb") as f:
            data = f.read()
        with grpc.insecure_channel(args.target, options=options) as channel:
            if args.status:
                for s in model_status(channel, args.model).model_version_status:
                    print(f"{args.model} version {s.version}: "
                          f"{get_model_status_pb2.ModelVersionStatus.State.Name(s.state)}")
            png, version = restore_bytes(channel, args.model, data, args.version)
        write_atomic(args.output, png)
    except grpc.RpcError as e:
        print(f"grpc_client: error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"grpc_client: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(png)} bytes from {args.model} version {version} at {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
