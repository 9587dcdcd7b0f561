"""Tests of minirnn.plotting: every function returns a Figure, draws on a given ax, and renders.

The rendered PNGs were also opened and checked by eye when these functions were written; the
tests here check the data the figures hold (masked weights are NaN / transparent, the right
number of lines, fixed points drawn stable/unstable).
"""
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from minirnn import plotting  # noqa: E402
from minirnn.analysis import RateDynamics, find_fixed_points, fit_psychometric, psychometric_function  # noqa: E402
from minirnn.errors import ParameterError  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _trial_batch(rng, B=4, T=60):
    x = np.zeros((B, T, 2))
    x[:, 10:30] = 0.5 + 0.1 * rng.standard_normal((B, 20, 2))
    y = np.zeros((B, T, 2))
    y[:, 40:, 0] = 1
    mask = np.ones((B, T, 2))
    mask[:, 30:40] = 0
    z = y + 0.05 * rng.standard_normal(y.shape)
    return x, y, z, mask


def _weights(rng, N=10, dale=True):
    s = np.where(np.arange(N) < 8, 1.0, -1.0) if dale else np.ones(N)
    M = (rng.random((N, N)) < 0.6).astype(float)
    M[np.arange(N), np.arange(N)] = 0  # no autapses
    W_rec = np.abs(rng.normal(size=(N, N))) * s * M if dale else rng.normal(size=(N, N)) * M
    M_in = np.ones((N, 2))
    M_in[0, 1] = 0
    return dict(
        W_in=np.abs(rng.normal(size=(N, 2))) * M_in, W_rec=W_rec, W_out=np.abs(rng.normal(size=(2, N))) * (s > 0),
        b_rec=np.zeros(N), b_out=np.zeros(2), init_state=np.zeros((1, N)),
        input_connectivity=M_in, rec_connectivity=M, output_connectivity=np.ones((2, N)),
        Dale_rec=np.diag(s), dale_ratio=0.8 if dale else None,
    ), M, s


def test_plot_trial_returns_figure_and_shades_mask(tmp_path):
    x, y, z, mask = _trial_batch(np.random.default_rng(0))
    fig = plotting.plot_trial(x, y, z, mask, dt=10, trial=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_in, ax_out = fig.axes
    assert len(ax_in.lines) == 2 and len(ax_out.lines) == 4  # 2 targets + 2 outputs
    assert len(ax_out.patches) == 1  # one masked-out span (steps 30..39)
    # steps 30..39 are drawn at t = (k + 1) dt = 310..400 ms; the span covers half a step either side
    x0, x1 = np.sort(ax_out.patches[0].get_path().transformed(ax_out.patches[0].get_patch_transform()).vertices[:, 0])[[0, -1]]
    assert (x0, x1) == (pytest.approx(305), pytest.approx(405))
    fig.savefig(tmp_path / "trial.png")
    _, ax = plt.subplots()
    assert plotting.plot_trial(x, y, z, mask, ax=ax) is ax.figure


def test_plot_psychometric(tmp_path):
    rng = np.random.default_rng(1)
    c = rng.choice(np.linspace(-0.4, 0.4, 9), size=2000)
    fit = fit_psychometric(c, rng.random(c.size) < psychometric_function(c, 0.0, 0.1, 0.05, 0.05), ci=None)
    fig = plotting.plot_psychometric(fit)
    assert isinstance(fig, Figure)
    curve = fig.axes[0].lines[-2]  # fitted curve (last line is the 0.5 guide)
    np.testing.assert_allclose(curve.get_ydata(), fit.predict(curve.get_xdata()))
    fig.savefig(tmp_path / "psy.png")
    _, ax = plt.subplots()
    assert plotting.plot_psychometric(x=[-1, 0, 1], p=[0.1, 0.5, 0.9], ax=ax) is ax.figure
    with pytest.raises(ParameterError):
        plotting.plot_psychometric()


def test_plot_unit_traces(tmp_path):
    rng = np.random.default_rng(2)
    cond = rng.choice([-1, 0, 1], size=30)
    data = cond[:, None, None] * np.linspace(0, 1, 20)[None, :, None] * np.ones((1, 1, 4))
    fig = plotting.plot_unit_traces(data, cond, units=[0, 3], dt=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert all(len(a.lines) == 3 for a in fig.axes)
    np.testing.assert_allclose(fig.axes[0].lines[2].get_ydata(), np.linspace(0, 1, 20))
    fig.savefig(tmp_path / "units.png")
    _, axs = plt.subplots(1, 2)
    assert plotting.plot_unit_traces(data, cond, units=[0, 1], ax=axs) is axs[0].figure


def test_plot_pc_trajectories_with_fixed_points(tmp_path):
    rng = np.random.default_rng(3)
    dyn = RateDynamics(2 * np.eye(3), np.zeros((3, 1)), np.zeros(3), 0.2, "tanh")
    fps = find_fixed_points(dyn, rng.uniform(-3, 3, size=(200, 3)))
    X = [rng.normal(scale=0.5, size=(4, 3))]
    for _ in range(30):
        X.append(dyn.step(X[-1], np.zeros((4, 1))))
    X = np.stack(X, axis=1)  # (4, 31, 3)
    fig = plotting.plot_pc_trajectories(X, fixed_points=fps, labels=[0, 1, 2, 3])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 4
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == 4 + len(fps)  # 4 start markers + every fixed point
    fig.savefig(tmp_path / "pc.png")
    fig3 = plotting.plot_pc_trajectories(X, fixed_points=fps, n_dims=3)
    fig3.savefig(tmp_path / "pc3.png")
    _, ax = plt.subplots()
    assert plotting.plot_pc_trajectories(X, ax=ax) is ax.figure


@pytest.mark.parametrize("dale", [True, False])
def test_plot_weights_masked_entries_blank_and_ei_colors(tmp_path, dale):
    w, M, s = _weights(np.random.default_rng(4), dale=dale)
    fig = plotting.plot_weights(w)
    assert isinstance(fig, Figure)
    ax_in, ax_rec, ax_out = [a for a in fig.axes if a.images]
    # W_in: the masked entry (0, 1) is NaN (masked) in the image data
    img_in = ax_in.images[0].get_array()
    assert np.ma.is_masked(img_in) and img_in.mask[0, 1] and not img_in.mask[0, 0]
    if dale:
        E, I = (np.ma.getmaskarray(im.get_array()) for im in ax_rec.images)
        assert ax_rec.images[0].get_cmap().name.startswith("Reds")
        assert ax_rec.images[1].get_cmap().name.startswith("Blues")
        # E layer holds exactly the unmasked E columns, I layer the unmasked I columns
        np.testing.assert_array_equal(~E, (M != 0) & (s[None, :] > 0))
        np.testing.assert_array_equal(~I, (M != 0) & (s[None, :] < 0))
    else:
        R = np.ma.getmaskarray(ax_rec.images[0].get_array())
        np.testing.assert_array_equal(~R, M != 0)
    fig.savefig(tmp_path / f"weights_{dale}.png")
    _, axs = plt.subplots(1, 3)
    assert plotting.plot_weights(w, ax=axs) is axs[0].figure


def test_plot_training_with_stages(tmp_path):
    losses = np.exp(-np.arange(90) / 30) + 0.01
    acc = np.linspace(0, 1, 90)
    stages = np.repeat([0, 1, 2], 30)
    fig = plotting.plot_training(losses, acc, stages=stages)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    vlines = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert sorted(v.get_xdata()[0] for v in vlines) == [30, 60]
    fig.savefig(tmp_path / "train.png")
    _, ax = plt.subplots()
    assert plotting.plot_training(losses, stage_starts=[45], ax=ax) is ax.figure
    with pytest.raises(ParameterError):
        plotting.plot_training(losses, stages=stages, stage_starts=[1])
