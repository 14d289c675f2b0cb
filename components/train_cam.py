from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output


def train_cam(
    dataset: Input[Dataset],
    params: str,
    runtime: str,
    smoke: str,
    method: str,
    epochs: int,
    batch_size: int,
    lr: float,
    cam_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[HTML],
):
    """Train the CAM classifier (any CAM method: params.train_cam.method)."""
    from wsss.component import run_component

    overrides = {"method": method, "epochs": epochs, "batch_size": batch_size, "lr": lr}
    run_component(
        "train_cam",
        {"dataset": dataset},
        cam_model,
        params,
        runtime,
        metrics,
        summary,
        overrides=overrides,
        smoke=smoke,
    )
