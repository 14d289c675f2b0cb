"""One KFP v2 lightweight component per pipeline stage (docs/design.md §4).

Each is a thin function that calls `wsss.component.run_component`, which runs the same
`wsss.stages` code as the CLI and DVC. Components run in our image, which carries wsss and kfp,
so `install_kfp_package=False`; the images are chosen when the pipeline is compiled.
"""

from collections.abc import Callable

from kfp import dsl
from kfp.dsl.base_component import BaseComponent

from components.evaluate import evaluate
from components.export_masks import export_masks
from components.extract_seeds import extract_seeds
from components.prepare_data import prepare_data
from components.train_cam import train_cam
from components.train_deeplab import train_deeplab
from components.train_irn import train_irn

FUNCTIONS: dict[str, Callable] = {
    f.__name__: f
    for f in (
        prepare_data,
        train_cam,
        extract_seeds,
        train_irn,
        export_masks,
        train_deeplab,
        evaluate,
    )
}


CPU_STAGES = frozenset({"prepare_data"})  # the others ask for a GPU


def build(gpu_image: str, cpu_image: str) -> dict[str, BaseComponent]:
    """The components by stage name: GPU stages run in GPU_IMAGE, the rest in CPU_IMAGE."""
    return {
        name: dsl.component(
            func,
            base_image=cpu_image if name in CPU_STAGES else gpu_image,
            install_kfp_package=False,
        )
        for name, func in FUNCTIONS.items()
    }
