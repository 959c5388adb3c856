"""Where a training step's time goes on a GPU: the default recipe's step, timed in variants.

    python benchmarks/gpu_step.py --data-dir DIR [--device cuda] [--steps 200]

The baseline is the default recipe's step as digitos ran it before CUDA graphs (DigitNet,
batch 128, SGD with Nesterov momentum, OneCycle, augmentation, bf16 autocast, channels_last,
eager); "fp32 + fused + graphed" is how `train.py` runs it now. Each variant changes one thing
and is timed over --steps steps after a warm-up, the device synchronised around the timed part.
Before that: a short run with CUDA's sync debug mode on (does any step wait for the GPU?)
and the profiler's busiest operators. Run by hand on a machine with a GPU, never in CI.
"""

from __future__ import annotations

import argparse
import time
import warnings
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from digitos.datasets import load_dataset
from digitos.loader import Augment, Batches
from digitos.models import create_model, get_entry
from digitos.train import TrainConfig, cuda_graphed, make_optimizer


def setup(data, device, batch=128, augment=True, channels_last=True, fused=False):
    torch.manual_seed(0)
    model = create_model("DigitNet").to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = Batches(data.train, batch, get_entry("DigitNet").normalization, device,
                      shuffle=True, augment=Augment() if augment else None,
                      channels_last=channels_last)
    cfg = TrainConfig.from_recipe("default")  # SGD with Nesterov momentum, as training makes it
    opt = make_optimizer(cfg, model.parameters(), fused=fused)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=100_000)
    return model, batches, opt, sched


def full_batches(batches):
    """Endless full-size batches (the epoch's short last batch left out)."""
    while True:
        for x, y in batches:
            if len(y) == batches.batch_size:
                yield x, y


def make_step(model, opt, sched, autocast):
    def step(x, y, total):
        with autocast:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.detach().float() * len(y)
    return step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_variant(name, *args, **kw):
    try:
        return _time_variant(name, *args, **kw)
    except Exception as e:  # one variant failing must not hide the others
        print(f"{name:50} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)


def _time_variant(name, data, device, steps, bf16=True, graphed=False, data_only=False, **kw):
    model, batches, opt, sched = setup(data, device, **kw)
    # A graph records autocast's casts too; its weight cache must be off for that.
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not graphed)
                if bf16 and device.type == "cuda" else nullcontext())
    it = full_batches(batches)
    forward = model
    if graphed:  # forward and backward recorded as CUDA graphs, as training does it
        with autocast:
            forward = cuda_graphed(model, batches)
    step = make_step(forward, opt, sched, autocast)
    total = torch.zeros((), device=device)
    for _ in range(20):  # warm-up: cuDNN's choices, the allocator, graphs
        x, y = next(it)
        if not data_only:
            step(x, y, total)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        if not data_only:
            step(x, y, total)
    sync(device)
    ms = 1000 * (time.perf_counter() - t0) / steps
    n = kw.get("batch", 128)
    print(f"{name:50} {ms:7.3f} ms/step  {n / ms * 1000:10,.0f} images/s  "
          f"epoch of 55,000: {55_000 / n * ms / 1000:5.2f} s", flush=True)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    device = torch.device(args.device)
    data = load_dataset("mnist", args.data_dir)
    cuda = device.type == "cuda"
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")

    # 1. Does a step wait for the GPU anywhere? (each wait is a warning in this mode)
    if cuda:
        model, batches, opt, sched = setup(data, device)
        step = make_step(model, opt, sched, torch.autocast("cuda", dtype=torch.bfloat16))
        it, total = full_batches(batches), torch.zeros((), device=device)
        step(*next(it), total)
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(5):
                step(*next(it), total)
        torch.cuda.set_sync_debug_mode("default")
        print(f"waits for the GPU in 5 steps: {len(caught)}")
        for w in caught[:5]:
            print("   ", str(w.message).splitlines()[0][:150])

    # 2. The busiest operators of 20 baseline steps.
    model, batches, opt, sched = setup(data, device)
    step = make_step(model, opt, sched,
                     torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext())
    it, total = full_batches(batches), torch.zeros((), device=device)
    for _ in range(5):
        step(*next(it), total)
    acts = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(20):
            step(*next(it), total)
        sync(device)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    if cuda:
        kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        gpu_us = sum(e.self_device_time_total for e in events
                     if e.device_type == torch.autograd.DeviceType.CUDA)
        print(f"GPU kernels per step: {kernels / 20:.0f}, GPU busy per step: {gpu_us / 20:.0f} us")

    # 3. Variants, one change each.
    s = args.steps
    time_variant("baseline (eager, as digitos trained before graphs)", data, device, s)
    time_variant("data only (slice + augment)", data, device, s, data_only=True)
    time_variant("no augmentation", data, device, s, augment=False)
    time_variant("fp32 instead of bf16 autocast", data, device, s, bf16=False)
    time_variant("no channels_last", data, device, s, channels_last=False)
    if cuda:
        time_variant("fused SGD", data, device, s, fused=True)
        time_variant("fp32 + fused SGD", data, device, s, bf16=False, fused=True)
        time_variant("fp32 + fused + graphed fwd/bwd", data, device, s, bf16=False, fused=True,
                     graphed=True)
        time_variant("bf16 + fused + graphed fwd/bwd", data, device, s, fused=True, graphed=True)
        time_variant("batch 512, fp32 + fused + graphed", data, device, s, batch=512, bf16=False,
                     fused=True, graphed=True)
    time_variant("batch 256", data, device, s, batch=256)
    time_variant("batch 512", data, device, s, batch=512)
    if cuda:
        time_variant("batch 512, fp32 + fused", data, device, s, batch=512, bf16=False, fused=True)


if __name__ == "__main__":
    main()
