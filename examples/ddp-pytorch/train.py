#!/usr/bin/env python3
"""Fashion-MNIST with PyTorch DistributedDataParallel, reporting to powertrain.

The data, model and flags of ../fashion-mnist-pytorch/train.py, trained by
several processes at once (one per GPU, or gloo on the CPU):

    torchrun --standalone --nproc_per_node 2 train.py --max-samples 1000 --max-epochs 3 --threads 1
    powertrain train -- torchrun --standalone --nproc_per_node 2 train.py --max-samples 1000
    powertrain sweep ddp-grid-quick.toml --db results.db     # a study, two ranks per trial

Every rank calls pt.epochs, pt.phase, pt.report and pt.test exactly as a
single-process script does. The package knows the ranks (torchrun's, srun's
or mpirun's variables): the node's local rank 0 talks to powertrain, and every
rank receives global rank 0's decision, so all ranks stop at the same epoch.
Each rank trains on its shard of every epoch (DistributedSampler); the
validation metric is summed over the ranks' shards (all_reduce), so every rank
reports the same number.
"""
import importlib.util
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

# The single-process example (data, model, flags), loaded by path: both scripts are named train.py.
_spec = importlib.util.spec_from_file_location(
    "fashion_mnist_single", Path(__file__).resolve().parent.parent / "fashion-mnist-pytorch" / "train.py")
single = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(single)

pt = single.pt


def evaluate(model, loader, loss_fn, device, multi_task):
    """The metric over every rank's shard: hits, loss and samples summed with all_reduce."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # hits (or mean task hits), loss sum, samples
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            hits = ((out > 0) == (y > 0.5)).float().mean(1).sum() if multi_task else (out.argmax(1) == y).sum()
            sums += torch.stack([hits.double(), loss_fn(out, y).double() * len(x),
                                 torch.tensor(float(len(x)), dtype=torch.float64, device=device)])
    dist.all_reduce(sums)
    return (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()


def rendezvous_from_srun():
    """Started by srun (a study's workload.launcher = "srun") rather than
    torchrun: torch's env:// rendezvous from Slurm's variables, at the node
    srun ran on (rank 0's) and powertrain's port for the job."""
    env = os.environ
    if "RANK" in env or "SLURM_PROCID" not in env or "SLURM_STEP_ID" not in env:
        return
    env.setdefault("MASTER_ADDR", env.get("SLURM_LAUNCH_NODE_IPADDR") or "127.0.0.1")
    env.setdefault("MASTER_PORT", env.get("POWERTRAIN_MASTER_PORT") or "29500")
    env["RANK"], env["WORLD_SIZE"] = env["SLURM_PROCID"], env.get("SLURM_NTASKS", "1")
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")


def main():
    args = single.parse_args()
    backend = "nccl" if args.device.startswith("cuda") else "gloo"
    rendezvous_from_srun()
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tasks = [single.parse_task(t) for t in args.tasks.split(",") if t.strip()] or None
    try:
        train_set, val_set, test_set = single.load_splits(args, tasks)
    except (OSError, ValueError) as e:
        sys.exit(f"ddp train.py: {e}")
    # Each rank a shard: --batch-size is the global batch, split over the ranks.
    per_rank = max(1, args.batch_size // world)
    train_sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)

    def loader(dataset, batch_size, sampler):
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=args.num_workers,
                          pin_memory=device.type == "cuda")
    train_loader = loader(train_set, per_rank, train_sampler)
    val_loader = loader(val_set, 256, DistributedSampler(val_set, world, rank, shuffle=False))
    test_loader = loader(test_set, 256, DistributedSampler(test_set, world, rank, shuffle=False))

    model = single.SmallCNN(len(tasks) if tasks else len(single.CLASSES)).to(device)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if backend == "nccl" else None)
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(ddp.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum,
                                    weight_decay=args.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss() if tasks else nn.CrossEntropyLoss()
    if rank == 0:
        print(f"fashion-mnist ddp: {world} ranks ({backend}), {len(train_set)} train images, "
              f"global batch {per_rank * world}, torch {torch.__version__}", flush=True)

    # Continued segments of a search: rank 0 saves the state, every rank loads it.
    state = pt.resume(model=model, optimizer=optimizer)
    for epoch in pt.epochs(args.max_epochs):
        start = time.perf_counter()
        train_sampler.set_epoch(epoch)
        ddp.train()
        total, samples, steps = torch.zeros((), device=device), 0, len(train_loader)
        for step, (x, y) in enumerate(train_loader, 1):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = loss_fn(ddp(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(x)
            samples += len(x)
            pt.progress(step, steps, loss.detach())
        with pt.phase("eval"):
            val_metric, val_loss = evaluate(ddp, val_loader, loss_fn, device, bool(tasks))
        counts = torch.tensor([total.item(), float(samples)], dtype=torch.float64, device=device)
        dist.all_reduce(counts)
        decision = pt.report(val_metric=val_metric, val_loss=val_loss, train_loss=(counts[0] / counts[1]).item(),
                             samples=int(counts[1].item()))
        if decision.best and rank == 0 and args.checkpoint:
            single.save(model.state_dict(), args.checkpoint)
            pt.checkpoint(args.checkpoint, kind="model")
        if rank == 0:
            print(f"epoch {epoch:3d}  val {val_metric:.4f}  {time.perf_counter() - start:5.2f} s"
                  f"{'  best' if decision.best else ''}", flush=True)
        if decision.stop:
            if rank == 0:
                print(f"stopped by powertrain: {decision.reason}", flush=True)
            break

    state.restore_best()
    test_metric, _ = evaluate(ddp, test_loader, loss_fn, device, bool(tasks))
    pt.test(metric=test_metric)
    print(f"rank {rank} of {world}: last epoch {state.epoch}, test {test_metric:.4f}, best epoch {state.best_epoch}",
          flush=True)  # every rank: they agree
    dist.barrier()  # no rank tears its connections down while another still uses them
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
