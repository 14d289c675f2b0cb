"""The pipeline's stages: each a module in this package with `run(inputs, out, params) ->
metrics`, none importing another; the table below says what each reads, writes and is
configured by. wsss.runner runs any of them, for every orchestrator (CLI, DVC, KFP)."""

from dataclasses import dataclass

from wsss.artifacts.manifest import Artifact
from wsss.errors import WsssError


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # kind of the output artifact
    inputs: dict[str, str | None]  # input name -> expected artifact kind (None: a raw path/URI)
    section: str  # its params.yaml section
    # A training stage keeps its output directory's files (checkpoints) across runs, to resume,
    # and runs data-parallel under torchrun (one process per GPU).
    training: bool = False
    also_reads: tuple[str, ...] = ()  # further params sections it uses (recorded as well)
    pipeline: bool = True  # a step of the pipeline (DVC, KFP), not a command of its own


_SEEDS_INPUTS = {"dataset": "dataset", "cam_model": "cam_model"}
_IRN_INPUTS = {"dataset": "dataset", "cams": "cams"}
_MASKS_INPUTS = {"dataset": "dataset", "cams": "cams", "irn_model": "irn_model"}
_DEEPLAB_INPUTS = {"dataset": "dataset", "pseudo_masks": "pseudo_masks"}
_PREDICT_INPUTS = {"seg_model": "seg_model", "images": None}
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("prepare_data", "dataset", {"root": None}, "dataset"),
        Stage("train_cam", "cam_model", {"dataset": "dataset"}, "train_cam", training=True),
        Stage("extract_seeds", "cams", _SEEDS_INPUTS, "extract_seeds"),
        Stage("train_irn", "irn_model", _IRN_INPUTS, "train_irn", training=True),
        Stage("export_masks", "pseudo_masks", _MASKS_INPUTS, "export_masks"),
        Stage("train_deeplab", "seg_model", _DEEPLAB_INPUTS, "train_deeplab", training=True),
        Stage(
            "evaluate", "evaluation", {"dataset": "dataset", "seg_model": "seg_model"}, "evaluate"
        ),
        # `wsss predict`: a seg_model on a folder of new images, with evaluate's inference
        Stage(
            "predict",
            "predictions",
            _PREDICT_INPUTS,
            "predict",
            also_reads=("evaluate",),
            pipeline=False,
        ),
    )
}
PIPELINE: tuple[Stage, ...] = tuple(s for s in STAGES.values() if s.pipeline)  # in order

StageInputs = dict[str, Artifact | str]


StageInputs = dict[str, Artifact | str]


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise WsssError(f"unknown stage '{name}' (expected one of: {', '.join(STAGES)})")
    return STAGES[name]
