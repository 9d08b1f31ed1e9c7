import pytest
import torch

from swycc.train.checkpoint import CheckpointDir, flatten, step_of, unflatten


def test_flatten_round_trip_with_optimizer_state(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": 7,
             "rng": {"cpu": torch.get_rng_state(), "cuda": None}, "betas": (0.9, 0.99),
             "sampler": {"epoch": 2, "offset": 5}}
    ckpt = CheckpointDir(tmp_path)
    ckpt.save(7, state)
    back = ckpt.load()
    assert back["step"] == 7 and back["betas"] == (0.9, 0.99) and back["rng"]["cuda"] is None
    assert torch.equal(back["rng"]["cpu"], state["rng"]["cpu"])
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    skeleton, tensors = flatten(state)
    assert torch.equal(unflatten(skeleton, tensors)["model"]["weight"], net.weight)


def test_latest_pointer_and_pruning(tmp_path):
    ckpt = CheckpointDir(tmp_path, keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, {"step": step, "w": torch.full((2,), float(step))})
    assert ckpt.latest().name == "step-00000003"
    assert sorted(p.name for p in ckpt.root.glob("step-*")) == ["step-00000002", "step-00000003"]
    # a half-written checkpoint (temporary dir) is never picked up
    (ckpt.root / ".step-00000004.tmp").mkdir()
    assert ckpt.load()["step"] == 3


def test_nothing_is_pickled(tmp_path):
    ckpt = CheckpointDir(tmp_path)
    path = ckpt.save(1, {"w": torch.ones(2)})
    assert sorted(p.name for p in path.iterdir()) == ["state.json", "state.safetensors"]


def test_step_of_reads_the_step_a_directory_holds(tmp_path):
    saved = CheckpointDir(tmp_path).save(1234, {"w": torch.zeros(1)})
    assert step_of(saved) == 1234 and step_of(tmp_path / "exports" / "step-00000007") == 7
    for bad in ("export", "step-", "step-12a", "steps-00000012"):
        with pytest.raises(ValueError, match="not a step-N directory"):
            step_of(tmp_path / bad)
