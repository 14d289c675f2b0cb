from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output


def train_deeplab(
    dataset: Input[Dataset],
    pseudo_masks: Input[Dataset],
    params: str,
    runtime: str,
    smoke: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seg_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[HTML],
):
    """Train DeepLabV2 on the pseudo-masks."""
    from wsss.component import run_component

    inputs = {"dataset": dataset, "pseudo_masks": pseudo_masks}
    overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    run_component(
        "train_deeplab",
        inputs,
        seg_model,
        params,
        runtime,
        metrics,
        summary,
        overrides=overrides,
        smoke=smoke,
    )
