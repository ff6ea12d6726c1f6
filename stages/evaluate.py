"""evaluate: score every arm, write the verdict and its evidence, and the experiment's MLflow summary.

The stage's body is ragft/pipeline/evaluate.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.evaluate import main

if __name__ == "__main__":
    main()
