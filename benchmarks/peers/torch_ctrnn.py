"""PyTorch contenders for the benchmark model (common.py), CPU (or CUDA: ``cfg["device"]``), autograd backward.

- ``torch_eager``: the idiomatic CTRNN a PyTorch user writes: ``nn.Linear`` layers, a Python
  Euler loop over steps, ``randn_like`` noise per step, readout per step, ``torch.optim.Adam``.
- ``torch_hoisted``: the same in eager mode, hand-hoisted: the input drive and the noise for all
  steps in one op each, one ``addmm`` per step over ``drive.unbind(0)``, the readout in one matmul.
- ``torch_jit``: the idiomatic module compiled with ``torch.jit.script``.

All three clip each gradient to norm 1 exactly as ``tf.clip_by_norm`` (``g / max(|g|, 1)``;
``clip_grad_norm_`` adds 1e-6 to the norm) and use ``torch.optim.Adam``. Adam there puts ``eps``
after the bias correction (TF1/minirnn: before); the float64 equality check runs with a tiny
``eps`` (``--check-eps``) under which the two are the same formula.
"""
from __future__ import annotations

from typing import List

import numpy as np

from common import ALPHA, LEARNING_RATE, PARAM_NAMES, StepLoop, load_data, noise_scale

import torch  # noqa: E402
from torch import nn  # noqa: E402


def preimport(contender, threads):
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set
        pass


class CTRNN(nn.Module):
    """x_{k+1} = (1 - a) x_k + a (W_rec relu(x_k) + W_in u_k + b_rec) + sqrt(2a) s xi_k;
    z_k = W_out relu(x_{k+1}) + b_out. Batch-major input ``(B, T, N_in)``."""

    def __init__(self, N_in: int, N_rec: int, N_out: int, alpha: float, sigma: float):
        super().__init__()
        self.input = nn.Linear(N_in, N_rec)  # W_in, b_rec
        self.recurrent = nn.Linear(N_rec, N_rec, bias=False)  # W_rec
        self.output = nn.Linear(N_rec, N_out)  # W_out, b_out
        self.init_state = nn.Parameter(torch.zeros(1, N_rec))
        self.alpha = alpha
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.init_state.expand(x.shape[0], -1)
        outputs: List[torch.Tensor] = []
        for u in x.unbind(1):
            pre = self.recurrent(torch.relu(state)) + self.input(u)
            state = (1 - self.alpha) * state + self.alpha * pre
            if self.sigma > 0:
                state = state + self.sigma * torch.randn_like(state)
            outputs.append(self.output(torch.relu(state)))
        return torch.stack(outputs, dim=1)


class HoistedCTRNN(CTRNN):
    """The same module with everything but the recurrence hoisted out of the time loop."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        # D_k = a (W_in u_k + b_rec) + sqrt(2a) s xi_k, all steps at once, time-major (T, B, N)
        drive = torch.addmm(self.input.bias, x.transpose(0, 1).reshape(-1, x.shape[-1]), self.input.weight.t())
        drive = (a * drive).view(x.shape[1], x.shape[0], -1)
        if self.sigma > 0:
            drive = drive + self.sigma * torch.randn_like(drive)
        W_aT = (a * self.recurrent.weight).t()
        state = self.init_state.expand(x.shape[0], -1)
        states = []
        for d in drive.unbind(0):  # x_{k+1} = (1 - a) x_k + relu(x_k) W_a^T + D_k
            state = torch.addmm(torch.add(d, state, alpha=1 - a), torch.relu(state), W_aT)
            states.append(state)
        R = torch.relu(torch.stack(states, 1))  # (B, T, N)
        return self.output(R)


def _clip_(params) -> None:
    """g <- g / max(|g|, 1) per parameter (tf.clip_by_norm with clip_norm 1)."""
    for p in params:
        p.grad.div_(torch.clamp(torch.linalg.vector_norm(p.grad), min=1.0))


class TorchContender(StepLoop):
    def __init__(self, contender: str, cfg: dict, data_path: str):
        dtype = {"float32": torch.float32, "float64": torch.float64}[cfg["dtype"]]
        w, x, y, mask = load_data(data_path, np.dtype(cfg["dtype"]))
        torch.manual_seed(cfg["seed"])
        N_rec = w["W_rec"].shape[0]
        cls = HoistedCTRNN if contender == "torch_hoisted" else CTRNN
        model = cls(x.shape[-1], N_rec, y.shape[-1], ALPHA, noise_scale(cfg)).to(dtype)
        with torch.no_grad():
            for p, name in ((model.input.weight, "W_in"), (model.input.bias, "b_rec"),
                            (model.recurrent.weight, "W_rec"), (model.output.weight, "W_out"),
                            (model.output.bias, "b_out"), (model.init_state, "init_state")):
                p.copy_(torch.from_numpy(w[name]))
        self.model = torch.jit.script(model) if contender == "torch_jit" else model
        self.params = list(model.parameters())
        assert len(self.params) == len(PARAM_NAMES)
        self.opt = torch.optim.Adam(self.params, lr=LEARNING_RATE, eps=float(cfg["eps"]))
        self.device = torch.device(cfg.get("device", "cpu"))  # "cuda" from bench_gpu.py
        if self.device.type != "cpu":
            model.to(self.device)
            self.params = list(model.parameters())
            self.opt = torch.optim.Adam(self.params, lr=LEARNING_RATE, eps=float(cfg["eps"]))
        self.x, self.y, self.mask = (torch.from_numpy(a).to(self.device) for a in (x, y, mask))

    def step(self, record=False):
        self.opt.zero_grad(set_to_none=False)
        z = self.model(self.x)
        loss = ((self.mask * (z - self.y)) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            _clip_(self.params)
        self.opt.step()
        return float(loss.detach()) if record else None

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def make(contender: str, cfg: dict, data_path: str):
    return TorchContender(contender, cfg, data_path)
