"""base_model: the generator every arm starts from, saved to models/base/ with its manifest.

The stage's body is ragft/pipeline/base_model.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.base_model import main

if __name__ == "__main__":
    main()
