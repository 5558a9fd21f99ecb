"""TF Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus), implemented with tensorflow-serving-api's generated servicers."""

import grpc

from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from .servables import ServingError

__all__ = ["PredictionServicer", "ModelServicer", "status_response", "metadata_response",
           "add_services"]


def _spec_version(spec):
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label or None
    if version is not None and label is not None:
        raise ServingError("INVALID_ARGUMENT", "give a version or a version_label, not both")
    return version, label


def status_response(servables):
    resp = get_model_status_pb2.GetModelStatusResponse()
    for s in servables:
        st = resp.model_version_status.add()
        st.version = s.version
        st.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        st.status.error_code = 0  # OK
        st.status.error_message = ""
    return resp


def metadata_response(servable):
    resp = get_model_metadata_pb2.GetModelMetadataResponse()
    resp.model_spec.name = servable.name
    resp.model_spec.version.value = servable.version
    sigmap = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in servable.signature_defs.items():
        sigmap.signature_def[key].CopyFrom(sig)
    resp.metadata["signature_def"].Pack(sigmap)
    return resp


def _abort(context, e):
    context.abort(getattr(grpc.StatusCode, e.code, grpc.StatusCode.INTERNAL), e.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress, MultiInference answer UNIMPLEMENTED."""

    def __init__(self, registry, max_elements=64 << 20):
        self.registry = registry
        self.max_elements = max_elements

    def _ndarray(self, key, proto):
        """TensorProto -> numpy; a declared shape larger than any honest message is refused
        (a one-value "splat" proto could otherwise ask for gigabytes)."""
        import tensorflow as tf
        n = 1
        for d in proto.tensor_shape.dim:
            if d.size < 0:
                raise ServingError("INVALID_ARGUMENT", f"input {key!r}: negative dimension")
            n *= d.size
        if n > self.max_elements:
            raise ServingError("RESOURCE_EXHAUSTED", f"input {key!r}: {n} elements exceed the "
                               f"limit of {self.max_elements}")
        try:
            return tf.make_ndarray(proto)
        except (TypeError, ValueError) as e:
            raise ServingError("INVALID_ARGUMENT", f"input {key!r}: malformed TensorProto "
                               f"({e})") from None

    def Predict(self, request, context):
        import tensorflow as tf
        try:
            version, label = _spec_version(request.model_spec)
            servable = self.registry.get(request.model_spec.name, version, label)
            inputs = {key: self._ndarray(key, proto) for key, proto in request.inputs.items()}
            sig, outputs = servable.predict(request.model_spec.signature_name or None, inputs,
                                            list(request.output_filter) or None)
            resp = predict_pb2.PredictResponse()
            resp.model_spec.name = servable.name
            resp.model_spec.version.value = servable.version
            resp.model_spec.signature_name = sig
            for key, arr in outputs.items():
                resp.outputs[key].CopyFrom(tf.make_tensor_proto(arr))
            return resp
        except ServingError as e:
            _abort(context, e)
        except MemoryError:
            _abort(context, ServingError("RESOURCE_EXHAUSTED", "not enough memory for this "
                                         "request"))

    def GetModelMetadata(self, request, context):
        try:
            fields = list(request.metadata_field)
            if not fields:
                raise ServingError("INVALID_ARGUMENT", "GetModelMetadataRequest must specify at "
                                   "least one metadata_field")
            unsupported = [f for f in fields if f != "signature_def"]
            if unsupported:
                raise ServingError("INVALID_ARGUMENT", f"Metadata field {unsupported[0]} is not "
                                   "supported")
            version, label = _spec_version(request.model_spec)
            return metadata_response(self.registry.get(request.model_spec.name, version, label))
        except ServingError as e:
            _abort(context, e)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED (restart to reload)."""

    def __init__(self, registry):
        self.registry = registry

    def GetModelStatus(self, request, context):
        try:
            version, label = _spec_version(request.model_spec)
            return status_response(self.registry.versions(request.model_spec.name, version,
                                                          label))
        except ServingError as e:
            _abort(context, e)


def add_services(server, registry, max_elements=64 << 20):
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry, max_elements), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(registry), server)


def create_server(registry, host="127.0.0.1", port=8500, max_message_bytes=64 << 20, workers=8):
    """A started grpc.Server on host:port (0 = a free port); returns (server, port)."""
    from concurrent import futures
    from ..errors import InputError
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max(1, workers),
                                                    thread_name_prefix="grpc"),
                         options=[("grpc.max_receive_message_length", int(max_message_bytes)),
                                  ("grpc.max_send_message_length", -1),
                                  ("grpc.so_reuseport", 0)])
    add_services(server, registry, max_elements=int(max_message_bytes))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise InputError(f"cannot listen for gRPC on {address} (port in use?)")
    server.start()
    return server, bound
