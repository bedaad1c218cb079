"""The NormGrad classifiers and the pointing game under their former module name.

The code lives in:

* :mod:`gsutils.experiments.classifier_training`: the multi-label classifiers
  of the stand-in (training, loading, test scenes, mAP) and the command line;
* :mod:`gsutils.experiments.pointing_runs`: the pointing game on the stand-in
  and on VOC, its accuracies, Table 2 and the paired bootstrap;
* :mod:`gsutils.metrics.multilabel`: average precision;
* :mod:`gsutils.plots.normgrad`: the chapter's figures and tables.

This module re-exports the public names of the first three so older imports
keep working. From the command line (the same as ``python -m gsutils pointing``)::

    python -m gsutils.experiments.classification --profile gpu --arch vgg16 resnet50
"""

from __future__ import annotations

from gsutils.experiments.classifier_training import (
    KIND,
    NUM_CLASSES,
    RECIPE_VERSION,
    check_profile_arch,
    checkpoint_path,
    classifier_config,
    classifier_history,
    evaluate_classifier,
    main,
    predict_scores,
    scenes_root,
    test_scenes,
    train_or_load_classifier,
)
from gsutils.experiments.pointing_runs import (
    CONV_FOR_LAYER,
    POINTING_VERSION,
    TORCHRAY_VOC07,
    best_layers,
    center_accuracy,
    paired_bootstrap,
    pointing_accuracies,
    pointing_config,
    pointing_data_args,
    pointing_game_run,
    score_pairs,
    torchray_checkpoint,
)
from gsutils.metrics.multilabel import average_precision

__all__ = [
    "CONV_FOR_LAYER",
    "KIND",
    "NUM_CLASSES",
    "POINTING_VERSION",
    "RECIPE_VERSION",
    "TORCHRAY_VOC07",
    "average_precision",
    "best_layers",
    "center_accuracy",
    "check_profile_arch",
    "checkpoint_path",
    "classifier_config",
    "classifier_history",
    "evaluate_classifier",
    "main",
    "paired_bootstrap",
    "pointing_accuracies",
    "pointing_config",
    "pointing_data_args",
    "pointing_game_run",
    "predict_scores",
    "scenes_root",
    "score_pairs",
    "test_scenes",
    "torchray_checkpoint",
    "train_or_load_classifier",
]

if __name__ == "__main__":
    main()
