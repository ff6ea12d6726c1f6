"""prepare: documents + questions, split by document into train (fine-tuning may use) and eval.

The stage's body is ragft/pipeline/prepare.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.prepare import main

if __name__ == "__main__":
    main()
