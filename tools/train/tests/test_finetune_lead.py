"""tools/train/finetune_lead.py: the base model read back from its ONNX file computes what it computed, and the lead
branch changes the lead outputs only. Needs the `train` extra (torch, onnx): skipped without it."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from selfdrive.modeld.constants import INPUT_SHAPE, OUTPUTS  # noqa: E402
from tools.train.finetune_lead import LeadBranchNet, lead_loss, load_onnx_weights  # noqa: E402
from tools.train.train import DrivingNet, export_onnx  # noqa: E402

LEAD_OUTPUTS = {"lead", "lead_std", "lead_prob"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.manual_seed(1)
    net = DrivingNet(24)
    for m in net.modules():  # BatchNorms that do something, so that folding them in is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    frames = np.random.default_rng(0).integers(0, 256, size=(4, *INPUT_SHAPE[1:]), dtype=np.uint8)
    path = str(tmp_path_factory.mktemp("ft") / "base.onnx")
    export_onnx(net.eval(), path, frames)
    return net, path, torch.from_numpy(frames)


def test_the_base_read_from_onnx_computes_the_same_outputs(base):
    net, path, frames = base
    loaded = load_onnx_weights(path)
    with torch.no_grad():
        for a, b in zip(net(frames), loaded(frames), strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_the_lead_branch_changes_the_lead_only(base):
    _, path, frames = base
    frozen = load_onnx_weights(path)
    net = LeadBranchNet()
    net.load_state_dict(frozen.state_dict(), strict=False)
    net.eval()
    with torch.no_grad():
        for name, a, b in zip(OUTPUTS, frozen(frames), net(frames), strict=True):
            assert torch.equal(a, b) != (name in LEAD_OUTPUTS), name


def test_the_lead_loss_ignores_the_distance_where_there_is_no_lead():
    out = torch.zeros(2, 5)
    no_lead = torch.tensor([[30.0, 10.0, 0.0], [500.0, -99.0, 0.0]])
    far_off = torch.tensor([[30.0, 10.0, 0.0], [5.0, 1.0, 0.0]])
    assert torch.isclose(lead_loss(out, no_lead), lead_loss(out, far_off))
    assert lead_loss(out, torch.tensor([[30.0, 10.0, 1.0], [500.0, 0.0, 1.0]])) > lead_loss(out, no_lead)
