"""Where make run's seed CAMs fire on ToyVOC's objects: mean activation on the parts and on the
bodies, the share of body pixels above the seed threshold, and how often an object's CAM peaks on
its part beside the part's share of the pixels (benchmarks.common.body_and_part).

A CAM that under-activates bodies, the failure KTSE targets, has body activation well below its
part activation and peaks on the part far more often than the part's share of the pixels;
`python -m benchmarks.methods` measures the same for every CAM method.

    make run && python -m benchmarks.body_part [--artifacts artifacts]

Writes results/body_part.json (fractions).
"""

import argparse
from pathlib import Path

from benchmarks.common import body_and_part, run_benchmark, write_json
from wsss.artifacts.opening import open_artifact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help="make run's artifacts (dataset, cam_model, cams)",
    )
    args = parser.parse_args()
    dataset, cams = args.artifacts / "dataset", args.artifacts / "cams"
    open_artifact(dataset, "dataset")  # a one-line error if make run has not made them
    seeds = open_artifact(cams, "cams").manifest.params["extract_seeds"]
    trained = open_artifact(args.artifacts / "cam_model", "cam_model").manifest.params
    method = trained["train_cam"]["method"]
    split, threshold = seeds["score_split"], seeds["threshold"]
    result = {"method": method, "split": split, "threshold": threshold}
    result |= body_and_part(dataset, cams, split, threshold)
    write_json("body_part", result)
    print(
        f"{result['method']} CAMs on {split}: part {result['part_activation']:.2f}, "
        f"body {result['body_activation']:.2f}, body pixels above {threshold}: "
        f"{100 * result['body_covered']:.1f} %, peak on the part for "
        f"{100 * result['peak_on_part']:.1f} % of the objects (parts: "
        f"{100 * result['part_share']:.1f} % of the object pixels)"
    )


if __name__ == "__main__":
    run_benchmark(main)
