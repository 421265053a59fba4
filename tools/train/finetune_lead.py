"""Gives a trained driving model its own lead branch, trained on more close-following data; every other output
stays what it was.

  python -m tools.train.finetune_lead --base models/driving.onnx --data data/driving data/driving_follow \
      --out models/driving.onnx

Why: the lead's distance is where the first model is weakest (close leads are rare in `gen_data --config full`;
it put leads nearer than 30 m ~6.6 m too far on its test seeds, ~30 m too far on `full_follow`'s). Retraining
the whole model on `full_follow` data fixed the distance but moved the path (its drivers overtake slow leads), and
calibrationd reads the path: the calibration drifted closed loop (models/README.md). So the backbone, the path,
the lines and everything else stay frozen, bit for bit, and only a small new branch (the frozen convolutional
features -> HIDDEN -> lead distance, speed, their scales and the lead's presence) learns, from both data sets.

The base model is read from its ONNX file (the shipped artefact; no torch checkpoint is kept): its convolutions
come with the BatchNorm folded in, so the DrivingNet's BatchNorms are set to pass them through unchanged. The
features are computed once (about a minute for 2 x 21,600 samples on 2 cores) and the branch trains in seconds
per epoch. Early stopping on both validation splits. Needs the optional `train` extra (torch, onnx).
"""

import argparse
import hashlib
import json
import os
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from tools.train import metrics
from tools.train.targets import load_split
from tools.train.train import DrivingNet, export_onnx, lead_losses, predict

HIDDEN = 128
EPOCHS, PATIENCE, BATCH, LR = 200, 15, 256, 1e-3
WIDTH = 24   # the shipped model's (models/README.md)


def load_onnx_weights(path: str, width: int = WIDTH) -> DrivingNet:
    """A DrivingNet (eval mode) computing what the ONNX model at `path` computes (its BatchNorms folded in)."""
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx.load(path).graph.initializer}
    net = DrivingNet(width)
    sd = net.state_dict()
    convs = [m for m in net.conv if isinstance(m, nn.Conv2d)]
    bns = [i for i, m in enumerate(net.conv) if isinstance(m, nn.BatchNorm2d)]
    # the exporter names folded conv weights and biases onnx::Conv_<n>, in the order of the layers
    folded = sorted((k for k in init if k.startswith("onnx::Conv_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    if len(folded) != 2 * len(convs):
        raise ValueError(f"{path}: {len(folded)} folded conv tensors, DrivingNet({width}) has {len(convs)} convs")
    for j, b in enumerate(bns):
        w, bias = init[folded[2 * j]], init[folded[2 * j + 1]]
        sd[f"conv.{b - 1}.weight"] = w
        sd[f"conv.{b}.weight"], sd[f"conv.{b}.bias"] = torch.ones_like(bias), bias
        sd[f"conv.{b}.running_mean"] = torch.zeros_like(bias)
        sd[f"conv.{b}.running_var"] = torch.ones_like(bias) - net.conv[b].eps  # (x - 0) / sqrt(var + eps) = x
    for k in ("fc.1.weight", "fc.1.bias", "head.weight", "head.bias"):
        sd[k] = init[k]
    net.load_state_dict(sd)
    return net.eval()


class LeadBranchNet(DrivingNet):
    """DrivingNet whose lead and lead presence come from `lead_branch` on the convolutional features."""

    def __init__(self, width: int = WIDTH, hidden: int = HIDDEN):
        super().__init__(width)
        self.lead_branch = nn.Sequential(nn.Linear(self.fc[1].in_features, hidden), nn.ReLU(), nn.Dropout(0.1),
                                         nn.Linear(hidden, self.sizes["lead"] + self.sizes["lead_prob"]))

    def raw(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.features(frames)
        out = self.outputs(c)
        b = self.lead_branch(torch.flatten(c, 1))
        out["lead"], out["lead_prob"] = b[:, :self.sizes["lead"]], b[:, self.sizes["lead"]:]
        return out


def features(net: DrivingNet, frames: np.ndarray, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([torch.flatten(net.features(torch.from_numpy(frames[i:i + batch])), 1)
                          for i in range(0, len(frames), batch)])


def lead_loss(out: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
    """train.loss_fn's lead terms for the branch's (b, 5) output."""
    nll, bce = lead_losses(out[:, :4], out[:, 4], lead)
    return nll + bce


def lead_metrics(pred: dict[str, np.ndarray], d: dict[str, np.ndarray]) -> dict:
    m = {k: v for k, v in metrics.compute(pred, d).items() if k.startswith("lead")}
    lead = d["lead"]
    near = (lead[:, 2] > 0.5) & (lead[:, 0] < 30.0)
    if near.any():
        err = pred["lead"][near, 0] - lead[near, 0]
        m["lead_within_30m_rel_err_median"] = float(np.median(np.abs(err) / lead[near, 0]))
        m["lead_within_30m_bias_m"] = float(np.median(err))
        m["lead_count_within_30m"] = int(near.sum())
    return m


def finetune(base: str, data: list[str], out: str, threads: int = 2, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    t0 = time.monotonic()
    frozen = load_onnx_weights(base)
    splits: dict[str, dict[str, tuple]] = {}
    for sp in ("train", "val", "test"):
        for d in data:
            s, _ = load_split(d, sp)
            splits.setdefault(sp, {})[d] = (s, features(frozen, s["frames"]), torch.from_numpy(s["lead"]).float())
            print(f"{d} {sp}: {len(s['frames'])} samples, features at {time.monotonic() - t0:.0f} s", flush=True)
    ftr = torch.cat([f for _, f, _ in splits["train"].values()])
    ltr = torch.cat([lead for _, _, lead in splits["train"].values()])
    fva = torch.cat([f for _, f, _ in splits["val"].values()])
    lva = torch.cat([lead for _, _, lead in splits["val"].values()])
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-3
    net = LeadBranchNet()
    net.load_state_dict(frozen.state_dict(), strict=False)
    branch = net.lead_branch
    opt = torch.optim.AdamW(branch.parameters(), lr=LR, weight_decay=1e-4)
    best, state, bad, epochs = float("inf"), None, 0, 0
    for ep in range(EPOCHS):
        branch.train()
        order = torch.randperm(len(ftr))
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            loss = lead_loss(branch((ftr[idx] - mu) / sd), ltr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        branch.eval()
        with torch.no_grad():
            vl = float(lead_loss(branch((fva - mu) / sd), lva))
        epochs = ep + 1
        print(f"epoch {ep} val {vl:.4f} ({time.monotonic() - t0:.0f} s)", flush=True)
        if vl < best - 1e-4:
            best, bad, state = vl, 0, {k: v.clone() for k, v in branch.state_dict().items()}
        else:
            bad += 1
            if bad >= PATIENCE:
                print(f"early stop after epoch {ep}", flush=True)
                break
    branch.load_state_dict(state)
    with torch.no_grad():  # the features' normalisation goes into the first layer: the ONNX input stays the frames
        w = branch[0].weight / sd
        branch[0].bias -= (w * mu).sum(1)
        branch[0].weight.copy_(w)
    net.eval()
    with open(base, "rb") as fh:
        base_sha = hashlib.sha256(fh.read()).hexdigest()
    report = {"base": base, "base_sha256": base_sha, "data": data, "hidden": HIDDEN, "best_val_lead_loss": best,
              "epochs_run": epochs, "seed": seed, "test": {}}
    for d, (s, _, _) in splits["test"].items():
        report["test"][d] = {"base": lead_metrics(predict(frozen, s), s), "new": lead_metrics(predict(net, s), s)}
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    report["onnx_max_rel_diff"] = export_onnx(net, out, next(iter(splits["val"].values()))[0]["frames"][:16])
    report["train_seconds"] = round(time.monotonic() - t0)
    with open(os.path.splitext(out)[0] + "_lead_train.json", "w") as fh:
        json.dump(report, fh, indent=1)
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="models/driving.onnx", help="the model whose outputs other than the lead stay")
    p.add_argument("--data", nargs="+", default=["data/driving", "data/driving_follow"],
                   help="gen_data outputs to train on (their train/val/test splits)")
    p.add_argument("--out", default="models/driving.onnx")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    for d in a.data:
        if not os.path.isdir(d):
            raise SystemExit(f"no data at {d}: generate it with `python -m tools.train.gen_data --out {d} --config "
                             f"{'full_follow' if 'follow' in d else 'full'}`")
    print(json.dumps(finetune(a.base, a.data, a.out, a.threads), indent=1))


if __name__ == "__main__":
    main()
