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
    # steps 30..39 are drawn at t = k dt = 300..390 ms (DESIGN §3); the span covers half a step either side
    x0, x1 = np.sort(ax_out.patches[0].get_path().transformed(ax_out.patches[0].get_patch_transform()).vertices[:, 0])[[0, -1]]
    assert (x0, x1) == (pytest.approx(295), pytest.approx(395))
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


# ---- audit fixes -----------------------------------------------------------------------------------
from minirnn.errors import ShapeError  # noqa: E402


def _tiny_lstm():
    from minirnn import LSTM

    return LSTM(dict(N_in=2, N_rec=4, N_out=2, dt=10, tau=100, dtype="float64", seed=0, backend="numpy"))


def test_plot_weights_of_an_lstm_draws_its_gates_not_the_zero_placeholders(tmp_path):
    lstm = _tiny_lstm()
    w = lstm.get_weights()
    for source in (lstm, w):
        fig = plotting.plot_weights(source)
        axes = [a for a in fig.axes if a.images]
        titles = [a.get_title() for a in axes]
        assert [t.split()[0] for t in titles] == ["W_f", "W_i", "W_c", "W_o", "W_out"]
        for a, g in zip(axes, ("W_f", "W_i", "W_c", "W_o")):
            # (post, pre) = (N_rec, N_rec + N_in): PsychRNN's (N_rec + N_in, N_rec) transposed
            np.testing.assert_array_equal(np.ma.getdata(a.images[0].get_array()), w[g].T)
            assert np.any(w[g] != 0)
        np.testing.assert_array_equal(np.ma.getdata(axes[-1].images[0].get_array()), w["W_out"])
        fig.savefig(tmp_path / "lstm.png")
        plt.close(fig)
    with pytest.raises(ParameterError, match="placeholders"):
        plotting.plot_weights(lstm, names=("W_in", "W_rec", "W_out"))


def test_plot_weights_of_an_ensemble_is_a_clear_shape_error():
    from minirnn import Basic

    ens = Basic(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, backend="numpy", dale_ratio=0.8),
                n_networks=2, seeds=[0, 1])
    with pytest.raises(ShapeError, match=r"network\(k\)"):
        plotting.plot_weights(ens)
    with pytest.raises(ShapeError, match=r"ensemble"):
        plotting.plot_weights(ens.get_weights())  # Dale_rec (K, N, N) used to reach np.diag
    assert isinstance(plotting.plot_weights(ens.network(1)), Figure)


def test_time_axes_put_step_k_at_k_dt_as_perturbation_windows_do():
    from minirnn import Basic, BasicSimulator, Perturbation

    x, y, z, mask = _trial_batch(np.random.default_rng(0))  # the input starts at step 10
    fig = plotting.plot_trial(x, y, z, mask, dt=10)
    line = fig.axes[0].lines[0]
    assert line.get_xdata()[np.flatnonzero(line.get_ydata())[0]] == 100  # onset at 10 dt = 100 ms, not 110
    assert line.get_xdata()[0] == 0
    # silence(…, 200, 600) shows as zero rates on the samples 200 … 590 ms
    model = Basic(dict(N_in=2, N_rec=5, N_out=2, dt=10, tau=100, dtype="float64", seed=0, backend="numpy",
                       W_rec=np.full((5, 5), 0.05), W_in=np.zeros((5, 2)), b_rec=np.ones(5),
                       init_state=np.ones((1, 5))))
    sim = BasicSimulator(rnn_model=model)
    _, states = sim.run_trials(np.ones((2, 100, 2)), perturbation=Perturbation(100, 5, dt=10).silence([0], 200, 600))
    fig = plotting.plot_unit_traces(np.maximum(states, 0), np.array([0, 1]), units=[0], dt=10)
    t, r = fig.axes[0].lines[0].get_xdata(), fig.axes[0].lines[0].get_ydata()
    silent = t[r == 0]
    assert silent.min() == 200 and silent.max() == 590 and np.all(r[(t < 200) | (t >= 600)] > 0)


def test_plot_unit_traces_and_pc_trajectories_refuse_bad_arguments():
    from minirnn.analysis import pca

    rng = np.random.default_rng(5)
    data = rng.normal(size=(6, 20, 4))
    cond = np.repeat([0, 1], 3)
    with pytest.raises(ParameterError, match=r"\[0, 4\)"):
        plotting.plot_unit_traces(data, cond, units=[45])
    with pytest.raises(ParameterError, match="units"):
        plotting.plot_unit_traces(data, cond, units=[-1])
    one = pca(data, 1)
    with pytest.raises(ParameterError, match="1 component"):
        plotting.plot_pc_trajectories(data[:2], pca=one)
    with pytest.raises(ParameterError, match="2 component"):
        plotting.plot_pc_trajectories(data[:2], pca=pca(data, 2), n_dims=3)
    with pytest.raises(ShapeError, match="fixed_points"):
        plotting.plot_pc_trajectories(data[:2], fixed_points=np.zeros((2, 3)))


def test_fixed_points_as_a_plain_array_are_not_called_stable():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(3, 15, 4))
    fig = plotting.plot_pc_trajectories(X, fixed_points=np.zeros((2, 4)))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["fixed point (stability not computed)"]
    assert not any("stable" in t and "not computed" not in t for t in legend)


def test_plot_training_puts_accuracy_at_the_updates_it_was_measured():
    losses = list(np.linspace(1.0, 0.1, 150))
    history = {"loss": losses, "update": list(range(1, 151)),
               "performance": [(5, 0.5), (10, 0.6), (15, 0.9)], "stages": []}
    fig = plotting.plot_training(history=history)
    acc_line = fig.axes[1].lines[0]
    assert list(acc_line.get_xdata()) == [5, 10, 15] and list(acc_line.get_ydata()) == [0.5, 0.6, 0.9]
    assert list(fig.axes[0].lines[0].get_xdata()) == list(range(1, 151))
    fig = plotting.plot_training(history)  # the dict as the first argument
    assert list(fig.axes[1].lines[0].get_xdata()) == [5, 10, 15]
    fig = plotting.plot_training(losses, [0.5, 0.6, 0.9], accuracy_iterations=[5, 10, 15])
    assert list(fig.axes[1].lines[0].get_xdata()) == [5, 10, 15]
    # without the update numbers the placement is a guess: said out loud
    with pytest.warns(UserWarning, match="accuracy_iterations"):
        plotting.plot_training(losses, [0.9], iterations=np.arange(1, 151))
    with pytest.raises(ShapeError, match="update, value"):
        plotting.plot_training(losses, [(5, 0.5), (10, 0.6)])
    with pytest.raises(ParameterError, match="history"):
        plotting.plot_training(losses, history=history)
    # curriculum stages recorded by training become boundaries
    staged = dict(history, stages=[{"update": 50, "stage": 1, "metric": 0.9}, {"update": 90, "stage": 2}])
    fig = plotting.plot_training(history=staged)
    vlines = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert sorted(v.get_xdata()[0] for v in vlines) == [50, 90]
    assert [t.get_text() for t in fig.axes[0].texts] == ["stage 0", "stage 1", "stage 2"]


def test_plot_training_of_an_ensemble_draws_one_line_per_network():
    L = np.stack([np.linspace(1, 0.1, 40), np.linspace(2, 0.2, 40), np.linspace(3, 0.3, 40)], axis=1)  # (n, K)
    history = {"loss": list(L), "update": list(range(1, 41)),
               "performance": [(10, np.array([0.5, 0.6, 0.7])), (20, np.array([0.8, 0.9, 1.0]))]}
    fig = plotting.plot_training(history=history)
    loss_lines = fig.axes[0].lines
    assert len(loss_lines) == 3
    for k in range(3):
        np.testing.assert_array_equal(loss_lines[k].get_ydata(), L[:, k])
        expected = np.array([[0.5, 0.6, 0.7], [0.8, 0.9, 1.0]])[:, k]
        np.testing.assert_array_equal(fig.axes[1].lines[k].get_ydata(), expected)
        assert list(fig.axes[1].lines[k].get_xdata()) == [10, 20]
    with pytest.raises(ShapeError, match="networks"):
        plotting.plot_training(L, np.ones((5, 2)), accuracy_iterations=np.arange(5))
    with pytest.raises(ShapeError, match="losses"):
        plotting.plot_training(np.ones((4, 2, 2)))


def test_plot_psychometric_says_which_choice_it_plots():
    fig = plotting.plot_psychometric(x=[-1, 0, 1], p=[0.9, 0.5, 0.1], ylabel="P(choice 0)")
    assert fig.axes[0].get_ylabel() == "P(choice 0)"
    assert plotting.plot_psychometric(x=[-1, 0, 1], p=[0.1, 0.5, 0.9]).axes[0].get_ylabel() == "P(choice 1)"


def test_a_psychometric_fit_the_trials_do_not_determine_is_not_drawn():
    import warnings

    from minirnn.analysis import fit_psychometric

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_psychometric([-0.1, 0.1], [0, 10], [10, 10])  # perfectly separated: no slope to fit
    assert {"mu", "sigma"} <= set(fit.undetermined)
    ax = plotting.plot_psychometric(fit).axes[0]
    points_only = plotting.plot_psychometric(x=fit.levels, p=fit.p, n=fit.n).axes[0]
    assert len(ax.lines) == len(points_only.lines) and "no fit drawn" in ax.get_title()  # no curve
