from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output


def train_cam(
    dataset: Input[Dataset],
    params: str,
    runtime: str,
    cam_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[HTML],
):
    """Train the CAM classifier (any CAM method: params.train_cam.method)."""
    from wsss.stages.component import run_component

    run_component("train_cam", {"dataset": dataset}, cam_model, params, runtime, metrics, summary)
