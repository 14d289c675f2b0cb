from kfp.dsl import Dataset, Input, Metrics, Model, Output


def train_deeplab(
    dataset: Input[Dataset],
    pseudo_masks: Input[Dataset],
    params: str,
    runtime: str,
    seg_model: Output[Model],
    metrics: Output[Metrics],
):
    """Train DeepLabV2 on the pseudo-masks."""
    from wsss.stages.component import run_component

    inputs = {"dataset": dataset, "pseudo_masks": pseudo_masks}
    run_component("train_deeplab", inputs, seg_model, params, runtime, metrics)
