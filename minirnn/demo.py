"""The main demo: train the paper's perceptual-discrimination network, print its accuracy, save a figure.

Run it with ``python -m minirnn.demo`` (``--out DIR`` for where the figure goes, ``--fast`` for a
quick smoke run). It is the PsychRNN paper's minimal example (Ehrlich et al. 2021, Fig. 2E) with the
imports changed to minirnn.
"""
from __future__ import annotations

import argparse
import os
import time


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(prog="python -m minirnn.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="folder for the figure and weights (default: demo_output)")
    parser.add_argument("--fast", action="store_true", help="a short run (for smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    from minirnn import Basic
    from minirnn.tasks import PerceptualDiscrimination

    pd = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=128, seed=args.seed)
    network_params = pd.get_task_params()
    network_params["name"] = "model"
    network_params["N_rec"] = 50
    network_params["seed"] = args.seed
    model = Basic(network_params)
    train_params = {"training_iters": 128 * 60 if args.fast else 50000, "verbosity": False}
    losses, training_time, initialization_time = model.train(pd, train_params)

    x, y, mask, _ = PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=512, seed=args.seed + 1).get_trial_batch()
    output, states = model.test(x)
    accuracy = pd.accuracy_function(y, output, mask)
    elapsed = time.perf_counter() - t0
    print(f"{model}")
    print(f"trained {len(model.history['loss'])} updates in {training_time:.1f} s (backend {model.backend.name}); "
          f"accuracy on 512 fresh trials: {accuracy:.3f}; import to tested network: {elapsed:.1f} s")

    os.makedirs(args.out, exist_ok=True)
    from minirnn.plotting import plot_trial, save_figure

    fig = plot_trial(x, y, output, mask, trial=0, dt=pd.dt, title=f"PerceptualDiscrimination, accuracy {accuracy:.2f}")
    figure_path = os.path.join(args.out, "demo_trial.png")
    save_figure(fig, figure_path, dpi=120)  # atomic: an old figure survives a failed save
    weights_path = model.save(os.path.join(args.out, "demo_weights"))
    print(f"figure: {figure_path}; weights: {weights_path}")
    return accuracy


if __name__ == "__main__":
    main()
