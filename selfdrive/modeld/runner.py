"""The driving model in onnxruntime: loads it, checks that its inputs and outputs are the ones modeld speaks
(selfdrive/modeld/constants.py), and runs it on one pair of model frames."""

import os

import numpy as np
import onnxruntime as ort

from selfdrive.modeld.constants import INPUT_NAME, INPUT_SHAPE, OUTPUTS

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models",
                             "driving.onnx")


class ModelError(RuntimeError):
    """The model file is missing, unreadable or does not have the expected inputs/outputs."""


def _shape(arg) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in arg.shape)


def check_signature(sess: ort.InferenceSession) -> None:
    """Raises ModelError naming every mismatch between the session's signature and the expected one."""
    problems = []
    ins = sess.get_inputs()
    if len(ins) != 1 or ins[0].name != INPUT_NAME or _shape(ins[0]) != INPUT_SHAPE or ins[0].type != "tensor(uint8)":
        got = ", ".join(f"{i.name}{_shape(i)} {i.type}" for i in ins)
        problems.append(f"input must be {INPUT_NAME}{INPUT_SHAPE} tensor(uint8), got {got or 'none'}")
    outs = {o.name: o for o in sess.get_outputs()}
    for name, shape in OUTPUTS.items():
        o = outs.get(name)
        if o is None:
            problems.append(f"output {name}{shape} is missing")
        elif _shape(o) != shape or o.type != "tensor(float)":
            problems.append(f"output {name} must be {shape} tensor(float), got {_shape(o)} {o.type}")
    extra = sorted(set(outs) - set(OUTPUTS))
    if extra:
        problems.append(f"unexpected outputs {extra}")
    if problems:
        raise ModelError("the model does not match modeld's contract: " + "; ".join(problems))


class ModelRunner:
    def __init__(self, path: str = DEFAULT_MODEL, threads: int = 1):
        if not os.path.isfile(path):
            raise ModelError(f"model file not found: {path}")
        opts = ort.SessionOptions()
        # explicit threads: onnxruntime would otherwise take every core, fighting the other daemons
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # no busy-waiting between runs: by default the pool's threads spin after each run, which measured ~30 ms
        # of CPU per 50 ms frame here (0.6 of a core, for nothing) against ~1 ms without, at the same latency
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for unreadable or invalid files
            raise ModelError(f"cannot load model {path}: {e}") from None
        check_signature(self.sess)
        self.path = path

    def run(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """frames: uint8 INPUT_SHAPE (previous, current). Returns each output without its batch axis."""
        if frames.shape != INPUT_SHAPE or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 {INPUT_SHAPE}, got {frames.dtype} {frames.shape}")
        res = self.sess.run(list(OUTPUTS), {INPUT_NAME: frames})
        return {k: v[0] for k, v in zip(OUTPUTS, res, strict=True)}
