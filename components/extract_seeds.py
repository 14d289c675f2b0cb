from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def extract_seeds(
    dataset: Input[Dataset],
    cam_model: Input[Model],
    params: str,
    runtime: str,
    smoke: str,
    cams: Output[Artifact],
    metrics: Output[Metrics],
):
    """Multi-scale CAMs and seeds for every training image."""
    from wsss.component import run_component

    inputs = {"dataset": dataset, "cam_model": cam_model}
    run_component("extract_seeds", inputs, cams, params, runtime, metrics, smoke=smoke)
