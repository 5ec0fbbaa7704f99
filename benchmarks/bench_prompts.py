"""Text prompts: does a prompt-conditioned model draw the class and the stroke it is asked for?

Trains (or reuses) a U-Net on a captioned set (``digits-captions`` by default) and, for every
class and both ends of its first attribute (thick / thin for the digits), samples images from
prompts phrased as in training (seen templates) and from held-out phrasings (unseen
templates), at several guidance scales. It prints, per scale:

- the reference classifier's accuracy on the prompted class, for seen and unseen phrasings;
- the attribute (ink: mean pixel value, a measure of stroke thickness) of the samples
  prompted "thick" and "thin", mean ± std, and the share whose measured level is the prompted
  one (above the class's upper tertile for thick, below its lower one for thin; 1/3 each by
  chance).

A reference row scores the held-out real images the same way. Each prompt's words are drawn
at random (synonyms, order), from a seeded generator, so every scale sees the same prompts.

    python benchmarks/bench_prompts.py                 # digits, trains a run first
    python benchmarks/bench_prompts.py --run RUN_DIR   # score an existing run
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

import flowmatch
from flowmatch.data import get_dataset
from flowmatch.data.captions import SEEN_TEMPLATES, UNSEEN_TEMPLATES, CaptionedImages
from flowmatch.evaluation.classifier import reference_classifier


def prompts_for(
    ds: CaptionedImages, label: int, level: int, templates, n: int, rng
) -> tuple[list[str], list[int]]:
    """n phrasings of "class ``label`` with its first attribute at ``level``", and the index
    of each one's template."""
    levels = [level] + [0] * (len(ds.scheme.attributes) - 1)
    which = [rng.randrange(len(templates)) for _ in range(n)]
    return [ds.scheme.compose(label, levels, templates[i], rng) for i in which], which


def score(ds: CaptionedImages, classifier, x: torch.Tensor, labels: torch.Tensor) -> dict:
    """Class accuracy, the first attribute's values and levels of images x (N, C, H, W)."""
    x = x.clamp(0.0, 1.0)
    with torch.no_grad():
        predicted = classifier(x).argmax(dim=1)
    return {
        "correct": (predicted == labels).float(),
        "value": ds.scheme.attributes[0].measure(x),
        "level": ds.levels(x, labels)[:, 0],
    }


def summarize(rows: dict[str, dict], name: str) -> dict:
    """Accuracy per phrasing set, attribute mean/std and level hit rate per prompted level."""
    out = {"setting": name}
    for phrasing in ("seen", "unseen"):
        if phrasing in rows:
            out[f"acc_{phrasing}"] = float(rows[phrasing]["correct"].mean())
    for level, word in ((1, "high"), (-1, "low")):
        parts = {id(r): r for r in rows.values()}.values()  # the real row is both sets
        value = torch.cat([r["value"][r["prompted"] == level] for r in parts])
        hit = torch.cat([r["level"][r["prompted"] == level] == level for r in parts])
        out[f"{word}_mean"], out[f"{word}_std"] = float(value.mean()), float(value.std())
        out[f"{word}_hit"] = float(hit.float().mean())
    return out


def train_run(args: argparse.Namespace) -> Path:
    run = args.out / args.data
    if (run / "config.json").is_file():
        return run
    cfg = flowmatch.TrainConfig(
        data=args.data,
        model=flowmatch.ModelConfig(name="unet", channels=args.channels, levels=2),
        steps=args.steps,
        batch_size=128,
        lr=1e-3,
        threads=args.threads,
        log_every=200,
        checkpoint_every=500,
    )
    t0 = time.perf_counter()
    flowmatch.train(cfg, run)
    print(f"trained {run} in {time.perf_counter() - t0:.0f} s")
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", default="digits-captions", choices=["digits-captions", "fashion-captions"]
    )
    p.add_argument("--run", type=Path, help="score this run instead of training one")
    p.add_argument("--out", type=Path, default=Path("bench-out/prompts"))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--n", type=int, default=20, help="samples per class, level and phrasing set")
    p.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    p.add_argument("--solver", default="midpoint")
    p.add_argument("--solver-steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.run if args.run is not None else train_run(args)
    flow = flowmatch.load(run)
    ds = get_dataset(args.data)
    classifier = reference_classifier(get_dataset(ds.labelled))
    k = len(ds.scheme.nouns)

    # the same prompts at every scale: per phrasing set, class and level, n of them
    rng = random.Random(args.seed)
    groups = {}
    for phrasing, templates in (("seen", SEEN_TEMPLATES), ("unseen", UNSEEN_TEMPLATES)):
        texts, labels, prompted, which = [], [], [], []
        for label in range(k):
            for level in (1, -1):
                t, w = prompts_for(ds, label, level, templates, args.n, rng)
                texts, which = texts + t, which + w
                labels += [label] * args.n
                prompted += [level] * args.n
        groups[phrasing] = (texts, torch.tensor(labels), torch.tensor(prompted), which)

    real = score(ds, classifier, ds.test_data, ds.test_labels)
    real["prompted"] = ds.levels(ds.test_data, ds.test_labels)[:, 0]
    results = [summarize({"seen": real, "unseen": real}, "real held-out images")]
    results[0]["high_hit"] = results[0]["low_hit"] = None  # levels are measured, not asked
    per_template = {}  # (phrasing, template) -> accuracy at each scale
    for w in args.guidance:
        rows, t0 = {}, time.perf_counter()
        for phrasing, (texts, labels, prompted, which) in groups.items():
            x = flow.sample(
                len(texts),
                cond=texts,
                guidance=w,
                solver=args.solver,
                steps=args.solver_steps,
                seed=args.seed,
            )
            rows[phrasing] = {**score(ds, classifier, x, labels), "prompted": prompted}
            templates = SEEN_TEMPLATES if phrasing == "seen" else UNSEEN_TEMPLATES
            for i, template in enumerate(templates):
                mine = torch.tensor(which) == i
                acc = float(rows[phrasing]["correct"][mine].mean())
                per_template.setdefault((phrasing, template), []).append(acc)
        results.append(summarize(rows, f"w = {w:g}"))
        results[-1]["seconds"] = time.perf_counter() - t0

    a = ds.scheme.attributes[0]
    high, low = a.high[0], a.low[0]
    print(
        f"\n{args.data}: {args.n} samples per class, level and phrasing set; "
        f"{args.solver} x{args.solver_steps}\n"
    )
    print(
        f"| setting | acc. seen | acc. unseen | {a.name} '{high}' | {a.name} '{low}' | "
        f"'{high}' hit | '{low}' hit |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        hits = ["-" if r[h] is None else f"{r[h]:.2f}" for h in ("high_hit", "low_hit")]
        print(
            f"| {r['setting']} | {r['acc_seen']:.3f} | {r['acc_unseen']:.3f} | "
            f"{r['high_mean']:.3f} ± {r['high_std']:.3f} | {r['low_mean']:.3f} ± "
            f"{r['low_std']:.3f} | {hits[0]} | {hits[1]} |"
        )
    print("\nclass accuracy per sentence shape\n")
    print("| phrasing | template | " + " | ".join(f"w = {w:g}" for w in args.guidance) + " |")
    print("|---|---|" + "---:|" * len(args.guidance))
    for (phrasing, template), accs in per_template.items():
        cells = " | ".join(f"{a:.3f}" for a in accs)
        print(f"| {phrasing} | `{template}` | {cells} |")
    results.append({"per_template": {f"{p}: {t}": a for (p, t), a in per_template.items()}})
    (args.out / f"{args.data}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
