"""Small ONNX models built with the `onnx` package (dev extra) for tests: contract-valid models with known
outputs, and models that break the contract in one place each."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from selfdrive.modeld.constants import INPUT_NAME, INPUT_SHAPE, OUTPUTS, X_LINES

Spec = tuple[str, int, tuple[int, ...]]   # name, onnx element type, shape


def contract_outputs() -> dict[str, np.ndarray]:
    """Plausible constant outputs of every head (a car driving straight at 20 m/s in the middle of its lane)."""
    from selfdrive.modeld.constants import T_PATH
    path = np.zeros(OUTPUTS["path"], np.float32)
    path[0, :, 0] = 20.0 * T_PATH
    lanes = np.zeros(OUTPUTS["lanes"], np.float32)
    for i, y in enumerate((5.4, 1.8, -1.8, -5.4)):
        lanes[0, i] = y
    edges = np.zeros(OUTPUTS["edges"], np.float32)
    edges[0, 0], edges[0, 1] = 7.0, -7.0
    out = {k: np.full(s, 0.5, np.float32) for k, s in OUTPUTS.items()}   # stds and probabilities
    out.update(path=path, lanes=lanes, edges=edges, lead=np.array([[50.0, 20.0]], np.float32),
               curvature=np.zeros(OUTPUTS["curvature"], np.float32))
    assert set(out) == set(OUTPUTS) and len(X_LINES) == lanes.shape[-1]
    return out


def write_model(path: str, outputs: dict[str, np.ndarray], inputs: list[Spec] | None = None) -> str:
    """A model whose outputs are the given constants (shapes and types declared as the arrays are); its inputs
    are declared but unused. Default input: the contract's uint8 frames."""
    inputs = [(INPUT_NAME, TensorProto.UINT8, INPUT_SHAPE)] if inputs is None else inputs
    nodes, outs = [], []
    for name, value in outputs.items():
        value = np.asarray(value)
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_value")))
        outs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
    ins = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    graph = helper.make_graph(nodes, "test_model", ins, outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8     # what onnxruntime 1.32 reads for opset 17
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def write_slow_model(path: str, matmuls: int, outputs: dict[str, np.ndarray] | None = None) -> str:
    """A contract-valid model that does `matmuls` 256x256 float matrix products on the frames before answering
    (onnxruntime runs them: `curvature` depends on the result, times zero), to make modeld slower than the
    camera. Outputs as contract_outputs() (or `outputs`)."""
    outputs = contract_outputs() if outputs is None else outputs
    rng = np.random.default_rng(0)
    # non-negative weights with rows summing to ~1 keep the values bounded whatever the number of products
    w = (rng.random((256, 256)) * (2.0 / 256)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([256, 256], np.int64), "shape"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    nodes = [helper.make_node("Cast", [INPUT_NAME], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["f", "shape"], ["h0"])]
    for i in range(matmuls):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}"]))
    nodes += [helper.make_node("ReduceMean", [f"h{matmuls}"], ["m"], keepdims=0),
              helper.make_node("Mul", ["m", "zero"], ["m0"]),
              helper.make_node("Constant", [], ["c0"], value=numpy_helper.from_array(outputs["curvature"], "c0v")),
              helper.make_node("Add", ["c0", "m0"], ["curvature"])]
    outs = [helper.make_tensor_value_info("curvature", TensorProto.FLOAT, OUTPUTS["curvature"])]
    for name, value in outputs.items():
        if name == "curvature":
            continue
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_value")))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, value.shape))
    ins = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, INPUT_SHAPE)]
    model = helper.make_model(helper.make_graph(nodes, "slow_model", ins, outs, initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
