"""infer@<model>-<context>: answer the eval questions with one arm of the experiment.

The stage's body is ragft/pipeline/infer.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.infer import main

if __name__ == "__main__":
    main()
