"""Callbacks that connect training frameworks to powertrain.

* powertrain.integrations.transformers.PowertrainCallback: Hugging Face's Trainer.
* powertrain.integrations.lightning.PowertrainCallback: PyTorch Lightning's Trainer.

Inside a study (POWERTRAIN_SOCKET set) each reports its epochs over the
protocol and follows powertrain's decisions; on its own it measures each
epoch's energy with powertrain.Meter and logs it through the framework's own
loggers. The modules import their framework only when imported themselves.
"""
