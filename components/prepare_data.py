from kfp.dsl import Dataset, Metrics, Output


def prepare_data(
    root: str,
    params: str,
    runtime: str,
    smoke: str,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
):
    """Index and validate the dataset root (s3://…) into the small `dataset` artifact."""
    from wsss.component import run_component

    run_component("prepare_data", {"root": root}, dataset, params, runtime, metrics, smoke=smoke)
