#!/usr/bin/env python3
"""The Python PyTorch side of bench_train: the same models and training loop as
powertrain's C++ engine, in three forms (--mode):

  tuned    the fastest eager form a PyTorch expert writes for these models on a
           CPU: channels-last convolutions (oneDNN's preferred layout; the
           sensor model's 1-D blocks run as 2-D ones over [N, C, 1, L]), one
           gather per epoch into a shuffled copy and contiguous batch slices
           instead of a gather per batch, fused SGD (one kernel over every
           parameter), gradients set to None, no per-step host sync.
  compile  the tuned form with the model under torch.compile (Inductor); the
           compile is paid in every process, as in every trial of a study.
  plain    PyTorch's default eager form, as a tutorial writes it (for reference).

bench_train runs this once per trial and reads one JSON object from stdout:
    python bench/train_python.py --workload image --batch 16 --samples 4096 \
        --threads 2 --epochs 2 --seed 1 --mode tuned
It trains `epochs` epochs over `samples` random samples held in memory (on
--device, as the engine holds its splits there) and
reports the samples per second of the last epoch's training phase
(samples_per_s), which the C++ side measures the same way (the first epoch warms
allocators and kernels, and compiles), and the samples per second of the whole
run from the model's creation on, compile included (end_to_end_samples_per_s).
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The workloads' shapes, as in bench_train.cpp: Fashion-MNIST images and
# PAMAP2 windows (18 IMU channels, 256 samples, 12 activities).
WORKLOADS = {
    "image": {"shape": (1, 28, 28), "classes": 10, "kernel": 3},
    "sensor": {"shape": (18, 256), "classes": 12, "kernel": 5},
}


def block_widths(width, max_width, depth):
    """Channels per conv block: doubled per block up to max_width."""
    out = []
    w = width
    for i in range(depth):
        out.append(min(w, max(max_width, width)))
        if w < max_width:
            w *= 2
    return out


class ImageCnn(nn.Module):
    """conv (no bias) -> batch norm -> max pool -> ReLU per block, flatten,
    dropout, linear: powertrain's image-cnn with its default options."""

    def __init__(self, shape, classes, kernel, width=32, max_width=256, depth=3, dropout=0.25):
        super().__init__()
        c, h, w = shape
        layers = []
        for out in block_widths(width, max_width, depth):
            layers += [nn.Conv2d(c, out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(out)]
            if h >= 2 and w >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            layers.append(nn.ReLU(inplace=True))
            c = out
        self.encoder = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c * h * w, classes)

    def forward(self, x):
        return self.head(self.dropout(torch.flatten(self.encoder(x), 1)))


class SensorCnn(nn.Module):
    """The 1D counterpart: conv1d blocks, mean over time, dropout, linear."""

    def __init__(self, shape, classes, kernel, width=32, max_width=256, depth=3, dropout=0.25):
        super().__init__()
        c, length = shape
        layers = []
        for out in block_widths(width, max_width, depth):
            layers += [nn.Conv1d(c, out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(out)]
            if length >= 2:
                layers.append(nn.MaxPool1d(2))
                length //= 2
            layers.append(nn.ReLU(inplace=True))
            c = out
        self.encoder = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        if self.as_2d:
            return self.head(self.dropout(self.encoder_2d(x)))
        return self.head(self.dropout(self.encoder(x).mean(2)))

    as_2d = False

    def encoder_2d(self, x):
        """The same blocks as 2-D ones over [N, C, 1, L] in channels-last order,
        the layout oneDNN's convolutions are fastest in (the same parameters)."""
        h = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        for layer in self.encoder:
            if isinstance(layer, nn.Conv1d):
                h = F.conv2d(h, layer.weight.unsqueeze(2), padding=(0, layer.padding[0]))
            elif isinstance(layer, nn.BatchNorm1d):
                h = F.batch_norm(h, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                                 self.training, layer.momentum, layer.eps)
            elif isinstance(layer, nn.MaxPool1d):
                h = F.max_pool2d(h, (1, 2))
            else:
                h = layer(h)
        return h.mean((2, 3))


def batches(x, y, order, batch, channels_last):
    """One epoch's batches: one gather into a shuffled copy, then views."""
    xs, ys = x.index_select(0, order), y.index_select(0, order)
    if channels_last:
        xs = xs.contiguous(memory_format=torch.channels_last)
    for first in range(0, xs.shape[0], batch):
        yield xs[first:first + batch], ys[first:first + batch]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--samples", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--mode", choices=["tuned", "compile", "plain"], default="tuned")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the data, model and steps live")
    p.add_argument("--sensor-as-1d", action="store_true",
                   help="tuned/compile: keep the sensor model's Conv1d path (default: the faster 2-D form)")
    p.add_argument("--describe", action="store_true", help="print the parameter count and exit")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    torch.manual_seed(a.seed)
    spec = WORKLOADS[a.workload]
    cls = ImageCnn if a.workload == "image" else SensorCnn
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"train_python.py: --device {a.device}, but this torch sees no GPU")
    if a.describe:
        model = cls(spec["shape"], spec["classes"], spec["kernel"])
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(json.dumps({"parameters": sum(t.numel() for t in model.parameters()),
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "device_name": name}))
        return

    x = torch.randn((a.samples,) + spec["shape"])
    y = torch.randint(0, spec["classes"], (a.samples,))
    # End to end: from the model's creation to the last step, compile included,
    # and the copy of the data to the device (the engine's run includes its copy).
    start_all = time.perf_counter()
    x, y = x.to(device), y.to(device)
    model = cls(spec["shape"], spec["classes"], spec["kernel"]).to(device)
    gen = torch.Generator().manual_seed(a.seed)
    tuned = a.mode != "plain"
    # Channels-last applies to 4-D activations: the image model's.
    channels_last = tuned and x.dim() == 4
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if tuned and a.workload == "sensor" and not a.sensor_as_1d:
        model.as_2d = True
    if tuned:
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, fused=True)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    step_model = torch.compile(model) if a.mode == "compile" else model

    start_all_training = time.perf_counter()
    samples_per_s = 0.0
    model.train()
    for _ in range(a.epochs):
        start = time.perf_counter()
        order = torch.randperm(a.samples, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        if tuned:
            for xb, yb in batches(x, y, order, a.batch, channels_last):
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(step_model(xb), yb)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * yb.shape[0]
        else:
            for first in range(0, a.samples, a.batch):
                index = order[first:first + a.batch]
                xb, yb = x[index], y[index]
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * index.numel()
        mean_loss = loss_sum.item() / a.samples
        samples_per_s = a.samples / (time.perf_counter() - start)
        if mean_loss != mean_loss:
            sys.exit("the training loss became NaN")
    end = time.perf_counter()
    print(json.dumps({"samples_per_s": samples_per_s,
                      "end_to_end_samples_per_s": a.epochs * a.samples / (end - start_all),
                      "setup_s": start_all_training - start_all,
                      "threads": torch.get_num_threads(), "mode": a.mode}))


if __name__ == "__main__":
    main()
