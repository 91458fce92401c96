"""Adapters implemented in posttrain/surgery (not peft), saved and loaded like peft's.

An adapter directory holds `posttrain_adapter.json` (kind, base model, the kind's settings) and
`adapter_model.safetensors` (only the trained tensors, under the base model's parameter names)
plus the tokenizer. posttrain's loaders (training resume, `posttrain eval`, the reward-model
loader) recognise it through model/adapters.is_adapter_dir and rebuild it with load_surgery_adapter:
base from `base_model_name_or_path`, the kind's modules attached, the tensors loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from posttrain.errors import UserError

CONFIG_NAME = "posttrain_adapter.json"
WEIGHTS_NAME = "adapter_model.safetensors"


class SurgeryAdapterModel(nn.Module):
    """The adapted model (hooks and extra parameters live on `base_model`'s own modules); attribute
    access falls through to it, so generation and the log-prob path see a causal LM."""

    def __init__(self, base_model, settings: dict):
        super().__init__()
        self.base_model = base_model
        self.settings = settings  # kind + what rebuilding needs, written to CONFIG_NAME

    def forward(self, *args, **kwargs):
        return self.base_model(*args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    def adapter_state(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The trained tensors under the base model's names (from `state` when the loop gathered it)."""
        trained = {n for n, p in self.base_model.named_parameters() if p.requires_grad}
        source = state if state is not None else self.state_dict()
        out = {}
        for name, tensor in source.items():
            name = name.removeprefix("base_model.")
            if name in trained:
                out[name] = tensor.detach().to("cpu").contiguous()
        return out

    def save_pretrained(self, directory, state_dict: dict | None = None, **_):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        base = self.settings.get("base_model_name_or_path") or self.base_model.config._name_or_path
        config = {**self.settings, "base_model_name_or_path": base}
        save_file(self.adapter_state(state_dict), str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    def merge_and_unload(self):
        """Prompts and hooks cannot fold into plain weights: the adapted model itself, for inference."""
        return self


def is_surgery_adapter_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / CONFIG_NAME).is_file()


def read_settings(path: str | os.PathLike) -> dict:
    try:
        return json.loads((Path(path) / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}/{CONFIG_NAME}: {err}") from None


def load_weights(adapted: SurgeryAdapterModel, path: str | os.PathLike, trainable: bool) -> SurgeryAdapterModel:
    """Put the saved tensors into an adapter just rebuilt on its base (names must match exactly)."""
    saved = load_file(str(Path(path) / WEIGHTS_NAME))
    params = dict(adapted.base_model.named_parameters())
    missing = sorted(set(adapted.adapter_state()) - set(saved))
    unknown = sorted(set(saved) - set(params))
    if missing or unknown:
        raise UserError(
            f"{path}/{WEIGHTS_NAME} does not fit its base: "
            f"{'missing ' + missing[0] if missing else 'unknown tensor ' + unknown[0]}"
        )
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor)
    if not trainable:
        adapted.requires_grad_(False)
    return adapted
