"""Model-based metrics added to a generation task's samples, each model loaded once per task.

Document fields read: `reference` (bertscore, comet, ner_f1), `source` (comet; default: the
prompt), `context` (faithfulness), `prompt` (answer_relevance)."""

from __future__ import annotations

from posttrain.errors import UserError

MODEL_METRICS = ("bertscore", "comet", "faithfulness", "answer_relevance", "ner_f1")


def metric_names(name: str) -> list[tuple[str, str]]:
    """(metric name, aggregation) reported for a configured model metric."""
    if name == "bertscore":
        return [("bertscore_precision", "mean"), ("bertscore_recall", "mean"), ("bertscore_f1", "mean")]
    if name == "ner_f1":
        return [("ner_f1", "ner_f1")]
    if name in ("faithfulness", "answer_relevance"):
        return [(name, "mean"), ("judge_failures", "count")]
    return [(name, "mean")]


def _field(task, docs: list[dict], name: str, metric: str) -> list:
    missing = [d["_id"] for d in docs if d.get(name) is None]
    if missing:
        raise UserError(f"task '{task.name}': metric {metric} needs a '{name}' field; document {missing[0]} has none")
    return [d[name] for d in docs]


def add_model_scores(task, docs: list[dict], samples: list, ctx) -> None:
    """Fill in each sample's scores (and extra) for the task's model metrics, in place."""
    wanted = [m for m in task.metrics if m in MODEL_METRICS]
    outputs = [s.output.strip() for s in samples]
    for metric in wanted:
        if metric == "bertscore":
            from posttrain.eval.model_metrics.bertscore import BERTScorer

            cfg = task.model_metrics
            refs = [str(r) for r in _field(task, docs, "reference", metric)]
            scorer = BERTScorer(cfg.bertscore_model, cfg.bertscore_layer)
            for sample, (p, r, f) in zip(samples, scorer.score(outputs, refs)):
                sample.scores.update(bertscore_precision=p, bertscore_recall=r, bertscore_f1=f)
        elif metric == "comet":
            from posttrain.eval.model_metrics.comet import comet_scores, load_comet

            model = load_comet(task.model_metrics.comet_checkpoint)
            refs = [str(r) for r in _field(task, docs, "reference", metric)]
            sources = [str(d.get("source", d.get("prompt", ""))) for d in docs]
            for sample, value in zip(samples, comet_scores(model, sources, outputs, refs)):
                sample.scores["comet"] = value
        elif metric == "ner_f1":
            from posttrain.eval.model_metrics.ner import tags

            for sample, ref in zip(samples, _field(task, docs, "reference", metric)):
                sample.extra.update(ner_reference=tags(ref), ner_predicted=tags(sample.output))
        else:
            _judged(task, docs, samples, outputs, metric, ctx)


def _judged(task, docs: list[dict], samples: list, outputs: list[str], metric: str, ctx) -> None:
    from posttrain.eval.model_metrics import ragas
    from posttrain.generation.judge import make_judge

    judge = ctx.judge or make_judge(task.judge, seed=ctx.seed)
    if metric == "faithfulness":
        values = ragas.faithfulness(judge, [str(c) for c in _field(task, docs, "context", metric)], outputs)
    else:
        values = ragas.answer_relevance(judge, [str(d.get("prompt", "")) for d in docs], outputs)
    for sample, value in zip(samples, values):
        sample.scores["judge_failures"] = sample.scores.get("judge_failures", 0.0) + float(value is None)
        if value is not None:
            sample.scores[metric] = value
