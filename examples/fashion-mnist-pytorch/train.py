#!/usr/bin/env python3
"""Train a small CNN on Fashion-MNIST with plain PyTorch, reporting to powertrain.

Runs on its own:

    python train.py --max-samples 1000 --max-epochs 3 --threads 1

and as the external workload of a powertrain study (examples/*-external-quick.toml),
which passes the trial's settings as flags and decides, epoch by epoch, when
training has converged. Outside powertrain every `pt.*` call does nothing, and
`pt.report` only tells whether the epoch is the best so far. In a search
(`powertrain search`), a setup is trained in segments: `pt.resume` saves the
script's state when a segment stops at its epoch limit and loads it in the
segment that continues, which then trains epochs from where the last one stopped.

Data: the four IDX files of Fashion-MNIST (train-images-idx3-ubyte.gz,
train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz,
gzip'd or not) in --data-dir. On Debian: apt install dataset-fashion-mnist.
Validation is a seeded split of the training images; the test split is t10k.

With --tasks the model has one binary output per task ("is it a sneaker?") and
its metric is the mean accuracy over the tasks; otherwise it classifies the ten
classes and its metric is the accuracy.
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, random_split

try:
    import powertrain as pt
except ImportError:  # not installed: use the package of the powertrain checkout around this example
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
    import powertrain as pt

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Groups of classes, named as in powertrain's built-in multitask study.
GROUPS = {"top": (0, 2, 4, 6), "footwear": (5, 7, 9), "legwear": (1,), "dress": (3,),
          "bag": (8,), "long sleeves": (2, 4)}


# --- data ----------------------------------------------------------------------------

def read_idx(path, ndim):
    """An IDX file of unsigned bytes (gzip'd or not) as a uint8 tensor."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">I", data[:4])[0] != 0x0800 + ndim:
        raise ValueError(f"{path}: not an IDX file of {ndim}-dimensional unsigned bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise ValueError(f"{path}: the header promises {shape}, the file holds {len(data) - header} bytes")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).view(*shape)


def find_file(root, name):
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{root}: no {name}.gz or {name} "
                            "(Fashion-MNIST's IDX files; on Debian: apt install dataset-fashion-mnist)")


class FashionMNIST(Dataset):
    """One split of Fashion-MNIST: images as float [1, 28, 28] in [0, 1].

    Targets are the class index, or with `tasks` (a list of sets of class indices)
    a float vector with 1 where the image's class belongs to the task.
    """

    def __init__(self, root, split="train", tasks=None):
        prefix = {"train": "train", "test": "t10k"}[split]
        root = Path(root)
        self.images = read_idx(find_file(root, f"{prefix}-images-idx3-ubyte"), 3)
        labels = read_idx(find_file(root, f"{prefix}-labels-idx1-ubyte"), 1).long()
        if self.images.shape[1:] != (28, 28) or len(labels) != len(self.images):
            raise ValueError(f"{root}: {split} images {tuple(self.images.shape)} and labels {len(labels)} do not match")
        if tasks is None:
            self.targets = labels
        else:
            self.targets = torch.stack([torch.isin(labels, torch.tensor(sorted(t))) for t in tasks], 1).float()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].unsqueeze(0).float().div_(255), self.targets[i]


def class_index(name):
    name = name.strip()
    if name.isdigit() and int(name) < len(CLASSES):
        return int(name)
    for i, c in enumerate(CLASSES):
        if normalized(c) == normalized(name):
            return i
    raise ValueError(f"unknown Fashion-MNIST class '{name}' (0-9 or {', '.join(CLASSES)})")


def normalized(name):
    return name.strip().lower().replace("_", " ").replace("-", " ")


def parse_task(spec):
    """A binary task as a set of class indices. Accepted: a class by name or index
    ("Sneaker", "7", "class_sneaker", "class_7"), a group ("footwear"), or a group
    of your own, "NAME=A+B" ("warm=Pullover+Coat")."""
    if "=" in spec:
        return {class_index(c) for c in spec.split("=", 1)[1].split("+")}
    key = normalized(spec)
    if key in GROUPS:
        return set(GROUPS[key])
    return {class_index(spec[len("class_"):] if key.startswith("class ") else spec)}


def load_splits(args, tasks):
    """Train and validation: a split of the training images by --data-seed; test: t10k.
    --max-samples caps each split (a random subset, also by --data-seed)."""
    full = FashionMNIST(args.data_dir, "train", tasks)
    test = FashionMNIST(args.data_dir, "test", tasks)
    generator = torch.Generator().manual_seed(args.data_seed)
    n_val = round(len(full) * args.val_fraction)
    train, val = random_split(full, [len(full) - n_val, n_val], generator=generator)
    test = Subset(test, torch.randperm(len(test), generator=generator).tolist())
    if args.max_samples:  # the splits are shuffled already: keep their first samples
        train, val, test = (Subset(s, range(min(len(s), args.max_samples))) for s in (train, val, test))
    return train, val, test


# --- model ---------------------------------------------------------------------------

class SmallCNN(nn.Module):
    """Two conv blocks and a dense layer (the encoder, reusable), then a linear head."""

    def __init__(self, outputs, width=32, features=128):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),                                                        # 14x14
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),                                                        # 7x7
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, features), nn.ReLU(),
        )
        self.head = nn.Linear(features, outputs)

    def forward(self, x):
        return self.head(self.encoder(x))


# --- training ------------------------------------------------------------------------

def train_epoch(model, loader, optimizer, loss_fn, device, freeze_encoder):
    model.train()
    if freeze_encoder:
        model.encoder.eval()  # a frozen encoder keeps its BatchNorm statistics too
    total, samples, steps = torch.zeros((), device=device), 0, len(loader)
    for step, (x, y) in enumerate(loader, 1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(x)
        samples += len(x)
        pt.progress(step, steps, loss.detach())  # rate-limited; reads the loss only when it sends
    return total.item() / samples, samples


@torch.no_grad()
def evaluate(model, loader, loss_fn, device, multi_task):
    """(metric, loss, per-task accuracies or None): accuracy, or the mean accuracy over tasks."""
    model.eval()
    total, hits, n = torch.zeros((), device=device), 0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        total += loss_fn(out, y) * len(x)
        hits = hits + (((out > 0) == (y > 0.5)).sum(0) if multi_task else (out.argmax(1) == y).sum())
        n += len(x)
    if not multi_task:
        return hits.item() / n, total.item() / n, None
    per_task = (hits.double() / n).tolist()
    return sum(per_task) / len(per_task), total.item() / n, per_task


def save(obj, path):
    """torch.save through a temporary file, so a killed run never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"train.py: --device {args.device}, but this torch sees no GPU")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    task_specs = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else []
    tasks = [parse_task(t) for t in task_specs] or None
    try:
        train_set, val_set, test_set = load_splits(args, tasks)
    except (OSError, ValueError) as e:
        sys.exit(f"train.py: {e}")
    def loader(dataset, batch_size, shuffle=False):
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=args.num_workers,
                          pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(args.seed))
    train_loader = loader(train_set, args.batch_size, shuffle=True)  # its generator orders the batches
    val_loader = loader(val_set, 256)
    test_loader = loader(test_set, 256)

    model = SmallCNN(len(tasks) if tasks else len(CLASSES)).to(device)
    if args.init_encoder:
        model.encoder.load_state_dict(torch.load(args.init_encoder, map_location=device, weights_only=True))
    if args.freeze_encoder:
        model.encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss() if tasks else nn.CrossEntropyLoss()
    metric = "mean_acc" if tasks else "acc"

    print(f"fashion-mnist: {len(train_set)} train, {len(val_set)} val, {len(test_set)} test images; "
          f"{'tasks ' + ', '.join(task_specs) if tasks else '10 classes'}; "
          f"torch {torch.__version__} on {device}, threads {torch.get_num_threads()}", flush=True)

    # Continuable: in a search's later segment this loads the state the earlier one
    # saved (weights, momentum, generators, best model), and each report keeps the
    # best model and saves the state when the segment stops at its last epoch.
    state = pt.resume(model=model, optimizer=optimizer, generators=[train_loader.generator])
    if state.resumed:
        print(f"continuing after epoch {state.epoch} (best epoch so far {state.best_epoch})", flush=True)

    for epoch in pt.epochs(args.max_epochs):  # from 1, or from where the earlier segment stopped
        start = time.perf_counter()
        train_loss, samples = train_epoch(model, train_loader, optimizer, loss_fn, device, args.freeze_encoder)
        with pt.phase("eval"):
            val_metric, val_loss, val_tasks = evaluate(model, val_loader, loss_fn, device, bool(tasks))
        decision = pt.report(val_metric=val_metric, val_loss=val_loss, train_loss=train_loss,
                             samples=samples, task_metrics=val_tasks)  # ends the epoch
        if decision.best:  # pt.resume keeps the best weights in memory; save the files asked for
            if args.checkpoint:
                save(model.state_dict(), args.checkpoint)
                pt.checkpoint(args.checkpoint, kind="model")
            if args.encoder_checkpoint:
                save(model.encoder.state_dict(), args.encoder_checkpoint)
                pt.checkpoint(args.encoder_checkpoint, kind="encoder")
        print(f"epoch {epoch:3d}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
              f"val_{metric} {val_metric:.4f}  {time.perf_counter() - start:5.2f} s"
              f"{'  best' if decision.best else ''}", flush=True)
        if decision.stop:
            print(f"stopped by powertrain: {decision.reason}", flush=True)
            break

    state.restore_best()  # the best epoch of the whole run (none when no metric was finite)
    test_metric, _, test_tasks = evaluate(model, test_loader, loss_fn, device, bool(tasks))
    pt.test(metric=test_metric, task_metrics=test_tasks)
    per_task = f" ({', '.join(f'{n} {m:.4f}' for n, m in zip(task_specs, test_tasks))})" if tasks else ""
    print(f"test_{metric} {test_metric:.4f}{per_task}, best epoch {state.best_epoch}", flush=True)


def parse_args():
    def flag(text):  # "--freeze-encoder" alone, or with a value as powertrain's {freeze_encoder} gives it
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off", ""):
            return False
        raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="folder of the IDX files ('' = the default)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01, help="learning rate")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and of the batch order")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the validation split and of --max-samples")
    p.add_argument("--max-epochs", type=int, default=10)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument("--max-samples", type=int, default=0, help="cap on each split, 0 = none (1000: about a second an epoch on a CPU core)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="part of the training images used for validation")
    p.add_argument("--tasks", default="", help="comma-separated binary tasks: classes (name or index), groups (footwear) or NAME=A+B")
    p.add_argument("--init-encoder", default="", help="start from this encoder state_dict")
    p.add_argument("--freeze-encoder", type=flag, nargs="?", const=True, default=False, help="train only the head")
    p.add_argument("--checkpoint", default="", help="save the best model's state_dict here")
    p.add_argument("--encoder-checkpoint", default="", help="save the best model's encoder state_dict here")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    args = p.parse_args()
    args.data_dir = args.data_dir or DEFAULT_DATA_DIR  # powertrain passes '' when the spec sets no data_dir
    if not 0.0 < args.val_fraction < 1.0:
        p.error("--val-fraction must be between 0 and 1")
    if args.batch_size < 1 or args.max_epochs < 1 or args.max_samples < 0 or args.threads < 0:
        p.error("--batch-size and --max-epochs must be positive, --max-samples and --threads not negative")
    try:
        [parse_task(t) for t in args.tasks.split(",") if t.strip()]
    except ValueError as e:
        p.error(f"--tasks: {e}")
    if args.init_encoder and not Path(args.init_encoder).is_file():
        p.error(f"--init-encoder: no file {args.init_encoder}")
    return args


if __name__ == "__main__":
    main()
