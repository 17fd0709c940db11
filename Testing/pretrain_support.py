"""Helpers for the pretraining tests: a tiny, fast configuration and checkpoint comparison."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from sslseg.pretrain.config import PretrainConfig
from sslseg.pretrain.run import pretrain

#: Tiny preset on 32^3 patches of 4 mm volumes: about 0.05 s per step on 2 CPU cores.
TINY = dict(preset="tiny", patch_size=32, spacing=4.0, batch_size=2, workers=0, checkpoint_every=0, events=None,
            amp="off")


def tiny_config(data_dir: Path, out_dir: Path, cache_dir: Path | None = None, **overrides) -> PretrainConfig:
    settings = {**TINY, "cache_dir": str(cache_dir) if cache_dir else None, **overrides}
    return PretrainConfig(data_dir=str(data_dir), out_dir=str(out_dir), **settings)


def run_tiny(data_dir: Path, out_dir: Path, cache_dir: Path | None = None, **overrides) -> dict:
    return pretrain(tiny_config(data_dir, out_dir, cache_dir, **overrides))


@contextmanager
def one_torch_thread():
    """Torch on one thread inside, restored after: deterministic sums, and for the tiny models of the pretext tests
    about twice as fast as two threads on two cores (their operations are too small to split)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_state(run_dir: Path) -> dict:
    """The checkpoint of a run, read the safe way (no code unpickled)."""
    return torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)


def step_losses(run_dir: Path) -> list[float]:
    return [loss for _, loss in load_state(run_dir)["state"]["step_losses"]]


def pretext_held_out_accuracy(name: str, unlabelled_dir, pretrain_cache, predict, label: str, steps: int = 300,
                              lr: float = 1e-3, **options) -> float:
    """Train the pretext task ``name`` with ``options`` (tiny ViT, 32^3, batch 4, AdamW ``lr``, float32) for ``steps``
    steps on 4 cohort volumes, then score 64 samples of the fifth: accuracy of ``predict(model, batch)`` (B, classes)
    logits against the views' ``label``; with ``predict`` a dict name -> (predict, label), a dict name -> accuracy
    and ``label`` unused. On one torch thread (:func:`one_torch_thread`)."""
    with one_torch_thread():
        return _train_and_score(name, unlabelled_dir, pretrain_cache, predict, label, steps, lr, options)


def _train_and_score(name, unlabelled_dir, pretrain_cache, predict, label, steps, lr, options):
    import itertools

    from sslseg.data.cache import build_cache
    from sslseg.data.dataset import PatchViewsDataset
    from sslseg.data.preprocess import PreprocessSettings
    from sslseg.io.scan import find_volumes
    from sslseg.models.presets import get_preset
    from sslseg.ssl import StepContext, create_method

    entries, _ = build_cache(find_volumes(unlabelled_dir), pretrain_cache, PreprocessSettings(spacing_mm=4.0))
    method = create_method(name, **options)
    train = PatchViewsDataset(entries[:4], 32, 4, method, seed=0)
    held_out = PatchViewsDataset(entries[4:], 32, 64, method, seed=1)

    def batch(dataset, epoch, indices):
        samples = [dataset[(epoch, i)] for i in indices]
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

    torch.manual_seed(0)
    model = method.build_model(get_preset("tiny").with_img_size(32))
    optimizer = torch.optim.AdamW(method.param_groups(model, lr, 1e-5), lr=lr)
    for step, chunk in zip(range(steps), itertools.cycle(range(4))):
        loss = method.step_loss(model, batch(train, step // 4, range(chunk * 4, chunk * 4 + 4)), StepContext()).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        test = batch(held_out, 0, range(64))
        if isinstance(predict, dict):  # several heads: name -> (predict, label)
            return {name: float((call(model, test).argmax(dim=1) == test[key]).float().mean())
                    for name, (call, key) in predict.items()}
        return float((predict(model, test).argmax(dim=1) == test[label]).float().mean())
