"""Trains the driving model on gen_data's episodes and exports it to ONNX (verified against torch).

  python -m tools.train.train --data data/driving [data/corners ...] --config small --out models/driving.onnx

A compact CNN on two consecutive model frames; one head per output of selfdrive/modeld/constants.OUTPUTS.
Losses: Laplace negative log-likelihood with a learned scale for path, lane lines, road edges and the lead
(the scale is the published std), plain L1 on the path's y and z and the lines as well, binary cross-entropy for
lane-line and lead presence, L1 for curvature. Samples in corners are drawn more often (corner_weights).
Targets are expressed in the frame the warp's calibration believes in (tools/train/targets.py).
Early stopping on the validation loss; the best epoch is exported.
Needs the optional `train` extra (torch, onnx); nothing at runtime imports this.
"""

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from selfdrive.modeld.constants import INPUT_NAME, INPUT_SHAPE, NUM_EDGES, NUM_LINES, OUTPUTS, T_PATH, X_LINES
from tools.train import metrics
from tools.train.targets import CORNER_BOOST, CORNER_K, KEYS, corner_weights, load_splits

NT, NX = len(T_PATH), len(X_LINES)
# output scales: the network's raw outputs are O(1)
PATH_SCALE = torch.tensor([50.0, 3.0, 1.0])
LINE_SCALE, LEAD_SCALE, CURV_SCALE = 4.0, torch.tensor([40.0, 20.0]), 0.01


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    patience: int
    batch: int
    lr: float
    width: int
    seed: int = 0


CONFIGS = {
    "tiny": TrainConfig(epochs=2, patience=2, batch=16, lr=1e-3, width=8),
    "small": TrainConfig(epochs=30, patience=6, batch=32, lr=1e-3, width=32),
    "full": TrainConfig(epochs=20, patience=6, batch=64, lr=2e-3, width=24),
}


def _conv(cin: int, cout: int, k: int, stride: int) -> list[nn.Module]:
    pad = (k - 1) // 2 if stride <= 2 else 0
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class DrivingNet(nn.Module):
    """The first layer cuts the (2, 128, 256) input into 4x4 patches (a strided conv, like a patch embedding):
    full-resolution convolutions cost most of the time on a 2-core CPU and add little at this frame size."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            *_conv(2, w, 4, 4),               # 32 x 64
            *_conv(w, 2 * w, 3, 2),           # 16 x 32
            *_conv(2 * w, 2 * w, 3, 1),
            *_conv(2 * w, 3 * w, 3, 2),       # 8 x 16
            *_conv(3 * w, 4 * w, 3, 2),       # 4 x 8
            *_conv(4 * w, 4 * w, 3, 2),       # 2 x 4
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 2 * 4, 256), nn.ReLU(), nn.Dropout(0.1))
        self.sizes = {"path": NT * 6, "lanes": NUM_LINES * NX * 2, "lane_prob": NUM_LINES, "edges": NUM_EDGES * NX * 2,
                      "lead": 4, "lead_prob": 1, "curvature": 1}
        self.head = nn.Linear(256, sum(self.sizes.values()))

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """The convolutional features of uint8 frames."""
        return self.conv(frames.float() * (1.0 / 128.0) - 1.0)

    def outputs(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head's raw outputs, one tensor per output, from the features."""
        h = self.head(self.fc(features))
        out, i = {}, 0
        for k, n in self.sizes.items():
            out[k] = h[:, i:i + n]
            i += n
        return out

    def raw(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.outputs(self.features(frames))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        r = self.raw(frames)
        b = frames.shape[0]
        p = r["path"].view(b, NT, 6)
        lanes = r["lanes"].view(b, NUM_LINES, NX, 2)
        edges = r["edges"].view(b, NUM_EDGES, NX, 2)
        lead = r["lead"].view(b, 2, 2)
        out = {
            "path": p[..., :3] * PATH_SCALE, "path_std": torch.exp(p[..., 3:].clamp(-8, 4)) * PATH_SCALE,
            "lanes": lanes[..., 0] * LINE_SCALE, "lanes_std": torch.exp(lanes[..., 1].clamp(-8, 4)) * LINE_SCALE,
            "lane_prob": torch.sigmoid(r["lane_prob"]),
            "edges": edges[..., 0] * LINE_SCALE, "edges_std": torch.exp(edges[..., 1].clamp(-8, 4)) * LINE_SCALE,
            "lead": lead[..., 0] * LEAD_SCALE, "lead_std": torch.exp(lead[..., 1].clamp(-8, 4)) * LEAD_SCALE,
            "lead_prob": torch.sigmoid(r["lead_prob"]),
            "curvature": r["curvature"] * CURV_SCALE,
        }
        return tuple(out[k] for k in OUTPUTS)


def _laplace(mu, log_b, y, scale):
    """Laplace NLL in scaled units (mu, log_b raw network outputs)."""
    return (torch.abs(y / scale - mu) * torch.exp(-log_b) + log_b)


def lead_losses(lead_raw, prob_raw, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Laplace NLL of the lead's (distance, speed) where there is a lead, and BCE of its presence. `lead_raw`: the
    head's (b, 4) lead outputs, `prob_raw`: (b,) presence logits, `target`: (b, 3) distance, speed, presence."""
    lead = lead_raw.view(-1, 2, 2)
    has = target[:, 2]
    nll = _laplace(lead[..., 0], lead[..., 1].clamp(-8, 4), target[:, :2], LEAD_SCALE).sum(-1)
    return (nll * has).sum() / (has.sum() + 1.0), nn.functional.binary_cross_entropy_with_logits(prob_raw, has)


def _scene_mean(x: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
    """The mean of per-sample losses `x` (b, ...) over the samples that show a road (scene 1)."""
    w = scene.view(-1, *([1] * (x.dim() - 1))).expand_as(x)
    return (x * w).sum() / (w.sum() + 1e-6)


def loss_fn(net: DrivingNet, frames, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Every loss term. A picture of no road (scene 0) teaches only that no line and no lead is there: its path,
    edges and curvature targets mean nothing and are left out."""
    r = net.raw(frames)
    b = frames.shape[0]
    scene = t["scene"]
    p = r["path"].view(b, NT, 6)
    lp = _scene_mean(_laplace(p[..., :3], p[..., 3:].clamp(-8, 4), t["path"], PATH_SCALE), scene)
    # the path's height is how calibrationd sees a pitch error. Under the NLL alone a large learned scale can
    # starve it of gradient until weight decay flattens it to 0 (a width-24 run did: pitch gain 0.00), so it
    # also has a plain L1 term whose gradient does not depend on the predicted scale
    lz = _scene_mean(torch.abs(p[..., 2] - t["path"][..., 2] / PATH_SCALE[2]), scene)
    # the same for its y: under the NLL alone the model put a large scale on corners and read a 57 m radius at
    # 0.65x its curvature (0.5x within 15 m), and the car drifted out of suburban corners (issue 22)
    ly = _scene_mean(torch.abs(p[..., 1] - t["path"][..., 1] / PATH_SCALE[1]), scene)
    lanes = r["lanes"].view(b, NUM_LINES, NX, 2)
    pres = t["lane_present"]
    ll = (_laplace(lanes[..., 0], lanes[..., 1].clamp(-8, 4), t["lanes"], LINE_SCALE) * pres[..., None]).sum() / (
        pres.sum() * NX + 1.0)
    # and the lines' y likewise (their NLL alone read the same corners' lane centre at a third of its curvature)
    ll1 = (torch.abs(lanes[..., 0] - t["lanes"] / LINE_SCALE) * pres[..., None]).sum() / (pres.sum() * NX + 1.0)
    lprob = nn.functional.binary_cross_entropy_with_logits(r["lane_prob"], pres)
    edges = r["edges"].view(b, NUM_EDGES, NX, 2)
    le = _scene_mean(_laplace(edges[..., 0], edges[..., 1].clamp(-8, 4), t["edges"], LINE_SCALE), scene)
    llead, lleadp = lead_losses(r["lead"], r["lead_prob"][:, 0], t["lead"])
    lc = _scene_mean(torch.abs(r["curvature"][:, 0] - t["curvature"] / CURV_SCALE), scene)
    parts = {"path": lp, "path_y": ly, "path_z": lz, "lanes": ll, "lanes_l1": ll1, "lane_prob": lprob, "edges": le,
             "lead": llead, "lead_prob": lleadp, "curvature": lc}
    total = sum(parts.values())
    return total, {k: v.detach() for k, v in parts.items()}


def to_tensors(d: dict[str, np.ndarray], device: str) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(d[k]).to(device) if k == "frames" else torch.from_numpy(d[k]).float().to(device)
            for k in KEYS}


def _batch(d: dict[str, torch.Tensor], idx) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return d["frames"][idx], {k: d[k][idx] for k in KEYS[1:]}


def predict(net: DrivingNet, d: dict[str, np.ndarray], batch: int = 128) -> dict[str, np.ndarray]:
    net.eval()
    outs: dict[str, list] = {k: [] for k in OUTPUTS}
    with torch.no_grad():
        for i in range(0, len(d["frames"]), batch):
            for k, v in zip(OUTPUTS, net(torch.from_numpy(d["frames"][i:i + batch])), strict=True):
                outs[k].append(v.numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def evaluate_loss(net: DrivingNet, d: dict[str, torch.Tensor], batch: int = 128) -> float:
    net.eval()
    tot, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(d["frames"]), batch):
            f, t = _batch(d, slice(i, i + batch))
            loss, _ = loss_fn(net, f, t)
            tot += float(loss) * len(f)
            n += len(f)
    return tot / max(n, 1)


def export_onnx(net: DrivingNet, path: str, check: np.ndarray) -> float:
    """Writes the ONNX model and returns the largest |onnxruntime - torch| over `check` frames (raises if
    they differ by more than 1e-3 relative)."""
    net.eval()
    dummy = torch.zeros(INPUT_SHAPE, dtype=torch.uint8)
    torch.onnx.export(net, (dummy,), path, input_names=[INPUT_NAME], output_names=list(OUTPUTS), opset_version=17,
                      dynamo=False)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for f in check:
            ref = [v.numpy() for v in net(torch.from_numpy(f[None]))]
            got = sess.run(None, {INPUT_NAME: f[None]})
            for a, b in zip(ref, got, strict=True):
                err = float(np.max(np.abs(a - b) / (np.abs(a) + 1e-2)))
                worst = max(worst, err)
    if worst > 1e-3:
        raise RuntimeError(f"ONNX export differs from torch: {worst}")
    return worst


def train(data: list[str], cfg: TrainConfig, out: str, threads: int, device: str = "cpu") -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(cfg.seed)
    tr, va = load_splits(data, "train")[0], load_splits(data, "val")[0]
    weights = corner_weights(tr["path"])
    print(f"train {len(tr['frames'])} samples, val {len(va['frames'])}; corner weight mean {weights.mean():.2f}",
          flush=True)
    trt, vat = to_tensors(tr, device), to_tensors(va, device)
    net = DrivingNet(cfg.width).to(device)
    global PATH_SCALE, LEAD_SCALE
    PATH_SCALE, LEAD_SCALE = PATH_SCALE.to(device), LEAD_SCALE.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    best, best_state, bad, history = float("inf"), None, 0, []
    t0 = time.monotonic()
    for ep in range(cfg.epochs):
        net.train()
        order = rng.choice(len(weights), len(weights), p=weights / weights.sum())
        parts_sum: dict[str, float] = {}
        for i in range(0, len(order) - cfg.batch + 1, cfg.batch):
            f, t = _batch(trt, torch.from_numpy(np.sort(order[i:i + cfg.batch])).to(device))
            loss, parts = loss_fn(net, f, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
        sched.step()
        vl = evaluate_loss(net, vat)
        history.append({"epoch": ep, "val_loss": vl})
        steps = max(1, len(order) // cfg.batch)
        print(f"epoch {ep} val {vl:.4f} ({time.monotonic() - t0:.0f} s) "
              + " ".join(f"{k}={float(v) / steps:.3f}" for k, v in parts_sum.items()), flush=True)
        if vl < best - 1e-4:
            best, bad = vl, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                print(f"early stop after epoch {ep}", flush=True)
                break
    net.load_state_dict(best_state)
    net, PATH_SCALE, LEAD_SCALE = net.cpu(), PATH_SCALE.cpu(), LEAD_SCALE.cpu()
    val_metrics = metrics.compute(predict(net, va), va)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    diff = export_onnx(net, out, va["frames"][:16])
    report = {"config": asdict(cfg), "data": data, "corner_k": CORNER_K, "corner_boost": CORNER_BOOST,
              "best_val_loss": best, "epochs_run": len(history), "val": val_metrics,
              "onnx_max_rel_diff": diff, "train_seconds": round(time.monotonic() - t0), "train_samples":
              len(tr["frames"]), "val_samples": len(va["frames"])}
    with open(os.path.splitext(out)[0] + "_train.json", "w") as fh:
        json.dump(report, fh, indent=1)
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=["data/driving"], help="gen_data output directories")
    p.add_argument("--config", choices=sorted(CONFIGS), default="small")
    p.add_argument("--out", default="models/driving.onnx")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    a = p.parse_args(argv)
    print(json.dumps(train(a.data, CONFIGS[a.config], a.out, a.threads, a.device), indent=1))


if __name__ == "__main__":
    main()
