from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output


def train_deeplab(
    dataset: Input[Dataset],
    pseudo_masks: Input[Dataset],
    params: str,
    runtime: str,
    seg_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[HTML],
):
    """Train DeepLabV2 on the pseudo-masks."""
    from wsss.stages.component import run_component

    inputs = {"dataset": dataset, "pseudo_masks": pseudo_masks}
    run_component("train_deeplab", inputs, seg_model, params, runtime, metrics, summary)
