#!/usr/bin/env python3
"""Train a small CNN on Fashion-MNIST with PyTorch Lightning, reporting to powertrain.

Runs on its own:

    python train.py --max-samples 1000 --max-epochs 3 --threads 1

and as the external workload of a powertrain study or search
(examples/lightning-grid-quick.toml, examples/lightning-search-quick.toml).
Everything powertrain adds is PowertrainCallback and ckpt_path() from
powertrain.integrations.lightning, and pt.test for the test metric: the
callback reports each epoch's validation accuracy, stops the Trainer when
powertrain says so, keeps the best model, and in a search saves and continues
Lightning's checkpoint between segments. On its own it logs each epoch's energy
to the Trainer's loggers instead.

Data: Fashion-MNIST's IDX files in --data-dir (Debian: apt install
dataset-fashion-mnist). Validation is a seeded split of the training images;
the test split is t10k.
"""
import argparse
import gzip
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

try:
    import powertrain as pt
except ImportError:  # not installed: use the package of the powertrain checkout around this example
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
    import powertrain as pt
from powertrain.integrations.lightning import PowertrainCallback, ckpt_path

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"


def images_and_labels(root, prefix):
    """One split's IDX files (gzip'd or plain) as float images in [0, 1] and labels."""
    def raw(name):
        for path in (root / f"{name}.gz", root / name):
            if path.exists():
                return (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
        raise FileNotFoundError(f"{root}: no {name}(.gz) (on Debian: apt install dataset-fashion-mnist)")
    images = raw(f"{prefix}-images-idx3-ubyte")
    labels = raw(f"{prefix}-labels-idx1-ubyte")
    x = torch.frombuffer(bytearray(images[16:]), dtype=torch.uint8).view(-1, 1, 28, 28).float().div_(255)
    y = torch.frombuffer(bytearray(labels[8:]), dtype=torch.uint8).long()
    if len(x) != len(y):
        raise ValueError(f"{root}: {prefix} has {len(x)} images and {len(y)} labels")
    return x, y


class FashionCNN(L.LightningModule):
    def __init__(self, lr, momentum, width=16):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * width * 7 * 7, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, stage):
        x, y = batch
        out = self(x)
        self.log(f"{stage}_loss", nn.functional.cross_entropy(out, y), on_epoch=True)
        self.log(f"{stage}_acc", (out.argmax(1) == y).float().mean(), on_epoch=True)

    def validation_step(self, batch, _):
        self._evaluate(batch, "val")

    def test_step(self, batch, _):
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum)


def main():
    args = parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    root = Path(args.data_dir)
    try:
        x, y = images_and_labels(root, "train")
        tx, ty = images_and_labels(root, "t10k")
    except (OSError, ValueError) as e:
        sys.exit(f"train.py: {e}")
    split = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.data_seed))
    n_val = len(x) // 10
    val_idx, train_idx = split[:n_val], split[n_val:]
    test_idx = torch.randperm(len(tx), generator=torch.Generator().manual_seed(args.data_seed))
    if args.max_samples:
        train_idx, val_idx, test_idx = (i[:args.max_samples] for i in (train_idx, val_idx, test_idx))

    L.seed_everything(args.seed, verbose=False)
    train = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=args.batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=256)
    test = DataLoader(TensorDataset(tx[test_idx], ty[test_idx]), batch_size=256)
    model = FashionCNN(args.lr, args.momentum)
    callback = PowertrainCallback(monitor="val_acc")
    trainer = L.Trainer(max_epochs=args.max_epochs,  # under powertrain: the segment's last epoch
                        accelerator="gpu" if args.device.startswith("cuda") else "cpu", devices=1,
                        callbacks=[callback], logger=L.pytorch.loggers.CSVLogger(args.log_dir) if args.log_dir else False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, deterministic=True)
    print(f"lightning: {len(train_idx)} train, {len(val_idx)} val, {len(test_idx)} test images; "
          f"lightning {L.__version__}, torch {torch.__version__}", flush=True)
    trainer.fit(model, train, val, ckpt_path=ckpt_path())  # None unless a segment continues
    if callback.last is not None and callback.last.stop:
        print(f"stopped by powertrain: {callback.last.reason}", flush=True)
    result = trainer.test(model, test, verbose=False)[0]  # the best model: the callback restored it
    pt.test(metric=result["test_acc"])
    print(f"test_acc {result['test_acc']:.4f}, best epoch {callback.best.epoch}", flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="folder of the IDX files ('' = the default)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (SGD)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and of the batch order")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the validation split and of --max-samples")
    p.add_argument("--max-epochs", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument("--max-samples", type=int, default=0, help="cap on each split, 0 = none")
    p.add_argument("--log-dir", default="", help="a CSVLogger's folder (metrics and energy per epoch); '' = none")
    args = p.parse_args()
    args.data_dir = args.data_dir or DEFAULT_DATA_DIR
    if args.batch_size < 1 or args.max_epochs < 1 or args.max_samples < 0 or args.threads < 0:
        p.error("--batch-size and --max-epochs must be positive, --max-samples and --threads not negative")
    return args


if __name__ == "__main__":
    main()
