"""A 2-unit, 2-step rate RNN worked by hand: every number below is derived in the comments.

Setup (one trial, B = 1; ReLU; mean squared error; no Dale, no masks)::

    dt = 50, tau = 100                     =>  alpha = dt / tau = 0.5
    W_in  = [[1.0], [0.5]]                 W_rec = [[0.0, 0.5], [-1.0, 0.0]]
    b_rec = [0.0, 0.1]                     W_out = [[1.0, -1.0]]       b_out = [0.0]
    x_0   = init_state = [0.2, 0.4]
    u     = [1.0, 0.0]  (input at steps 0 and 1)
    y     = [0.5, 1.0]  (targets),  mask = [1, 1]

Equations (DESIGN.md §3)::

    x_{k+1} = (1 - alpha) x_k + alpha (W_rec relu(x_k) + W_in u_k + b_rec)
    z_k     = W_out relu(x_{k+1}) + b_out
    L       = mean((mask (z - y))^2)   over B * T * N_out = 2 entries
"""
import numpy as np
import pytest

from minirnn import Basic

PARAMS = dict(N_in=1, N_rec=2, N_out=1, dt=50, tau=100, dtype="float64", backend="numpy", seed=0,
              W_in=np.array([[1.0], [0.5]]), W_rec=np.array([[0.0, 0.5], [-1.0, 0.0]]),
              W_out=np.array([[1.0, -1.0]]), b_rec=np.array([0.0, 0.1]), b_out=np.array([0.0]),
              init_state=np.array([[0.2, 0.4]]))
X = np.array([[[1.0], [0.0]]])     # (B=1, T=2, N_in=1)
Y = np.array([[[0.5], [1.0]]])     # (B=1, T=2, N_out=1)
MASK = np.ones((1, 2, 1))


@pytest.fixture
def model():
    return Basic(dict(PARAMS))


def test_forward_by_hand(model):
    outputs, states = model.test(X)
    # Step 0: r_0 = relu(x_0) = [0.2, 0.4]
    #   W_rec r_0 = [0*0.2 + 0.5*0.4, -1*0.2 + 0*0.4] = [0.2, -0.2]
    #   W_in u_0  = [1.0, 0.5];  + b_rec = [0.0, 0.1]
    #   pre_0     = [0.2 + 1.0 + 0.0, -0.2 + 0.5 + 0.1] = [1.2, 0.4]
    #   x_1 = 0.5 [0.2, 0.4] + 0.5 [1.2, 0.4] = [0.1 + 0.6, 0.2 + 0.2] = [0.7, 0.4]
    #   z_0 = 1.0*relu(0.7) - 1.0*relu(0.4) + 0 = 0.3
    # Step 1: r_1 = [0.7, 0.4]
    #   W_rec r_1 = [0.5*0.4, -1*0.7] = [0.2, -0.7];  W_in u_1 = [0, 0];  + b_rec
    #   pre_1     = [0.2, -0.7 + 0.1] = [0.2, -0.6]
    #   x_2 = 0.5 [0.7, 0.4] + 0.5 [0.2, -0.6] = [0.35 + 0.1, 0.2 - 0.3] = [0.45, -0.1]
    #   r_2 = relu(x_2) = [0.45, 0.0]   (unit 2 is silent)
    #   z_1 = 0.45 - 0.0 = 0.45
    np.testing.assert_allclose(states[0], [[0.7, 0.4], [0.45, -0.1]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(outputs[0, :, 0], [0.3, 0.45], rtol=0, atol=1e-15)


def test_loss_and_gradients_by_hand(model):
    loss, g = model.loss_and_grads(X, Y, MASK)
    # errors e = z - y = [0.3 - 0.5, 0.45 - 1.0] = [-0.2, -0.55]
    # L = (0.04 + 0.3025) / 2 = 0.17125
    assert loss == pytest.approx(0.17125, abs=1e-15)
    # dL/dz_k = 2 e_k / n = e_k (n = 2):  dz_0 = -0.2, dz_1 = -0.55
    #
    # Readout, z_k = W_out r_{k+1} + b_out:
    #   dW_out = dz_0 r_1 + dz_1 r_2 = -0.2 [0.7, 0.4] - 0.55 [0.45, 0]
    #          = [-0.14 - 0.2475, -0.08] = [-0.3875, -0.08]
    #   db_out = -0.2 - 0.55 = -0.75
    np.testing.assert_allclose(g["W_out"], [[-0.3875, -0.08]], atol=1e-15)
    np.testing.assert_allclose(g["b_out"], [-0.75], atol=1e-15)
    # Adjoints reaching each state directly from the readout, dL/dr_{k+1} = dz_k W_out = dz_k [1, -1]:
    #   dr_2 = [-0.55, 0.55] -> dx_2 = dr_2 * relu'(x_2) = [-0.55 * 1, 0.55 * 0] = [-0.55, 0]
    #   dr_1 = [-0.2, 0.2]   -> dx_1 (direct) = [-0.2, 0.2]           (both units of x_1 > 0)
    # Back through step 1, x_2 = 0.5 x_1 + 0.5 (W_rec relu(x_1) + ...), with a_2 = [-0.55, 0]:
    #   a_2 W_rec = [-0.55*0 + 0*(-1), -0.55*0.5 + 0*0] = [0, -0.275]
    #   dx_1 via x_2 = 0.5 a_2 + relu'(x_1) * 0.5 (a_2 W_rec) = [-0.275, 0] + [0, -0.1375]
    #   a_1 = [-0.2, 0.2] + [-0.275, -0.1375] = [-0.475, 0.0625]
    # The gradient of each step's drive is alpha * a_{k+1}:
    #   d_drive_1 = 0.5 a_2 = [-0.275, 0.0];  d_drive_0 = 0.5 a_1 = [-0.2375, 0.03125]
    # dW_rec = sum_k d_drive_k r_k^T:
    #   k = 0: outer([-0.2375, 0.03125], [0.2, 0.4]) = [[-0.0475, -0.095], [0.00625, 0.0125]]
    #   k = 1: outer([-0.275, 0.0], [0.7, 0.4])      = [[-0.1925, -0.11], [0.0, 0.0]]
    #   sum = [[-0.24, -0.205], [0.00625, 0.0125]]
    np.testing.assert_allclose(g["W_rec"], [[-0.24, -0.205], [0.00625, 0.0125]], atol=1e-15)
    # dW_in = sum_k d_drive_k u_k = d_drive_0 * 1 + d_drive_1 * 0 = [[-0.2375], [0.03125]]
    np.testing.assert_allclose(g["W_in"], [[-0.2375], [0.03125]], atol=1e-15)
    # db_rec = d_drive_0 + d_drive_1 = [-0.2375 - 0.275, 0.03125] = [-0.5125, 0.03125]
    np.testing.assert_allclose(g["b_rec"], [-0.5125, 0.03125], atol=1e-15)
    # Back through step 0 to x_0 = init_state (both units > 0, relu' = 1):
    #   a_1 W_rec = [-0.475*0 + 0.0625*(-1), -0.475*0.5 + 0.0625*0] = [-0.0625, -0.2375]
    #   dx_0 = 0.5 a_1 + 0.5 (a_1 W_rec) = [-0.2375, 0.03125] + [-0.03125, -0.11875]
    #        = [-0.26875, -0.0875]
    np.testing.assert_allclose(g["init_state"], [[-0.26875, -0.0875]], atol=1e-15)


def test_dale_adjoint_by_hand():
    """The same network under Dale (dale_ratio=0.5: unit 1 E, unit 2 I).

    Effective weights: W_rec_eff = |W_rec| * [+1, -1] (columns) = [[0, -0.5], [1, 0]];
    W_in_eff = |W_in| = W_in; W_out_eff = |W_out| * [1, 0] = [[1, 0]].
    Step 0: W_rec_eff r_0 = [-0.5*0.4, 1*0.2] = [-0.2, 0.2]; pre_0 = [-0.2 + 1, 0.2 + 0.5 + 0.1] = [0.8, 0.8]
            x_1 = 0.5 [0.2, 0.4] + 0.5 [0.8, 0.8] = [0.5, 0.6];  z_0 = 0.5
    Step 1: W_rec_eff r_1 = [-0.3, 0.5]; pre_1 = [-0.3, 0.6];  x_2 = [0.25 - 0.15, 0.3 + 0.3] = [0.1, 0.6]
            z_1 = 0.1
    """
    model = Basic(dict(PARAMS, dale_ratio=0.5))
    outputs, states = model.test(X)
    np.testing.assert_allclose(states[0], [[0.5, 0.6], [0.1, 0.6]], atol=1e-15)
    np.testing.assert_allclose(outputs[0, :, 0], [0.5, 0.1], atol=1e-15)
    # L = ((0.5 - 0.5)^2 + (0.1 - 1.0)^2) / 2 = 0.81 / 2 = 0.405;  dz = [0, -0.9]
    loss, g = model.loss_and_grads(X, Y, MASK)
    assert loss == pytest.approx(0.405, abs=1e-15)
    # dW_out_eff = dz_1 r_2 = -0.9 [0.1, 0.6] = [-0.09, -0.54]; the adjoint (dW_eff * s) sign(W) M:
    #   column 1: -0.09 * 1 * sign(1.0) = -0.09;  column 2: -0.54 * 0 * sign(-1.0) = 0 (I unit, no output)
    np.testing.assert_allclose(g["W_out"], [[-0.09, 0.0]], atol=1e-15)
    # W_rec[0, 0] = 0 exactly: sign(0) = 0, so its gradient is 0 whatever dW_eff is (TensorFlow's rule)
    assert g["W_rec"][0, 0] == 0.0 and g["W_rec"][1, 1] == 0.0


# ---- an independent implementation (tests/oracle_rnn.py) agrees with Basic ---------------------------
@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("dale", [None, 0.6])
@pytest.mark.parametrize("masks", [False, True])
def test_oracle_agrees(act, dale, masks):
    from oracle_rnn import dale_sign_vectors, oracle_loss_and_grads

    N_in, N, N_out, B, T = 3, 6, 2, 3, 9
    rng = np.random.default_rng(7)
    params = dict(N_in=N_in, N_rec=N, N_out=N_out, dt=20, tau=100, dtype="float64", backend="numpy", seed=2,
                  transfer_function=act, dale_ratio=dale, L2_rec=0.1, L2_firing_rate=0.05)
    M = {"W_in": np.ones((N, N_in)), "W_rec": np.ones((N, N)), "W_out": np.ones((N_out, N))}
    if masks:
        M = {k: (rng.random(v.shape) < 0.7).astype(float) for k, v in M.items()}
        params.update(input_connectivity=M["W_in"], rec_connectivity=M["W_rec"], output_connectivity=M["W_out"])
    model = Basic(params)
    model.raw["b_rec"][:] = rng.normal(0, 0.3, N)
    model.raw["b_out"][:] = rng.normal(0, 0.3, N_out)
    P = {k: np.array(v) for k, v in model.raw.items()}
    P["x0"] = P.pop("init_state")[0]
    u, y = rng.normal(size=(B, T, N_in)), rng.normal(size=(B, T, N_out))
    m = (rng.random((B, T, N_out)) < 0.8).astype(float)
    signs = dale_sign_vectors(dale, N, N_in) if dale else None
    loss_o, g_o = oracle_loss_and_grads(P, M, signs, 0.2, act, u, y, m, L2_rec=0.1, L2_rate=0.05)
    loss, g = model.loss_and_grads(u, y, m)
    assert loss == pytest.approx(loss_o, rel=1e-12)
    for name in g:
        np.testing.assert_allclose(g[name], g_o[name], rtol=1e-10, atol=1e-14, err_msg=name)
