from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output


def train_irn(
    dataset: Input[Dataset],
    cams: Input[Artifact],
    params: str,
    runtime: str,
    smoke: str,
    epochs: int,
    batch_size: int,
    lr: float,
    irn_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[HTML],
):
    """Train IRNet on inter-pixel relations mined from the CAMs."""
    from wsss.component import run_component

    inputs = {"dataset": dataset, "cams": cams}
    overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    run_component(
        "train_irn",
        inputs,
        irn_model,
        params,
        runtime,
        metrics,
        summary,
        overrides=overrides,
        smoke=smoke,
    )
