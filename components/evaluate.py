from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
)


def evaluate(
    dataset: Input[Dataset],
    seg_model: Input[Model],
    params: str,
    runtime: str,
    smoke: str,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
    confusion: Output[ClassificationMetrics],
):
    """Segment the val split, score it, and publish the HTML report."""
    from wsss.component import run_component

    inputs = {"dataset": dataset, "seg_model": seg_model}
    run_component(
        "evaluate", inputs, evaluation, params, runtime, metrics, report, confusion, smoke=smoke
    )
