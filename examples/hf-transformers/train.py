#!/usr/bin/env python3
"""Train a tiny BERT with Hugging Face's Trainer on synthetic text, reporting to powertrain.

Runs on its own:

    python train.py --max-samples 512 --max-epochs 3 --threads 1

and as the external workload of a powertrain study or search
(examples/hf-grid-quick.toml, examples/hf-search-quick.toml). Everything
powertrain adds is PowertrainCallback and resume_from_checkpoint() from
powertrain.integrations.transformers, and pt.test for the test metric: the
callback reports each epoch (its evaluation), stops the Trainer when powertrain
says so, keeps the best model, and in a search saves and continues the Trainer's
checkpoint between segments. On its own it logs each epoch's energy through the
Trainer's log instead.

The model is built from a BertConfig (no download); the data is generated: each
text is a sequence of random tokens, and its label says whether it holds one of
three marker tokens.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

try:
    import powertrain as pt
except ImportError:  # not installed: use the package of the powertrain checkout around this example
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
    import powertrain as pt
from powertrain.integrations.transformers import PowertrainCallback, resume_from_checkpoint

VOCAB = 64        # tokens 0..3 are special: 0 padding, 1 [CLS]
SEQ_LEN = 24


MARKERS = (4, 5, 6)  # a text holding one of these is of class 1


class MarkedText(Dataset):
    """Synthetic texts of 8 to 23 tokens: label 1 where a marker token occurs
    (about half of them)."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(8, SEQ_LEN, (n,), generator=g)
        tokens = torch.randint(4, VOCAB, (n, SEQ_LEN - 1), generator=g)
        mask = torch.arange(SEQ_LEN - 1).unsqueeze(0) < lengths.unsqueeze(1)
        self.labels = (torch.isin(tokens, torch.tensor(MARKERS)) & mask).any(1).long()
        self.input_ids = torch.cat([torch.ones(n, 1, dtype=torch.long), tokens * mask], 1)
        self.attention_mask = torch.cat([torch.ones(n, 1, dtype=torch.long), mask.long()], 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


def accuracy(prediction):
    logits, labels = prediction
    return {"accuracy": float((torch.as_tensor(logits).argmax(-1) == torch.as_tensor(labels)).float().mean())}


def main():
    args = parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    train_set = MarkedText(args.max_samples, seed=args.data_seed)
    val_set = MarkedText(max(args.max_samples // 4, 64), seed=args.data_seed + 1)
    test_set = MarkedText(max(args.max_samples // 4, 64), seed=args.data_seed + 2)

    torch.manual_seed(args.seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=2, intermediate_size=2 * args.hidden, max_position_embeddings=SEQ_LEN,
                        num_labels=2)
    model = BertForSequenceClassification(config)

    scratch = tempfile.TemporaryDirectory(prefix="hf-powertrain-")  # removed at exit
    output_dir = args.output_dir or scratch.name
    training = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=256,
        learning_rate=args.lr, weight_decay=args.weight_decay,
        num_train_epochs=args.max_epochs,       # under powertrain: the segment's last epoch
        lr_scheduler_type="constant",           # a schedule over max_epochs would change between segments
        eval_strategy="epoch", save_strategy="no", logging_strategy="epoch",
        seed=args.seed, data_seed=args.seed, use_cpu=args.device == "cpu", dataloader_num_workers=0,
        report_to=[], disable_tqdm=True)
    callback = PowertrainCallback(metric="accuracy")
    trainer = Trainer(model=model, args=training, train_dataset=train_set, eval_dataset=val_set,
                      compute_metrics=accuracy, callbacks=[callback])
    print(f"hf-transformers: {len(train_set)} train, {len(val_set)} val, {len(test_set)} test texts; "
          f"BERT {args.layers} layer(s), hidden {args.hidden}; torch {torch.__version__}", flush=True)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint())  # None unless a segment continues
    for entry in trainer.state.log_history:
        if "eval_accuracy" in entry:
            print(f"epoch {entry['epoch']:.0f}  val_loss {entry['eval_loss']:.4f}  "
                  f"val_acc {entry['eval_accuracy']:.4f}", flush=True)
        if "energy/epoch_j" in entry:
            print(f"epoch {entry['epoch']:.0f}  {entry['energy/epoch_j']:.1f} J in {entry['energy/epoch_s']:.2f} s"
                  f"{' (estimated)' if entry['energy/estimated'] else ''}", flush=True)
    if callback.last is not None and callback.last.stop:
        print(f"stopped by powertrain: {callback.last.reason}", flush=True)

    result = trainer.evaluate(test_set, metric_key_prefix="test")  # the best model: the callback restored it
    pt.test(metric=result["test_accuracy"])
    print(f"test_acc {result['test_accuracy']:.4f}, best epoch {callback.best.epoch}", flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate (AdamW)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and of the batch order")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated texts")
    p.add_argument("--max-epochs", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (the Trainer picks the GPU)")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument("--max-samples", type=int, default=2048, help="training texts (validation and test: a quarter)")
    p.add_argument("--hidden", type=int, default=32, help="BERT's hidden size")
    p.add_argument("--layers", type=int, default=1, help="BERT's layers")
    p.add_argument("--output-dir", default="", help="the Trainer's output folder (default: a temporary one)")
    args = p.parse_args()
    if args.batch_size < 1 or args.max_epochs < 1 or args.max_samples < 1 or args.threads < 0:
        p.error("--batch-size, --max-epochs and --max-samples must be positive, --threads not negative")
    return args


if __name__ == "__main__":
    main()
