"""Time one batch (128 trials, 200 steps) of each built-in task: the vectorised path, and for
PerceptualDiscrimination also PsychRNN's per-step path (``generate_trial`` per trial, as PsychRNN
builds batches).

    python benchmarks/bench_tasks.py
"""
from minirnn.tasks import DelayedDiscrimination, FlipFlop, MatchToCategory, PerceptualDiscrimination
from timing import median_ms


def main():
    kw = dict(dt=10, tau=100, T=2000, N_batch=128, seed=0)
    for task in (PerceptualDiscrimination(**kw), DelayedDiscrimination(**kw), MatchToCategory(**kw), FlipFlop(**kw)):
        print(f"{type(task).__name__:26s} vectorised {median_ms(task.generate_batch, 50):8.2f} ms per batch")
    pd = PerceptualDiscrimination(**kw)
    per_step = lambda: [pd.generate_trial(pd.generate_trial_params(1, i)) for i in range(pd.N_batch)]  # noqa: E731
    print(f"{'PerceptualDiscrimination':26s} per-step   {median_ms(per_step, 5):8.2f} ms per batch (PsychRNN's way)")


if __name__ == "__main__":
    main()
