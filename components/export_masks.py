from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def export_masks(
    dataset: Input[Dataset],
    cams: Input[Artifact],
    irn_model: Input[Model],
    params: str,
    runtime: str,
    smoke: str,
    pseudo_masks: Output[Dataset],
    metrics: Output[Metrics],
):
    """Refine the CAMs by IRN's random walk into pseudo-masks and confidence masks."""
    from wsss.component import run_component

    inputs = {"dataset": dataset, "cams": cams, "irn_model": irn_model}
    run_component("export_masks", inputs, pseudo_masks, params, runtime, metrics, smoke=smoke)
